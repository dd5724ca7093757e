package metrics

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/mat"

	"github.com/roentgo/roentgo/internal/f64"
)

// Stats is the Gaussian summary of a set of feature vectors, as FID uses it.
type Stats struct {
	// Mu is the mean feature vector: [D].
	Mu []float64
	// Sigma is the sample covariance (normalised by N-1, as numpy.cov does): [D, D].
	Sigma *mat.Dense
	// N is the number of feature vectors summarised; 0 when unknown (for
	// example, statistics read from a file).
	N int64
}

// Dim returns the feature dimension D.
func (s *Stats) Dim() int { return len(s.Mu) }

// validate checks that Mu and Sigma agree in size.
func (s *Stats) validate(name string) error {
	if s == nil || s.Sigma == nil {
		return fmt.Errorf("metrics: %s: missing statistics", name)
	}
	r, c := s.Sigma.Dims()
	if r != c || r != len(s.Mu) {
		return fmt.Errorf("metrics: %s: mu has %d entries but sigma is %d×%d", name, len(s.Mu), r, c)
	}
	if r == 0 {
		return fmt.Errorf("metrics: %s: empty statistics", name)
	}
	return nil
}

// chunkRows is the number of rows an Accumulator collects before it folds
// them into its totals (memory: chunkRows*D float64). Folding costs one
// D×D triangular product whatever the number of rows, so rows are gathered
// across AddBatch calls: small batches cost the same as large ones.
const chunkRows = 512

// Accumulator accumulates the mean and covariance of feature vectors in
// float64, one batch at a time, without keeping the vectors.
//
// Rows are gathered in chunks of up to 512 (across AddBatch calls); each
// chunk is centred on its own mean and merged into the running totals with
// Chan et al.'s pairwise update
//
//	δ = m_b - m_a,  n = n_a + n_b,
//	m = m_a + δ·n_b/n,  M2 = M2_a + M2_b + δδᵀ·n_a·n_b/n,
//
// which avoids the cancellation of the naive Σxxᵀ - n·mmᵀ formula; M2_b and
// the δδᵀ term are added by one symmetric rank-k product (f64.Dsyrk, upper
// triangle) of the centred chunk with the extra row √(n_a·n_b/n)·δ. Two
// accumulators (for example, from shards of a data set) merge the same way.
// The chunking changes the result only by rounding. An Accumulator is not
// safe for concurrent use.
type Accumulator struct {
	dim     int
	n       int64     // vectors folded into mean and m2
	mean    []float64 // [D]
	m2      []float64 // [D, D] row-major, upper triangle: Σ (x-mean)(x-mean)ᵀ
	xc      []float64 // pending rows, then centred: [chunkRows, D]
	pending int       // rows in xc not yet folded in
	mb      []float64 // scratch: chunk mean [D]
}

// NewAccumulator returns an empty accumulator for dim-dimensional features.
// It panics if dim < 1.
func NewAccumulator(dim int) *Accumulator {
	if dim < 1 {
		panic("metrics: NewAccumulator: dimension must be positive")
	}
	return &Accumulator{dim: dim, mean: make([]float64, dim), m2: make([]float64, dim*dim)}
}

// Dim returns the feature dimension.
func (a *Accumulator) Dim() int { return a.dim }

// Count returns the number of feature vectors added so far.
func (a *Accumulator) Count() int64 { return a.n + int64(a.pending) }

// AddBatch adds the feature vectors in x, row-major [N, D]. It panics if
// len(x) is not a multiple of D.
func (a *Accumulator) AddBatch(x []float64) {
	a.addBatch(len(x), func(dst []float64, row int) { copy(dst, x[row*a.dim:(row+1)*a.dim]) })
}

// AddBatch32 is AddBatch for float32 features (converted to float64 first).
func (a *Accumulator) AddBatch32(x []float32) {
	a.addBatch(len(x), func(dst []float64, row int) {
		for i, v := range x[row*a.dim : (row+1)*a.dim] {
			dst[i] = float64(v)
		}
	})
}

// Add adds one feature vector of length D. It panics on a length mismatch.
func (a *Accumulator) Add(x []float64) {
	if len(x) != a.dim {
		panic(fmt.Sprintf("metrics: Accumulator.Add: vector has %d entries, want %d", len(x), a.dim))
	}
	a.AddBatch(x)
}

func (a *Accumulator) addBatch(size int, row func(dst []float64, row int)) {
	d := a.dim
	if size%d != 0 {
		panic(fmt.Sprintf("metrics: Accumulator: batch of %d values is not a whole number of %d-vectors", size, d))
	}
	rows := size / d
	if rows == 0 {
		return
	}
	if a.xc == nil {
		a.xc = make([]float64, (chunkRows+1)*d) // +1: see flush
		a.mb = make([]float64, d)
	}
	for r := 0; r < rows; r++ {
		row(a.xc[a.pending*d:(a.pending+1)*d], r)
		a.pending++
		if a.pending == chunkRows {
			a.flush()
		}
	}
}

// flush folds the pending rows into the totals. The chunk's own scatter
// matrix and the δδᵀ·n_a·n_b/n term of the pairwise update go through one
// symmetric rank-k product: the chunk is centred on its mean m_b and
// extended by the row √(n_a·n_b/n)·δ.
func (a *Accumulator) flush() {
	nb := a.pending
	if nb == 0 {
		return
	}
	d := a.dim
	xc := a.xc[:nb*d]
	clear(a.mb)
	for r := 0; r < nb; r++ {
		for i, v := range xc[r*d : (r+1)*d] {
			a.mb[i] += v
		}
	}
	inv := 1 / float64(nb)
	for i := range a.mb {
		a.mb[i] *= inv
	}
	for r := 0; r < nb; r++ {
		dst := xc[r*d : (r+1)*d]
		for i := range dst {
			dst[i] -= a.mb[i]
		}
	}
	na := a.n
	n := na + int64(nb)
	rows := nb
	if na > 0 {
		sw := math.Sqrt(float64(na) * float64(nb) / float64(n))
		extra := a.xc[nb*d : (nb+1)*d]
		for i := range extra {
			extra[i] = sw * (a.mb[i] - a.mean[i])
		}
		rows++
	}
	// Upper triangle of M2 += Xcᵀ Xc.
	f64.Dsyrk(blas.Upper, blas.Trans, d, rows, 1, a.xc[:rows*d], d, 1, a.m2, d)
	f := float64(nb) / float64(n)
	for i := range a.mean {
		a.mean[i] += (a.mb[i] - a.mean[i]) * f
	}
	a.n = n
	a.pending = 0
}

// merge folds the totals of nb vectors with mean mb and upper-triangular
// scatter matrix m2b ([D, D] row-major) into a's.
func (a *Accumulator) merge(nb int64, mb, m2b []float64) {
	d := a.dim
	na := a.n
	n := na + nb
	delta := make([]float64, d)
	for i := range delta {
		delta[i] = mb[i] - a.mean[i]
	}
	w := float64(na) * float64(nb) / float64(n)
	for i := 0; i < d; i++ {
		// Upper triangle of M2 += M2_b + w·δδᵀ.
		wi := w * delta[i]
		row := a.m2[i*d+i : (i+1)*d]
		for j, v := range m2b[i*d+i : (i+1)*d] {
			row[j] += v + wi*delta[i+j]
		}
	}
	f := float64(nb) / float64(n)
	for i := range a.mean {
		a.mean[i] += delta[i] * f
	}
	a.n = n
}

// Merge adds everything accumulated in b to a (b is unchanged). It returns an
// error if the dimensions differ.
func (a *Accumulator) Merge(b *Accumulator) error {
	if b.dim != a.dim {
		return fmt.Errorf("metrics: Accumulator.Merge: dimensions differ (%d and %d)", a.dim, b.dim)
	}
	a.flush()
	if b.n > 0 {
		a.merge(b.n, b.mean, b.m2)
	}
	if b.pending > 0 {
		a.AddBatch(b.xc[:b.pending*b.dim])
	}
	return nil
}

// Stats returns the mean and the sample covariance (divided by N-1, as
// numpy.cov and so pytorch-fid and clean-fid do) of everything added. The
// covariance is exactly symmetric. It fails with fewer than two vectors.
func (a *Accumulator) Stats() (*Stats, error) {
	a.flush()
	if a.n < 2 {
		return nil, errors.New("metrics: Accumulator.Stats: need at least 2 feature vectors for a covariance")
	}
	d := a.dim
	sigma := mat.NewDense(d, d, nil)
	raw := sigma.RawMatrix().Data
	inv := 1 / float64(a.n-1)
	for i := 0; i < d; i++ {
		for j, v := range a.m2[i*d+i : (i+1)*d] {
			raw[i*d+i+j] = v * inv
		}
	}
	upperToLower(raw, sigma)
	return &Stats{Mu: append([]float64(nil), a.mean...), Sigma: sigma, N: a.n}, nil
}

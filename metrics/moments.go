package metrics

import (
	"errors"
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"
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

// chunkRows bounds the rows centred at once in AddBatch (memory: chunkRows*D
// float64).
const chunkRows = 512

// Accumulator accumulates the mean and covariance of feature vectors in
// float64, one batch at a time, without keeping the vectors.
//
// Each batch is centred on its own mean, its scatter matrix Σ (x-m_b)(x-m_b)ᵀ
// is formed with one matrix product, and it is merged into the running totals
// with Chan et al.'s pairwise update
//
//	δ = m_b - m_a,  n = n_a + n_b,
//	m = m_a + δ·n_b/n,  M2 = M2_a + M2_b + δδᵀ·n_a·n_b/n,
//
// which avoids the cancellation of the naive Σxxᵀ - n·mmᵀ formula. Two
// accumulators (for example, from shards of a data set) merge the same way.
// An Accumulator is not safe for concurrent use.
type Accumulator struct {
	dim  int
	n    int64
	mean []float64 // [D]
	m2   []float64 // [D, D] row-major, upper triangle: Σ (x-mean)(x-mean)ᵀ
	xc   []float64 // scratch: centred chunk [chunkRows, D]
	mb   []float64 // scratch: chunk mean [D]
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
func (a *Accumulator) Count() int64 { return a.n }

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
	if a.xc == nil && rows > 0 {
		a.xc = make([]float64, min(rows, chunkRows)*d)
		a.mb = make([]float64, d)
	}
	if len(a.xc) < min(rows, chunkRows)*d {
		a.xc = make([]float64, min(rows, chunkRows)*d)
	}
	for start := 0; start < rows; start += chunkRows {
		nb := min(chunkRows, rows-start)
		xc := a.xc[:nb*d]
		clear(a.mb)
		for r := 0; r < nb; r++ {
			dst := xc[r*d : (r+1)*d]
			row(dst, start+r)
			for i, v := range dst {
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
		a.merge(int64(nb), a.mb, func(m2 blas64.General) {
			// M2 += Xcᵀ Xc (full product; the lower half is ignored).
			blas64.Gemm(blas.Trans, blas.NoTrans, 1,
				blas64.General{Rows: nb, Cols: d, Stride: d, Data: xc},
				blas64.General{Rows: nb, Cols: d, Stride: d, Data: xc}, 1, m2)
		})
	}
}

// merge folds a group of nb vectors with mean mb into a; addScatter adds the
// group's own centred scatter matrix to the given [D, D] matrix.
func (a *Accumulator) merge(nb int64, mb []float64, addScatter func(blas64.General)) {
	d := a.dim
	m2 := blas64.General{Rows: d, Cols: d, Stride: d, Data: a.m2}
	na := a.n
	n := na + nb
	delta := make([]float64, d)
	for i := range delta {
		delta[i] = mb[i] - a.mean[i]
	}
	addScatter(m2)
	if na > 0 {
		w := float64(na) * float64(nb) / float64(n)
		blas64.Ger(w, blas64.Vector{N: d, Inc: 1, Data: delta}, blas64.Vector{N: d, Inc: 1, Data: delta}, m2)
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
	if b.n == 0 {
		return nil
	}
	a.merge(b.n, b.mean, func(m2 blas64.General) {
		for i, v := range b.m2 {
			m2.Data[i] += v
		}
	})
	return nil
}

// Stats returns the mean and the sample covariance (divided by N-1, as
// numpy.cov and so pytorch-fid and clean-fid do) of everything added. The
// covariance is exactly symmetric. It fails with fewer than two vectors.
func (a *Accumulator) Stats() (*Stats, error) {
	if a.n < 2 {
		return nil, errors.New("metrics: Accumulator.Stats: need at least 2 feature vectors for a covariance")
	}
	d := a.dim
	sigma := mat.NewDense(d, d, nil)
	inv := 1 / float64(a.n-1)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			v := a.m2[i*d+j] * inv
			sigma.Set(i, j, v)
			sigma.Set(j, i, v)
		}
	}
	return &Stats{Mu: append([]float64(nil), a.mean...), Sigma: sigma, N: a.n}, nil
}

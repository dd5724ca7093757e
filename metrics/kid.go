package metrics

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"
)

// KIDOptions are the subset-sampling parameters of KID.
type KIDOptions struct {
	// NumSubsets is the number of random subset pairs averaged (100 in
	// clean-fid and torch-fidelity).
	NumSubsets int
	// SubsetSize is the largest subset size m (1000 in both); the size used
	// is min(SubsetSize, N_x, N_y), as clean-fid does.
	SubsetSize int
	// Seed seeds the subset sampler (a PCG generator from math/rand/v2), so
	// a result is reproducible in Go; it does not reproduce numpy's subsets.
	Seed uint64
}

// DefaultKIDOptions returns 100 subsets of at most 1000, seed 0.
func DefaultKIDOptions() KIDOptions { return KIDOptions{NumSubsets: 100, SubsetSize: 1000} }

// KIDResult is a kernel inception distance estimate.
type KIDResult struct {
	// Mean is the mean of the per-subset unbiased MMD² estimates: the KID.
	Mean float64
	// Std is their standard deviation (population, ddof = 0, as
	// torch-fidelity reports it).
	Std float64
	// SubsetSize is the subset size m actually used.
	SubsetSize int
}

// polyKernel returns K[i,j] = (a_i·b_j/d + 1)³ for the rows of a and b.
func polyKernel(a, b mat.Matrix, d int) *mat.Dense {
	var k mat.Dense
	k.Mul(a, b.T())
	k.Apply(func(_, _ int, v float64) float64 {
		t := v/float64(d) + 1
		return t * t * t
	}, &k)
	return &k
}

// MMD2Unbiased returns the unbiased estimate of the squared maximum mean
// discrepancy between the rows of x and y (m rows each, d columns) with the
// cubic polynomial kernel k(a, b) = (a·b/d + 1)³:
//
//	MMD²ᵤ = [Σ_{i≠j} k(x_i,x_j) + Σ_{i≠j} k(y_i,y_j)] / (m(m-1)) - 2 Σ_{i,j} k(x_i,y_j) / m²,
//
// the per-subset term of clean-fid's kernel_distance and torch-fidelity's
// KID. x and y must have the same shape with m >= 2.
func MMD2Unbiased(x, y mat.Matrix) (float64, error) {
	m, d := x.Dims()
	my, dy := y.Dims()
	if m != my || d != dy {
		return 0, fmt.Errorf("metrics: MMD²: feature sets differ in shape (%dx%d and %dx%d)", m, d, my, dy)
	}
	if m < 2 || d < 1 {
		return 0, fmt.Errorf("metrics: MMD²: need at least 2 samples of dimension >= 1, got %dx%d", m, d)
	}
	kxx := polyKernel(x, x, d)
	kyy := polyKernel(y, y, d)
	kxy := polyKernel(x, y, d)
	var sxx, syy, sxy float64
	for i := 0; i < m; i++ {
		for j := 0; j < m; j++ {
			if i != j {
				sxx += kxx.At(i, j)
				syy += kyy.At(i, j)
			}
			sxy += kxy.At(i, j)
		}
	}
	fm := float64(m)
	return (sxx+syy)/(fm*(fm-1)) - 2*sxy/(fm*fm), nil
}

// KID returns the kernel inception distance between the feature sets x and
// y (one feature vector per row; the row counts may differ), as clean-fid's
// kernel_distance defines it: for each of o.NumSubsets rounds, draw m rows of
// x and m rows of y without replacement (m = min(o.SubsetSize, N_x, N_y))
// and compute MMD2Unbiased on them; the KID is the mean over rounds.
// torch-fidelity computes the same estimate (it requires N >= SubsetSize
// instead of shrinking m).
func KID(x, y mat.Matrix, o KIDOptions) (KIDResult, error) {
	nx, d := x.Dims()
	ny, dy := y.Dims()
	if d != dy {
		return KIDResult{}, fmt.Errorf("metrics: KID: feature dimensions differ (%d and %d)", d, dy)
	}
	if o.NumSubsets < 1 || o.SubsetSize < 2 {
		return KIDResult{}, errors.New("metrics: KID: need NumSubsets >= 1 and SubsetSize >= 2")
	}
	m := min(o.SubsetSize, nx, ny)
	if m < 2 {
		return KIDResult{}, fmt.Errorf("metrics: KID: need at least 2 feature vectors in each set, have %d and %d", nx, ny)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x6b6964)) // "kid"
	px := make([]int, nx)
	py := make([]int, ny)
	sx := mat.NewDense(m, d, nil)
	sy := mat.NewDense(m, d, nil)
	vals := make([]float64, o.NumSubsets)
	for s := range vals {
		sampleRows(rng, x, px, sx)
		sampleRows(rng, y, py, sy)
		v, err := MMD2Unbiased(sx, sy)
		if err != nil {
			return KIDResult{}, err
		}
		vals[s] = v
	}
	var mean, ss float64
	for _, v := range vals {
		mean += v
	}
	mean /= float64(len(vals))
	for _, v := range vals {
		ss += (v - mean) * (v - mean)
	}
	return KIDResult{Mean: mean, Std: math.Sqrt(ss / float64(len(vals))), SubsetSize: m}, nil
}

// sampleRows copies len(dst rows) distinct random rows of src into dst
// (partial Fisher–Yates shuffle of perm).
func sampleRows(rng *rand.Rand, src mat.Matrix, perm []int, dst *mat.Dense) {
	for i := range perm {
		perm[i] = i
	}
	m, _ := dst.Dims()
	for i := 0; i < m; i++ {
		j := i + rng.IntN(len(perm)-i)
		perm[i], perm[j] = perm[j], perm[i]
		dst.SetRow(i, mat.Row(nil, perm[i], src))
	}
}

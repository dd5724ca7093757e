package metrics

import (
	"errors"
	"math"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"
)

// frechetSymmetricGonum is FrechetSymmetric as it was computed with gonum
// alone (lapack64.Pstrf, mat products, mat.EigenSym): the reference the
// internal/f64 route must reproduce to rounding.
func frechetSymmetricGonum(a, b *Stats) (FrechetResult, error) {
	var res FrechetResult
	n := a.Dim()
	for i := range a.Mu {
		d := a.Mu[i] - b.Mu[i]
		res.MeanTerm += d * d
	}
	tr1, tr2 := mat.Trace(a.Sigma), mat.Trace(b.Sigma)
	s1 := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			s1[j*n+i] = a.Sigma.At(i, j)
		}
	}
	piv := make([]int, n)
	lt, rank, _ := lapack64.Pstrf(blas64.Symmetric{N: n, Stride: n, Uplo: blas.Lower, Data: s1}, piv, -1, make([]float64, 2*n))
	if rank == 0 {
		res.Distance = res.MeanTerm + tr1 + tr2
		return res, nil
	}
	f := mat.NewDense(n, rank, nil)
	for k := 0; k < n; k++ {
		for j := 0; j < min(k+1, rank); j++ {
			f.Set(piv[k], j, lt.Data[k*lt.Stride+j])
		}
	}
	s2 := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := i; j < n; j++ {
			s2.SetSym(i, j, b.Sigma.At(i, j))
		}
	}
	var s2f, m mat.Dense
	s2f.Mul(s2, f)
	m.Mul(f.T(), &s2f)
	ms := mat.NewSymDense(rank, nil)
	for i := 0; i < rank; i++ {
		for j := i; j < rank; j++ {
			ms.SetSym(i, j, (m.At(i, j)+m.At(j, i))/2)
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(ms, false) {
		return res, errors.New("no convergence")
	}
	for _, l := range eig.Values(nil) {
		if l > 0 {
			res.TraceSqrt += math.Sqrt(l)
		}
	}
	res.Distance = res.MeanTerm + tr1 + tr2 - 2*res.TraceSqrt
	return res, nil
}

// TestFrechetSymmetricMatchesGonum compares FrechetSymmetric with the
// gonum-only computation on random statistics, full rank and rank deficient
// (fewer vectors than dimensions, as for small evaluation sets).
func TestFrechetSymmetricMatchesGonum(t *testing.T) {
	for _, c := range []struct {
		name string
		n, d int
		tol  float64 // relative to the distance
	}{
		{"full rank", 700, 300, 1e-9},
		{"rank deficient", 120, 300, 1e-8},
		{"D below one block", 300, 70, 1e-9},
	} {
		t.Run(c.name, func(t *testing.T) {
			s1 := randomStats(t, c.n, c.d, 11)
			s2 := randomStats(t, c.n, c.d, 12)
			got, err := FrechetSymmetric(s1, s2)
			if err != nil {
				t.Fatal(err)
			}
			want, err := frechetSymmetricGonum(s1, s2)
			if err != nil {
				t.Fatal(err)
			}
			e := relErr(got.Distance, want.Distance, 1e-300)
			t.Logf("fd %.15g, gonum route %.15g: relative difference %.3g; trace sqrt %.15g vs %.15g",
				got.Distance, want.Distance, e, got.TraceSqrt, want.TraceSqrt)
			if e > c.tol {
				t.Errorf("fd %v, gonum route %v: relative difference %g > %g", got.Distance, want.Distance, e, c.tol)
			}
		})
	}
}

// TestFrechetSymmetricZeroSigma1 checks the rank-0 path (Σ₁ = 0).
func TestFrechetSymmetricZeroSigma1(t *testing.T) {
	a := &Stats{Mu: []float64{0, 0}, Sigma: mat.NewDense(2, 2, nil)}
	b := &Stats{Mu: []float64{1, 2}, Sigma: mat.NewDense(2, 2, []float64{2, 1, 1, 3})}
	r, err := FrechetSymmetric(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Distance != 5+5 || r.TraceSqrt != 0 {
		t.Errorf("got %+v, want distance 10", r)
	}
}

package f64

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/lapack/gonum"
	"gonum.org/v1/gonum/mat"
)

// randPSD returns an n×n row-major symmetric positive semidefinite matrix
// G·Gᵀ of rank min(n, r) (with G n×r standard normal), and a copy.
func randPSD(rng *rand.Rand, n, r int) []float64 {
	g := make([]float64, n*r)
	for i := range g {
		g[i] = rng.NormFloat64()
	}
	a := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			var s float64
			for p := 0; p < r; p++ {
				s += g[i*r+p] * g[j*r+p]
			}
			a[i*n+j], a[j*n+i] = s, s
		}
	}
	return a
}

func TestDpstrf(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(12, 13))
		for _, c := range []struct{ n, r int }{{1, 1}, {2, 2}, {5, 5}, {63, 63}, {64, 64}, {65, 70}, {150, 150}, {200, 60}, {300, 129}, {130, 1}} {
			n := c.n
			orig := randPSD(rng, n, c.r)
			got := append([]float64(nil), orig...)
			for i := 0; i < n; i++ { // strict upper: sentinel, untouched
				for j := i + 1; j < n; j++ {
					got[i*n+j] = 7
				}
			}
			want := append([]float64(nil), orig...)
			piv, wpiv := make([]int, n), make([]int, n)
			rank, ok := Dpstrf(n, got, n, piv, -1)
			wrank, wok := gonum.Implementation{}.Dpstrf(blas.Lower, n, want, n, wpiv, -1, make([]float64, 2*n))
			if rank != wrank || ok != wok {
				t.Fatalf("n=%d r=%d: rank %d ok %v; gonum %d %v", n, c.r, rank, ok, wrank, wok)
			}
			// Pivots agree with gonum's over the numerically significant part.
			for k := 0; k < rank; k++ {
				if piv[k] != wpiv[k] {
					t.Fatalf("n=%d r=%d: piv[%d] = %d, gonum %d", n, c.r, k, piv[k], wpiv[k])
				}
			}
			scale := 0.0
			for i := 0; i < n; i++ {
				scale = math.Max(scale, orig[i*n+i])
			}
			// L agrees with gonum's, and Pᵀ A P = L Lᵀ on the first rank
			// columns for a full-rank factorisation.
			for i := 0; i < n; i++ {
				for j := 0; j < min(i+1, rank); j++ {
					if d := math.Abs(got[i*n+j] - want[i*n+j]); d > 1e-10*math.Sqrt(scale) {
						t.Fatalf("n=%d r=%d: L[%d][%d] = %v, gonum %v", n, c.r, i, j, got[i*n+j], want[i*n+j])
					}
				}
				for j := i + 1; j < n; j++ {
					if got[i*n+j] != 7 {
						t.Fatalf("n=%d: upper triangle written at %d,%d", n, i, j)
					}
				}
			}
			var worst float64
			for i := 0; i < n; i++ {
				for j := 0; j <= i; j++ {
					var s float64
					for q := 0; q < min(j+1, rank); q++ {
						s += got[i*n+q] * got[j*n+q]
					}
					worst = math.Max(worst, math.Abs(s-orig[piv[i]*n+piv[j]]))
				}
			}
			if worst > 1e-12*float64(n)*scale {
				t.Errorf("n=%d r=%d: |PᵀAP - LLᵀ| = %g (scale %g)", n, c.r, worst, scale)
			}
		}
	})
	// Zero and negative diagonals: rank 0.
	for _, a := range [][]float64{{0, 0, 0, 0}, {-1, 0, 0, -2}} {
		if r, ok := Dpstrf(2, a, 2, make([]int, 2), -1); r != 0 || ok {
			t.Errorf("Dpstrf(%v) = %d %v, want 0 false", a, r, ok)
		}
	}
}

// eigRef returns the eigenvalues of the symmetric row-major n×n a with
// gonum's EigenSym.
func eigRef(t *testing.T, n int, a []float64) []float64 {
	s := mat.NewSymDense(n, nil)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			s.SetSym(i, j, a[i*n+j])
		}
	}
	var e mat.EigenSym
	if !e.Factorize(s, false) {
		t.Fatal("gonum EigenSym failed")
	}
	return e.Values(nil)
}

func TestEigenvaluesSym(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(14, 15))
		for _, n := range []int{1, 2, 3, 5, 47, 48, 49, 97, 150, 400, 500} {
			for _, kind := range []string{"uniform", "psd", "scaled-tiny", "scaled-huge"} {
				if n >= 400 && kind != "uniform" {
					continue
				}
				var a []float64
				switch kind {
				case "psd":
					a = randPSD(rng, n, max(1, n/3))
				default:
					a = randMat(rng, n, n, n)
					for i := 0; i < n; i++ {
						for j := 0; j < i; j++ {
							a[j*n+i] = a[i*n+j]
						}
					}
				}
				f := 1.0
				switch kind {
				case "scaled-tiny":
					f = 1e-160
				case "scaled-huge":
					f = 1e160
				}
				// gonum v0.17's EigenSym panics on the scaled matrices: its
				// reference is the unscaled one's, scaled.
				want := eigRef(t, n, a)
				for i := range a {
					a[i] *= f
				}
				for i := range want {
					want[i] *= f
				}
				work := append([]float64(nil), a...)
				for i := 0; i < n; i++ {
					for j := i + 1; j < n; j++ {
						work[i*n+j] = math.NaN() // not read
					}
				}
				got := make([]float64, n)
				if !EigenvaluesSym(n, work, n, got) {
					t.Fatalf("n=%d %s: did not converge", n, kind)
				}
				if !sort.Float64sAreSorted(got) {
					t.Errorf("n=%d %s: eigenvalues not ascending", n, kind)
				}
				var norm float64
				for _, v := range want {
					norm = math.Max(norm, math.Abs(v))
				}
				var worst float64
				for i := range got {
					worst = math.Max(worst, math.Abs(got[i]-want[i]))
				}
				if worst > 1e-13*float64(n)*norm {
					t.Errorf("n=%d %s: max |λ - λ_gonum| = %g (‖A‖₂ %g)", n, kind, worst, norm)
				}
			}
		}
	})
}

func TestDsytrdSmall(t *testing.T) {
	// A tridiagonal matrix is its own reduction up to signs of e.
	n := 5
	a := make([]float64, n*n)
	for i := 0; i < n; i++ {
		a[i*n+i] = float64(i + 1)
		if i > 0 {
			a[i*n+i-1] = 0.5
		}
	}
	d, e := make([]float64, n), make([]float64, n-1)
	Dsytrd(n, a, n, d, e)
	for i := 0; i < n; i++ {
		if math.Abs(d[i]-float64(i+1)) > 1e-15 {
			t.Errorf("d[%d] = %v", i, d[i])
		}
	}
	for i := range e {
		if math.Abs(math.Abs(e[i])-0.5) > 1e-15 {
			t.Errorf("e[%d] = %v", i, e[i])
		}
	}
}

func TestScale(t *testing.T) {
	for _, e := range []int{0, 5, -7, 1030, -1040} {
		a := []float64{0x1p-1060, 3, 5e-320, -7, 1.5, 9, 0x1p-30, 1e300, 2}
		if e > 1000 {
			a = []float64{0x1p-1060, 3, 5e-320, -7e-310, 1e-311, 9, 0x1p-1030, 1e-320, 2e-308}
		}
		want := append([]float64(nil), a...)
		for i := 0; i < 3; i++ {
			for j := 0; j <= i; j++ {
				want[i*3+j] = math.Ldexp(a[i*3+j], e)
			}
		}
		got := append([]float64(nil), a...)
		scale(3, got, 3, e)
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("e=%d: element %d = %v, want %v", e, i, got[i], want[i])
			}
		}
		v := append([]float64(nil), a[:4]...)
		scale(4, v, 0, e)
		for i := range v {
			if w := math.Ldexp(a[i], e); v[i] != w {
				t.Errorf("e=%d: vector element %d = %v, want %v", e, i, v[i], w)
			}
		}
	}
}

// TestEigenvaluesSymStride checks a leading dimension larger than n (the
// padding holds NaN): the same bits as the packed matrix.
func TestEigenvaluesSymStride(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 21))
	n, lda := 130, 137
	a := randMat(rng, n, n, lda)
	packed := make([]float64, n*n)
	for i := 0; i < n; i++ {
		copy(packed[i*n:i*n+i+1], a[i*lda:i*lda+i+1])
	}
	w1, w2 := make([]float64, n), make([]float64, n)
	if !EigenvaluesSym(n, a, lda, w1) || !EigenvaluesSym(n, packed, n, w2) {
		t.Fatal("no convergence")
	}
	for i := range w1 {
		if w1[i] != w2[i] {
			t.Fatalf("λ[%d] = %v with lda %d, %v with lda %d", i, w1[i], lda, w2[i], n)
		}
	}
}

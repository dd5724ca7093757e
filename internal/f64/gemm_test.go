package f64

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"gonum.org/v1/gonum/blas"
)

var gemmShapes = [][3]int{
	{0, 0, 0}, {1, 1, 1}, {0, 5, 3}, {4, 0, 2}, {3, 4, 0},
	{1, 17, 3}, {17, 1, 5}, {13, 15, 1}, {14, 16, 7}, {15, 17, 33},
	{28, 32, 256}, {29, 33, 257}, {6, 8, 9}, {7, 9, 4}, {63, 65, 31},
	{169, 40, 300}, {40, 169, 520}, {130, 150, 60}, {150, 130, 61},
	{5, 2100, 3}, {2100, 3, 4}, {337, 333, 129},
}

func trans(b bool) blas.Transpose {
	if b {
		return blas.Trans
	}
	return blas.NoTrans
}

func TestDgemm(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, sh := range gemmShapes {
			m, n, k := sh[0], sh[1], sh[2]
			for _, tt := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
				ta, tb := tt[0], tt[1]
				ab := [][2]float64{{1, 0}, {-1, 1}, {0.5, -2}}
				alpha, beta := ab[rng.IntN(3)][0], ab[rng.IntN(3)][1]
				ar, ac := m, k
				if ta {
					ar, ac = k, m
				}
				br, bc := k, n
				if tb {
					br, bc = n, k
				}
				lda, ldb, ldc := ac+rng.IntN(3), bc+rng.IntN(3), n+1+rng.IntN(3)
				a := randMat(rng, ar, ac, lda)
				b := randMat(rng, br, bc, ldb)
				c := randMat(rng, m, n, ldc)
				if beta == 0 {
					for i := 0; i < m; i++ {
						for j := 0; j < n; j++ {
							c[i*ldc+j] = nan() // must not be read
						}
					}
				}
				ref, bound := gemmRef(triFull, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
				Dgemm(trans(ta), trans(tb), m, n, k, alpha, a, max(lda, 1), b, max(ldb, 1), beta, c, ldc)
				compare(t, shapeName("m=%d n=%d k=%d tA=%v tB=%v alpha=%v beta=%v", m, n, k, ta, tb, alpha, beta), c, ref, bound, k)
			}
		}
	})
}

func TestDgemmt(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		for _, nk := range [][2]int{{0, 3}, {1, 1}, {2, 5}, {13, 7}, {14, 3}, {17, 16}, {33, 300}, {130, 70}, {200, 61}, {451, 96}} {
			n, k := nk[0], nk[1]
			for _, tri := range []triangle{triLower, triUpper} {
				for _, tt := range [][2]bool{{false, true}, {true, false}, {false, false}} {
					ta, tb := tt[0], tt[1]
					ar, ac := n, k
					if ta {
						ar, ac = k, n
					}
					br, bc := k, n
					if tb {
						br, bc = n, k
					}
					lda, ldb, ldc := ac+1, bc+2, n+3
					a := randMat(rng, ar, ac, lda)
					b := randMat(rng, br, bc, ldb)
					c := randMat(rng, n, n, ldc)
					alpha, beta := -1.0, 1.0
					if tri == triUpper {
						alpha, beta = 0.75, 0.5
					}
					ref, bound := gemmRef(tri, ta, tb, n, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
					ul := blas.Lower
					if tri == triUpper {
						ul = blas.Upper
					}
					Dgemmt(ul, trans(ta), trans(tb), n, k, alpha, a, lda, b, ldb, beta, c, ldc)
					compare(t, shapeName("n=%d k=%d tri=%d tA=%v tB=%v", n, k, tri, ta, tb), c, ref, bound, k)
				}
			}
		}
	})
}

func TestDsyrk(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, nk := range [][2]int{{1, 1}, {31, 9}, {260, 130}} {
		n, k := nk[0], nk[1]
		for _, tr := range []bool{false, true} {
			ar, ac := n, k
			if tr {
				ar, ac = k, n
			}
			a := randMat(rng, ar, ac, ac)
			c := randMat(rng, n, n, n)
			ref, bound := gemmRef(triUpper, tr, !tr, n, n, k, 2, a, ac, a, ac, 0, c, n)
			Dsyrk(blas.Upper, trans(tr), n, k, 2, a, ac, 0, c, n)
			compare(t, shapeName("n=%d k=%d trans=%v", n, k, tr), c, ref, bound, k)
		}
	}
}

// TestDgemmWorkers splits products over more goroutines than the machine
// has cores, to exercise the region boundaries.
func TestDgemmWorkers(t *testing.T) {
	for _, w := range []int{1, 3, 5} {
		prev := runtime.GOMAXPROCS(w)
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		n, k := 301, 40
		a := randMat(rng, n, k, k)
		b := randMat(rng, k, n, n)
		c := randMat(rng, n, n, n)
		ref, bound := gemmRef(triFull, false, false, n, n, k, 1, a, k, b, n, 1, c, n)
		Dgemm(blas.NoTrans, blas.NoTrans, n, n, k, 1, a, k, b, n, 1, c, n)
		compare(t, shapeName("workers=%d full", w), c, ref, bound, k)
		for _, tri := range []triangle{triLower, triUpper} {
			c := randMat(rng, n, n, n)
			ul := blas.Lower
			if tri == triUpper {
				ul = blas.Upper
			}
			ref, bound := gemmRef(tri, false, true, n, n, k, -1, a, k, a, k, 1, c, n)
			Dgemmt(ul, blas.NoTrans, blas.Trans, n, k, -1, a, k, a, k, 1, c, n)
			compare(t, shapeName("workers=%d tri=%d", w, tri), c, ref, bound, k)
		}
		runtime.GOMAXPROCS(prev)
	}
}

func TestDgemmPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"short C": func() {
			Dgemm(blas.NoTrans, blas.NoTrans, 2, 2, 2, 1, make([]float64, 4), 2, make([]float64, 4), 2, 0, make([]float64, 3), 2)
		},
		"bad lda": func() {
			Dgemm(blas.NoTrans, blas.NoTrans, 2, 2, 3, 1, make([]float64, 6), 2, make([]float64, 6), 2, 0, make([]float64, 4), 2)
		},
		"bad uplo": func() {
			Dgemmt(blas.All, blas.NoTrans, blas.Trans, 2, 2, 1, make([]float64, 4), 2, make([]float64, 4), 2, 0, make([]float64, 4), 2)
		},
		"negative":  func() { Dgemm(blas.NoTrans, blas.NoTrans, -1, 2, 2, 1, nil, 2, nil, 2, 0, nil, 2) },
		"bad trans": func() { Dgemm('x', blas.NoTrans, 1, 1, 1, 1, []float64{1}, 1, []float64{1}, 1, 0, []float64{1}, 1) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

package f64

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// u is the unit roundoff of float64.
const u = 0x1p-53

// forEachLevel runs f once for every instruction-set level this machine
// supports (pure Go always), restoring the level afterwards.
func forEachLevel(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for l := levelGo; l <= maxLevel; l++ {
		t.Run(l.String(), func(t *testing.T) {
			prev := setLevel(l)
			defer setLevel(prev)
			f(t)
		})
	}
}

// randMat returns a rows×cols row-major matrix with leading dimension ld;
// the padding beyond cols holds NaN so that reading it shows up.
func randMat(rng *rand.Rand, rows, cols, ld int) []float64 {
	x := make([]float64, max(rows*ld, 1))
	for i := range x {
		x[i] = math.NaN()
	}
	for i := 0; i < rows; i++ {
		for j := 0; j < cols; j++ {
			x[i*ld+j] = rng.Float64()*2 - 1
		}
	}
	return x
}

// opAt returns op(X)[i][j].
func opAt(x []float64, ld int, trans bool, i, j int) float64 {
	if trans {
		return x[j*ld+i]
	}
	return x[i*ld+j]
}

// gemmRef is the reference loop of Dgemm/Dgemmt (tri selects the part of C
// written); it also returns the bound |alpha|·Σ|op(A)||op(B)| + |beta·C|
// for each entry, for the tolerance.
func gemmRef(tri triangle, ta, tb bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) (ref, bound []float64) {
	ref = append([]float64(nil), c...)
	bound = make([]float64, len(c))
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			if tri == triLower && j > i || tri == triUpper && j < i {
				continue
			}
			var s, sa float64
			for p := 0; p < k; p++ {
				x, y := opAt(a, lda, ta, i, p), opAt(b, ldb, tb, p, j)
				s += x * y
				sa += math.Abs(x * y)
			}
			old := 0.0
			if beta != 0 {
				old = beta * c[i*ldc+j]
			}
			ref[i*ldc+j] = alpha*s + old
			bound[i*ldc+j] = math.Abs(alpha)*sa + math.Abs(old)
		}
	}
	return ref, bound
}

// compare checks got against ref entry by entry: equal bits (NaN included)
// where bound is 0, else |got-ref| <= (2k+4)·u·bound.
func compare(t *testing.T, name string, got, ref, bound []float64, k int) {
	t.Helper()
	var worst float64
	bad := 0
	for i := range got {
		g, r := got[i], ref[i]
		if bound[i] == 0 {
			if math.Float64bits(g) != math.Float64bits(r) && !(g == 0 && r == 0) {
				if bad < 5 {
					t.Errorf("%s: element %d changed: got %v, want %v", name, i, g, r)
				}
				bad++
			}
			continue
		}
		tol := float64(2*k+4) * u * bound[i]
		d := math.Abs(g - r)
		worst = math.Max(worst, d/bound[i])
		if !(d <= tol) {
			if bad < 5 {
				t.Errorf("%s: element %d: got %v, want %v (|diff| %.3g > tol %.3g)", name, i, g, r, d, tol)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d mismatches; max |diff|/bound %.3g", name, bad, worst)
	}
}

func shapeName(f string, args ...any) string { return fmt.Sprintf(f, args...) }

func nan() float64 { return math.NaN() }

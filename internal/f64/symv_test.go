package f64

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
)

func TestAxpyDot(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(8, 9))
		for n := 0; n <= 75; n++ {
			a := randMat(rng, 1, n, n)
			x := randMat(rng, 1, n+1, n+1)
			y := randMat(rng, 1, n+1, n+1)
			alpha := rng.Float64() - 0.5
			wantY := append([]float64(nil), y...)
			yBound := make([]float64, len(y))
			var want, bound float64
			for j := 0; j < n; j++ {
				yBound[j] = math.Abs(y[j]) + math.Abs(alpha*a[j])
				wantY[j] += alpha * a[j]
				want += a[j] * x[j]
				bound += math.Abs(a[j] * x[j])
			}
			got := axpyDot(alpha, a[:n], x, y)
			if d := math.Abs(got - want); d > float64(2*n+2)*u*bound {
				t.Errorf("n=%d: dot %v, want %v", n, got, want)
			}
			for j := range y {
				// FMA rounds once, the reference twice.
				if d := math.Abs(y[j] - wantY[j]); d > 2*u*yBound[j] || j >= n && y[j] != wantY[j] {
					t.Errorf("n=%d: y[%d] = %v, want %v", n, j, y[j], wantY[j])
				}
			}
		}
	})
}

// symvRef is the reference loop of DsymvLower, with the bound Σ|A||x| per
// entry.
func symvRef(n int, a []float64, lda int, x []float64) (y, bound []float64) {
	y, bound = make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		for j := 0; j < n; j++ {
			v := a[i*lda+j]
			if j > i {
				v = a[j*lda+i]
			}
			y[i] += v * x[j]
			bound[i] += math.Abs(v * x[j])
		}
	}
	return y, bound
}

func TestDsymvLower(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(10, 11))
		for _, n := range []int{1, 2, 3, 17, 100, 767, 768, 769, 1000} {
			lda := n + 2
			a := randMat(rng, n, n, lda)
			for i := 0; i < n; i++ { // strict upper triangle must not be read
				for j := i + 1; j < n; j++ {
					a[i*lda+j] = math.NaN()
				}
			}
			x := randMat(rng, 1, n, n)
			y := randMat(rng, 1, n+1, n+1)
			last := y[n]
			want, bound := symvRef(n, a, lda, x)
			DsymvLower(n, a, lda, x, y)
			for i := 0; i < n; i++ {
				if d := math.Abs(y[i] - want[i]); !(d <= float64(2*n+2)*u*bound[i]) {
					t.Fatalf("n=%d: y[%d] = %v, want %v", n, i, y[i], want[i])
				}
			}
			if y[n] != last {
				t.Errorf("n=%d: y[n] written", n)
			}
		}
	})
}

// TestDsymvLowerDeterministic checks that the chunked product gives the same
// bits on one goroutine as on several.
func TestDsymvLowerDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	n := 900
	a := randMat(rng, n, n, n)
	x := randMat(rng, 1, n, n)
	var ys [][]float64
	for _, w := range []int{1, 2, 5} {
		prev := runtime.GOMAXPROCS(w)
		y := make([]float64, n)
		DsymvLower(n, a, n, x, y)
		runtime.GOMAXPROCS(prev)
		ys = append(ys, y)
	}
	for k := 1; k < len(ys); k++ {
		for i := range ys[0] {
			if ys[k][i] != ys[0][i] {
				t.Fatalf("run %d: y[%d] = %v, one goroutine gave %v", k, i, ys[k][i], ys[0][i])
			}
		}
	}
}

func TestAxpyDot4(t *testing.T) {
	forEachLevel(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(18, 19))
		for n := 0; n <= 41; n++ {
			lda := n + 3
			a := randMat(rng, 4, n, lda)
			x := randMat(rng, 1, n+1, n+1)
			y := randMat(rng, 1, n+1, n+1)
			alpha := [4]float64{rng.Float64() - 0.5, rng.Float64() - 0.5, rng.Float64() - 0.5, rng.Float64() - 0.5}
			wantY := append([]float64(nil), y...)
			yBound := make([]float64, len(y))
			var want, bound [4]float64
			for j := 0; j < n; j++ {
				yBound[j] = math.Abs(y[j])
				for r := 0; r < 4; r++ {
					v := a[r*lda+j]
					wantY[j] += alpha[r] * v
					yBound[j] += math.Abs(alpha[r] * v)
					want[r] += v * x[j]
					bound[r] += math.Abs(v * x[j])
				}
			}
			got := axpyDot4(n, a, lda, &alpha, x, y)
			for r := 0; r < 4; r++ {
				if d := math.Abs(got[r] - want[r]); d > float64(2*n+2)*u*bound[r] {
					t.Errorf("n=%d: dot %d = %v, want %v", n, r, got[r], want[r])
				}
			}
			for j := range y {
				if d := math.Abs(y[j] - wantY[j]); d > 10*u*yBound[j] || j >= n && y[j] != wantY[j] {
					t.Errorf("n=%d: y[%d] = %v, want %v", n, j, y[j], wantY[j])
				}
			}
		}
	})
}

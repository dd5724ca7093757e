package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// mfUlpDiff returns |got - want| in units of the float32 spacing at want (the spacing
// of the smallest normal for subnormal and zero results).
func mfUlpDiff(got float32, want float64) float64 {
	w := float32(want)
	if math.IsInf(want, 0) || math.IsInf(float64(w), 0) {
		if float64(got) == want || (math.IsInf(float64(got), 0) && float64(got)*want > 0) {
			return 0
		}
		return math.Inf(1)
	}
	a := math.Abs(float64(w))
	if a < 0x1p-126 {
		a = 0x1p-126
	}
	_, e := math.Frexp(a)
	ulp := math.Ldexp(1, e-24)
	return math.Abs(float64(got)-want) / ulp
}

// mfDenseInputs returns a dense grid over [lo, hi] plus random points and the edges.
func mfDenseInputs(lo, hi float64, n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	xs := make([]float32, 0, 2*n+4)
	for i := 0; i <= n; i++ {
		xs = append(xs, float32(lo+(hi-lo)*float64(i)/float64(n)))
	}
	for i := 0; i < n; i++ {
		xs = append(xs, float32(lo+(hi-lo)*r.Float64()))
	}
	// tiny magnitudes, where relative accuracy matters most
	for e := -40; e < 0; e++ {
		v := float32(math.Ldexp(1.2345, e))
		xs = append(xs, v, -v)
	}
	return append(xs, float32(lo), float32(hi))
}

type mfMathCase struct {
	name    string
	f       func(float32) float32
	ref     func(float64) float64
	lo, hi  float64
	maxUlp  float64
	special [][2]float64 // input, expected (NaN means NaN)
}

func mfMathCases() []mfMathCase {
	nan, inf := math.NaN(), math.Inf(1)
	return []mfMathCase{
		{"exp", mfExpf, math.Exp, -104, 89, 2, [][2]float64{{nan, nan}, {inf, inf}, {-inf, 0}, {89, inf}, {-104, 0}, {0, 1}, {1e30, inf}, {-1e30, 0}}},
		{"erf", mfErff, math.Erf, -12, 12, 3, [][2]float64{{nan, nan}, {inf, 1}, {-inf, -1}, {0, 0}, {1e30, 1}, {-1e30, -1}}},
		{"erfc", mfErfcf, math.Erfc, -6, 9.1, 7, [][2]float64{{nan, nan}, {inf, 0}, {-inf, 2}, {0, 1}, {1e30, 0}, {-1e30, 2}}},
		{"tanh", mfTanhf, math.Tanh, -20, 20, 3, [][2]float64{{nan, nan}, {inf, 1}, {-inf, -1}, {0, 0}, {1e30, 1}, {-1e30, -1}}},
		{"sigmoid", mfSigmoidf, func(x float64) float64 { return 1 / (1 + math.Exp(-x)) }, -87, 100, 4, [][2]float64{{nan, nan}, {inf, 1}, {-inf, 0}, {0, 0.5}}},
		{"gelu", mfGeluf, mfGeluRef64, -18, 20, 8, [][2]float64{{nan, nan}, {inf, inf}, {-inf, nan}, {0, 0}, {1e30, 1e30}, {-1e30, 0}}},
		{"gelu-core", mfGeluf, mfGeluRef64, -8, 20, 6, nil},
		{"silu", func(x float32) float32 { return mfSigmulf(x, 1, 0) }, SiLU.ActivateScalar, -87, 100, 4, [][2]float64{{nan, nan}, {inf, inf}, {-inf, nan}, {0, 0}, {-1e30, 0}}},
	}
}

func TestMathFastAccuracy(t *testing.T) {
	for _, c := range mfMathCases() {
		t.Run(c.name, func(t *testing.T) {
			worst, worstX := 0.0, float32(0)
			for _, x := range mfDenseInputs(c.lo, c.hi, 1<<20) {
				want := c.ref(float64(x))
				got := c.f(x)
				if math.Abs(want) < 1e-35 {
					// near underflow: intermediate results lose bits as subnormals,
					// so only require a tiny result
					if math.Abs(float64(got)) > 1e-34 {
						t.Fatalf("%s(%g) = %g, want %g", c.name, x, got, want)
					}
					continue
				}
				if d := mfUlpDiff(got, want); d > worst {
					worst, worstX = d, x
				}
			}
			t.Logf("%s: max error %.2f ulp at x=%g", c.name, worst, worstX)
			if worst > c.maxUlp {
				t.Errorf("%s: max error %.2f ulp at x=%g (got %g, want %g), limit %g ulp",
					c.name, worst, worstX, c.f(worstX), c.ref(float64(worstX)), c.maxUlp)
			}
			for _, s := range c.special {
				got := float64(c.f(float32(s[0])))
				if math.IsNaN(s[1]) != math.IsNaN(got) || (!math.IsNaN(got) && got != s[1] && math.Abs(got-s[1]) > 1e-7*math.Abs(s[1])) {
					t.Errorf("%s(%g) = %g, want %g", c.name, s[0], got, s[1])
				}
			}
		})
	}
}

// TestExpSubnormal checks the gradual underflow of mfExpf: results below the smallest
// normal float32 are still within one subnormal step of the truth.
func TestExpSubnormal(t *testing.T) {
	for x := -103.9; x < -87; x += 0.01 {
		got := float64(mfExpf(float32(x)))
		want := math.Exp(float64(float32(x)))
		if math.Abs(got-want) > 0x1p-149 {
			t.Fatalf("mfExpf(%g) = %g, want %g", x, got, want)
		}
	}
}

// mfGeluRef64 is x*Phi(x) in float64, written with erfc so that the negative tail
// keeps its relative accuracy (0.5*x*(1+erf(x/sqrt2)) cancels to 0 there).
func mfGeluRef64(x float64) float64 { return 0.5 * x * math.Erfc(-x/math.Sqrt2) }

package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

// meanVar64 is the float64 two-pass mean and biased variance.
func meanVar64(x []float32) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		variance += d * d
	}
	return mean, variance / float64(len(x))
}

// naiveMeanVar32 is the textbook one-pass E[x^2] - E[x]^2 in float32, which the
// test shows to be useless for data with a large mean.
func naiveMeanVar32(x []float32) (mean, variance float32) {
	var s, sq float32
	for _, v := range x {
		s += v
		sq += v * v
	}
	n := float32(len(x))
	mean = s / n
	return mean, sq/n - mean*mean
}

func TestMeanVarLargeMean(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n = 10 * 64 * 64 // one group of GroupNorm(32) over [2, 320, 64, 64]
	cases := map[string]func(i int) float32{
		"1000+N(0,1)":     func(int) float32 { return float32(1000 + r.NormFloat64()) },
		"-5e4+N(0,0.01)":  func(int) float32 { return float32(-5e4 + 0.01*r.NormFloat64()) },
		"N(0,1)":          func(int) float32 { return float32(r.NormFloat64()) },
		"outlier-prefix":  func(i int) float32 { return float32(r.NormFloat64() + map[bool]float64{true: 1e4}[i < 300]) },
		"constant":        func(int) float32 { return 3.25 },
		"1e6+uniform(10)": func(int) float32 { return float32(1e6 + 10*r.Float64()) },
	}
	actForEachPath(t, func(t *testing.T) {
		for name, gen := range cases {
			x := make([]float32, n)
			for i := range x {
				x[i] = gen(i)
			}
			wm, wv := meanVar64(x)
			m, v := meanVar(x)
			// the mean matters relative to the spread it is subtracted from
			if math.Abs(m-wm) > 1e-7*math.Abs(wm)+1e-6*math.Sqrt(wv) {
				t.Errorf("%s: mean %.9g, want %.9g", name, m, wm)
			}
			if math.Abs(v-wv) > 1e-5*wv+1e-12 {
				t.Errorf("%s: variance %.9g, want %.9g (rel err %.2g)", name, v, wv, math.Abs(v-wv)/wv)
			}
			if name == "1000+N(0,1)" {
				_, nv := naiveMeanVar32(x)
				if rel := math.Abs(float64(nv)-wv) / wv; rel < 0.1 {
					t.Errorf("naive float32 variance unexpectedly accurate (rel err %.2g): the data is too easy", rel)
				}
			}
		}
	})
}

// TestNormLargeMean checks GroupNorm and LayerNorm outputs against the float64
// references on data with a mean far larger than the spread.
func TestNormLargeMean(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	x := make([]float32, 2*64*33)
	for i := range x {
		x[i] = float32(1000 + r.NormFloat64())
	}
	gamma, beta := make([]float32, 64), make([]float32, 64)
	for i := range gamma {
		gamma[i], beta[i] = float32(1+0.1*r.NormFloat64()), float32(r.NormFloat64())
	}
	check := func(t *testing.T, what string, got, want []float32, tol float64) {
		for i := range want {
			if math.Abs(float64(got[i]-want[i])) > tol*(1+math.Abs(float64(want[i]))) {
				t.Fatalf("%s: [%d] = %g, want %g", what, i, got[i], want[i])
			}
		}
	}
	actForEachPath(t, func(t *testing.T) {
		got, want := make([]float32, len(x)), make([]float32, len(x))
		for _, silu := range []bool{false, true} {
			GroupNorm(x, got, 2, 64, 33, 8, 1e-5, gamma, beta, silu)
			GroupNormRef(x, want, 2, 64, 33, 8, 1e-5, gamma, beta, silu)
			check(t, "GroupNorm", got, want, 2e-6)
		}
		LayerNorm(x, got, 66, 64, 1e-5, gamma, beta)
		LayerNormRef(x, want, 66, 64, 1e-5, gamma, beta)
		check(t, "LayerNorm", got, want, 2e-6)
		LayerNorm(x, got, 64, 66, 1e-5, nil, nil)
		LayerNormRef(x, want, 64, 66, 1e-5, nil, nil)
		check(t, "LayerNorm(nil)", got, want, 2e-6)
	})
}

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// actForEachPath runs f with the assembly kernels on (when the machine has them) and off.
func actForEachPath(t *testing.T, f func(t *testing.T)) {
	paths := []bool{false}
	if vecAsm {
		paths = []bool{true, false}
	}
	saved := vecAsm
	defer func() { vecAsm = saved }()
	for _, p := range paths {
		vecAsm = p
		name := "go"
		if p {
			name = "asm"
		}
		t.Run(name, f)
	}
}

// actInputs returns a dense grid over [-20, 20], random normals, special values and
// extremes, in an order that puts special values both in vector bodies and tails.
func actInputs() []float32 {
	r := rand.New(rand.NewPCG(3, 4))
	var xs []float32
	for i := 0; i <= 40000; i++ {
		xs = append(xs, float32(-20+40*float64(i)/40000))
	}
	for i := 0; i < 4000; i++ {
		xs = append(xs, float32(r.NormFloat64()*3))
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	xs = append(xs, nan, inf, -inf, 0, float32(math.Copysign(0, -1)), 1e30, -1e30, 1e-30, -1e-30,
		88.5, -88.5, 104, -104, 200, -200, 1e-45, 3.4e38, -3.4e38)
	return append(xs, 1, 2, 3) // a tail of 3 after a multiple of 8
}

// actClose reports whether got matches want within rtol relative, atol absolute,
// with NaN matching NaN and infinities matching exactly.
func actClose(got float32, want float64, atol, rtol float64) bool {
	g := float64(got)
	if math.IsNaN(want) || math.IsNaN(g) {
		return math.IsNaN(want) && math.IsNaN(g)
	}
	if math.IsInf(want, 0) || math.IsInf(g, 0) {
		return g == want || math.Abs(want) > math.MaxFloat32 && math.IsInf(g, 0) && g*want > 0
	}
	return math.Abs(g-want) <= atol+rtol*math.Abs(want)
}

func TestVecActivations(t *testing.T) {
	xs := actInputs()
	type fcase struct {
		name string
		run  func(x, y []float32)
		ref  func(float64) float64
		arg  func(float64) float64 // the argument of exp, whose float32 rounding
		// (relative 6e-8 of |arg|) bounds the accuracy any float32 code can reach
	}
	k := 2 * math.Sqrt(2/math.Pi)
	cases := []fcase{
		{"silu", func(x, y []float32) { vecSigmul(x, y, 0, 1, 0, 1, 0) }, SiLU.ActivateScalar, func(v float64) float64 { return v }},
		{"quickgelu", func(x, y []float32) { vecSigmul(x, y, 0, 1, 0, 1.702, 0) }, QuickGELU.ActivateScalar, func(v float64) float64 { return 1.702 * v }},
		{"gelutanh", func(x, y []float32) { vecSigmul(x, y, 0, 1, 0, float32(k), 0.044715) }, func(v float64) float64 {
			return v / (1 + math.Exp(-k*(v+0.044715*v*v*v)))
		}, func(v float64) float64 { return 3 * k * (v + 0.044715*v*v*v) }},
		{"gelu", vecGELU, mfGeluRef64, func(v float64) float64 { return v * v / 2 }},
		{"geglu", func(x, y []float32) { vecGEGLU(x, x, y) }, func(v float64) float64 { return v * mfGeluRef64(v) }, func(v float64) float64 { return v * v / 2 }},
		{"affine-silu", func(x, y []float32) { vecSigmul(x, y, 0.5, 2, -1, 1, 0) }, func(v float64) float64 {
			return SiLU.ActivateScalar(float64(float32(float32(v)-0.5)*2 - 1))
		}, func(v float64) float64 { return 2*v - 1 }},
	}
	actForEachPath(t, func(t *testing.T) {
		for _, c := range cases {
			y := make([]float32, len(xs))
			c.run(xs, y)
			bad := 0
			for i, x := range xs {
				want := c.ref(float64(x))
				u := math.Abs(c.arg(float64(x)))
				if math.IsNaN(u) {
					u = 0
				}
				if !actClose(y[i], want, 1e-37, 8e-7+1.2e-7*u) {
					if bad++; bad <= 5 {
						t.Errorf("%s(%g) = %g, want %g", c.name, x, y[i], want)
					}
				}
			}
			// in place
			z := append([]float32(nil), xs...)
			c.run(z, z)
			for i := range z {
				if math.Float32bits(z[i]) != math.Float32bits(y[i]) && !(z[i] != z[i] && y[i] != y[i]) {
					t.Fatalf("%s in place differs at %d: %g vs %g", c.name, i, z[i], y[i])
				}
			}
		}
	})
}

func TestVecExpSumAndMax(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	actForEachPath(t, func(t *testing.T) {
		for _, n := range []int{1, 3, 8, 17, 1023, 1024, 1025, 5000} {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(r.NormFloat64() * 10)
			}
			m := vecMax(x)
			wantM := x[0]
			for _, v := range x {
				wantM = max(wantM, v)
			}
			if m != wantM {
				t.Fatalf("n=%d: max %g, want %g", n, m, wantM)
			}
			y := make([]float32, n)
			sum := vecExpSum(x, y, m)
			var ws float64
			for i, v := range x {
				e := math.Exp(float64(v) - float64(m))
				ws += e
				if !actClose(y[i], e, 1e-37, 3e-7+1.2e-7*math.Abs(float64(v)-float64(m))) {
					t.Fatalf("n=%d: exp(%g-%g) = %g, want %g", n, v, m, y[i], e)
				}
			}
			if math.Abs(sum-ws) > 1e-6*ws {
				t.Fatalf("n=%d: sum %g, want %g", n, sum, ws)
			}
		}
	})
}

func BenchmarkVecKernels(b *testing.B) {
	x := make([]float32, 1<<16)
	for i := range x {
		x[i] = float32(i%2000)/100 - 10
	}
	y := make([]float32, len(x))
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"silu", func() { vecSigmul(x, y, 0, 1, 0, 1, 0) }},
		{"gelutanh", func() { vecSigmul(x, y, 0, 1, 0, 1.6, 0.044715) }},
		{"gelu", func() { vecGELU(x, y) }},
		{"expsum", func() { vecExpSum(x, y, 10) }},
		{"affine", func() { vecAffine(x, y, 1, 2, 3) }},
		{"sumdiff", func() { vecSumDiff(x, 1) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(4 * len(x)))
			for i := 0; i < b.N; i++ {
				c.f()
			}
			b.ReportMetric(float64(b.N)*float64(len(x))/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
	_ = fmt.Sprint
}

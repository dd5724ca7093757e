package tensor

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

// TestGradAccelMatchesCPU runs every backward rule (gradCases) on the
// simulated device and compares the leaves' gradients with the CPU's. The
// device's gradients must be F32 tensors on the device (Grad's contract).
// Tolerance, relative to the largest CPU gradient of each input: 1e-5 in F32
// compute (the same kernels, in other orders only where a rule goes through
// the host), and 8 unit roundoffs of the compute dtype (F16 2^-11, BF16
// 2^-8) in 16-bit compute, where every activation, intermediate gradient
// and product operand is rounded (measured: at most 5 unit roundoffs, in
// the rebased in-place chain); the largest ratios are logged.
func TestGradAccelMatchesCPU(t *testing.T) {
	for i, dt := range []DType{F32, F16, BF16} {
		dev := openSim(t, 90+i, dt)
		t.Run(dt.String(), func(t *testing.T) { checkGradsOn(t, dev, dt) })
	}
}

// unitRoundoff returns the unit roundoff of dt's significand.
func unitRoundoff(dt DType) float64 {
	switch dt {
	case F16:
		return math.Ldexp(1, -11)
	case BF16:
		return math.Ldexp(1, -8)
	}
	return math.Ldexp(1, -24)
}

// checkGradsOn runs gradCases on dev (computing in dt) against the CPU.
func checkGradsOn(t *testing.T, dev Device, dt DType) {
	tol := 1e-5
	if dt != F32 {
		tol = 8 * unitRoundoff(dt)
	}
	worst, worstName := 0.0, ""
	for _, c := range gradCases() {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			in := c.make(r)
			y := c.f(in)
			R := randT(r, y.Shape()...)
			if err := Backward(y.Mul(R).SumAll()); err != nil {
				t.Fatal(err)
			}
			din := make([]*Tensor, len(in))
			for k, x := range in {
				din[k] = x.Detach().ToDevice(dev).SetRequiresGrad(true)
			}
			yd := c.f(din)
			if yd.Device() != dev {
				t.Fatalf("output on %v, want %v", yd.Device(), dev)
			}
			if err := Backward(yd.Mul(R.ToDevice(dev)).SumAll()); err != nil {
				t.Fatal(err)
			}
			for k, x := range in {
				want, got := x.Grad(), din[k].Grad()
				if got == nil {
					t.Fatalf("input %d has no gradient on %v", k, dev)
				}
				if got.Device() != dev || got.DType() != F32 || !got.Shape().Equal(want.Shape()) {
					t.Fatalf("input %d: gradient %v %v on %v, want F32 %v on %v", k, got.DType(), got.Shape(), got.Device(), want.Shape(), dev)
				}
				w, g := want.Float32s(), got.Float32s()
				scale, diff := 0.0, 0.0
				for i := range w {
					scale = math.Max(scale, math.Abs(float64(w[i])))
					diff = math.Max(diff, math.Abs(float64(g[i])-float64(w[i])))
				}
				rel := diff / math.Max(scale, 1e-30)
				if rel > worst {
					worst, worstName = rel, fmt.Sprintf("%s input %d", c.name, k)
				}
				if rel > tol {
					t.Errorf("input %d: max difference %.3g of the largest gradient %.3g (tolerance %.3g)", k, rel, scale, tol)
				}
			}
		})
	}
	t.Logf("%v: worst %s, %.3g of its largest gradient (%.2f unit roundoffs)", dt, worstName, worst, worst/unitRoundoff(dt))
}

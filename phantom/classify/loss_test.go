package classify

import (
	"math"
	"testing"

	"github.com/roentgo/roentgo/tensor"
)

// TestBCEWithLogits checks the loss and its gradient against a float64 loop
// of the textbook formula, over logits from -40 to 40 (where a naive
// log(sigmoid) overflows) with soft and hard targets and weights.
func TestBCEWithLogits(t *testing.T) {
	xs := []float32{-40, -7.5, -1, -0.25, 0.001, 0.3, 2, 9, 40, -3, 0.75, 15}
	ys := []float32{0, 1, 0.5, 1, 0, 1, 0, 1, 1, 0.2, 0, 0}
	ws := []float32{1, 2, 0.5, 1, 3, 1, 1, 4, 1, 2, 1, 0.25}
	for _, weighted := range []bool{false, true} {
		n := len(xs)
		var want float64
		wantG := make([]float64, n)
		for i := range xs {
			x, y, w := float64(xs[i]), float64(ys[i]), 1.0
			if weighted {
				w = float64(ws[i])
			}
			// softplus(x) - x y, computed stably in float64.
			sp := math.Max(x, 0) + math.Log1p(math.Exp(-math.Abs(x)))
			want += w * (sp - x*y) / float64(n)
			wantG[i] = w * (1/(1+math.Exp(-x)) - y) / float64(n)
		}
		x := tensor.FromFloat32(append([]float32(nil), xs...), 3, 4).SetRequiresGrad(true)
		var wt *tensor.Tensor
		if weighted {
			wt = tensor.FromFloat32(ws, 3, 4)
		}
		l := BCEWithLogits(x, tensor.FromFloat32(ys, 3, 4), wt)
		got := float64(l.Item())
		if math.Abs(got-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("weighted %v: loss %.7f, want %.7f", weighted, got, want)
		}
		if err := tensor.Backward(l); err != nil {
			t.Fatal(err)
		}
		g := x.Grad().Float32s()
		for i := range g {
			if math.Abs(float64(g[i])-wantG[i]) > 1e-6 {
				t.Errorf("weighted %v: grad[%d] (x=%v y=%v) = %.7g, want %.7g", weighted, i, xs[i], ys[i], g[i], wantG[i])
			}
		}
	}
}

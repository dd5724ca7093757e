package classify

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// BCEWithLogits returns the weighted mean binary cross-entropy of logits x
// against targets y (same shape, y in [0, 1]):
//
//	mean over i of w[i] * (max(x[i], 0) - x[i]*y[i] + log(1 + exp(-|x[i]|)))
//
// (torch.nn.functional.binary_cross_entropy_with_logits, stable for any x),
// with weights w of the same shape, or all 1 when w is nil. It is
// differentiable through x: |x| and max(x, 0) are written as x times
// constant signs taken from x's values (their gradient, that sign, is
// exact away from 0), since Abs and Maximum have no backward rule. It
// panics when the shapes differ (a programmer error).
func BCEWithLogits(x, y, w *tensor.Tensor) *tensor.Tensor {
	if !x.Shape().Equal(y.Shape()) || (w != nil && !x.Shape().Equal(w.Shape())) {
		panic(fmt.Sprintf("classify: BCEWithLogits: logits %v, targets %v and weights %v differ in shape", x.Shape(), y.Shape(), shapeOf(w)))
	}
	return tensor.Scope(func() *tensor.Tensor {
		d := x.Detach()
		v := d.Float32s()
		pos, sign := make([]float32, len(v)), make([]float32, len(v))
		for i, xv := range v {
			if xv > 0 {
				pos[i], sign[i] = 1, 1
			} else {
				sign[i] = -1
			}
		}
		sh := x.Shape()
		relu := x.Mul(tensor.FromFloat32(pos, sh...))                // max(x, 0)
		negAbs := x.Mul(tensor.FromFloat32(sign, sh...)).Neg()       // -|x|
		l := relu.Sub(x.Mul(y)).Add(negAbs.Exp().AddScalar(1).Log()) // per element
		if w != nil {
			l = l.Mul(w)
		}
		return l.MeanAll()
	})
}

func shapeOf(t *tensor.Tensor) any {
	if t == nil {
		return "nil"
	}
	return t.Shape()
}

package diffusion

import (
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// scaled returns c*x; its result must be released by the caller when it is
// an intermediate (see the helpers below, which do).
func scaled(x *tensor.Tensor, c float32) *tensor.Tensor { return x.MulScalar(c) }

// lin2 returns a*x + b*y (float32 elementwise, each product rounded, then
// the sum, as torch evaluates a*x + b*y).
func lin2(a float32, x *tensor.Tensor, b float32, y *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor { return x.MulScalar(a).AddInPlace(y.MulScalar(b)) })
}

// addScaledInPlace sets r += c*y and returns r.
func addScaledInPlace(r *tensor.Tensor, c float32, y *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor { return r.AddInPlace(y.MulScalar(c)) })
}

// divScalarInPlace sets r /= c (a true division, as torch divides by a
// 0-dimensional tensor) and returns r.
func divScalarInPlace(r *tensor.Tensor, c float32) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor { return r.DivInPlace(tensor.Scalar(c)) })
}

// retain returns a new handle on x's storage, which keeps the buffer alive
// after the caller releases x.
func retain(x *tensor.Tensor) *tensor.Tensor { return x.Contiguous() }

func exp32(x float32) float32 { return float32(math.Exp(float64(x))) }
func log32(x float32) float32 { return float32(math.Log(float64(x))) }

// divScalar returns x / c (a true division, as divScalarInPlace).
func divScalar(x *tensor.Tensor, c float32) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor { return x.Div(tensor.Scalar(c)) })
}

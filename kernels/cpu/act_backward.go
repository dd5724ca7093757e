package cpu

import (
	"fmt"
	"math"
)

// ActivateBackward computes the gradient of Activate: dx[i] = dy[i] * f'(x[i])
// (see ActivateBackwardRef and activationGrad64 for the formulas, PyTorch's).
// The derivatives use the float32 approximations of mathfast.go, eight lanes at
// a time with AVX2/FMA where available, split over ParallelFor; SiLU, QuickGELU
// and the tanh GELU share one kernel (v*sigmoid(k*v*(1 + c*v^3)), as in Activate).
// dx may alias x or dy.
func ActivateBackward(f Activation, x, dy, dx []float32) {
	checkLen("ActivateBackward", "dy", len(dy), len(x))
	checkLen("ActivateBackward", "dx", len(dx), len(x))
	var k, c float32
	switch f {
	case Identity:
		copy(dx[:len(x)], dy[:len(x)])
		return
	case SiLU:
		k = 1
	case QuickGELU:
		k = 1.702
	case GELUTanh:
		k, c = float32(2*math.Sqrt(2/math.Pi)), 0.044715
	case GELU:
	default:
		panic(fmt.Sprintf("cpu: ActivateBackward: unknown activation %d", f))
	}
	ParallelFor(len(x), actGrain, func(lo, hi int) {
		if f == GELU {
			vecGELUGrad(x[lo:hi], dy[lo:hi], dx[lo:hi])
		} else {
			vecSigmulGrad(x[lo:hi], dy[lo:hi], dx[lo:hi], k, c)
		}
	})
}

// GEGLUBackward computes the gradient of GEGLU: for x [rows, 2d] (a = x[:, :d],
// the gate g = x[:, d:]) and dy [rows, d], it writes dx [rows, 2d] with
// dx[:, :d] = dy*gelu(g) and dx[:, d:] = dy*a*gelu'(g), exact erf GELU (see
// GEGLUBackwardRef). Rows are split over ParallelFor; each row is one pass of
// the AVX2 kernel (where available) that evaluates Phi and the normal density
// once per element. dx may alias x.
func GEGLUBackward(x, dy, dx []float32, rows, d int) {
	checkLen("GEGLUBackward", "x", len(x), rows*2*d)
	checkLen("GEGLUBackward", "dy", len(dy), rows*d)
	checkLen("GEGLUBackward", "dx", len(dx), rows*2*d)
	if d == 0 {
		return
	}
	ParallelFor(rows, max(1, actGrain/d), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row, out := x[r*2*d:(r+1)*2*d], dx[r*2*d:(r+1)*2*d]
			vecGEGLUGrad(row[:d], row[d:], dy[r*d:(r+1)*d], out[:d], out[d:])
		}
	})
}

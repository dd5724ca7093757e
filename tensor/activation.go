package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Softmax, the activations and GEGLU, with their backward rules.

// Softmax returns the softmax of x over its last dimension.
func Softmax(x *Tensor) *Tensor {
	if x.Rank() < 1 {
		panic("tensor: Softmax: scalar input")
	}
	xc, rx := computeContig(x)
	defer rx()
	y := newTensor(x.Device(), xc.DType(), x.shape, false)
	d := x.Dim(-1)
	if y.Numel() > 0 {
		backendFor(x.Device()).softmax(xc, y, x.Numel()/d, d)
	}
	if !needsGrad(x) {
		return y
	}
	dev := x.Device()
	sy := save(y)
	return record(y, "Softmax", []*Tensor{x}, []savedValue{sy}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		n := sy.t.Numel()
		dx := newTensor(dev, ComputeDType(dev), sy.t.shape, false)
		if n > 0 {
			backendFor(dev).softmaxBackward(sy.t, gy, dx, n/d, d)
		}
		return []*Tensor{dx}
	})
}

func activate(f cpu.Activation, x *Tensor) *Tensor {
	xc, rx := computeContig(x)
	defer rx()
	y := newTensor(x.Device(), xc.DType(), x.shape, false)
	backendFor(x.Device()).activate(f, xc, y)
	if !needsGrad(x) {
		return y
	}
	dev := x.Device()
	sx := save(xc)
	return record(y, "activation", []*Tensor{x}, []savedValue{sx}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(dev, ComputeDType(dev), sx.t.shape, false)
		backendFor(dev).activateBackward(f, sx.t, gy, dx)
		return []*Tensor{dx}
	})
}

// SiLU returns x * sigmoid(x).
func SiLU(x *Tensor) *Tensor { return activate(cpu.SiLU, x) }

// GELU returns the exact GELU x/2 (1 + erf(x/sqrt 2)).
func GELU(x *Tensor) *Tensor { return activate(cpu.GELU, x) }

// GELUTanh returns the tanh approximation of GELU.
func GELUTanh(x *Tensor) *Tensor { return activate(cpu.GELUTanh, x) }

// QuickGELU returns x * sigmoid(1.702 x) (OpenAI CLIP).
func QuickGELU(x *Tensor) *Tensor { return activate(cpu.QuickGELU, x) }

// GEGLU splits x [..., 2d] into halves a, g along the last dimension and returns
// a * gelu(g), [..., d] (diffusers' GEGLU after its projection).
func GEGLU(x *Tensor) *Tensor {
	if x.Rank() < 1 || x.Dim(-1)%2 != 0 {
		panic(fmt.Sprintf("tensor: GEGLU: x %v, want an even last dimension", x.shape))
	}
	d := x.Dim(-1) / 2
	xc, rx := computeContig(x)
	defer rx()
	ys := x.Shape()
	ys[len(ys)-1] = d
	y := newTensor(x.Device(), xc.DType(), ys, false)
	rows := y.Numel() / max(d, 1)
	if d > 0 && rows > 0 {
		backendFor(x.Device()).geglu(xc, y, rows, d)
	}
	if !needsGrad(x) {
		return y
	}
	dev := x.Device()
	sx := save(xc)
	return record(y, "GEGLU", []*Tensor{x}, []savedValue{sx}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(dev, ComputeDType(dev), sx.t.shape, false)
		if d > 0 && rows > 0 {
			backendFor(dev).gegluBackward(sx.t, gy, dx, rows, d)
		}
		return []*Tensor{dx}
	})
}

package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Conv2d: its options, shape checks, dispatch and backward rule.

// ConvOpts are the strides and zero paddings of Conv2d. A zero stride means 1.
type ConvOpts struct {
	StrideH, StrideW int
	PadH, PadW       int
}

// ConvSquare returns ConvOpts with the same stride and padding in both directions.
func ConvSquare(stride, pad int) ConvOpts {
	return ConvOpts{StrideH: stride, StrideW: stride, PadH: pad, PadW: pad}
}

// Conv2d returns the 2-D cross-correlation (PyTorch's conv2d, groups=1) of
// x [N, C, H, W] with w [K, C, R, S] (F32/F16/BF16) plus b [K] (or nil): the
// result is [N, K, OH, OW] with OH = (H + 2 PadH - R)/StrideH + 1, likewise OW.
func Conv2d(x, w, b *Tensor, o ConvOpts) *Tensor {
	dev := sameDevice("Conv2d", x, w, b)
	if x.Rank() != 4 || w.Rank() != 4 || x.Dim(1) != w.Dim(1) {
		panic(fmt.Sprintf("tensor: Conv2d: x %v and weight %v (want x [N, C, H, W], w [K, C, R, S])", x.shape, w.shape))
	}
	if o.StrideH == 0 {
		o.StrideH = 1
	}
	if o.StrideW == 0 {
		o.StrideW = 1
	}
	p := cpu.ConvParams{
		N: x.Dim(0), C: x.Dim(1), H: x.Dim(2), W: x.Dim(3),
		K: w.Dim(0), R: w.Dim(2), S: w.Dim(3),
		StrideH: o.StrideH, StrideW: o.StrideW, PadH: o.PadH, PadW: o.PadW,
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 || p.H+2*p.PadH < p.R || p.W+2*p.PadW < p.S {
		panic(fmt.Sprintf("tensor: Conv2d: x %v, weight %v, %+v: invalid stride/padding or kernel larger than padded input", x.shape, w.shape, o))
	}
	if b != nil && (b.Rank() != 1 || b.Dim(0) != p.K) {
		panic(fmt.Sprintf("tensor: Conv2d: bias %v for weight %v", b.shape, w.shape))
	}
	xc, rx := computeContig(x)
	defer rx()
	wc := w
	if w.DType() == I64 {
		panic("tensor: Conv2d: I64 weight")
	}
	if !w.IsContiguous() {
		wc = w.Contiguous()
		defer wc.Release()
	}
	bc, rb := f32Contig(b)
	defer rb()
	y := newTensor(dev, xc.DType(), Shape{p.N, p.K, p.OutH(), p.OutW()}, false)
	backendFor(dev).conv2d(p, xc, wc, bc, y)
	if !needsGrad(x, w, b) {
		return y
	}
	// Only the gradients some input needs are computed, and only the values
	// they read are saved: a frozen weight (LoRA, textual inversion) costs
	// neither its gradient nor a saved input.
	needX, needW, needB := needsGrad(x), needsGrad(w), needsGrad(b)
	var sx, sw savedValue
	if needW {
		sx = save(xc)
	}
	if needX {
		sw = save(wc)
	}
	xShape, wShape := xc.shape.Clone(), wc.shape.Clone()
	return record(y, "Conv2d", []*Tensor{x, w, b}, []savedValue{sx, sw}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		be := backendFor(dev)
		var dx, dw, db *Tensor
		if needX {
			dx = newTensor(dev, ComputeDType(dev), xShape, false)
			be.conv2dBackwardData(p, gy, sw.t, dx)
		}
		if needW {
			dw = newTensor(dev, F32, wShape, false)
			be.conv2dBackwardWeight(p, sx.t, gy, dw)
		}
		if needB {
			db = newTensor(dev, F32, Shape{p.K}, false)
			be.conv2dBackwardBias(p, gy, db)
		}
		return []*Tensor{dx, dw, db}
	})
}

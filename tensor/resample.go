package tensor

import (
	"fmt"
)

// Nearest upsampling and zero padding, with their backward rules.

// Upsample2xNearest doubles the height and width of x [N, C, H, W] by repeating
// each pixel (nearest neighbour): the result is [N, C, 2H, 2W].
func Upsample2xNearest(x *Tensor) *Tensor {
	if x.Rank() != 4 {
		panic(fmt.Sprintf("tensor: Upsample2xNearest: x %v, want [N, C, H, W]", x.shape))
	}
	xc, rx := computeContig(x)
	defer rx()
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	y := newTensor(x.Device(), xc.DType(), Shape{n, c, 2 * h, 2 * w}, false)
	if y.Numel() > 0 {
		backendFor(x.Device()).upsample2x(xc, y, n*c, h, w)
	}
	if !needsGrad(x) {
		return y
	}
	dev := x.Device()
	return record(y, "Upsample2xNearest", []*Tensor{x}, nil, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(dev, ComputeDType(dev), Shape{n, c, h, w}, false)
		if dx.Numel() > 0 {
			backendFor(dev).upsample2xBackward(gy, dx, n*c, h, w)
		}
		return []*Tensor{dx}
	})
}

// Pad2d returns x [..., H, W] with zero rows added above (top) and below
// (bottom) and zero columns left and right: [..., top+H+bottom,
// left+W+right] (torch.nn.functional.pad with constant 0 on the last two
// dimensions). Gradient: the corresponding window of g.
func Pad2d(x *Tensor, top, bottom, left, right int) *Tensor {
	if x.Rank() < 2 || top < 0 || bottom < 0 || left < 0 || right < 0 {
		panic(fmt.Sprintf("tensor: Pad2d: x %v, padding %d %d %d %d (want rank >= 2, paddings >= 0)", x.shape, top, bottom, left, right))
	}
	r := x.Rank()
	h, w := x.shape[r-2], x.shape[r-1]
	ps := x.shape.Clone()
	ps[r-2], ps[r-1] = top+h+bottom, left+w+right
	dev := x.Device()
	out := ZerosOn(dev, ComputeDType(dev), ps...)
	rows := out.sliceImpl(r-2, top, top+h)
	inner := rows.sliceImpl(r-1, left, left+w)
	xc, rx := asCompute(x)
	backendFor(dev).copy(inner, xc)
	if rx {
		xc.Release()
	}
	inner.Release()
	rows.Release()
	if !needsGrad(x) {
		return out
	}
	return record(out, "Pad2d", []*Tensor{x}, nil, func(g *Tensor) []*Tensor {
		a := g.sliceImpl(r-2, top, top+h)
		defer a.Release()
		b := a.sliceImpl(r-1, left, left+w)
		defer b.Release()
		return []*Tensor{b.Contiguous()}
	})
}

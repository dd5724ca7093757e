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
	p := convParams("Conv2d", x, w, b, o)
	xc, rx := computeContig(x)
	defer rx()
	wc := w
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

// convParams checks the operands of a convolution and returns its
// parameters (op names the caller in panics).
func convParams(op string, x, w, b *Tensor, o ConvOpts) cpu.ConvParams {
	if x.Rank() != 4 || w.Rank() != 4 || x.Dim(1) != w.Dim(1) {
		panic(fmt.Sprintf("tensor: %s: x %v and weight %v (want x [N, C, H, W], w [K, C, R, S])", op, x.shape, w.shape))
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
		panic(fmt.Sprintf("tensor: %s: x %v, weight %v, %+v: invalid stride/padding or kernel larger than padded input", op, x.shape, w.shape, o))
	}
	if b != nil && (b.Rank() != 1 || b.Dim(0) != p.K) {
		panic(fmt.Sprintf("tensor: %s: bias %v for weight %v", op, b.shape, w.shape))
	}
	if w.DType() == I64 {
		panic("tensor: " + op + ": I64 weight")
	}
	return p
}

// ConvFusion is elementwise work that Conv2dFused does inside the
// convolution on the CPU, saving the passes over memory that separate ops
// would make (see cpu.ConvFusion).
type ConvFusion struct {
	// InScale and InShift ([C] each, or nil for 1 and 0) map every input
	// value to x*InScale[c] + InShift[c], then max(., 0) when InReLU is set,
	// before the convolution: ChannelAffine(x, InScale, InShift, InReLU)
	// (an eval-mode BatchNorm and ReLU) in front of it, the zero padding
	// added after the map.
	InScale, InShift *Tensor
	InReLU           bool
	// OutReLU applies ReLU to the output (bias included).
	OutReLU bool
}

// Conv2dFused returns ReLU(Conv2d(ChannelAffine(x, f.InScale, f.InShift,
// f.InReLU), w, b, o)) with the ChannelAffine and the final ReLU present
// only as f asks, for inference (no gradient). On the CPU the map is applied
// while the convolution expands its input and the ReLU while its output is
// in cache, and x may be a channel slice of a wider tensor (samples apart,
// each contiguous: read in place); other devices run the three ops.
func Conv2dFused(x, w, b *Tensor, o ConvOpts, f ConvFusion) *Tensor {
	noRule("Conv2dFused", x, w, b, f.InScale, f.InShift)
	dev := sameDevice("Conv2dFused", x, w, b, f.InScale, f.InShift)
	p := convParams("Conv2dFused", x, w, b, o)
	checkVec("Conv2dFused", "InScale", f.InScale, p.C)
	checkVec("Conv2dFused", "InShift", f.InShift, p.C)
	if dev != CPU || ComputeDType(CPU) != F32 {
		return Scope(func() *Tensor {
			if f.InScale != nil || f.InShift != nil || f.InReLU {
				x = ChannelAffine(x, f.InScale, f.InShift, f.InReLU)
			}
			y := Conv2d(x, w, b, o)
			if f.OutReLU {
				y = ReLU(y)
			}
			return y
		})
	}
	fu := cpu.ConvFusion{InReLU: f.InReLU, OutReLU: f.OutReLU}
	xs := x
	if stride, ok := batchStrided(x); ok {
		fu.XStride = stride
	} else {
		c, rx := computeContig(x)
		defer rx()
		xs = c
	}
	if f.InScale != nil {
		fu.InScale = f.InScale.Float32s()
	}
	if f.InShift != nil {
		fu.InShift = f.InShift.Float32s()
	}
	wc := w
	if !w.IsContiguous() {
		wc = w.Contiguous()
		defer wc.Release()
	}
	bc, rb := f32Contig(b)
	defer rb()
	y := newTensor(CPU, F32, Shape{p.N, p.K, p.OutH(), p.OutW()}, false)
	wm := matArg{t: wc, off: wc.offset, stride: p.C * p.R * p.S}.mat()
	xd := f32s(xs)
	if n := (p.N-1)*fu.XStride + p.C*p.H*p.W; fu.XStride != 0 {
		xd = xd[:n]
	}
	cpu.Conv2dFused(p, xd, wm, f32n(bc, p.K), f32n(y, y.Numel()), fu)
	return y
}

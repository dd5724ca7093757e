package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Pooling and per-channel affine ops of the evaluation feature extractors
// (Inception-v3, DenseNet-121): forward only. They have no backward rule and
// panic when an input needs a gradient (compute them under NoGrad or on
// Detach()ed inputs). They compute in F32 with the kernels/cpu loops; on
// another device the input is copied to the host and the result back, in the
// device's compute dtype (these ops are a small share of the networks' work,
// which is in the convolutions).

// PoolOpts describe a 2-D pooling window: its size, strides (0 means the
// window size, as in PyTorch) and paddings. Ceil mode is not supported
// (PyTorch's default ceil_mode=False).
type PoolOpts struct {
	KH, KW           int
	StrideH, StrideW int
	PadH, PadW       int
}

// PoolSquare returns PoolOpts for a k x k window with the same stride and
// padding in both directions (stride 0 means k).
func PoolSquare(k, stride, pad int) PoolOpts {
	return PoolOpts{KH: k, KW: k, StrideH: stride, StrideW: stride, PadH: pad, PadW: pad}
}

// poolParams checks x [N, C, H, W] against o and returns the kernel's
// parameters.
func poolParams(op string, x *Tensor, o PoolOpts) cpu.PoolParams {
	if x.Rank() != 4 {
		panic(fmt.Sprintf("tensor: %s: x %v (want [N, C, H, W])", op, x.shape))
	}
	if o.StrideH == 0 {
		o.StrideH = o.KH
	}
	if o.StrideW == 0 {
		o.StrideW = o.KW
	}
	p := cpu.PoolParams{NC: x.Dim(0) * x.Dim(1), H: x.Dim(2), W: x.Dim(3), KH: o.KH, KW: o.KW,
		StrideH: o.StrideH, StrideW: o.StrideW, PadH: o.PadH, PadW: o.PadW}
	// PyTorch's rules: padding at most half the window, window within the padded input.
	if p.KH < 1 || p.KW < 1 || p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 ||
		2*p.PadH > p.KH || 2*p.PadW > p.KW || p.H+2*p.PadH < p.KH || p.W+2*p.PadW < p.KW {
		panic(fmt.Sprintf("tensor: %s: x %v with %+v: invalid window, stride or padding (padding at most half the window, window within the padded input)", op, x.shape, o))
	}
	return p
}

// hostF32 returns x as a contiguous F32 CPU tensor and a release function for
// what it made.
func hostF32(x *Tensor) (*Tensor, func()) {
	if x.Device() == CPU {
		return f32Contig(x)
	}
	h := x.toDeviceImpl(CPU)
	c, rc := f32Contig(h)
	return c, func() { rc(); h.Release() }
}

// toDeviceOf returns y (a new CPU F32 tensor) on dev in dev's compute dtype,
// releasing y when it made a copy.
func toDeviceOf(y *Tensor, dev Device) *Tensor {
	if dev == CPU {
		return y
	}
	d := y.toDeviceImpl(dev)
	y.Release()
	c, conv := asCompute(d)
	if conv {
		d.Release()
	}
	return c
}

// MaxPool2d returns torch.nn.functional.max_pool2d(x, (KH, KW), (StrideH,
// StrideW), (PadH, PadW)) of x [N, C, H, W]: [N, C, OH, OW] with OH = (H + 2
// PadH - KH)/StrideH + 1, likewise OW; padding counts as -inf. No gradient.
func MaxPool2d(x *Tensor, o PoolOpts) *Tensor {
	noRule("MaxPool2d", x)
	p := poolParams("MaxPool2d", x, o)
	xc, rx := hostF32(x)
	defer rx()
	y := newTensor(CPU, F32, Shape{x.Dim(0), x.Dim(1), p.OutH(), p.OutW()}, false)
	cpu.MaxPool2d(p, f32n(xc, xc.Numel()), f32s(y))
	return toDeviceOf(y, x.Device())
}

// AvgPool2d returns torch.nn.functional.avg_pool2d(x, (KH, KW), (StrideH,
// StrideW), (PadH, PadW), count_include_pad=countIncludePad) of x [N, C, H,
// W] (sizes as MaxPool2d): with countIncludePad the padding's zeros count in
// each window's mean (PyTorch's default), without it only the elements
// inside the input do (what the FID Inception's blocks use). No gradient.
func AvgPool2d(x *Tensor, o PoolOpts, countIncludePad bool) *Tensor {
	noRule("AvgPool2d", x)
	p := poolParams("AvgPool2d", x, o)
	xc, rx := hostF32(x)
	defer rx()
	y := newTensor(CPU, F32, Shape{x.Dim(0), x.Dim(1), p.OutH(), p.OutW()}, false)
	cpu.AvgPool2d(p, countIncludePad, f32n(xc, xc.Numel()), f32s(y))
	return toDeviceOf(y, x.Device())
}

// AdaptiveAvgPool2d returns torch.nn.functional.adaptive_avg_pool2d(x, (oh,
// ow)) of x [N, C, H, W]: [N, C, oh, ow], output cell (i, j) the mean of rows
// floor(i H/oh) .. ceil((i+1) H/oh) - 1 and the columns likewise. (1, 1) is
// the global average pool. No gradient.
func AdaptiveAvgPool2d(x *Tensor, oh, ow int) *Tensor {
	noRule("AdaptiveAvgPool2d", x)
	if x.Rank() != 4 || oh < 1 || ow < 1 || x.Dim(2) < 1 || x.Dim(3) < 1 {
		panic(fmt.Sprintf("tensor: AdaptiveAvgPool2d: x %v to %dx%d (want [N, C, H, W], H, W, oh, ow >= 1)", x.shape, oh, ow))
	}
	xc, rx := hostF32(x)
	defer rx()
	y := newTensor(CPU, F32, Shape{x.Dim(0), x.Dim(1), oh, ow}, false)
	cpu.AdaptiveAvgPool2d(x.Dim(0)*x.Dim(1), x.Dim(2), x.Dim(3), oh, ow, f32n(xc, xc.Numel()), f32s(y))
	return toDeviceOf(y, x.Device())
}

// ChannelAffine returns x*scale[c] + shift[c] for x [N, C, ...] (the channel
// the second dimension), followed by ReLU when relu is set: an eval-mode
// BatchNorm (scale = gamma/sqrt(var+eps), shift = beta - mean*scale) fused
// with its activation. scale and shift are [C] or nil (1 and 0). No gradient.
func ChannelAffine(x, scale, shift *Tensor, relu bool) *Tensor {
	noRule("ChannelAffine", x, scale, shift)
	if x.Rank() < 2 {
		panic(fmt.Sprintf("tensor: ChannelAffine: x %v (want [N, C, ...])", x.shape))
	}
	n, c := x.Dim(0), x.Dim(1)
	checkVec("ChannelAffine", "scale", scale, c)
	checkVec("ChannelAffine", "shift", shift, c)
	hw := x.Numel() / max(n*c, 1)
	var sv, bv []float32
	if scale != nil {
		sv = scale.Float32s()
	}
	if shift != nil {
		bv = shift.Float32s()
	}
	y := newTensor(CPU, F32, x.shape, false)
	if stride, ok := batchStrided(x); ok {
		// Each sample is contiguous but samples are apart (a channel slice
		// of a wider tensor, as DenseNet's growing feature buffer gives):
		// read the samples in place instead of copying x first.
		xs, ys := f32s(x), f32s(y)
		for i := 0; i < n; i++ {
			cpu.ChannelAffine(1, c, hw, xs[i*stride:i*stride+c*hw], sv, bv, relu, ys[i*c*hw:(i+1)*c*hw])
		}
		return y
	}
	xc, rx := hostF32(x)
	defer rx()
	cpu.ChannelAffine(n, c, hw, f32n(xc, xc.Numel()), sv, bv, relu, f32s(y))
	return toDeviceOf(y, x.Device())
}

// batchStrided reports whether x is a CPU F32 tensor whose samples (the
// first dimension) are each contiguous, though not necessarily adjacent,
// and returns the distance between samples in elements.
func batchStrided(x *Tensor) (int, bool) {
	if x.Device() != CPU || x.DType() != F32 || x.Rank() < 2 || x.Dim(0) < 2 || x.IsContiguous() {
		return 0, false
	}
	acc := 1
	for i := x.Rank() - 1; i >= 1; i-- {
		if x.shape[i] != 1 && x.strides[i] != acc {
			return 0, false
		}
		acc *= x.shape[i]
	}
	return x.strides[0], x.strides[0] >= acc
}

// ReLU returns max(x, 0) elementwise for x of any shape (NaN stays NaN). No
// gradient.
func ReLU(x *Tensor) *Tensor {
	noRule("ReLU", x)
	xc, rx := hostF32(x)
	defer rx()
	n, row := xc.Numel(), 1
	if x.Rank() > 0 && x.Dim(-1) > 0 {
		row = x.Dim(-1) // rows of the last dimension go to the goroutines
	}
	y := newTensor(CPU, F32, x.shape, false)
	cpu.ChannelAffine(n/row, 1, row, f32n(xc, n), nil, nil, true, f32s(y))
	return toDeviceOf(y, x.Device())
}

package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// backend is the per-device implementation of the tensor ops. The exported ops
// check shapes, choose layouts and allocate outputs, then call exactly one
// backend method; a device (CPU now, CUDA behind the cuda build tag later)
// implements this interface and registers itself in backends.
//
// Operands arrive validated: dtypes are as documented per method, shapes agree,
// and "contiguous" operands are dense from their offset. Outputs are allocated by
// the caller through alloc.
type backend interface {
	// alloc returns storage for n elements of dt (zeroed if zero is set).
	alloc(dt DType, n int, zero bool) *storage
	// free takes back pooled storage whose last user was released.
	free(st *storage)

	// fill sets every element of the contiguous t to v.
	fill(t *Tensor, v float64)
	// copy copies src into dst (same dtype and shape, any strides; src may be
	// a broadcast view).
	copy(dst, src *Tensor)
	// convert converts the contiguous src into the contiguous dst of another dtype.
	convert(dst, src *Tensor)

	// unary computes dst = op(alpha, beta, x) for F32 x and dst of one shape.
	unary(op cpu.UnaryOp, alpha, beta float32, dst, x *Tensor)
	// binary computes dst = op(a, b) for F32 operands of dst's shape (a and b
	// may be broadcast views; dst may be a or b for in-place updates).
	binary(op cpu.BinaryOp, dst, a, b *Tensor)
	// reduce reduces the F32 x along dim into dst, which has x's shape with
	// size 1 at dim.
	reduce(op cpu.ReduceOp, dst, x *Tensor, dim int)
	// argmax writes the I64 index of the maximum along dim (dst as for reduce).
	argmax(dst, x *Tensor, dim int)

	// gemm computes batch products c_i = alpha*op(a_i)*op(b_i) + beta*c_i where
	// operand i starts stride*i elements after the operand's start.
	gemm(batch, m, n, k int, alpha float32, a matArg, sa int, b matArg, sb int, beta float32, c *Tensor, ldc, sc int)
	// conv2d: x [N,C,H,W] F32 contiguous, w [K, C*R*S] contiguous any float
	// dtype, bias F32 [K] or nil, y [N,K,OH,OW] contiguous.
	conv2d(p cpu.ConvParams, x, w, bias, y *Tensor)
	// attention: q, k, v, o F32 with unit element stride and the row strides
	// in p (batch stride = seq*row stride); o contiguous.
	attention(p cpu.AttnParams, q, k, v, o *Tensor)
	// groupNorm: x, y F32 contiguous [n, c, hw]; gamma, beta F32 [c] or nil.
	groupNorm(x, y *Tensor, n, c, hw, groups int, eps float32, gamma, beta *Tensor, silu bool)
	// layerNorm: x, y F32 contiguous [rows, cols]; gamma, beta F32 [cols] or nil.
	layerNorm(x, y *Tensor, rows, cols int, eps float32, gamma, beta *Tensor)
	// softmax over rows of the contiguous F32 x [rows, cols] into y.
	softmax(x, y *Tensor, rows, cols int)
	// activate applies f elementwise, contiguous F32 x and y.
	activate(f cpu.Activation, x, y *Tensor)
	// geglu: x [rows, 2d] -> y [rows, d], contiguous F32.
	geglu(x, y *Tensor, rows, d int)
	// upsample2x: x [nc, h, w] -> y [nc, 2h, 2w], contiguous F32.
	upsample2x(x, y *Tensor, nc, h, w int)
	// timestepEmbedding: t F32 contiguous [n] -> out [n, dim].
	timestepEmbedding(t, out *Tensor, dim int, flip bool, shift, scale, maxPeriod float32)
}

// matArg is a matrix operand of gemm: the stored row-major matrix starts off
// elements into t's storage with row stride stride; trans marks the logical
// operand as its transpose. The dtype may be F32, F16 or BF16.
type matArg struct {
	t      *Tensor
	off    int
	stride int
	trans  bool
}

// backends maps a device kind to its implementation; devices other than the CPU
// register themselves in an init function of their (build-tagged) file.
var backends = map[DeviceKind]backend{KindCPU: cpuBackend{}}

// backendFor returns the backend of d or panics if the device kind is unknown.
func backendFor(d Device) backend {
	b, ok := backends[d.Kind]
	if !ok {
		panic(fmt.Sprintf("tensor: no backend for device %v", d))
	}
	return b
}

// sameDevice returns the common device of ts (nil entries are skipped) or panics.
func sameDevice(op string, ts ...*Tensor) Device {
	var d Device
	first := true
	for _, t := range ts {
		if t == nil {
			continue
		}
		td := t.s(op).device
		if first {
			d, first = td, false
		} else if td != d {
			panic(fmt.Sprintf("tensor: %s: operands on different devices (%v and %v)", op, d, td))
		}
	}
	return d
}

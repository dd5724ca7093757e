package tensor

import (
	"fmt"
	"sync/atomic"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// backend is the per-device implementation of the tensor ops. The exported ops
// check shapes, choose layouts and allocate outputs, then call exactly one
// backend method; a device (the CPU, or an accelerator through accelBackend)
// implements this interface and registers itself in backends. The autograd
// rules dispatch their backward ops through it the same way.
//
// Operands arrive validated: dtypes are as documented per method, shapes agree,
// and "contiguous" operands are dense from their offset. Outputs are allocated by
// the caller through alloc.
type backend interface {
	// computeType is the dtype of op results on the device (F32 on the CPU).
	computeType() DType
	// upload copies the contiguous CPU tensor src into the contiguous dst on
	// this device (same dtype and shape); download is the way back.
	upload(dst, src *Tensor)
	download(dst, src *Tensor)
	// synchronize waits for queued work and returns its first error.
	synchronize() error

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

	// The ops below take and produce float tensors in the compute dtype
	// (called F32 here, the CPU's), except where a method says otherwise.

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

	// gemm computes batch products c_i = alpha*op(a_i)*op(b_i) + bias + beta*c_i
	// where operand i starts stride*i elements after the operand's start; bias
	// is F32 [n] or nil (then beta must be 0).
	gemm(batch, m, n, k int, alpha float32, a matArg, sa int, b matArg, sb int, beta float32, c *Tensor, ldc, sc int, bias *Tensor)
	// conv2d: x [N,C,H,W] F32 contiguous, w [K, C*R*S] contiguous any float
	// dtype, bias F32 [K] or nil (always F32, as gamma and beta below), y
	// [N,K,OH,OW] contiguous.
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
	// timestepEmbedding: t F32 contiguous [n] (always F32) -> out [n, dim].
	timestepEmbedding(t, out *Tensor, dim int, flip bool, shift, scale, maxPeriod float32)

	// Training: the forwards that save what their backward reads, and the
	// backward ops the autograd rules dispatch (kernels.Device's training
	// kernels; kernels/cpu's ...Backward functions on the CPU). Tensor
	// operands and input gradients (dx, dq, ...) are contiguous and in the
	// compute dtype, weights of any float dtype; saved statistics (mean, rstd,
	// lse) and parameter gradients (dw, db, dgamma, dbeta) are F32. Gradients
	// are overwritten, not accumulated. Optional operands may be nil.

	// conv2dBackwardData: dx [N, C, H, W] from dy [N, K, OH, OW] and the
	// weights w [K, C, R, S] (any float dtype).
	conv2dBackwardData(p cpu.ConvParams, dy, w, dx *Tensor)
	// conv2dBackwardWeight: dw [K, C, R, S] (F32) from x and dy.
	conv2dBackwardWeight(p cpu.ConvParams, x, dy, dw *Tensor)
	// conv2dBackwardBias: db [K] (F32), dy summed over N, OH and OW.
	conv2dBackwardBias(p cpu.ConvParams, dy, db *Tensor)
	// attentionWithLSE is attention that also writes lse [B*H*Sq] (F32),
	// each query's log-sum-exp, for attentionBackward. A device that runs
	// the head dim unfused (accelerators above maxFusedHeadDim) may leave lse
	// unwritten: its attentionBackward recomputes the probabilities.
	attentionWithLSE(p cpu.AttnParams, q, k, v, o, lse *Tensor)
	// attentionBackward: dq, dk, dv (laid out like q, k, v) from do (laid out
	// like o), the forward's inputs, o and lse.
	attentionBackward(p cpu.AttnParams, do, q, k, v, o, lse, dq, dk, dv *Tensor)
	// groupNormSave is groupNorm that also writes mean and rstd [n*groups] (F32).
	groupNormSave(x, y *Tensor, n, c, hw, groups int, eps float32, gamma, beta *Tensor, silu bool, mean, rstd *Tensor)
	// groupNormBackward: dx, dgamma and dbeta [c] (F32; each may be nil) from
	// x, dy and the saved mean and rstd.
	groupNormBackward(x, dy, dx *Tensor, n, c, hw, groups int, mean, rstd, gamma, beta *Tensor, silu bool, dgamma, dbeta *Tensor)
	// layerNormSave is layerNorm that also writes mean and rstd [rows] (F32).
	layerNormSave(x, y *Tensor, rows, cols int, eps float32, gamma, beta, mean, rstd *Tensor)
	// layerNormBackward: dx, dgamma and dbeta [cols] (F32; each may be nil).
	layerNormBackward(x, dy, dx *Tensor, rows, cols int, mean, rstd, gamma, dgamma, dbeta *Tensor)
	// softmaxBackward: dx = y*(dy - rowsum(dy*y)) from the softmax output y.
	softmaxBackward(y, dy, dx *Tensor, rows, cols int)
	// activateBackward: dx = dy * f'(x) over x's elements.
	activateBackward(f cpu.Activation, x, dy, dx *Tensor)
	// gegluBackward: dx [rows, 2d] from x [rows, 2d] and dy [rows, d].
	gegluBackward(x, dy, dx *Tensor, rows, d int)
	// upsample2xBackward: each 2x2 block of dy [nc, 2h, 2w] summed into dx [nc, h, w].
	upsample2xBackward(dy, dx *Tensor, nc, h, w int)
	// embeddingBackward: the dense gradient dw [vocab, d] (F32) of a lookup
	// of ids (I64, host memory on every device) from dy [len(ids), d].
	embeddingBackward(ids, dy *Tensor, d, vocab int, dw *Tensor)
	// embeddingBackwardSparse: the gradient rows grad [len(rows), d] (F32)
	// for the distinct ids rows (cpu.EmbeddingGradRows).
	embeddingBackwardSparse(ids, dy *Tensor, d int, rows []int64, grad *Tensor)
	// clampBackward: dx = dy where lo <= x <= hi (or x is NaN), else 0.
	clampBackward(x, dy, dx *Tensor, lo, hi float32)
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

// backends maps each opened device to its implementation. The CPU is always
// there; accelerators are added by Open. It is read on every op and written
// rarely, so it is a copy-on-write map behind an atomic pointer.
var backends atomic.Pointer[map[Device]backend]

func init() {
	m := map[Device]backend{CPU: cpuBackend{}}
	backends.Store(&m)
}

// backendFor returns the backend of d or panics if d was not opened.
func backendFor(d Device) backend {
	b, ok := (*backends.Load())[d]
	if !ok {
		panic(fmt.Sprintf("tensor: device %v is not open (call tensor.Open first)", d))
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

package tensor

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Accelerator devices.
//
// An accelerator (a CUDA GPU, or the simulated device used by tests) keeps
// floating-point storage in its own memory and runs every op on it with its
// kernels, in the device's compute dtype (F16 by default; BF16 or F32 by
// choice). Index tensors (I64: token ids, positions, argmax results) stay in
// host memory on every device: they are small and read by the host.
//
// accelBackend implements backend once for all accelerators over accelDevice,
// the small set of primitives a device provides (buffers, transfers, kernels).
// Ops without a device kernel (reductions and argmax) go through the host:
// their operands are downloaded, run by kernels/cpu and the result uploaded.

// accelDevice is what an accelerator provides. Buffers are opaque handles
// (any); nil stands for an absent optional operand. Every method may queue its
// work: results are visible to later methods and to downloads, which wait.
// The semantics of each kernel are those of its kernels/cpu reference.
type accelDevice interface {
	// Name describes the device (model name, memory).
	Name() string
	// Alloc returns a buffer of n elements of dt (contents undefined).
	Alloc(dt cpu.DType, n int) (any, error)
	// Free gives b (returned by Alloc) back; queued work that uses it is unaffected.
	Free(b any)
	// View returns the n elements of b from off as a buffer.
	View(b any, off, n int) any
	// Stats returns bytes in live buffers, bytes cached for reuse and the
	// device's total memory.
	Stats() (inUse, cached, total int64)

	// UploadF32 and UploadU16 copy host data into the first elements of dst.
	UploadF32(dst any, src []float32) error
	UploadU16(dst any, src []uint16) error
	// DownloadF32 and DownloadU16 fill dst from src, waiting for queued work.
	DownloadF32(dst []float32, src any) error
	DownloadU16(dst []uint16, src any) error
	// Synchronize waits for queued work and reports its first error.
	Synchronize() error

	// Fill sets the first n elements of b to v.
	Fill(b any, n int, v float32) error
	// Copy copies the first n elements of src into dst (one dtype).
	Copy(dst, src any, n int) error
	// CopyStrided is cpu.CopyStrided over device buffers of one dtype (the
	// device merges dimensions itself, see cpu.MergeDims).
	CopyStrided(shape []int, dst any, ds []int, src any, ss []int) error
	// Convert converts the first n elements of src into dst's dtype.
	Convert(src, dst any, n int) error
	// Unary and Binary are cpu.Unary and cpu.Binary with operands of any float dtype.
	Unary(op cpu.UnaryOp, alpha, beta float32, shape []int, y any, ys []int, x any, xs []int) error
	Binary(op cpu.BinaryOp, shape []int, y any, ys []int, a any, as []int, b any, bs []int) error

	// Gemm computes c_z = alpha*op(a_z)*op(b_z) + bias + beta*c_z for z < batch
	// (operand z at z*stride elements); bias is F32 [n] or nil; c is F32 or a's
	// dtype.
	Gemm(p accelGemm) error
	// Conv2d is cpu.Conv2d: x and y in one dtype, w [K, wStride] of any float
	// dtype, bias F32 or nil.
	Conv2d(p cpu.ConvParams, x, w any, wStride int, bias, y any) error
	// Attention is cpu.Attention with q, k, v, o of one dtype.
	Attention(p cpu.AttnParams, q, k, v, o any) error
	// GroupNorm, LayerNorm, Softmax, Activate, GEGLU and Upsample2x are their
	// kernels/cpu namesakes with x and y of one dtype and F32 gamma, beta.
	GroupNorm(x, y any, n, c, hw, groups int, eps float32, gamma, beta any, silu bool) error
	LayerNorm(x, y any, rows, cols int, eps float32, gamma, beta any) error
	Softmax(x, y any, rows, cols int) error
	Activate(f cpu.Activation, x, y any, n int) error
	GEGLU(x, y any, rows, d int) error
	Upsample2x(x, y any, nc, h, w int) error
	// TimestepEmbedding is cpu.TimestepEmbedding with t [n] and out [n, dim] F32.
	TimestepEmbedding(t any, n, dim int, flip bool, shift, scale, maxPeriod float32, out any) error
}

// accelGemm are the arguments of accelDevice.Gemm.
type accelGemm struct {
	batch, m, n, k int
	alpha, beta    float32
	a, b           any
	lda, ldb       int
	transA, transB bool
	strideA        int
	strideB        int
	c              any
	ldc, strideC   int
	bias           any
}

// devHandle owns one device allocation; freed makes freeing it idempotent
// between Release and the garbage-collection cleanup.
type devHandle struct {
	buf   any
	freed atomic.Bool
}

// accelBackend runs the tensor ops on an accelerator.
type accelBackend struct {
	dev     Device
	d       accelDevice
	compute atomic.Uint32 // DType of op results
	flops   atomic.Int64  // floating-point operations of the products queued
}

func newAccelBackend(dev Device, d accelDevice) *accelBackend {
	b := &accelBackend{dev: dev, d: d}
	b.compute.Store(uint32(F16))
	return b
}

func (b *accelBackend) computeType() DType { return DType(b.compute.Load()) }

// check panics with a DeviceError if err is not nil.
func (b *accelBackend) check(op string, err error) {
	if err != nil {
		panic(&DeviceError{Device: b.dev, Op: op, Err: err})
	}
}

func kdt(dt DType) cpu.DType {
	switch dt {
	case F32:
		return cpu.F32
	case F16:
		return cpu.F16
	case BF16:
		return cpu.BF16
	}
	panic(fmt.Sprintf("tensor: no device dtype for %v", dt))
}

func (b *accelBackend) alloc(dt DType, n int, zero bool) *storage {
	st := &storage{dtype: dt, device: b.dev, n: n, pooled: true}
	if dt == I64 {
		st.i64 = poolI64.get(n, zero, 8)
		return st
	}
	buf, err := b.d.Alloc(kdt(dt), n)
	b.check("alloc", err)
	h := &devHandle{buf: buf}
	st.dh = h
	d := b.d
	// A tensor dropped without Release gives its memory back when collected.
	runtime.AddCleanup(st, func(h *devHandle) {
		if h.freed.CompareAndSwap(false, true) {
			d.Free(h.buf)
		}
	}, h)
	if zero && n > 0 {
		b.check("alloc", b.d.Fill(buf, n, 0))
	}
	return st
}

func (b *accelBackend) free(st *storage) {
	if st.dtype == I64 {
		poolI64.put(st.i64, 8)
		st.i64 = nil
		return
	}
	if h := st.dh; h != nil && h.freed.CompareAndSwap(false, true) {
		b.d.Free(h.buf)
	}
}

// at returns t's storage from t's first element as a device buffer (nil for a
// nil t).
func (b *accelBackend) at(t *Tensor) any {
	if t == nil {
		return nil
	}
	st := t.st
	if st.dh == nil || st.dh.freed.Load() {
		panic(fmt.Sprintf("tensor: %v tensor without device memory", st.device))
	}
	return b.d.View(st.dh.buf, t.offset, st.n-t.offset)
}

// atOff is at with an explicit element offset into the storage.
func (b *accelBackend) atOff(t *Tensor, off int) any {
	return b.d.View(t.st.dh.buf, off, t.st.n-off)
}

func (b *accelBackend) fill(t *Tensor, v float64) {
	n := t.Numel()
	if n == 0 {
		return
	}
	if t.st.dtype == I64 {
		s := t.st.i64[t.offset : t.offset+n]
		for i := range s {
			s[i] = int64(v)
		}
		return
	}
	b.check("fill", b.d.Fill(b.at(t), n, float32(v)))
}

func (b *accelBackend) copy(dst, src *Tensor) {
	if dst.Numel() == 0 {
		return
	}
	if dst.st.dtype == I64 {
		cpu.CopyStrided(dst.shape, dst.st.i64[dst.offset:], dst.strides, src.st.i64[src.offset:], src.strides)
		return
	}
	if dst.IsContiguous() && src.IsContiguous() { // one block of Numel elements each
		b.check("copy", b.d.Copy(b.at(dst), b.at(src), dst.Numel()))
		return
	}
	b.check("copy", b.d.CopyStrided(dst.shape, b.at(dst), dst.strides, b.at(src), src.strides))
}

// hostF32 downloads the n elements of the contiguous float tensor t as float32.
func (b *accelBackend) hostF32(t *Tensor, n int) []float32 {
	out := make([]float32, n)
	if n == 0 {
		return out
	}
	if t.st.dtype == F32 {
		b.check("download", b.d.DownloadF32(out, b.at(t)))
		return out
	}
	h := make([]uint16, n)
	b.check("download", b.d.DownloadU16(h, b.at(t)))
	convertToF32(t.st.dtype, out, h)
	return out
}

// putF32 uploads host float32 values into the contiguous float tensor t.
func (b *accelBackend) putF32(t *Tensor, v []float32) {
	if len(v) == 0 {
		return
	}
	if t.st.dtype == F32 {
		b.check("upload", b.d.UploadF32(b.at(t), v))
		return
	}
	h := make([]uint16, len(v))
	convertF32To(t.st.dtype, h, v)
	b.check("upload", b.d.UploadU16(b.at(t), h))
}

func (b *accelBackend) convert(dst, src *Tensor) {
	n := src.Numel()
	if n == 0 {
		return
	}
	sd, dd := src.st.dtype, dst.st.dtype
	switch {
	case sd == I64:
		f := make([]float32, n)
		for i, v := range src.st.i64[src.offset : src.offset+n] {
			f[i] = float32(v)
		}
		b.putF32(dst, f)
	case dd == I64:
		d := dst.st.i64[dst.offset : dst.offset+n]
		for i, v := range b.hostF32(src, n) {
			d[i] = int64(v)
		}
	default:
		b.check("convert", b.d.Convert(b.at(src), b.at(dst), n))
	}
}

func (b *accelBackend) upload(dst, src *Tensor) {
	n := src.Numel()
	if n == 0 {
		return
	}
	switch src.st.dtype {
	case F32:
		b.check("upload", b.d.UploadF32(b.at(dst), src.st.f32[src.offset:src.offset+n]))
	case F16, BF16:
		b.check("upload", b.d.UploadU16(b.at(dst), src.st.u16[src.offset:src.offset+n]))
	case I64:
		copy(dst.st.i64[dst.offset:dst.offset+n], src.st.i64[src.offset:src.offset+n])
	}
}

func (b *accelBackend) download(dst, src *Tensor) {
	n := src.Numel()
	if n == 0 {
		return
	}
	switch src.st.dtype {
	case F32:
		b.check("download", b.d.DownloadF32(dst.st.f32[dst.offset:dst.offset+n], b.at(src)))
	case F16, BF16:
		b.check("download", b.d.DownloadU16(dst.st.u16[dst.offset:dst.offset+n], b.at(src)))
	case I64:
		copy(dst.st.i64[dst.offset:dst.offset+n], src.st.i64[src.offset:src.offset+n])
	}
}

func (b *accelBackend) synchronize() error { return b.d.Synchronize() }

func (b *accelBackend) unary(op cpu.UnaryOp, alpha, beta float32, dst, x *Tensor) {
	if dst.Numel() == 0 {
		return
	}
	b.check("unary", b.d.Unary(op, alpha, beta, dst.shape, b.at(dst), dst.strides, b.at(x), x.strides))
}

func (b *accelBackend) binary(op cpu.BinaryOp, dst, x, y *Tensor) {
	if dst.Numel() == 0 {
		return
	}
	b.check("binary", b.d.Binary(op, dst.shape, b.at(dst), dst.strides, b.at(x), x.strides, b.at(y), y.strides))
}

// viaHost runs fn on contiguous F32 host copies of the float device tensors
// ins and uploads the contiguous host results into outs (I64 outputs are in
// host memory already).
func (b *accelBackend) viaHost(outs, ins []*Tensor, fn func(outs, ins []*Tensor)) {
	hin := make([]*Tensor, len(ins))
	for i, t := range ins {
		c := t.Contiguous()
		f := b.hostF32(c, c.Numel())
		c.Release()
		hin[i] = FromFloat32(f, t.shape...)
	}
	hout := make([]*Tensor, len(outs))
	for i, t := range outs {
		if t.st.dtype == I64 {
			hout[i] = FromInt64(t.st.i64[t.offset:t.offset+t.Numel()], t.shape...)
		} else {
			hout[i] = FromFloat32(make([]float32, t.Numel()), t.shape...)
		}
	}
	fn(hout, hin)
	for i, t := range outs {
		if t.st.dtype != I64 {
			b.putF32(t, hout[i].st.f32)
		}
	}
}

func (b *accelBackend) reduce(op cpu.ReduceOp, dst, x *Tensor, dim int) {
	b.viaHost([]*Tensor{dst}, []*Tensor{x}, func(o, in []*Tensor) {
		cpuBackend{}.reduce(op, o[0], in[0], dim)
	})
}

func (b *accelBackend) argmax(dst, x *Tensor, dim int) {
	b.viaHost([]*Tensor{dst}, []*Tensor{x}, func(o, in []*Tensor) {
		cpuBackend{}.argmax(o[0], in[0], dim)
	})
}

func (b *accelBackend) gemm(batch, m, n, k int, alpha float32, a matArg, sa int, bm matArg, sb int, beta float32, c *Tensor, ldc, sc int, bias *Tensor) {
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	p := accelGemm{
		batch: batch, m: m, n: n, k: k, alpha: alpha, beta: beta,
		a: b.atOff(a.t, a.off), lda: a.stride, transA: a.trans, strideA: sa,
		b: b.atOff(bm.t, bm.off), ldb: bm.stride, transB: bm.trans, strideB: sb,
		c: b.at(c), ldc: ldc, strideC: sc, bias: b.at(bias),
	}
	b.flops.Add(2 * int64(batch) * int64(m) * int64(n) * int64(k))
	b.check("gemm", b.d.Gemm(p))
}

func (b *accelBackend) conv2d(p cpu.ConvParams, x, w, bias, y *Tensor) {
	b.flops.Add(2 * int64(p.N) * int64(p.K) * int64(p.OutH()*p.OutW()) * int64(p.C*p.R*p.S))
	b.check("conv2d", b.d.Conv2d(p, b.at(x), b.at(w), p.C*p.R*p.S, b.at(bias), b.at(y)))
}

// maxFusedHeadDim is the largest head dimension of the devices' fused
// attention kernels; wider heads (the VAE's single 512-wide head) take
// attentionUnfused.
const maxFusedHeadDim = 256

func (b *accelBackend) attention(p cpu.AttnParams, q, k, v, o *Tensor) {
	if p.D > maxFusedHeadDim {
		// Counted by the two products it runs.
		b.attentionUnfused(p, q, k, v, o)
		return
	}
	b.flops.Add(4 * int64(p.B) * int64(p.H) * int64(p.Sq) * int64(p.Sk) * int64(p.D))
	b.check("attention", b.d.Attention(p, b.at(q), b.at(k), b.at(v), b.at(o)))
}

// attentionUnfused computes attention as S = scale Q K^T (F32), a softmax over
// its rows, and P V with P in the compute dtype, one head at a time with the
// batch as the gemm batch. It materialises the [B, Sq, Sk] scores.
func (b *accelBackend) attentionUnfused(p cpu.AttnParams, q, k, v, o *Tensor) {
	if p.Causal {
		panic(fmt.Sprintf("tensor: Attention: causal attention with head dim %d > %d is not supported on %v", p.D, maxFusedHeadDim, b.dev))
	}
	qs, ks, vs, os := p.Strides()
	s := newTensor(b.dev, F32, Shape{p.B, p.Sq, p.Sk}, false)
	defer s.Release()
	pr := newTensor(b.dev, o.st.dtype, Shape{p.B, p.Sq, p.Sk}, false)
	defer pr.Release()
	n := p.Sq * p.Sk
	for h := range p.H {
		off := h * p.D
		b.flops.Add(4 * int64(p.B) * int64(p.Sq) * int64(p.Sk) * int64(p.D))
		b.check("attention", b.d.Gemm(accelGemm{
			batch: p.B, m: p.Sq, n: p.Sk, k: p.D, alpha: p.Scale,
			a: b.atOff(q, q.offset+off), lda: qs, strideA: p.Sq * qs,
			b: b.atOff(k, k.offset+off), ldb: ks, transB: true, strideB: p.Sk * ks,
			c: b.at(s), ldc: p.Sk, strideC: n,
		}))
		b.check("attention", b.d.Softmax(b.at(s), b.at(s), p.B*p.Sq, p.Sk))
		b.check("attention", b.d.Convert(b.at(s), b.at(pr), p.B*n))
		b.check("attention", b.d.Gemm(accelGemm{
			batch: p.B, m: p.Sq, n: p.D, k: p.Sk, alpha: 1,
			a: b.at(pr), lda: p.Sk, strideA: n,
			b: b.atOff(v, v.offset+off), ldb: vs, strideB: p.Sk * vs,
			c: b.atOff(o, o.offset+off), ldc: os, strideC: p.Sq * os,
		}))
	}
}

func (b *accelBackend) groupNorm(x, y *Tensor, n, c, hw, groups int, eps float32, gamma, beta *Tensor, silu bool) {
	b.check("groupnorm", b.d.GroupNorm(b.at(x), b.at(y), n, c, hw, groups, eps, b.at(gamma), b.at(beta), silu))
}

func (b *accelBackend) layerNorm(x, y *Tensor, rows, cols int, eps float32, gamma, beta *Tensor) {
	b.check("layernorm", b.d.LayerNorm(b.at(x), b.at(y), rows, cols, eps, b.at(gamma), b.at(beta)))
}

func (b *accelBackend) softmax(x, y *Tensor, rows, cols int) {
	b.check("softmax", b.d.Softmax(b.at(x), b.at(y), rows, cols))
}

func (b *accelBackend) activate(f cpu.Activation, x, y *Tensor) {
	if n := x.Numel(); n > 0 {
		b.check("activate", b.d.Activate(f, b.at(x), b.at(y), n))
	}
}

func (b *accelBackend) geglu(x, y *Tensor, rows, d int) {
	b.check("geglu", b.d.GEGLU(b.at(x), b.at(y), rows, d))
}

func (b *accelBackend) upsample2x(x, y *Tensor, nc, h, w int) {
	b.check("upsample2x", b.d.Upsample2x(b.at(x), b.at(y), nc, h, w))
}

func (b *accelBackend) timestepEmbedding(t, out *Tensor, dim int, flip bool, shift, scale, maxPeriod float32) {
	n := t.Numel()
	if n*dim == 0 {
		return
	}
	if out.st.dtype == F32 {
		b.check("timestep embedding", b.d.TimestepEmbedding(b.at(t), n, dim, flip, shift, scale, maxPeriod, b.at(out)))
		return
	}
	tmp := newTensor(b.dev, F32, out.shape, false)
	defer tmp.Release()
	b.check("timestep embedding", b.d.TimestepEmbedding(b.at(t), n, dim, flip, shift, scale, maxPeriod, b.at(tmp)))
	b.check("timestep embedding", b.d.Convert(b.at(tmp), b.at(out), n*dim))
}

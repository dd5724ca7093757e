package tensor

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/roentgo/roentgo/kernels"
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
// accelBackend[B] implements backend once for all accelerators over a
// kernels.Device[B] (buffers of type B, transfers, kernels; *cuda.Device and
// the simulated device implement it). Ops without a device kernel (reductions
// and argmax) go through the host: their operands are downloaded, run by
// kernels/cpu and the result uploaded.

// accelerator is an accelBackend of any buffer type: the backend and what
// device.go asks of an open accelerator.
type accelerator interface {
	backend
	// name describes the device (kernels.Device.Name).
	name() string
	// stats returns the device's memory statistics (kernels.Device.Stats).
	stats() (inUse, cached, total int64)
	// setComputeType sets the dtype of op results.
	setComputeType(dt DType)
	// flopCount returns the floating-point operations of the products queued so far.
	flopCount() int64
}

// devHandle owns one device allocation: buf is the B of the backend that made
// it (kept as any so that storage is not generic). freed makes freeing it
// idempotent between Release and the garbage-collection cleanup.
type devHandle struct {
	buf   any
	freed atomic.Bool
}

// accelBackend runs the tensor ops on an accelerator with buffers of type B.
type accelBackend[B comparable] struct {
	dev     Device
	d       kernels.Device[B]
	compute atomic.Uint32 // DType of op results
	flops   atomic.Int64  // floating-point operations of the products queued
	// cleanup frees a handle's buffer unless Release did; made once, so
	// that registering it with each allocation allocates no closure.
	cleanup func(h *devHandle)
}

func newAccelBackend[B comparable](dev Device, d kernels.Device[B]) *accelBackend[B] {
	b := &accelBackend[B]{dev: dev, d: d}
	b.compute.Store(uint32(F16))
	b.cleanup = func(h *devHandle) {
		if h.freed.CompareAndSwap(false, true) {
			d.Free(h.buf.(B))
		}
	}
	return b
}

func (b *accelBackend[B]) computeType() DType { return DType(b.compute.Load()) }

func (b *accelBackend[B]) name() string { return b.d.Name() }

func (b *accelBackend[B]) stats() (inUse, cached, total int64) { return b.d.Stats() }

func (b *accelBackend[B]) setComputeType(dt DType) { b.compute.Store(uint32(dt)) }

func (b *accelBackend[B]) flopCount() int64 { return b.flops.Load() }

// check panics with a DeviceError if err is not nil.
func (b *accelBackend[B]) check(op string, err error) {
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

func (b *accelBackend[B]) alloc(dt DType, n int, zero bool) *storage {
	st := &storage{dtype: dt, device: b.dev, n: n, pooled: true}
	if dt == I64 {
		st.i64 = poolI64.get(n, zero, 8)
		return st
	}
	buf, err := b.d.Alloc(kdt(dt), n)
	b.check("alloc", err)
	h := &devHandle{buf: buf}
	st.dh = h
	// A tensor dropped without Release gives its memory back when collected.
	runtime.AddCleanup(st, b.cleanup, h)
	if zero && n > 0 {
		b.check("alloc", b.d.Fill(buf, n, 0))
	}
	return st
}

func (b *accelBackend[B]) free(st *storage) {
	if st.dtype == I64 {
		poolI64.put(st.i64, 8)
		st.i64 = nil
		return
	}
	if h := st.dh; h != nil && h.freed.CompareAndSwap(false, true) {
		b.d.Free(h.buf.(B))
	}
}

// at returns t's storage from t's first element as a device buffer (the zero
// B, the absent operand, for a nil t).
func (b *accelBackend[B]) at(t *Tensor) B {
	if t == nil {
		var zero B
		return zero
	}
	st := t.st
	if st.dh == nil || st.dh.freed.Load() {
		panic(fmt.Sprintf("tensor: %v tensor without device memory", st.device))
	}
	return b.d.View(st.dh.buf.(B), t.offset, st.n-t.offset)
}

// atOff is at with an explicit element offset into the storage.
func (b *accelBackend[B]) atOff(t *Tensor, off int) B {
	return b.d.View(t.st.dh.buf.(B), off, t.st.n-off)
}

// mat returns the matrix operand m as a device matrix.
func (b *accelBackend[B]) mat(m matArg) kernels.DeviceMat[B] {
	return kernels.DeviceMat[B]{Buf: b.atOff(m.t, m.off), Stride: m.stride, Trans: m.trans}
}

func (b *accelBackend[B]) fill(t *Tensor, v float64) {
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

func (b *accelBackend[B]) copy(dst, src *Tensor) {
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
func (b *accelBackend[B]) hostF32(t *Tensor, n int) []float32 {
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
func (b *accelBackend[B]) putF32(t *Tensor, v []float32) {
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

func (b *accelBackend[B]) convert(dst, src *Tensor) {
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

func (b *accelBackend[B]) upload(dst, src *Tensor) {
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

func (b *accelBackend[B]) download(dst, src *Tensor) {
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

func (b *accelBackend[B]) synchronize() error { return b.d.Synchronize() }

func (b *accelBackend[B]) unary(op cpu.UnaryOp, alpha, beta float32, dst, x *Tensor) {
	if dst.Numel() == 0 {
		return
	}
	b.check("unary", b.d.Unary(op, alpha, beta, dst.shape, b.at(dst), dst.strides, b.at(x), x.strides))
}

func (b *accelBackend[B]) binary(op cpu.BinaryOp, dst, x, y *Tensor) {
	if dst.Numel() == 0 {
		return
	}
	b.check("binary", b.d.Binary(op, dst.shape, b.at(dst), dst.strides, b.at(x), x.strides, b.at(y), y.strides))
}

// viaHost runs fn on contiguous F32 host copies of the float device tensors
// ins and uploads the contiguous host results into outs (I64 outputs are in
// host memory already).
func (b *accelBackend[B]) viaHost(outs, ins []*Tensor, fn func(outs, ins []*Tensor)) {
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

func (b *accelBackend[B]) reduce(op cpu.ReduceOp, dst, x *Tensor, dim int) {
	b.viaHost([]*Tensor{dst}, []*Tensor{x}, func(o, in []*Tensor) {
		cpuBackend{}.reduce(op, o[0], in[0], dim)
	})
}

func (b *accelBackend[B]) argmax(dst, x *Tensor, dim int) {
	b.viaHost([]*Tensor{dst}, []*Tensor{x}, func(o, in []*Tensor) {
		cpuBackend{}.argmax(o[0], in[0], dim)
	})
}

func (b *accelBackend[B]) gemm(batch, m, n, k int, alpha float32, a matArg, sa int, bm matArg, sb int, beta float32, c *Tensor, ldc, sc int, bias *Tensor) {
	if m == 0 || n == 0 || batch == 0 {
		return
	}
	p := kernels.GemmParams[B]{
		Batch: batch, M: m, N: n, K: k, Alpha: alpha, Beta: beta,
		A: b.mat(a), StrideA: sa, B: b.mat(bm), StrideB: sb,
		C: b.at(c), Ldc: ldc, StrideC: sc, Bias: b.at(bias),
	}
	b.flops.Add(2 * int64(batch) * int64(m) * int64(n) * int64(k))
	b.check("gemm", b.d.Gemm(p))
}

func (b *accelBackend[B]) conv2d(p cpu.ConvParams, x, w, bias, y *Tensor) {
	b.flops.Add(2 * int64(p.N) * int64(p.K) * int64(p.OutH()*p.OutW()) * int64(p.C*p.R*p.S))
	wm := kernels.DeviceMat[B]{Buf: b.at(w), Stride: p.C * p.R * p.S}
	b.check("conv2d", b.d.Conv2d(p, b.at(x), wm, b.at(bias), b.at(y)))
}

// maxFusedHeadDim is the largest head dimension of the devices' fused
// attention kernels; wider heads (the VAE's single 512-wide head) take
// attentionUnfused.
const maxFusedHeadDim = 256

func (b *accelBackend[B]) attention(p cpu.AttnParams, q, k, v, o *Tensor) {
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
func (b *accelBackend[B]) attentionUnfused(p cpu.AttnParams, q, k, v, o *Tensor) {
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
		b.check("attention", b.d.Gemm(kernels.GemmParams[B]{
			Batch: p.B, M: p.Sq, N: p.Sk, K: p.D, Alpha: p.Scale,
			A:       kernels.DeviceMat[B]{Buf: b.atOff(q, q.offset+off), Stride: qs},
			StrideA: p.Sq * qs,
			B:       kernels.DeviceMat[B]{Buf: b.atOff(k, k.offset+off), Stride: ks, Trans: true},
			StrideB: p.Sk * ks,
			C:       b.at(s), Ldc: p.Sk, StrideC: n,
		}))
		b.check("attention", b.d.Softmax(b.at(s), b.at(s), p.B*p.Sq, p.Sk))
		b.check("attention", b.d.Convert(b.at(s), b.at(pr), p.B*n))
		b.check("attention", b.d.Gemm(kernels.GemmParams[B]{
			Batch: p.B, M: p.Sq, N: p.D, K: p.Sk, Alpha: 1,
			A:       kernels.DeviceMat[B]{Buf: b.at(pr), Stride: p.Sk},
			StrideA: n,
			B:       kernels.DeviceMat[B]{Buf: b.atOff(v, v.offset+off), Stride: vs},
			StrideB: p.Sk * vs,
			C:       b.atOff(o, o.offset+off), Ldc: os, StrideC: p.Sq * os,
		}))
	}
}

func (b *accelBackend[B]) groupNorm(x, y *Tensor, n, c, hw, groups int, eps float32, gamma, beta *Tensor, silu bool) {
	b.check("groupnorm", b.d.GroupNorm(b.at(x), b.at(y), n, c, hw, groups, eps, b.at(gamma), b.at(beta), silu))
}

func (b *accelBackend[B]) layerNorm(x, y *Tensor, rows, cols int, eps float32, gamma, beta *Tensor) {
	b.check("layernorm", b.d.LayerNorm(b.at(x), b.at(y), rows, cols, eps, b.at(gamma), b.at(beta)))
}

func (b *accelBackend[B]) softmax(x, y *Tensor, rows, cols int) {
	b.check("softmax", b.d.Softmax(b.at(x), b.at(y), rows, cols))
}

func (b *accelBackend[B]) activate(f cpu.Activation, x, y *Tensor) {
	if n := x.Numel(); n > 0 {
		b.check("activate", b.d.Activate(f, b.at(x), b.at(y), n))
	}
}

func (b *accelBackend[B]) geglu(x, y *Tensor, rows, d int) {
	b.check("geglu", b.d.GEGLU(b.at(x), b.at(y), rows, d))
}

func (b *accelBackend[B]) upsample2x(x, y *Tensor, nc, h, w int) {
	b.check("upsample2x", b.d.Upsample2x(b.at(x), b.at(y), nc, h, w))
}

func (b *accelBackend[B]) timestepEmbedding(t, out *Tensor, dim int, flip bool, shift, scale, maxPeriod float32) {
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

// Training ops (the backend's backward methods, which the autograd rules
// dispatch): tensor operands in the compute dtype, saved statistics and
// parameter gradients F32 (see kernels.Device), gradients overwritten. Index
// tensors (ids) are in host memory. An absent (nil) optional tensor is the
// device's absent operand.

// convFlops returns the multiply-adds of the convolution p, times 2.
func convFlops(p cpu.ConvParams) int64 {
	return 2 * int64(p.N) * int64(p.K) * int64(p.OutH()*p.OutW()) * int64(p.C*p.R*p.S)
}

// conv2dBackwardData computes dx [N, C, H, W] from dy and the weights w
// [K, C, R, S] (any float dtype).
func (b *accelBackend[B]) conv2dBackwardData(p cpu.ConvParams, dy, w, dx *Tensor) {
	b.flops.Add(convFlops(p))
	wm := kernels.DeviceMat[B]{Buf: b.at(w), Stride: p.C * p.R * p.S}
	b.check("conv2d backward", b.d.Conv2dBackwardData(p, b.at(dy), wm, b.at(dx)))
}

// conv2dBackwardWeight computes dw [K, C, R, S] (F32) from x and dy.
func (b *accelBackend[B]) conv2dBackwardWeight(p cpu.ConvParams, x, dy, dw *Tensor) {
	b.flops.Add(convFlops(p))
	b.check("conv2d backward", b.d.Conv2dBackwardWeight(p, b.at(x), b.at(dy), b.at(dw)))
}

// conv2dBackwardBias computes db [K] (F32) from dy.
func (b *accelBackend[B]) conv2dBackwardBias(p cpu.ConvParams, dy, db *Tensor) {
	b.check("conv2d backward", b.d.Conv2dBackwardBias(p, b.at(dy), b.at(db)))
}

// attentionWithLSE is attention that also writes lse [B, H, Sq] (F32) for
// attentionBackward. Heads wider than maxFusedHeadDim run attentionUnfused
// and leave lse unwritten: their backward recomputes the probabilities.
func (b *accelBackend[B]) attentionWithLSE(p cpu.AttnParams, q, k, v, o, lse *Tensor) {
	if p.D > maxFusedHeadDim {
		b.attentionUnfused(p, q, k, v, o)
		return
	}
	b.flops.Add(4 * int64(p.B) * int64(p.H) * int64(p.Sq) * int64(p.Sk) * int64(p.D))
	b.check("attention", b.d.AttentionWithLSE(p, b.at(q), b.at(k), b.at(v), b.at(o), b.at(lse)))
}

// attentionBackward computes dq, dk, dv (laid out like q, k, v) from do and
// the forward's inputs, o and lse (attentionWithLSE); heads wider than
// maxFusedHeadDim take attentionBackwardUnfused.
func (b *accelBackend[B]) attentionBackward(p cpu.AttnParams, do, q, k, v, o, lse, dq, dk, dv *Tensor) {
	if p.D > maxFusedHeadDim {
		b.attentionBackwardUnfused(p, do, q, k, v, dq, dk, dv)
		return
	}
	// five products: S (recomputed), dV, dP, dQ, dK
	b.flops.Add(10 * int64(p.B) * int64(p.H) * int64(p.Sq) * int64(p.Sk) * int64(p.D))
	b.check("attention backward", b.d.AttentionBackward(p, b.at(do), b.at(q), b.at(k), b.at(v), b.at(o), b.at(lse),
		b.at(dq), b.at(dk), b.at(dv)))
}

// attentionBackwardUnfused is attentionBackward for heads wider than the
// fused kernels take, with the operations of attentionUnfused: per head, the
// probabilities P are recomputed as there (S = scale Q K^T in F32, softmax)
// and
//
//	dV = P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(P dP)),
//	dQ = scale dS K,  dK = scale dS^T Q,
//
// with P and dS rounded to the gradients' dtype as operands of the products
// (as P is in the forward) and dP, dS computed in F32. It materialises
// [B, Sq, Sk] scores.
func (b *accelBackend[B]) attentionBackwardUnfused(p cpu.AttnParams, do, q, k, v, dq, dk, dv *Tensor) {
	if p.Causal {
		panic(fmt.Sprintf("tensor: Attention: causal attention with head dim %d > %d is not supported on %v", p.D, maxFusedHeadDim, b.dev))
	}
	qs, ks, vs, os := p.Strides()
	n := p.Sq * p.Sk
	s := newTensor(b.dev, F32, Shape{p.B, p.Sq, p.Sk}, false) // P
	defer s.Release()
	ds := newTensor(b.dev, F32, Shape{p.B, p.Sq, p.Sk}, false) // dP, then dS
	defer ds.Release()
	// pc holds P, then dS, in the gradients' dtype for the products.
	pc := ds
	if dt := dq.st.dtype; dt != F32 {
		pc = newTensor(b.dev, dt, Shape{p.B, p.Sq, p.Sk}, false)
		defer pc.Release()
	}
	dm := func(t *Tensor, off, stride int, trans bool) kernels.DeviceMat[B] {
		return kernels.DeviceMat[B]{Buf: b.atOff(t, t.offset+off), Stride: stride, Trans: trans}
	}
	for h := range p.H {
		off := h * p.D
		b.flops.Add(10 * int64(p.B) * int64(p.Sq) * int64(p.Sk) * int64(p.D))
		// P = softmax(scale Q K^T)
		b.check("attention backward", b.d.Gemm(kernels.GemmParams[B]{
			Batch: p.B, M: p.Sq, N: p.Sk, K: p.D, Alpha: p.Scale,
			A: dm(q, off, qs, false), StrideA: p.Sq * qs,
			B: dm(k, off, ks, true), StrideB: p.Sk * ks,
			C: b.at(s), Ldc: p.Sk, StrideC: n,
		}))
		b.check("attention backward", b.d.Softmax(b.at(s), b.at(s), p.B*p.Sq, p.Sk))
		pm := s
		if pc != ds {
			b.check("attention backward", b.d.Convert(b.at(s), b.at(pc), p.B*n))
			pm = pc
		}
		// dV = P^T dO: [Sk, D] = [Sk, Sq] [Sq, D]
		b.check("attention backward", b.d.Gemm(kernels.GemmParams[B]{
			Batch: p.B, M: p.Sk, N: p.D, K: p.Sq, Alpha: 1,
			A: dm(pm, 0, p.Sk, true), StrideA: n,
			B: dm(do, off, os, false), StrideB: p.Sq * os,
			C: b.atOff(dv, dv.offset+off), Ldc: vs, StrideC: p.Sk * vs,
		}))
		// dP = dO V^T: [Sq, Sk] = [Sq, D] [D, Sk] (F32)
		b.check("attention backward", b.d.Gemm(kernels.GemmParams[B]{
			Batch: p.B, M: p.Sq, N: p.Sk, K: p.D, Alpha: 1,
			A: dm(do, off, os, false), StrideA: p.Sq * os,
			B: dm(v, off, vs, true), StrideB: p.Sk * vs,
			C: b.at(ds), Ldc: p.Sk, StrideC: n,
		}))
		// dS = P (dP - rowsum(P dP)), in place over dP
		b.check("attention backward", b.d.SoftmaxBackward(b.at(s), b.at(ds), b.at(ds), p.B*p.Sq, p.Sk))
		if pc != ds {
			b.check("attention backward", b.d.Convert(b.at(ds), b.at(pc), p.B*n))
		}
		// dQ = scale dS K: [Sq, D] = [Sq, Sk] [Sk, D]
		b.check("attention backward", b.d.Gemm(kernels.GemmParams[B]{
			Batch: p.B, M: p.Sq, N: p.D, K: p.Sk, Alpha: p.Scale,
			A: dm(pc, 0, p.Sk, false), StrideA: n,
			B: dm(k, off, ks, false), StrideB: p.Sk * ks,
			C: b.atOff(dq, dq.offset+off), Ldc: qs, StrideC: p.Sq * qs,
		}))
		// dK = scale dS^T Q: [Sk, D] = [Sk, Sq] [Sq, D]
		b.check("attention backward", b.d.Gemm(kernels.GemmParams[B]{
			Batch: p.B, M: p.Sk, N: p.D, K: p.Sq, Alpha: p.Scale,
			A: dm(pc, 0, p.Sk, true), StrideA: n,
			B: dm(q, off, qs, false), StrideB: p.Sq * qs,
			C: b.atOff(dk, dk.offset+off), Ldc: ks, StrideC: p.Sk * ks,
		}))
	}
}

// groupNormSave is groupNorm that also writes mean and rstd [n*groups] (F32).
func (b *accelBackend[B]) groupNormSave(x, y *Tensor, n, c, hw, groups int, eps float32, gamma, beta *Tensor, silu bool, mean, rstd *Tensor) {
	b.check("groupnorm", b.d.GroupNormSave(b.at(x), b.at(y), n, c, hw, groups, eps, b.at(gamma), b.at(beta), silu,
		b.at(mean), b.at(rstd)))
}

// groupNormBackward computes dx, dgamma and dbeta (F32), each optional.
func (b *accelBackend[B]) groupNormBackward(x, dy, dx *Tensor, n, c, hw, groups int, mean, rstd, gamma, beta *Tensor, silu bool, dgamma, dbeta *Tensor) {
	b.check("groupnorm backward", b.d.GroupNormBackward(b.at(x), b.at(dy), b.at(dx), n, c, hw, groups,
		b.at(mean), b.at(rstd), b.at(gamma), b.at(beta), silu, b.at(dgamma), b.at(dbeta)))
}

// layerNormSave is layerNorm that also writes mean and rstd [rows] (F32).
func (b *accelBackend[B]) layerNormSave(x, y *Tensor, rows, cols int, eps float32, gamma, beta, mean, rstd *Tensor) {
	b.check("layernorm", b.d.LayerNormSave(b.at(x), b.at(y), rows, cols, eps, b.at(gamma), b.at(beta), b.at(mean), b.at(rstd)))
}

// layerNormBackward computes dx, dgamma and dbeta (F32), each optional.
func (b *accelBackend[B]) layerNormBackward(x, dy, dx *Tensor, rows, cols int, mean, rstd, gamma, dgamma, dbeta *Tensor) {
	b.check("layernorm backward", b.d.LayerNormBackward(b.at(x), b.at(dy), b.at(dx), rows, cols,
		b.at(mean), b.at(rstd), b.at(gamma), b.at(dgamma), b.at(dbeta)))
}

// softmaxBackward computes dx from the softmax output y and dy.
func (b *accelBackend[B]) softmaxBackward(y, dy, dx *Tensor, rows, cols int) {
	b.check("softmax backward", b.d.SoftmaxBackward(b.at(y), b.at(dy), b.at(dx), rows, cols))
}

// activateBackward computes dx = dy * f'(x) over x's elements.
func (b *accelBackend[B]) activateBackward(f cpu.Activation, x, dy, dx *Tensor) {
	if n := x.Numel(); n > 0 {
		b.check("activate backward", b.d.ActivateBackward(f, b.at(x), b.at(dy), b.at(dx), n))
	}
}

// gegluBackward computes dx [rows, 2d] from x [rows, 2d] and dy [rows, d].
func (b *accelBackend[B]) gegluBackward(x, dy, dx *Tensor, rows, d int) {
	b.check("geglu backward", b.d.GEGLUBackward(b.at(x), b.at(dy), b.at(dx), rows, d))
}

// upsample2xBackward sums each 2x2 block of dy [nc, 2h, 2w] into dx [nc, h, w].
func (b *accelBackend[B]) upsample2xBackward(dy, dx *Tensor, nc, h, w int) {
	b.check("upsample2x backward", b.d.Upsample2xBackward(b.at(dy), b.at(dx), nc, h, w))
}

// hostIDs returns the elements of the contiguous I64 tensor ids.
func hostIDs(ids *Tensor) []int64 { return ids.st.i64[ids.offset : ids.offset+ids.Numel()] }

// embeddingBackward computes the dense gradient dw [vocab, d] (F32) of a
// lookup of ids (I64, host memory) from dy [len(ids), d].
func (b *accelBackend[B]) embeddingBackward(ids, dy *Tensor, d, vocab int, dw *Tensor) {
	b.check("embedding backward", b.d.EmbeddingBackward(hostIDs(ids), b.at(dy), d, vocab, b.at(dw)))
}

// embeddingBackwardSparse computes the gradient rows grad [len(rows), d] (F32)
// of a lookup of ids for the distinct ids rows (cpu.EmbeddingGradRows).
func (b *accelBackend[B]) embeddingBackwardSparse(ids, dy *Tensor, d int, rows []int64, grad *Tensor) {
	b.check("embedding backward", b.d.EmbeddingBackwardSparse(hostIDs(ids), b.at(dy), d, rows, b.at(grad)))
}

// clampBackward computes dx = dy where lo <= x <= hi (or x is NaN), else 0,
// on the host (no device kernel; Clamp is rare in training graphs).
func (b *accelBackend[B]) clampBackward(x, dy, dx *Tensor, lo, hi float32) {
	b.viaHost([]*Tensor{dx}, []*Tensor{x, dy}, func(o, in []*Tensor) {
		cpuBackend{}.clampBackward(in[0], in[1], o[0], lo, hi)
	})
}

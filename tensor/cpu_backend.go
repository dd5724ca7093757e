package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// cpuBackend runs the ops with kernels/cpu on the host.
type cpuBackend struct{}

func (cpuBackend) computeType() DType { return F32 }

func (cpuBackend) upload(dst, src *Tensor)   { panic("tensor: upload to the CPU") }
func (cpuBackend) download(dst, src *Tensor) { panic("tensor: download from the CPU") }
func (cpuBackend) synchronize() error        { return nil }

func (cpuBackend) alloc(dt DType, n int, zero bool) *storage {
	st := &storage{dtype: dt, device: CPU, n: n, pooled: true}
	switch dt {
	case F32:
		st.f32 = poolF32.get(n, zero, 4)
	case F16, BF16:
		st.u16 = poolU16.get(n, zero, 2)
	case I64:
		st.i64 = poolI64.get(n, zero, 8)
	default:
		panic(fmt.Sprintf("tensor: alloc: unknown dtype %v", dt))
	}
	return st
}

func (cpuBackend) free(st *storage) {
	switch st.dtype {
	case F32:
		poolF32.put(st.f32, 4)
	case F16, BF16:
		poolU16.put(st.u16, 2)
	case I64:
		poolI64.put(st.i64, 8)
	}
	st.f32, st.u16, st.i64 = nil, nil, nil
}

// f32s returns t's F32 buffer from its first element.
func f32s(t *Tensor) []float32 {
	if t == nil {
		return nil
	}
	return t.st.f32[t.offset:]
}

// f32n returns t's first n F32 elements (t contiguous), or nil for a nil t.
func f32n(t *Tensor, n int) []float32 {
	if t == nil {
		return nil
	}
	return t.st.f32[t.offset : t.offset+n]
}

func (cpuBackend) fill(t *Tensor, v float64) {
	n := t.Numel()
	switch t.st.dtype {
	case F32:
		s := f32n(t, n)
		f := float32(v)
		for i := range s {
			s[i] = f
		}
	case F16, BF16:
		h := halfFromF32(t.st.dtype, float32(v))
		s := t.st.u16[t.offset : t.offset+n]
		for i := range s {
			s[i] = h
		}
	case I64:
		s := t.st.i64[t.offset : t.offset+n]
		for i := range s {
			s[i] = int64(v)
		}
	}
}

func (cpuBackend) copy(dst, src *Tensor) {
	switch dst.st.dtype {
	case F32:
		cpu.CopyStrided(dst.shape, dst.st.f32[dst.offset:], dst.strides, src.st.f32[src.offset:], src.strides)
	case F16, BF16:
		cpu.CopyStrided(dst.shape, dst.st.u16[dst.offset:], dst.strides, src.st.u16[src.offset:], src.strides)
	case I64:
		cpu.CopyStrided(dst.shape, dst.st.i64[dst.offset:], dst.strides, src.st.i64[src.offset:], src.strides)
	}
}

func halfFromF32(dt DType, v float32) uint16 {
	if dt == BF16 {
		return cpu.F32ToBF16Scalar(v)
	}
	return cpu.F32ToF16Scalar(v)
}

// convertF32To converts float32 values into 16-bit dt bits.
func convertF32To(dt DType, dst []uint16, src []float32) {
	if dt == BF16 {
		cpu.F32ToBF16(dst, src)
	} else {
		cpu.F32ToF16(dst, src)
	}
}

// convertToF32 converts 16-bit dt bits to float32.
func convertToF32(dt DType, dst []float32, src []uint16) {
	if dt == BF16 {
		cpu.BF16ToF32(dst, src)
	} else {
		cpu.F16ToF32(dst, src)
	}
}

func (cpuBackend) convert(dst, src *Tensor) {
	n := src.Numel()
	sd, dd := src.st.dtype, dst.st.dtype
	// Go through float32 where neither side is F32.
	var f []float32
	switch sd {
	case F32:
		f = f32n(src, n)
	case F16, BF16:
		if dd == F32 {
			convertToF32(sd, f32n(dst, n), src.st.u16[src.offset:src.offset+n])
			return
		}
		f = make([]float32, n)
		convertToF32(sd, f, src.st.u16[src.offset:src.offset+n])
	case I64:
		s := src.st.i64[src.offset : src.offset+n]
		if dd == F32 {
			d := f32n(dst, n)
			for i, v := range s {
				d[i] = float32(v)
			}
			return
		}
		f = make([]float32, n)
		for i, v := range s {
			f[i] = float32(v)
		}
	}
	switch dd {
	case F32:
		copy(f32n(dst, n), f)
	case F16, BF16:
		convertF32To(dd, dst.st.u16[dst.offset:dst.offset+n], f)
	case I64:
		d := dst.st.i64[dst.offset : dst.offset+n]
		for i, v := range f {
			d[i] = int64(v) // truncation toward zero, as torch's .long()
		}
	}
}

func (cpuBackend) unary(op cpu.UnaryOp, alpha, beta float32, dst, x *Tensor) {
	cpu.Unary(op, alpha, beta, dst.shape, f32s(dst), dst.strides, f32s(x), x.strides)
}

func (cpuBackend) binary(op cpu.BinaryOp, dst, a, b *Tensor) {
	cpu.Binary(op, dst.shape, f32s(dst), dst.strides, f32s(a), a.strides, f32s(b), b.strides)
}

func (cpuBackend) reduce(op cpu.ReduceOp, dst, x *Tensor, dim int) {
	cpu.ReduceDim(op, x.shape, dim, f32s(dst), dst.strides, f32s(x), x.strides)
}

func (cpuBackend) argmax(dst, x *Tensor, dim int) {
	cpu.ArgMaxDim(x.shape, dim, dst.st.i64[dst.offset:], dst.strides, f32s(x), x.strides)
}

func (m matArg) mat() cpu.Mat {
	st := m.t.st
	switch st.dtype {
	case F32:
		return cpu.F32Mat(st.f32[m.off:], m.stride, m.trans)
	case F16:
		return cpu.HalfMat(st.u16[m.off:], cpu.F16, m.stride, m.trans)
	case BF16:
		return cpu.HalfMat(st.u16[m.off:], cpu.BF16, m.stride, m.trans)
	}
	panic(fmt.Sprintf("tensor: matrix operand of dtype %v", st.dtype))
}

func (cpuBackend) gemm(batch, m, n, k int, alpha float32, a matArg, sa int, b matArg, sb int, beta float32, c *Tensor, ldc, sc int, bias *Tensor) {
	if bias != nil {
		// The bias goes into C first, then the product accumulates onto it.
		if beta != 0 || batch != 1 {
			panic("tensor: gemm: bias with beta != 0 or a batch")
		}
		cv := c.view(Shape{m, n}, []int{ldc, 1}, c.offset)
		eb := bias.Expand(m, n)
		cpuBackend{}.copy(cv, eb)
		eb.Release()
		cv.Release()
		beta = 1
	}
	if batch == 1 {
		cpu.Gemm(m, n, k, alpha, a.mat(), b.mat(), beta, f32s(c), ldc)
		return
	}
	cpu.GemmBatched(batch, m, n, k, alpha, a.mat(), sa, b.mat(), sb, beta, f32s(c), ldc, sc)
}

func (cpuBackend) conv2d(p cpu.ConvParams, x, w, bias, y *Tensor) {
	wm := matArg{t: w, off: w.offset, stride: p.C * p.R * p.S}.mat()
	cpu.Conv2d(p, f32n(x, x.Numel()), wm, f32n(bias, p.K), f32n(y, y.Numel()))
}

func (cpuBackend) attention(p cpu.AttnParams, q, k, v, o *Tensor) {
	cpu.Attention(p, f32s(q), f32s(k), f32s(v), f32s(o))
}

func (cpuBackend) groupNorm(x, y *Tensor, n, c, hw, groups int, eps float32, gamma, beta *Tensor, silu bool) {
	cpu.GroupNorm(f32n(x, n*c*hw), f32n(y, n*c*hw), n, c, hw, groups, eps, f32n(gamma, c), f32n(beta, c), silu)
}

func (cpuBackend) layerNorm(x, y *Tensor, rows, cols int, eps float32, gamma, beta *Tensor) {
	cpu.LayerNorm(f32n(x, rows*cols), f32n(y, rows*cols), rows, cols, eps, f32n(gamma, cols), f32n(beta, cols))
}

func (cpuBackend) softmax(x, y *Tensor, rows, cols int) {
	cpu.Softmax(f32n(x, rows*cols), f32n(y, rows*cols), rows, cols)
}

func (cpuBackend) activate(f cpu.Activation, x, y *Tensor) {
	n := x.Numel()
	cpu.Activate(f, f32n(x, n), f32n(y, n))
}

func (cpuBackend) geglu(x, y *Tensor, rows, d int) {
	cpu.GEGLU(f32n(x, rows*2*d), f32n(y, rows*d), rows, d)
}

func (cpuBackend) upsample2x(x, y *Tensor, nc, h, w int) {
	cpu.Upsample2x(f32n(x, nc*h*w), f32n(y, nc*4*h*w), nc, h, w)
}

func (cpuBackend) timestepEmbedding(t, out *Tensor, dim int, flip bool, shift, scale, maxPeriod float32) {
	n := t.Numel()
	cpu.TimestepEmbedding(f32n(t, n), dim, flip, shift, scale, maxPeriod, f32n(out, n*dim))
}

// Training ops: kernels/cpu's backward kernels over the host slices.

func (cpuBackend) conv2dBackwardData(p cpu.ConvParams, dy, w, dx *Tensor) {
	wm := matArg{t: w, off: w.offset, stride: p.C * p.R * p.S}.mat()
	cpu.Conv2dBackwardData(p, f32n(dy, dy.Numel()), wm, f32n(dx, dx.Numel()))
}

func (cpuBackend) conv2dBackwardWeight(p cpu.ConvParams, x, dy, dw *Tensor) {
	cpu.Conv2dBackwardWeight(p, f32n(x, x.Numel()), f32n(dy, dy.Numel()), f32n(dw, dw.Numel()))
}

func (cpuBackend) conv2dBackwardBias(p cpu.ConvParams, dy, db *Tensor) {
	cpu.Conv2dBackwardBias(p, f32n(dy, dy.Numel()), f32n(db, p.K))
}

func (cpuBackend) attentionWithLSE(p cpu.AttnParams, q, k, v, o, lse *Tensor) {
	cpu.AttentionWithLSE(p, f32s(q), f32s(k), f32s(v), f32s(o), f32s(lse))
}

func (cpuBackend) attentionBackward(p cpu.AttnParams, do, q, k, v, o, lse, dq, dk, dv *Tensor) {
	cpu.AttentionBackward(p, f32s(do), f32s(q), f32s(k), f32s(v), f32s(o), f32s(lse), f32s(dq), f32s(dk), f32s(dv))
}

func (cpuBackend) groupNormSave(x, y *Tensor, n, c, hw, groups int, eps float32, gamma, beta *Tensor, silu bool, mean, rstd *Tensor) {
	m := n * c * hw
	cpu.GroupNormSave(f32n(x, m), f32n(y, m), n, c, hw, groups, eps, f32n(gamma, c), f32n(beta, c), silu,
		f32n(mean, n*groups), f32n(rstd, n*groups))
}

func (cpuBackend) groupNormBackward(x, dy, dx *Tensor, n, c, hw, groups int, mean, rstd, gamma, beta *Tensor, silu bool, dgamma, dbeta *Tensor) {
	m := n * c * hw
	cpu.GroupNormBackward(f32n(x, m), f32n(dy, m), f32n(dx, m), n, c, hw, groups, f32n(mean, n*groups), f32n(rstd, n*groups),
		f32n(gamma, c), f32n(beta, c), silu, f32n(dgamma, c), f32n(dbeta, c))
}

func (cpuBackend) layerNormSave(x, y *Tensor, rows, cols int, eps float32, gamma, beta, mean, rstd *Tensor) {
	m := rows * cols
	cpu.LayerNormSave(f32n(x, m), f32n(y, m), rows, cols, eps, f32n(gamma, cols), f32n(beta, cols), f32n(mean, rows), f32n(rstd, rows))
}

func (cpuBackend) layerNormBackward(x, dy, dx *Tensor, rows, cols int, mean, rstd, gamma, dgamma, dbeta *Tensor) {
	m := rows * cols
	cpu.LayerNormBackward(f32n(x, m), f32n(dy, m), f32n(dx, m), rows, cols, f32n(mean, rows), f32n(rstd, rows),
		f32n(gamma, cols), f32n(dgamma, cols), f32n(dbeta, cols))
}

func (cpuBackend) softmaxBackward(y, dy, dx *Tensor, rows, cols int) {
	m := rows * cols
	cpu.SoftmaxBackward(f32n(y, m), f32n(dy, m), f32n(dx, m), rows, cols)
}

func (cpuBackend) activateBackward(f cpu.Activation, x, dy, dx *Tensor) {
	n := x.Numel()
	cpu.ActivateBackward(f, f32n(x, n), f32n(dy, n), f32n(dx, n))
}

func (cpuBackend) gegluBackward(x, dy, dx *Tensor, rows, d int) {
	cpu.GEGLUBackward(f32n(x, rows*2*d), f32n(dy, rows*d), f32n(dx, rows*2*d), rows, d)
}

func (cpuBackend) upsample2xBackward(dy, dx *Tensor, nc, h, w int) {
	cpu.Upsample2xBackward(f32n(dy, nc*4*h*w), f32n(dx, nc*h*w), nc, h, w)
}

func (cpuBackend) embeddingBackward(ids, dy *Tensor, d, vocab int, dw *Tensor) {
	id := hostIDs(ids)
	cpu.EmbeddingBackward(id, f32n(dy, len(id)*d), d, vocab, f32n(dw, vocab*d))
}

func (cpuBackend) embeddingBackwardSparse(ids, dy *Tensor, d int, rows []int64, grad *Tensor) {
	id := hostIDs(ids)
	cpu.EmbeddingBackwardSparse(id, f32n(dy, len(id)*d), d, rows, f32n(grad, len(rows)*d))
}

func (cpuBackend) clampBackward(x, dy, dx *Tensor, lo, hi float32) {
	n := x.Numel()
	xs, g, d := f32n(x, n), f32n(dy, n), f32n(dx, n)
	// PyTorch's rule: g where lo <= x <= hi, else 0 (NaN x passes g).
	for i, v := range xs {
		if v < lo || v > hi {
			d[i] = 0
		} else {
			d[i] = g[i]
		}
	}
}

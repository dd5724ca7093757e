package tensor

import (
	"fmt"
)

// matLayout describes the last two dims of t (a rows x cols matrix) as a gemm
// operand, without copying: row-major with row stride s, or the transpose of a
// stored row-major cols x rows matrix with row stride s. ok is false when the
// layout is neither (then the caller copies).
func matLayout(t *Tensor, rows, cols int) (stride int, trans, ok bool) {
	r := len(t.shape)
	rs, cs := t.strides[r-2], t.strides[r-1]
	// Row-major: element (i, j) at i*rs + j.
	if cs == 1 || cols == 1 {
		s := rs
		if rows == 1 {
			s = cols
		}
		if s >= cols && s > 0 {
			return s, false, true
		}
	}
	// Transposed: element (i, j) at i + j*cs, the stored matrix is cols x rows.
	if rs == 1 || rows == 1 {
		s := cs
		if cols == 1 {
			s = rows
		}
		if s >= rows && s > 0 {
			return s, true, true
		}
	}
	return 0, false, false
}

// batchStride returns the single element stride that steps through the batch
// dims of t (all dims but the last two) in row-major order, or ok=false when
// the batch dims do not collapse into one stride. Broadcast batch dims have
// stride 0, so a fully broadcast operand collapses to stride 0.
func batchStride(shape Shape, strides []int) (int, bool) {
	base, acc, have := 0, 0, false
	for d := len(shape) - 3; d >= 0; d-- {
		if shape[d] == 1 {
			continue
		}
		if !have {
			base, acc, have = strides[d], strides[d]*shape[d], true
			continue
		}
		if strides[d] != acc {
			return 0, false
		}
		acc *= shape[d]
	}
	return base, true
}

// MatMul returns the matrix product of t and o with torch.matmul semantics: t
// [..., m, k] times o [..., k, n] gives [..., m, n], with the batch dims
// broadcast; a 1-D t is a row [1, k] and a 1-D o a column [k, 1], whose added
// dimension is removed from the result. Either operand may be F32, F16 or BF16
// (16-bit operands are converted while packing on the CPU); the result has the
// device's compute dtype. Transposed
// views (e.g. o.Transpose(-2, -1) of a contiguous tensor) are used in place,
// without copies.
func (t *Tensor) MatMul(o *Tensor) *Tensor {
	out := t.matmulImpl(o)
	if !needsGrad(t, o) {
		return out
	}
	st, so := save(t), save(o)
	return record(out, "MatMul", []*Tensor{t, o}, []savedValue{st, so}, func(g *Tensor) []*Tensor {
		return matmulGrads(g, st.t, so.t)
	})
}

// matmulGrads returns the gradients of a [..., m, k] x b [..., k, n] from g
// [..., m, n]: g b^T and a^T g, summed over broadcast batch dimensions; a
// 1-D a or b is a row or a column, as in MatMul.
func matmulGrads(g, a, b *Tensor) []*Tensor {
	a2, b2, g2 := a.Detach(), b.Detach(), g.Detach()
	defer func() { a2.Release(); b2.Release(); g2.Release() }()
	if a.Rank() == 1 {
		a2.Release()
		a2 = a.Unsqueeze(0)
		t := g2.Unsqueeze(-2)
		g2.Release()
		g2 = t
	}
	if b.Rank() == 1 {
		b2.Release()
		b2 = b.Unsqueeze(1)
		t := g2.Unsqueeze(-1)
		g2.Release()
		g2 = t
	}
	bt, at := b2.Transpose(-2, -1), a2.Transpose(-2, -1)
	defer bt.Release()
	defer at.Release()
	ga := g2.matmulImpl(bt)
	gb := at.matmulImpl(g2)
	ra, rb := sumTo(ga, a2.shape), sumTo(gb, b2.shape)
	ga.Release()
	gb.Release()
	fa, fb := ra.Reshape(a.shape...), rb.Reshape(b.shape...)
	ra.Release()
	rb.Release()
	return []*Tensor{fa, fb}
}

func (t *Tensor) matmulImpl(o *Tensor) *Tensor {
	dev := sameDevice("MatMul", t, o)
	if t.Rank() == 0 || o.Rank() == 0 {
		panic(fmt.Sprintf("tensor: MatMul: scalar operand (shapes %v and %v)", t.shape, o.shape))
	}
	a, b := t, o
	var squeeze []int
	if a.Rank() == 1 {
		a = a.Unsqueeze(0)
		defer a.Release()
		squeeze = append(squeeze, -2)
	}
	if b.Rank() == 1 {
		b = b.Unsqueeze(1)
		defer b.Release()
		squeeze = append(squeeze, -1)
	}
	if c, owned := gemmOperand(a); owned {
		a = c
		defer a.Release()
	}
	if c, owned := gemmOperand(b); owned {
		b = c
		defer b.Release()
	}
	m, k := a.Dim(-2), a.Dim(-1)
	k2, n := b.Dim(-2), b.Dim(-1)
	if k != k2 {
		panic(fmt.Sprintf("tensor: MatMul: inner sizes differ: %v x %v", t.shape, o.shape))
	}
	if _, _, ok := matLayout(a, m, k); !ok {
		a = a.Contiguous()
		defer a.Release()
	}
	if _, _, ok := matLayout(b, k, n); !ok {
		b = b.Contiguous()
		defer b.Release()
	}
	bs := BroadcastShapes(a.shape[:a.Rank()-2], b.shape[:b.Rank()-2])
	ea := a.Expand(append(bs.Clone(), m, k)...)
	eb := b.Expand(append(bs.Clone(), k, n)...)
	defer ea.Release()
	defer eb.Release()
	out := newTensor(dev, ComputeDType(dev), append(bs.Clone(), m, n), false)
	batch := bs.Numel()
	be := backendFor(dev)
	lsa, ta, _ := matLayout(ea, m, k)
	lsb, tb, _ := matLayout(eb, k, n)
	sa, oka := batchStride(ea.shape, ea.strides)
	sb, okb := batchStride(eb.shape, eb.strides)
	if oka && okb {
		be.gemm(batch, m, n, k, 1, matArg{ea, ea.offset, lsa, ta}, sa, matArg{eb, eb.offset, lsb, tb}, sb, 0, out, n, m*n, nil)
	} else {
		// Batch dims that do not collapse: one product per batch index.
		idx := make([]int, len(bs))
		for i := 0; i < batch; i++ {
			oa, ob := ea.offset, eb.offset
			for d, v := range idx {
				oa += v * ea.strides[d]
				ob += v * eb.strides[d]
			}
			ci := out.view(Shape{m, n}, []int{n, 1}, i*m*n)
			be.gemm(1, m, n, k, 1, matArg{ea, oa, lsa, ta}, 0, matArg{eb, ob, lsb, tb}, 0, 0, ci, n, 0, nil)
			ci.Release()
			for d := len(idx) - 1; d >= 0; d-- {
				idx[d]++
				if idx[d] < bs[d] {
					break
				}
				idx[d] = 0
			}
		}
	}
	if len(squeeze) > 0 {
		r := out.Squeeze(squeeze...)
		out.Release()
		return r
	}
	return out
}

// gemmOperand returns t in the form a matrix product takes it: I64 operands
// are converted to the compute dtype, and so are F32 ones on an accelerator
// computing in 16 bits (where tensor cores need both operands in one 16-bit
// dtype). Other operands go as they are (owned=false).
func gemmOperand(t *Tensor) (*Tensor, bool) {
	dt, dev := t.DType(), t.Device()
	cd := ComputeDType(dev)
	if dt == I64 || (dev != CPU && dt == F32 && cd != F32) {
		return t.To(cd), true
	}
	return t, false
}

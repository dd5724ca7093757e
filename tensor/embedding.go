package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Embedding lookups (dense and row-sparse gradients, see embedding_grad.go)
// and the sinusoidal timestep embedding.

// Embedding returns the rows of the table w [V, D] (any float dtype) selected by
// the I64 ids [...]: the result is [..., D] in the compute dtype. It panics if
// an id is out of range.
//
// Gradient with respect to w: row r is the sum of the output gradient's rows
// at the positions whose id is r, in position order in F32; other rows are
// zero. For a table marked with SetSparseGrad the rule delivers only the rows
// of the ids used (RowGrad) and nothing dense; otherwise it is a dense
// [V, D] F32 tensor, as torch's Embedding(sparse=False). The rows are the
// same numbers either way.
func Embedding(ids, w *Tensor) *Tensor {
	dev := sameDevice("Embedding", ids, w)
	if ids.DType() != I64 || w.Rank() != 2 {
		panic(fmt.Sprintf("tensor: Embedding: ids %v %v, table %v (want I64 ids, table [V, D])", ids.DType(), ids.shape, w.shape))
	}
	idc := ids.Contiguous()
	defer idc.Release()
	out := newTensor(dev, ComputeDType(dev), append(ids.shape.Clone(), w.Dim(1)), false)
	v := w.Dim(0)
	for i, id := range idc.st.i64[idc.offset : idc.offset+idc.Numel()] {
		if id < 0 || int(id) >= v {
			panic(fmt.Sprintf("tensor: Embedding: id %d out of range [0, %d)", id, v))
		}
		src := w.selectImpl(0, int(id))
		dst := out.view(Shape{w.Dim(1)}, []int{1}, i*w.Dim(1))
		dst.CopyFrom(src)
		dst.Release()
		src.Release()
	}
	if !needsGrad(w) {
		return out
	}
	ids64 := append([]int64(nil), idc.st.i64[idc.offset:idc.offset+idc.Numel()]...)
	dim, vocab := w.Dim(1), v
	return record(out, "Embedding", []*Tensor{nil, w}, nil, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		be := backendFor(dev)
		idt := FromInt64(ids64, len(ids64)) // ids are host memory on every device
		defer idt.Release()
		if w.SparseGrad() {
			rows := cpu.EmbeddingGradRows(ids64, vocab)
			gt := newTensor(dev, F32, Shape{len(rows), dim}, false)
			be.embeddingBackwardSparse(idt, gy, dim, rows, gt)
			grad := gt.Float32s()
			gt.Release()
			if addRowGrad(w, rows, grad) {
				return []*Tensor{nil, nil}
			}
		}
		dw := newTensor(dev, F32, Shape{vocab, dim}, false)
		be.embeddingBackward(idt, gy, dim, vocab, dw)
		return []*Tensor{nil, dw}
	})
}

// TimestepEmbedding returns the sinusoidal embeddings [N, dim] of the timesteps
// t [N] (any dtype), with diffusers' get_timestep_embedding semantics:
// flipSinToCos puts cos first, downscaleFreqShift is the shift in the frequency
// exponent's denominator (half - shift), scale multiplies the arguments, and
// maxPeriod is the longest period (10000 in Stable Diffusion).
func TimestepEmbedding(t *Tensor, dim int, flipSinToCos bool, downscaleFreqShift, scale, maxPeriod float32) *Tensor {
	noRule("TimestepEmbedding", t)

	if t.Rank() != 1 || dim < 1 {
		panic(fmt.Sprintf("tensor: TimestepEmbedding: t %v, dim %d (want t [N], dim >= 1)", t.shape, dim))
	}
	tc, rt := f32Contig(t)
	defer rt()
	out := newTensor(t.Device(), ComputeDType(t.Device()), Shape{t.Dim(0), dim}, false)
	backendFor(t.Device()).timestepEmbedding(tc, out, dim, flipSinToCos, downscaleFreqShift, scale, maxPeriod)
	return out
}

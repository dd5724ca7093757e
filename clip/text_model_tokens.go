package clip

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/tensor"
)

// AddTokenEmbeddings appends rows [n, D] (any float dtype) to the token
// embedding table, for tokens a tokenizer's AddToken added (transformers'
// resize_token_embeddings followed by setting the new rows), and returns
// the first new id (the old vocabulary size). The table is replaced by a
// new tensor of the old one's dtype and device (the rows rounded to it);
// Config.VocabSize grows by n. The model must not be running. Rows of the
// wrong shape, or values that are not finite, are errors.
func (m *TextModel) AddTokenEmbeddings(rows *tensor.Tensor) (int, error) {
	d := m.Config.HiddenSize
	if rows == nil || rows.Rank() != 2 || rows.Dim(1) != d || rows.Dim(0) < 1 {
		var sh tensor.Shape
		if rows != nil {
			sh = rows.Shape()
		}
		return 0, fmt.Errorf("clip: AddTokenEmbeddings: rows of shape %v, want [n, %d] (the text encoder's hidden size)", sh, d)
	}
	if rows.DType() == tensor.I64 {
		return 0, fmt.Errorf("clip: AddTokenEmbeddings: rows of dtype I64, want a float dtype")
	}
	first := m.TokenEmbedding.Weight.Dim(0)
	var vals []float32
	if err := tensor.Catch(func() { vals = rows.Float32s() }); err != nil {
		return 0, errctx.Wrap("clip: AddTokenEmbeddings", err)
	}
	for i, v := range vals {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return 0, fmt.Errorf("clip: AddTokenEmbeddings: value %d of the new rows is %v; want finite values", i, v)
		}
	}
	var table *tensor.Tensor
	err := tensor.Catch(func() {
		tensor.NoGrad(func() {
			tensor.Unscoped(func() {
				old := m.TokenEmbedding.Weight.Detach()
				r := rows.Detach().To(old.DType())
				if dev := old.Device(); dev != r.Device() {
					r = r.ToDevice(dev)
				}
				table = tensor.Cat(0, old, r)
			})
		})
	})
	if err != nil {
		return 0, errctx.Wrap("clip: AddTokenEmbeddings", err)
	}
	m.TokenEmbedding.Weight = table
	m.Config.VocabSize = table.Dim(0)
	return first, nil
}

// TokenEmbeddingRows returns rows [first, first+n) of the token embedding
// table as a new F32 host tensor [n, D].
func (m *TextModel) TokenEmbeddingRows(first, n int) (*tensor.Tensor, error) {
	v := m.TokenEmbedding.Weight.Dim(0)
	if first < 0 || n < 1 || first+n > v {
		return nil, fmt.Errorf("clip: token embedding rows [%d, %d) out of the table's %d rows", first, first+n, v)
	}
	var out *tensor.Tensor
	err := tensor.Catch(func() {
		tensor.NoGrad(func() {
			tensor.Unscoped(func() {
				out = m.TokenEmbedding.Weight.Detach().Narrow(0, first, n).ToDevice(tensor.CPU).To(tensor.F32).Clone()
			})
		})
	})
	return out, errctx.Wrap("clip", err)
}

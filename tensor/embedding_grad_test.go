package tensor_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestEmbeddingSparseGradMatchesDense: a table used by two Embedding
// lookups with overlapping and repeated ids: marked with SetSparseGrad it
// receives no dense gradient, and its rows (RowGrad) are bit for bit the
// non-zero rows of the dense gradient of an unmarked copy, which are zero
// elsewhere; ZeroRowGrad drops them.
func TestEmbeddingSparseGradMatchesDense(t *testing.T) {
	const v, d = 50, 7
	r := rand.New(rand.NewSource(3))
	table := make([]float32, v*d)
	for i := range table {
		table[i] = float32(r.NormFloat64())
	}
	ids1 := tensor.FromInt64([]int64{4, 9, 4, 31, 0}, 5)
	ids2 := tensor.FromInt64([]int64{31, 2, 9, 9}, 2, 2)
	proj := make([]float32, d*3)
	for i := range proj {
		proj[i] = float32(r.NormFloat64())
	}
	lossOf := func(w *tensor.Tensor, scale float32) *tensor.Tensor {
		p := tensor.FromFloat32(proj, d, 3)
		a := tensor.Embedding(ids1, w).MatMul(p).Square().MeanAll()
		b := tensor.Embedding(ids2, w).Reshape(4, d).MatMul(p).Tanh().MeanAll()
		return a.Add(b).MulScalar(scale)
	}
	dense := tensor.FromFloat32(append([]float32(nil), table...), v, d).SetRequiresGrad(true)
	sparse := tensor.FromFloat32(append([]float32(nil), table...), v, d).SetRequiresGrad(true).SetSparseGrad(true)
	defer sparse.SetSparseGrad(false)
	require.True(t, sparse.SparseGrad())
	require.False(t, dense.SparseGrad())
	for _, scale := range []float32{1, 0.5} {
		require.NoError(t, tensor.Backward(lossOf(dense, scale)))
		require.NoError(t, tensor.Backward(lossOf(sparse, scale)))
		require.Nil(t, sparse.Grad())
		rows, g := sparse.RowGrad()
		require.Equal(t, []int64{0, 2, 4, 9, 31}, rows)
		dg := dense.Grad().Float32s()
		k := 0
		for row := 0; row < v; row++ {
			in := k < len(rows) && rows[k] == int64(row)
			for j := 0; j < d; j++ {
				want := dg[row*d+j]
				if in {
					require.Equal(t, math.Float32bits(want), math.Float32bits(g[k*d+j]), "row %d col %d", row, j)
				} else {
					require.Zero(t, want, "row %d", row)
				}
			}
			if in {
				k++
			}
		}
		dense.ZeroGrad()
		sparse.ZeroRowGrad()
	}
	rows, g := sparse.RowGrad()
	require.Nil(t, rows)
	require.Nil(t, g)
}

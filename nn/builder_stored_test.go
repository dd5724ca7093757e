package nn

import (
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

// TestBuilderStored checks Info, GetStored (any stored dtype, no WithDType
// conversion, GetInit's errors) and Skip (used without loading, shape
// checked), the methods behind CLIP's position_ids of any dtype.
func TestBuilderStored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "buffers.safetensors")
	require.NoError(t, safetensors.WriteFile(path, []safetensors.TensorInfo{
		{Name: "emb.f16", DType: safetensors.F16, Shape: []int{1, 2}, Data: []byte{0, 0x3c, 0, 0xc0}},
		{Name: "emb.i64", DType: safetensors.I64, Shape: []int{2}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
		{Name: "emb.f64", DType: safetensors.F64, Shape: []int{1, 2}, Data: make([]byte, 16)},
		{Name: "emb.i32", DType: safetensors.I32, Shape: []int{3}, Data: make([]byte, 12)},
	}, nil))
	src, err := OpenSafetensors(path)
	require.NoError(t, err)
	defer src.Close()

	b := NewBuilder(src).WithDType(tensor.F32)
	emb := b.Sub("emb")
	dt, shape, ok := emb.Info("f64")
	require.True(t, ok)
	require.Equal(t, "F64", dt)
	require.Equal(t, []int{1, 2}, shape)
	_, _, ok = emb.Info("absent")
	require.False(t, ok)

	// As stored: F16 stays F16 although the builder converts parameters.
	h := emb.GetStored("f16", 1, 2)
	require.Equal(t, tensor.F16, h.DType())
	require.Equal(t, []float32{1, -2}, h.Float32s())
	require.Same(t, h, emb.GetStored("f16", 1, 2))
	require.Equal(t, []int64{1, 2}, emb.GetStored("i64", 2).Int64s())
	emb.Skip("f64", 1, 2)
	emb.Skip("absent") // nothing to mark
	require.NoError(t, b.Err())
	require.Equal(t, []string{"emb.i32"}, b.Unused())

	// Errors are recorded by key, never panics.
	b2 := NewBuilder(src)
	e2 := b2.Sub("emb")
	require.Nil(t, e2.GetStored("f16", 2))
	require.Nil(t, e2.GetStored("f64", 1, 2))
	require.Nil(t, e2.GetStored("absent", 1))
	e2.Skip("i32", 1, 3)
	require.Nil(t, e2.GetInt64("i32", 3)) // asked for after Skip
	err = b2.Err()
	require.ErrorContains(t, err, "nn: emb.f16: shape [1, 2] in the source, want [2]")
	require.ErrorContains(t, err, `nn: emb.f64 (F64 [1, 2]): tensor: tensor "emb.f64": stored dtype F64 is not supported`)
	require.ErrorContains(t, err, "nn: emb.absent: missing (want shape [1])")
	require.ErrorContains(t, err, "nn: emb.i32: shape [3] in the source, want [1, 3]")
	require.ErrorContains(t, err, "nn: emb.i32: requested after Skip")
	require.Equal(t, []string{"emb.absent"}, b2.Missing())
	require.Equal(t, []string{"emb.i64"}, b2.Unused())

	// A random builder stores nothing.
	r := NewRandomBuilder(1, tensor.F32)
	_, _, ok = r.Info("x")
	require.False(t, ok)
	require.Nil(t, r.GetStored("x", 2))
	r.Skip("x", 2)
	require.NoError(t, r.Check())
}

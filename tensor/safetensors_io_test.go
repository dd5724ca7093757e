package tensor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil/refdata"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	f32 := FromFloat32([]float32{1, -2.5, 3, 4e-8, 5, 6}, 2, 3)
	want := map[string]*Tensor{
		"a.weight": f32,
		"a.t":      f32.Transpose(0, 1), // non-contiguous: written in row-major order of the view
		"h":        f32.To(F16),
		"b":        f32.To(BF16),
		"ids":      FromInt64([]int64{0, 1, -7, 1 << 40}, 4),
		"scalar":   Scalar(7),
	}
	require.NoError(t, SaveSafetensors(path, want, map[string]string{"format": "pt"}))

	a, err := LoadSafetensors(path)
	require.NoError(t, err)
	defer a.Close()
	require.Equal(t, "pt", a.Metadata["format"])
	require.Equal(t, []string{"a.t", "a.weight", "b", "h", "ids", "scalar"}, a.Names())
	for name, w := range want {
		got, err := a.Get(name)
		require.NoError(t, err, name)
		require.Equal(t, w.DType(), got.DType(), name)
		require.True(t, w.Shape().Equal(got.Shape()), name)
		switch w.DType() {
		case I64:
			require.Equal(t, w.Int64s(), got.Int64s(), name)
		default:
			require.Equal(t, w.Float32s(), got.Float32s(), name)
		}
		dt, sh, ok := a.Info(name)
		require.True(t, ok)
		require.Equal(t, w.DType().String(), dt)
		require.True(t, sh.Equal(w.Shape()))
	}
	// The transposed view was written in its logical order.
	tt, _ := a.Get("a.t")
	require.Equal(t, []float32{1, 4e-8, -2.5, 5, 3, 6}, tt.Float32s())
	// Get returns the same tensor twice (no second conversion).
	g1, _ := a.Get("h")
	g2, _ := a.Get("h")
	require.Same(t, g1, g2)
}

func TestSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	one := map[string]*Tensor{"x": FromFloat32([]float32{1}, 1)}
	p1 := filepath.Join(dir, "a.safetensors")
	p2 := filepath.Join(dir, "b.safetensors")
	require.NoError(t, SaveSafetensors(p1, one, nil))
	require.NoError(t, SaveSafetensors(p2, one, nil))

	_, err := LoadSafetensors(p1, p2)
	require.ErrorContains(t, err, `tensor "x" is in both`)

	_, err = LoadSafetensors(filepath.Join(dir, "missing.safetensors"))
	require.Error(t, err)
	_, err = LoadSafetensors()
	require.Error(t, err)

	a, err := LoadSafetensors(p1)
	require.NoError(t, err)
	_, err = a.Get("y")
	require.ErrorContains(t, err, `no tensor "y"`)
	require.NoError(t, a.Close())

	// A dtype the package does not compute with is reported by name.
	p3 := filepath.Join(dir, "f64.safetensors")
	require.NoError(t, safetensors.WriteFile(p3, []safetensors.TensorInfo{
		{Name: "d", DType: safetensors.F64, Shape: []int{1}, Data: make([]byte, 8)},
	}, nil))
	a, err = LoadSafetensors(p3)
	require.NoError(t, err)
	_, err = a.Get("d")
	require.ErrorContains(t, err, "F64")
	a.Close()

	// A failed save leaves nothing behind.
	bad := filepath.Join(dir, "bad.safetensors")
	require.Error(t, SaveSafetensors(bad, map[string]*Tensor{"n": nil}, nil))
	_, err = os.Stat(bad)
	require.True(t, os.IsNotExist(err))
	require.Error(t, SaveSafetensors(filepath.Join(dir, "no", "such", "dir.safetensors"), one, nil))
}

func TestLoadGoldenSafetensors(t *testing.T) {
	path := refdata.Golden(t, "model/diffusers/text_encoder/model.safetensors")
	a, err := LoadSafetensors(path)
	require.NoError(t, err)
	defer a.Close()
	require.Greater(t, a.Len(), 10)
	pos, err := a.Get("text_model.embeddings.position_ids")
	require.NoError(t, err)
	require.Equal(t, I64, pos.DType())
	ids := pos.Int64s()
	for i, v := range ids {
		require.Equal(t, int64(i), v)
	}
	w, err := a.Get("text_model.embeddings.token_embedding.weight")
	require.NoError(t, err)
	require.Equal(t, Shape{49408, 32}, w.Shape())
}

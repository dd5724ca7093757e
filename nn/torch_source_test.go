package nn

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/torchzip"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

func f32Bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func writeTorch(t *testing.T, path string, ts ...torchzip.Tensor) string {
	t.Helper()
	require.NoError(t, torchzip.Write(path, ts, false))
	return path
}

func TestOpenTorch(t *testing.T) {
	dir := t.TempDir()
	a := writeTorch(t, filepath.Join(dir, "a.bin"),
		torchzip.Tensor{Name: "w", DType: "F32", Shape: []int{2, 2}, Data: f32Bytes(1, -2, 3.5, 0)},
		// 1.0 and -2.0 in F16 (0x3c00, 0xc000) and BF16 (0x3f80, 0xc000).
		torchzip.Tensor{Name: "h", DType: "F16", Shape: []int{2}, Data: []byte{0x00, 0x3c, 0x00, 0xc0}},
		torchzip.Tensor{Name: "bf", DType: "BF16", Shape: []int{1, 2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}},
	)
	b := writeTorch(t, filepath.Join(dir, "b.bin"),
		torchzip.Tensor{Name: "ids", DType: "I64", Shape: []int{3}, Data: []byte{5, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}},
		torchzip.Tensor{Name: "d", DType: "F64", Shape: []int{1}, Data: make([]byte, 8)},
	)
	s, err := OpenTorch(a, b)
	require.NoError(t, err)
	require.Equal(t, []string{"bf", "d", "h", "ids", "w"}, s.Keys())
	dt, sh, ok := s.Info("bf")
	require.True(t, ok)
	require.Equal(t, "BF16", dt)
	require.Equal(t, []int{1, 2}, sh)
	dt, _, ok = s.Info("d")
	require.True(t, ok)
	require.Equal(t, "F64", dt)
	_, _, ok = s.Info("nope")
	require.False(t, ok)

	w, err := s.Load("w")
	require.NoError(t, err)
	require.Equal(t, tensor.F32, w.DType())
	require.Equal(t, tensor.Shape{2, 2}, w.Shape())
	require.Equal(t, []float32{1, -2, 3.5, 0}, w.Float32s())
	w2, err := s.Load("w")
	require.NoError(t, err)
	require.Same(t, w, w2)
	h, err := s.Load("h")
	require.NoError(t, err)
	require.Equal(t, tensor.F16, h.DType())
	require.Equal(t, []float32{1, -2}, h.Float32s())
	bf, err := s.Load("bf")
	require.NoError(t, err)
	require.Equal(t, tensor.BF16, bf.DType())
	require.Equal(t, []float32{1, -2}, bf.Float32s())
	ids, err := s.Load("ids")
	require.NoError(t, err)
	require.Equal(t, []int64{5, 256, -1}, ids.Int64s())
	_, err = s.Load("d")
	require.ErrorContains(t, err, `tensor "d": stored dtype F64 is not supported`)
	_, err = s.Load("nope")
	require.ErrorContains(t, err, `no tensor "nope"`)

	require.NoError(t, s.Close())
	require.Equal(t, []float32{1, -2, 3.5, 0}, w.Float32s(), "loaded tensors outlive Close")
	_, err = s.Load("h")
	require.ErrorContains(t, err, "closed")

	// The same name in two files, a missing file, a file that is not a checkpoint.
	_, err = OpenTorch(a, a)
	require.ErrorContains(t, err, "is in both")
	_, err = OpenTorch(filepath.Join(dir, "absent.bin"))
	require.ErrorContains(t, err, "absent.bin")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk.bin"), []byte("not a zip"), 0o644))
	_, err = OpenTorch(filepath.Join(dir, "junk.bin"))
	require.Error(t, err)
	_, err = OpenTorch()
	require.Error(t, err)
}

// TestTorchSourceBuilder builds a layer from a .bin through a Builder.
func TestTorchSourceBuilder(t *testing.T) {
	dir := t.TempDir()
	p := writeTorch(t, filepath.Join(dir, "m.bin"),
		torchzip.Tensor{Name: "lin.weight", DType: "F32", Shape: []int{1, 2}, Data: f32Bytes(2, 3)},
		torchzip.Tensor{Name: "lin.bias", DType: "F32", Shape: []int{1}, Data: f32Bytes(0.5)},
	)
	s, err := OpenTorch(p)
	require.NoError(t, err)
	defer s.Close()
	b := NewBuilder(s)
	lin := NewLinear(b.Sub("lin"), 2, 1, true)
	require.NoError(t, b.Check())
	y := lin.Forward(tensor.FromFloat32([]float32{1, 10}, 1, 2))
	require.Equal(t, []float32{2*1 + 3*10 + 0.5}, y.Float32s())
}

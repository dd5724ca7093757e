package torchzip

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil/refdata"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/roentgo/roentgo/tensor/torchpickle"
	"github.com/stretchr/testify/require"
)

// TestRoundTrip writes hand-made tensors and reads them back with
// tensor/torchpickle (which is validated against files torch.save wrote).
// ROENTGO_TORCHZIP_OUT=dir keeps golden-weight files there for
// scripts/gen_torch_weights.py check (PyTorch's own reader).
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	ts := []Tensor{
		{Name: "a.weight", DType: "F32", Shape: []int{2, 3}, Data: []byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64, 0, 0, 192, 64}},
		{Name: "b", DType: "F16", Shape: []int{2}, Data: []byte{0, 60, 0, 192}},
		{Name: "c.ids", DType: "I64", Shape: []int{1, 2}, Data: []byte{1, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255}},
		{Name: "s", DType: "BF16", Shape: []int{}, Data: []byte{128, 63}},
	}
	for _, nested := range []bool{false, true} {
		p := filepath.Join(dir, "x.bin")
		require.NoError(t, Write(p, ts, nested))
		f, err := torchpickle.Open(p)
		require.NoError(t, err)
		require.Equal(t, []string{"a.weight", "b", "c.ids", "s"}, f.Names())
		for _, want := range ts {
			got, err := f.Read(want.Name)
			require.NoError(t, err)
			require.Equal(t, want.DType, got.DType)
			require.Equal(t, want.Shape, got.Shape)
			require.Equal(t, want.Data, got.Data)
		}
		if nested {
			require.Equal(t, int64(1), f.Extra()["global_step"])
		}
		require.NoError(t, f.Close())
	}
	require.Error(t, Write(filepath.Join(dir, "bad.bin"), []Tensor{{Name: "x", DType: "F32", Shape: []int{3}, Data: make([]byte, 8)}}, false))
}

func TestFromSafetensorsGolden(t *testing.T) {
	src := refdata.Golden(t, "model/tiny-sd1-fp32.safetensors")
	dir := os.Getenv("ROENTGO_TORCHZIP_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	dst := filepath.Join(dir, "tiny-sd1-fp32.ckpt")
	require.NoError(t, FromSafetensors(src, dst, true))
	ref, err := safetensors.Open(src)
	require.NoError(t, err)
	defer ref.Close()
	f, err := torchpickle.Open(dst)
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, ref.Names(), f.Names())
	for _, name := range ref.Names() {
		want, _ := ref.Get(name)
		got, err := f.Read(name)
		require.NoError(t, err)
		require.Equal(t, string(want.DType), got.DType, name)
		require.True(t, bytes.Equal(want.Data, got.Data), name)
	}
}

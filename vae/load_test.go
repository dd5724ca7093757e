package vae

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/torchzip"
	"github.com/roentgo/roentgo/nn/sdckpt"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// requireBitEqual asserts that got and want hold the same float32 bit patterns.
func requireBitEqual(t testing.TB, got, want *tensor.Tensor, what string) {
	t.Helper()
	require.Equal(t, want.Shape(), got.Shape(), what)
	g, w := got.Float32s(), want.Float32s()
	for i := range w {
		if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
			t.Fatalf("%s: element %d is %v, want %v (bit for bit)", what, i, g[i], w[i])
		}
	}
}

// TestLoadFormats loads the golden VAE weights from every format — the
// diffusers folder (safetensors), testdata/tiny-bin (written by torch.save,
// scripts/gen_torch_weights.py), a .bin written by internal/torchzip, the
// single-file checkpoint as safetensors and as a PyTorch .ckpt — and requires
// identical encoder and decoder outputs, bit for bit.
func TestLoadFormats(t *testing.T) {
	folder := golden(t, "model/diffusers")
	ref := loadTiny(t, tensor.F32)
	cfg, err := LoadConfig(filepath.Join(folder, "vae", "config.json"))
	require.NoError(t, err)

	models := map[string]*AutoencoderKL{}
	torchBin, err := Load("testdata/tiny-bin", tensor.F32)
	require.NoError(t, err)
	defer torchBin.Close()
	models["torch.save .bin"] = torchBin

	tmp := t.TempDir()
	data, err := os.ReadFile(filepath.Join(folder, "vae", "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(tmp, "config.json"), data, 0o644))
	require.NoError(t, torchzip.FromSafetensors(filepath.Join(folder, "vae", "diffusion_pytorch_model.safetensors"),
		filepath.Join(tmp, "diffusion_pytorch_model.bin"), false))
	goBin, err := Load(tmp, tensor.F32) // the vae folder itself
	require.NoError(t, err)
	defer goBin.Close()
	models["torchzip .bin"] = goBin

	single := golden(t, "model/tiny-sd1-fp32.safetensors")
	ckpt := filepath.Join(tmp, "tiny-sd1-fp32.ckpt")
	require.NoError(t, torchzip.FromSafetensors(single, ckpt, true))
	for _, path := range []string{single, ckpt} {
		ck, err := sdckpt.Open(path, nil)
		require.NoError(t, err)
		defer ck.Close()
		m, err := FromCheckpoint(ck, &cfg, tensor.F32)
		require.NoError(t, err, "strict check of the single file's VAE")
		require.NotNil(t, m.Encoder.MidBlock.Attention)
		models[filepath.Base(path)] = m
	}

	x := readNpy(t, "vae/encode_input.npy")
	z := readNpy(t, "vae/decode_input.npy")
	want := ref.Encode(x)
	wantDec := ref.Decode(z)
	for name, m := range models {
		got := m.Encode(x)
		requireBitEqual(t, got.Moments, want.Moments, name+": encode moments")
		requireBitEqual(t, m.Decode(z), wantDec, name+": decode")
	}
}

func TestFromCheckpointDefaults(t *testing.T) {
	ck, err := sdckpt.Open(golden(t, "model/tiny-sd1-fp32.safetensors"), nil)
	require.NoError(t, err)
	defer ck.Close()
	_, err = FromCheckpoint(ck, nil, tensor.F32) // SD1.5's VAE is much larger
	require.ErrorContains(t, err, "shape")
	require.Equal(t, Size(768), SD21Config().SampleSize)
}

package unet

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/torchzip"
	"github.com/roentgo/roentgo/nn"
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

// copyFile copies src to dst.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
	require.NoError(t, os.WriteFile(dst, data, 0o644))
}

// TestLoadFormats loads the golden U-Net weights from every format — the
// diffusers folder (safetensors), a folder with diffusion_pytorch_model.bin,
// the single-file checkpoint as safetensors and as a PyTorch .ckpt — and
// requires identical outputs, bit for bit.
func TestLoadFormats(t *testing.T) {
	g := goldenDir(t)
	folder := filepath.Join(g, "model", "diffusers")
	ref := loadTiny(t, tensor.F32)
	cfg, err := LoadConfig(filepath.Join(folder, "unet", "config.json"))
	require.NoError(t, err)

	tmp := t.TempDir()
	binDir := filepath.Join(tmp, "unet")
	copyFile(t, filepath.Join(folder, "unet", "config.json"), filepath.Join(binDir, "config.json"))
	require.NoError(t, torchzip.FromSafetensors(filepath.Join(folder, "unet", "diffusion_pytorch_model.safetensors"),
		filepath.Join(binDir, "diffusion_pytorch_model.bin"), false))
	single := filepath.Join(g, "model", "tiny-sd1-fp32.safetensors")
	ckpt := filepath.Join(tmp, "tiny-sd1-fp32.ckpt")
	require.NoError(t, torchzip.FromSafetensors(single, ckpt, true))

	models := map[string]*Model{}
	bin, err := Load(tmp, tensor.F32) // pipeline folder with unet/ holding only the .bin
	require.NoError(t, err)
	defer bin.Close()
	models["diffusion_pytorch_model.bin"] = bin
	for _, path := range []string{single, ckpt} {
		ck, err := sdckpt.Open(path, nil)
		require.NoError(t, err)
		defer ck.Close()
		require.Equal(t, sdckpt.SD1, ck.Variant)
		require.Empty(t, ck.Mapping.Unmapped, ck.Report())
		m, err := FromCheckpoint(ck, &cfg, tensor.F32)
		require.NoError(t, err, "strict check of the single file's U-Net")
		models[filepath.Base(path)] = m
	}

	sample := readNpy(t, "unet/sample.npy")
	ehs := readNpy(t, "unet/encoder_hidden_states.npy")
	for _, ts := range []float32{999, 1} {
		want := ref.Forward(sample, tensor.Scalar(ts), ehs)
		for name, m := range models {
			requireBitEqual(t, m.Forward(sample, tensor.Scalar(ts), ehs), want, name)
		}
	}
}

// TestLoadNotAComponent: a folder with neither config.json nor weights, and
// one with a config but no weights, say what is missing.
func TestLoadNotAComponent(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir, tensor.F32)
	require.ErrorContains(t, err, "is not a diffusers unet folder: no config.json and no weight files")
	copyFile(t, filepath.Join(goldenDir(t), "model", "diffusers", "unet", "config.json"), filepath.Join(dir, "unet", "config.json"))
	_, err = Load(dir, tensor.F32)
	require.ErrorContains(t, err, "holds no weight files: looked for diffusion_pytorch_model.safetensors")
}

func TestFromCheckpointErrors(t *testing.T) {
	g := goldenDir(t)
	ck, err := sdckpt.Open(filepath.Join(g, "model", "tiny-sd1-fp32.safetensors"), nil)
	require.NoError(t, err)
	defer ck.Close()
	// The SD1.5 default config does not fit the tiny weights: shape errors.
	_, err = FromCheckpoint(ck, nil, tensor.F32)
	require.ErrorContains(t, err, "shape")
	_, err = FromCheckpoint(ck, nil, tensor.I64)
	require.ErrorContains(t, err, "dtype")

	// A checkpoint lacking some U-Net weights names the component and them;
	// one without any says so.
	cfg, err := LoadConfig(filepath.Join(g, "model", "diffusers", "unet", "config.json"))
	require.NoError(t, err)
	f, err := nn.OpenSafetensors(filepath.Join(g, "model", "tiny-sd1-fp32.safetensors"))
	require.NoError(t, err)
	defer f.Close()
	all, noUNet := nn.MapSource{}, nn.MapSource{}
	for _, k := range f.Keys() {
		x, err := f.Load(k)
		require.NoError(t, err)
		all[k] = x
		if !strings.HasPrefix(k, "model.diffusion_model.") {
			noUNet[k] = x
		}
	}
	delete(all, "model.diffusion_model.out.2.weight")
	delete(all, "model.diffusion_model.input_blocks.1.0.in_layers.2.bias")
	ck2, err := sdckpt.NewCheckpoint(all, nil)
	require.NoError(t, err)
	_, err = FromCheckpoint(ck2, &cfg, tensor.F32)
	require.ErrorContains(t, err, "lacks 2 unet weights, e.g. conv_out.weight, down_blocks.0.resnets.0.conv1.bias")
	ck3, err := sdckpt.NewCheckpoint(noUNet, nil)
	require.NoError(t, err)
	_, err = FromCheckpoint(ck3, &cfg, tensor.F32)
	require.ErrorContains(t, err, "no unet weights (no model.diffusion_model.* keys)")
}

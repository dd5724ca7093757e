package vae

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// tinySourceJSON is a two-level VAE small enough to run in a test.
const tinySourceJSON = `{"in_channels": 3, "out_channels": 3,
 "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
 "block_out_channels": [32, 32], "layers_per_block": 1, "latent_channels": 4, "norm_num_groups": 32, "sample_size": 16}`

// TestFromSource: a VAE built from a config's bytes and an in-memory
// safetensors source is the one Load loads from the same files, bit for
// bit; its Close is a no-op; problems are errors naming them.
func TestFromSource(t *testing.T) {
	cfg, err := ParseConfig([]byte(tinySourceJSON))
	require.NoError(t, err)
	b := nn.NewRandomBuilder(6, tensor.F16)
	_, err = New(b, cfg)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "vae")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(tinySourceJSON), 0o644))
	weights := filepath.Join(dir, "diffusion_pytorch_model.fp16.safetensors")
	require.NoError(t, nn.SaveSafetensors(weights, b.Params(), nil))
	buf, err := os.ReadFile(weights)
	require.NoError(t, err)

	z := make([]float32, 1*4*4*4)
	for i := range z {
		z[i] = float32(i%7)/7 - 0.5
	}
	lat := tensor.FromFloat32(z, 1, 4, 4, 4)
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
		ref, err := Load(dir, dt)
		require.NoError(t, err)
		src, err := nn.ParseSafetensors("vae/diffusion_pytorch_model.fp16.safetensors", buf)
		require.NoError(t, err)
		m, err := FromSource(src, cfg, dt)
		require.NoError(t, err)
		require.Equal(t, cfg, m.Config)
		require.Equal(t, dt, m.PostQuantConv.Weight.DType())
		requireBitEqual(t, m.PostQuantConv.Weight, ref.PostQuantConv.Weight, "post_quant_conv.weight")
		requireBitEqual(t, m.Decode(lat), ref.Decode(lat), "decoded")
		require.NoError(t, m.Close())
		require.NoError(t, src.Close())
		require.NoError(t, ref.Close())
	}

	params := nn.MapSource{}
	for _, p := range b.Params() {
		params[p.Name] = p.Tensor
	}
	_, err = FromSource(params, cfg, tensor.I64)
	require.ErrorContains(t, err, "vae: FromSource: dtype I64, want F32, F16 or BF16")
	_, err = FromSource(nil, cfg, tensor.F32)
	require.ErrorContains(t, err, "no weights source")
	delete(params, "decoder.conv_out.bias")
	_, err = FromSource(params, cfg, tensor.F32)
	require.ErrorContains(t, err, "decoder.conv_out.bias: missing")
}

package unet

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// tinySourceJSON is a two-level U-Net small enough to run in a test.
const tinySourceJSON = `{"sample_size": 8, "in_channels": 4, "out_channels": 4,
 "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"], "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
 "block_out_channels": [32, 64], "layers_per_block": 1, "cross_attention_dim": 16, "attention_head_dim": 8, "norm_num_groups": 32}`

// TestFromSource: a U-Net built from a config's bytes and an in-memory
// safetensors source is the one Load loads from the same files, bit for
// bit; its Close is a no-op; problems are errors naming them.
func TestFromSource(t *testing.T) {
	cfg, err := ParseConfig([]byte(tinySourceJSON))
	require.NoError(t, err)
	b := nn.NewRandomBuilder(5, tensor.F16)
	_, err = New(b, cfg)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "unet")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(tinySourceJSON), 0o644))
	weights := filepath.Join(dir, "diffusion_pytorch_model.safetensors")
	require.NoError(t, nn.SaveSafetensors(weights, b.Params(), nil))
	buf, err := os.ReadFile(weights)
	require.NoError(t, err)

	sample := tensor.FromFloat32(ramp(1*4*8*8, 0.01), 1, 4, 8, 8)
	ctx := tensor.FromFloat32(ramp(1*3*16, -0.02), 1, 3, 16)
	ts := tensor.Scalar(500)
	for _, dt := range []tensor.DType{tensor.F16, tensor.F32} {
		ref, err := Load(dir, dt)
		require.NoError(t, err)
		src, err := nn.ParseSafetensors("unet/diffusion_pytorch_model.safetensors", buf)
		require.NoError(t, err)
		m, err := FromSource(src, cfg, dt)
		require.NoError(t, err)
		require.Equal(t, dt, m.ConvIn.Weight.DType())
		requireBitEqual(t, m.ConvIn.Weight, ref.ConvIn.Weight, "conv_in.weight")
		requireBitEqual(t, m.Forward(sample, ts, ctx), ref.Forward(sample, ts, ctx), "output")
		require.NoError(t, m.Close())
		require.NoError(t, src.Close())
		require.NoError(t, ref.Close())
	}

	params := nn.MapSource{}
	for _, p := range b.Params() {
		params[p.Name] = p.Tensor
	}
	_, err = FromSource(params, cfg, tensor.I64)
	require.ErrorContains(t, err, "unet: FromSource: dtype I64, want F32, F16 or BF16")
	_, err = FromSource(nil, cfg, tensor.F32)
	require.ErrorContains(t, err, "no weights source")
	wide := cfg
	wide.InChannels = 9
	_, err = FromSource(params, wide, tensor.F32)
	require.ErrorContains(t, err, "conv_in.weight")
	params["extra.weight"] = tensor.FromFloat32([]float32{1}, 1)
	_, err = FromSource(params, cfg, tensor.F32)
	require.ErrorContains(t, err, "extra.weight: unused")
}

// ramp returns n values start, start+step, ... folded into [-1, 1].
func ramp(n int, step float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		x := float32(i) * step
		for x > 1 || x < -1 {
			x /= 2
		}
		v[i] = x
	}
	return v
}

package vae

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

func TestConfig(t *testing.T) {
	c, err := LoadConfig(golden(t, "model/diffusers/vae/config.json"))
	require.NoError(t, err)
	want := DefaultConfig()
	want.DownBlockTypes = []string{"DownEncoderBlock2D", "DownEncoderBlock2D"}
	want.UpBlockTypes = []string{"UpDecoderBlock2D", "UpDecoderBlock2D"}
	want.BlockOutChannels = []int{32, 64}
	want.SampleSize = 64
	require.Equal(t, want, c)

	// Defaults fill absent keys; sample_size may be a list.
	c, err = ParseConfig([]byte(`{"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "sample_size": [512, 512],
	  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
	  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"], "force_upcast": true}`))
	require.NoError(t, err)
	require.Equal(t, SD15Config(), c)

	for _, bad := range []struct{ json, want string }{
		{`{"act_fn": "gelu"}`, `act_fn = "gelu"`},
		{`{"block_out_channels": [48]}`, "multiple of norm_num_groups 32"},
		{`{"block_out_channels": [64, 64]}`, "1 down_block_types and 1 up_block_types for 2"},
		{`{"down_block_types": ["AttnDownEncoderBlock2D"]}`, `"AttnDownEncoderBlock2D" is not supported`},
		{`{"up_block_types": ["AttnUpDecoderBlock2D"]}`, `"AttnUpDecoderBlock2D" is not supported`},
		{`{"latent_channels": 0, "scaling_factor": 0}`, "latent_channels = 0"},
		{`{"scaling_factor": -1}`, "scaling_factor"},
		{`{"sample_size": "big"}`, "sample_size"},
		{`{"block_out_channels": []}`, "block_out_channels is empty"},
	} {
		_, err := ParseConfig([]byte(bad.json))
		require.Error(t, err, bad.json)
		require.Contains(t, err.Error(), bad.want, bad.json)
	}
}

// tinyConfig is a small VAE with three levels (f = 4), two ResNets per down
// block and 8 groups.
func tinyConfig() Config {
	c := DefaultConfig()
	c.DownBlockTypes = []string{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"}
	c.UpBlockTypes = []string{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"}
	c.BlockOutChannels = []int{16, 32, 32}
	c.LayersPerBlock = 2
	c.NormNumGroups = 8
	c.SampleSize = 32
	return c
}

const tinyConfigJSON = `{"block_out_channels": [16, 32, 32], "layers_per_block": 2, "norm_num_groups": 8, "sample_size": 32,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]}`

// TestRandomRoundTrip builds a random three-level VAE in F16, checks shapes
// (odd sizes follow the stride-2 convolutions), saves it and reloads it through
// Load from a pipeline-style folder, and requires identical outputs.
func TestRandomRoundTrip(t *testing.T) {
	b := nn.NewRandomBuilder(11, tensor.F16)
	m, err := New(b, tinyConfig())
	require.NoError(t, err)
	require.NoError(t, b.Check())
	x := tensor.Rand(rng.New(1), 2, 3, 20, 18).Affine(2, -1)
	d := m.Encode(x)
	require.Equal(t, tensor.Shape{2, 4, 5, 4}, d.Mean.Shape()) // H: 20 -> 10 -> 5; W: 18 -> 9 -> 4 (floor((W+1-3)/2)+1)
	for _, v := range d.LogVar.Float32s() {
		require.True(t, v >= -30 && v <= 20)
	}
	for i, v := range d.Std.Float32s() {
		require.InDelta(t, math.Exp(0.5*float64(d.LogVar.Float32s()[i])), float64(v), 1e-6*float64(v))
	}
	z := d.Sample(rng.New(2))
	y := m.Decode(z)
	require.Equal(t, tensor.Shape{2, 3, 20, 16}, y.Shape())

	dir := t.TempDir()
	vdir := filepath.Join(dir, "vae")
	require.NoError(t, os.Mkdir(vdir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(vdir, "config.json"), []byte(tinyConfigJSON), 0o644))
	require.NoError(t, nn.SaveSafetensors(filepath.Join(vdir, "diffusion_pytorch_model.fp16.safetensors"), b.Params(), nil))
	m2, err := Load(dir, tensor.F16)
	require.NoError(t, err)
	defer m2.Close()
	require.Equal(t, tensor.F16, m2.Decoder.ConvOut.Weight.DType())
	requireClose(t, m2.Decode(z), y, 0, 0, "reloaded decode")
	d2 := m2.Encode(x)
	requireClose(t, d2.Moments, d.Moments, 0, 0, "reloaded encode")

	// F32 from the only (fp16) file: converted, same values as the F16 weights.
	m3, err := Load(vdir, tensor.F32)
	require.NoError(t, err)
	defer m3.Close()
	require.Equal(t, tensor.F32, m3.Decoder.ConvOut.Weight.DType())
	requireClose(t, m3.Decode(z), y, 1e-5, 1e-4, "decode with the weights in F32")

	// A config without the mid-block attention does not use its keys.
	no := false
	c := tinyConfig()
	c.MidBlockAddAttention = &no
	b4 := nn.NewRandomBuilder(11, tensor.F16)
	m4, err := New(b4, c)
	require.NoError(t, err)
	require.Nil(t, m4.Decoder.MidBlock.Attention)
	require.Len(t, b4.Params(), len(b.Params())-2*10)
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir, tensor.F32)
	require.ErrorContains(t, err, "config.json")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(tinyConfigJSON), 0o644))
	_, err = Load(dir, tensor.F32)
	require.ErrorContains(t, err, "holds no weight files: looked for diffusion_pytorch_model.safetensors")
	_, err = Load(dir, tensor.I64)
	require.ErrorContains(t, err, "dtype")

	b := nn.NewRandomBuilder(1, tensor.F32)
	_, err = New(b, tinyConfig())
	require.NoError(t, err)
	var kept []nn.Param
	for _, p := range b.Params() {
		if p.Name != "decoder.up_blocks.1.upsamplers.0.conv.weight" {
			kept = append(kept, p)
		}
	}
	kept = append(kept, nn.Param{Name: "encoder.extra.weight", Tensor: tensor.Zeros(tensor.F32, 3)})
	require.NoError(t, nn.SaveSafetensors(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), kept, nil))
	_, err = Load(dir, tensor.F32)
	require.Error(t, err)
	require.True(t, strings.Contains(err.Error(), "decoder.up_blocks.1.upsamplers.0.conv.weight: missing"), err.Error())
	require.Contains(t, err.Error(), "encoder.extra.weight: unused")
}

// TestSD15Params counts Stable Diffusion 1.5's VAE built with random weights:
// 83,653,863 parameters (diffusers' sum(p.numel() for p in vae.parameters())).
func TestSD15Params(t *testing.T) {
	if testing.Short() {
		t.Skip("builds an 84M-parameter model")
	}
	b := nn.NewRandomBuilder(1, tensor.F16)
	_, err := New(b, SD15Config())
	require.NoError(t, err)
	n := 0
	for _, p := range b.Params() {
		n += p.Tensor.Numel()
	}
	require.Equal(t, 83_653_863, n)
}

// TestBuffersReused checks that Encode, Decode and TiledDecode release their
// intermediates: once the buffer pool is warm, a second round allocates
// nothing new (every buffer comes from the pool).
func TestBuffersReused(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	z := readNpy(t, "vae/decode_input.npy")
	x := readNpy(t, "vae/encode_input.npy")
	zt := tensor.Randn(rng.New(3), 1, 4, 56, 52)
	round := func() {
		m.Decode(z).Release()
		d := m.Encode(x)
		d.Sample(rng.New(1)).Release()
		d.Release()
		m.TiledDecode(zt).Release()
	}
	round()
	s0 := tensor.GetPoolStats()
	round()
	s1 := tensor.GetPoolStats()
	t.Logf("second round: %d buffers from the pool, %d new", s1.Hits-s0.Hits, s1.Misses-s0.Misses)
	require.Greater(t, s1.Hits-s0.Hits, int64(100))
	require.Zero(t, s1.Misses-s0.Misses, "allocations outside the pool in a warm round")
}

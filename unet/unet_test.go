package unet

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

func TestDefaultConfig(t *testing.T) {
	c, err := ParseConfig([]byte(`{}`))
	require.NoError(t, err)
	require.Equal(t, DefaultConfig(), c)
	require.Equal(t, []int{320, 640, 1280, 1280}, c.BlockOutChannels)
	require.Equal(t, IntList{1280}, c.CrossAttentionDim)

	// The tiny golden model's config, with every key diffusers 0.16.1 writes.
	c, err = LoadConfig(filepath.Join(goldenDir(t), "model/diffusers/unet/config.json"))
	require.NoError(t, err)
	require.Equal(t, []string{"DownBlock2D", "CrossAttnDownBlock2D"}, c.DownBlockTypes)
	require.Equal(t, []int{32, 64}, c.BlockOutChannels)
	require.Equal(t, IntList{8}, c.AttentionHeadDim)
	require.Equal(t, IntList{32}, c.CrossAttentionDim)
	require.Equal(t, float32(1e-5), c.NormEps)

	c, err = LoadConfig("testdata/sd21_config.json")
	require.NoError(t, err)
	require.Equal(t, IntList{5, 10, 20, 20}, c.AttentionHeadDim)
	require.True(t, c.UseLinearProjection)
	require.True(t, c.UpcastAttention)
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		json string
		want []string
	}{
		{`{"down_block_types": ["AttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]}`,
			[]string{`unknown down_block_types[0] "AttnDownBlock2D"`, "CrossAttnDownBlock2D"}},
		{`{"up_block_types": ["UpBlock2D", "AttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}`,
			[]string{`unknown up_block_types[1] "AttnUpBlock2D"`}},
		{`{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}`, []string{`unknown mid_block_type "UNetMidBlock2DSimpleCrossAttn"`}},
		{`{"class_embed_type": "timestep"}`, []string{"class_embed_type = timestep is not supported"}},
		{`{"addition_embed_type": "text"}`, []string{"addition_embed_type = text is not supported"}},
		{`{"time_cond_proj_dim": 256}`, []string{"time_cond_proj_dim = 256 is not supported"}},
		{`{"resnet_time_scale_shift": "scale_shift"}`, []string{`resnet_time_scale_shift = "scale_shift" is not supported`}},
		{`{"only_cross_attention": true}`, []string{"only_cross_attention = [true] is not supported"}},
		{`{"dual_cross_attention": true, "num_class_embeds": 10}`,
			[]string{"dual_cross_attention = true is not supported", "num_class_embeds = 10 is not supported"}},
		{`{"up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"]}`,
			[]string{"up_block_types has 2 entries, down_block_types 4"}},
		{`{"block_out_channels": [320, 640, 1280]}`,
			[]string{"block_out_channels has 3 entries, down_block_types 4"}},
		{`{"attention_head_dim": [5, 10, 20]}`, []string{"attention_head_dim has 3 entries, down_block_types 4"}},
		{`{"attention_head_dim": 7}`, []string{"down_blocks.0.attentions: 320 channels do not split into 7 attention heads"}},
		{`{"norm_num_groups": 24}`, []string{"not a positive multiple of norm_num_groups 24"}},
		{`{"attention_head_dim": "eight"}`, []string{"want an integer or a list of integers"}},
		{`{"act_fn": "gelu"}`, []string{`act_fn = "gelu" is not supported`}},
	} {
		_, err := ParseConfig([]byte(tc.json))
		require.Error(t, err, tc.json)
		for _, w := range tc.want {
			require.Contains(t, err.Error(), w, tc.json)
		}
		require.True(t, strings.HasPrefix(err.Error(), "unet: "), err.Error())
	}
	_, err := LoadConfig("testdata/no-such-config.json")
	require.ErrorContains(t, err, "no-such-config.json")
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir, tensor.F32)
	require.ErrorContains(t, err, "config.json")

	// A config that does not match the weights: every problem is listed by key.
	cfg := DefaultConfig()
	cfg.BlockOutChannels = []int{32, 64}
	cfg.DownBlockTypes = []string{"DownBlock2D", "CrossAttnDownBlock2D"}
	cfg.UpBlockTypes = []string{"CrossAttnUpBlock2D", "UpBlock2D"}
	cfg.CrossAttentionDim = IntList{48} // the golden model has 32
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644))
	w, err := os.ReadFile(filepath.Join(goldenDir(t), "model/diffusers/unet/diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "diffusion_pytorch_model.fp16.safetensors"), w, 0o644))
	_, err = Load(dir, tensor.F16)
	require.ErrorContains(t, err, "diffusion_pytorch_model.fp16.safetensors")
	require.ErrorContains(t, err, "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight")
	require.ErrorContains(t, err, "want [64, 48]")
}

// sd2Tiny is an SD2-style configuration small enough for tests: linear
// projections, a per-block head list, another cross-attention width, three
// levels and a mid-block scale.
const sd2Tiny = `{
  "attention_head_dim": [2, 4, 4],
  "block_out_channels": [32, 64, 64],
  "cross_attention_dim": 48,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "layers_per_block": 1,
  "norm_num_groups": 16,
  "use_linear_projection": true,
  "upcast_attention": true,
  "mid_block_scale_factor": 1.5,
  "freq_shift": 1,
  "flip_sin_to_cos": false
}`

func TestSD2StyleRandomRoundTrip(t *testing.T) {
	cfg, err := ParseConfig([]byte(sd2Tiny))
	require.NoError(t, err)
	b := nn.NewRandomBuilder(7, tensor.F32)
	m, err := New(b, cfg)
	require.NoError(t, err)
	require.NoError(t, b.Check())
	require.Equal(t, 16, m.DownBlocks[1].Attentions[0].Config.DimHead) // 64 channels / 4 heads
	require.Equal(t, 2, m.DownBlocks[0].Attentions[0].Config.Heads)
	require.Equal(t, 2, m.UpBlocks[2].Attentions[0].Config.Heads) // heads reversed for the up path
	require.Len(t, m.UpBlocks[0].Resnets, 2)

	g := rng.New(11)
	sample := tensor.Randn(g, 2, 4, 20, 12) // divisible by 4: plain 2x upsampling
	ctx := tensor.Randn(g, 2, 5, 48)
	ts := tensor.FromFloat32([]float32{10, 700}, 2)
	out := m.Forward(sample, ts, ctx)
	require.Equal(t, tensor.Shape{2, 4, 20, 12}, out.Shape())
	requireFinite(t, out)

	// Save, reload through Load (the unet folder itself), same output exactly.
	dir := t.TempDir()
	require.NoError(t, nn.SaveSafetensors(filepath.Join(dir, "diffusion_pytorch_model.safetensors"), b.Params(), nil))
	data, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644))
	m2, err := Load(dir, tensor.F32)
	require.NoError(t, err)
	defer m2.Close()
	require.Equal(t, cfg, m2.Config)
	out2 := m2.Forward(sample, ts, ctx)
	require.Equal(t, 0.0, maxAbsDiff(t, out, out2), "reloaded model")

	// Rows are independent: each row alone with its own timestep gives its row.
	for i := 0; i < 2; i++ {
		row := m.Forward(sample.Narrow(0, i, 1), ts.Narrow(0, i, 1), ctx.Narrow(0, i, 1))
		requireClose(t, row, out.Narrow(0, i, 1), 1e-5, 1e-5, fmt.Sprintf("row %d alone", i))
	}

	// Odd latent sizes (not divisible by 4): the upsamplers resize to the skips.
	odd := tensor.Randn(g, 1, 4, 18, 14) // 18 -> 9 -> 5 -> 9 -> 18
	o := m.Forward(odd, tensor.Scalar(500), ctx.Narrow(0, 0, 1))
	require.Equal(t, tensor.Shape{1, 4, 18, 14}, o.Shape())
	requireFinite(t, o)
}

func requireFinite(t testing.TB, x *tensor.Tensor) {
	t.Helper()
	var s float64
	for _, v := range x.Float32s() {
		require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0))
		s += float64(v) * float64(v)
	}
	require.Greater(t, s, 0.0, "all zeros")
}

// shapeSource is an nn.Source holding only names and shapes (read from a key
// list): every tensor is a zero-strided F16 view, so a real-size model can be
// constructed and checked without its 1.7 GB of weights.
type shapeSource map[string][]int

func (s shapeSource) Keys() []string {
	var ks []string
	for k := range s {
		ks = append(ks, k)
	}
	return ks
}

func (s shapeSource) Info(name string) (string, []int, bool) {
	sh, ok := s[name]
	return "F16", sh, ok
}

func (s shapeSource) Load(name string) (*tensor.Tensor, error) {
	sh := s[name]
	one := tensor.Zeros(tensor.F16, make([]int, len(sh))...)
	for i := range sh {
		if sh[i] == 0 {
			return one, nil
		}
	}
	ones := make([]int, len(sh))
	for i := range ones {
		ones[i] = 1
	}
	return tensor.Zeros(tensor.F16, ones...).Expand(sh...), nil
}

// readKeys parses testdata/<name>: "name d0,d1,..." per line, # comments.
func readKeys(t testing.TB, name string) shapeSource {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(t, err)
	defer f.Close()
	src := shapeSource{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		k, dims, ok := strings.Cut(line, " ")
		require.True(t, ok, line)
		var sh []int
		for _, d := range strings.Split(dims, ",") {
			v, err := strconv.Atoi(d)
			require.NoError(t, err, line)
			sh = append(sh, v)
		}
		src[k] = sh
	}
	require.NoError(t, sc.Err())
	return src
}

func numParams(ps []nn.Param) int64 {
	var n int64
	for _, p := range ps {
		n += int64(p.Tensor.Numel())
	}
	return n
}

// TestRealSizeKeys constructs the SD1.5 and SD2.1 U-Nets from their real
// configs against the checkpoints' key lists (names and shapes): the Builder's
// strict check proves that every key is requested with its shape and none is
// left over; the parameter counts are the published ones.
func TestRealSizeKeys(t *testing.T) {
	for _, tc := range []struct {
		config, keys string
		params       int64
	}{
		{"sd15_config.json", "sd15_unet_keys.txt", 859_520_964},
		{"sd21_config.json", "sd21_unet_keys.txt", 865_910_724},
	} {
		cfg, err := LoadConfig(filepath.Join("testdata", tc.config))
		require.NoError(t, err)
		src := readKeys(t, tc.keys)
		require.Len(t, src, 686)
		b := nn.NewBuilder(src)
		_, err = New(b, cfg)
		require.NoError(t, err)
		require.NoError(t, b.Check(), tc.config)
		require.Len(t, b.Params(), 686)
		require.Equal(t, tc.params, numParams(b.Params()), tc.config)
	}
}

// TestLoadFP16Variant saves the golden weights as a diffusers .fp16 variant
// (F16 data) in a pipeline-style folder and loads it as F16 (used as stored) and
// as F32 (converted): both compute what the F16-converted golden model computes.
func TestLoadFP16Variant(t *testing.T) {
	ref := loadTiny(t, tensor.F16)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "unet"), 0o755))
	var params []nn.Param
	src, err := nn.OpenSafetensors(filepath.Join(goldenDir(t), "model/diffusers/unet/diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	defer src.Close()
	for _, k := range src.Keys() {
		x, err := src.Load(k)
		require.NoError(t, err)
		params = append(params, nn.Param{Name: k, Tensor: x.To(tensor.F16)})
	}
	require.NoError(t, nn.SaveSafetensors(filepath.Join(dir, "unet", "diffusion_pytorch_model.fp16.safetensors"), params, nil))
	cfg, err := os.ReadFile(filepath.Join(goldenDir(t), "model/diffusers/unet/config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unet", "config.json"), cfg, 0o644))

	sample := readNpy(t, "unet/sample.npy")
	ehs := readNpy(t, "unet/encoder_hidden_states.npy")
	want := ref.Forward(sample, tensor.Scalar(500), ehs)
	for _, dt := range []tensor.DType{tensor.F16, tensor.F32} {
		m, err := Load(dir, dt)
		require.NoError(t, err, dt)
		require.Equal(t, dt, m.ConvIn.Weight.DType())
		require.Equal(t, 0.0, maxAbsDiff(t, want, m.Forward(sample, tensor.Scalar(500), ehs)), "%v from the .fp16 file", dt)
		require.NoError(t, m.Close())
	}
}

// TestForwardReusesBuffers checks that a warm Forward allocates nothing new: every
// intermediate is released back to tensor's pool and reused by the next step.
func TestForwardReusesBuffers(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	sample := readNpy(t, "unet/sample.npy")
	ehs := readNpy(t, "unet/encoder_hidden_states.npy")
	steps := []*tensor.Tensor{tensor.Scalar(999), tensor.Scalar(500), tensor.Scalar(1)}
	m.Forward(sample, steps[0], ehs).Release()
	before := tensor.GetPoolStats()
	for _, ts := range steps[1:] {
		m.Forward(sample, ts, ehs).Release()
	}
	after := tensor.GetPoolStats()
	require.Equal(t, before.Misses, after.Misses, "pool misses in warm steps")
	require.Greater(t, after.Hits, before.Hits)
}

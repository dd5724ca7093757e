package clip

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// Tolerance against transformers (float32 on the CPU): the states are O(1)
// (LayerNorm outputs have unit variance, layer outputs |x| < 3); our kernels sum
// in another order (blocked FMA matrix products, a fused attention with an
// online softmax), which moves results by a few float32 ulps per op, ~1e-6
// after five layers. 1e-4 relative plus 1e-5 absolute (for values near zero)
// leaves a margin of ~10x over what is measured, while a wrong scale, mask or
// activation shows as errors of 1e-2 and more.
const textAtol, textRtol = 1e-5, 1e-4

// textGolden returns a path under the tiny-sd1 golden folder (skipping when absent).
func textGolden(t testing.TB, rel string) string { return testutil.Golden(t, rel) }

// goldenNpy reads a .npy file as a tensor (I64 for integer arrays).
func goldenNpy(t testing.TB, path string) *tensor.Tensor { return testutil.ReadNpy(t, path) }

// requireNear is testutil.RequireClose.
var requireNear = testutil.RequireClose

func TestTextModelGolden(t *testing.T) {
	m, err := LoadTextModel(textGolden(t, "model/diffusers"), tensor.F32)
	require.NoError(t, err)
	defer m.Close()
	require.NotNil(t, m.PositionIDs, "position_ids should be read from the file")

	dir := textGolden(t, "text_encoder")
	ids := goldenNpy(t, filepath.Join(dir, "input_ids.npy"))
	out := m.ForwardOutput(ids, TextOptions{HiddenStates: true, Pooled: true})
	defer out.Release()

	requireNear(t, out.LastHiddenState, goldenNpy(t, filepath.Join(dir, "last_hidden_state.npy")), textAtol, textRtol, "last_hidden_state")
	requireNear(t, out.PoolerOutput, goldenNpy(t, filepath.Join(dir, "pooler_output.npy")), textAtol, textRtol, "pooler_output")
	all := goldenNpy(t, filepath.Join(dir, "all_hidden_states.npy")) // [L+1, N, S, D]
	require.Len(t, out.HiddenStates, all.Dim(0))
	requireNear(t, out.HiddenStates[0], goldenNpy(t, filepath.Join(dir, "embeddings.npy")), textAtol, textRtol, "embeddings")
	for i, h := range out.HiddenStates {
		requireNear(t, h, all.Select(0, i), textAtol, textRtol, "hidden_states["+strconv.Itoa(i)+"]")
	}

	pen := m.HiddenState(ids, -2, false)
	requireNear(t, pen, goldenNpy(t, filepath.Join(dir, "penultimate_hidden_state.npy")), textAtol, textRtol, "penultimate")
	penLN := m.HiddenState(ids, -2, true)
	requireNear(t, penLN, goldenNpy(t, filepath.Join(dir, "penultimate_hidden_state_ln.npy")), textAtol, textRtol, "penultimate+LN")
	last := m.Forward(ids)
	requireNear(t, last, out.LastHiddenState, 0, 0, "Forward = ForwardOutput")
	emb := m.HiddenState(ids, 0, false)
	requireNear(t, emb, out.HiddenStates[0], 0, 0, "HiddenState(0)")
	require.Panics(t, func() { m.HiddenState(ids, len(m.Layers)+1, false) })
	require.Panics(t, func() { m.HiddenState(ids, -len(m.Layers)-2, false) })
}

// TestTextModelGoldenHalf runs the golden case with F16 and BF16 weights: the
// result moves by the weights' rounding (2^-11 and 2^-8 relative) through five
// layers, compared with tolerances of 2e-2 and 1e-1 absolute on O(1) states.
func TestTextModelGoldenHalf(t *testing.T) {
	for _, c := range []struct {
		dt  tensor.DType
		tol float64
	}{{tensor.F16, 2e-2}, {tensor.BF16, 1e-1}} {
		m, err := LoadTextModel(textGolden(t, "model/diffusers/text_encoder"), c.dt)
		require.NoError(t, err)
		require.Equal(t, c.dt, m.Layers[0].MLP.FC1.Weight.DType())
		dir := textGolden(t, "text_encoder")
		ids := goldenNpy(t, filepath.Join(dir, "input_ids.npy"))
		y := m.Forward(ids)
		requireNear(t, y, goldenNpy(t, filepath.Join(dir, "last_hidden_state.npy")), c.tol, c.tol, "last_hidden_state ("+c.dt.String()+" weights)")
		require.NoError(t, m.Close())
	}
}

func TestTextConfig(t *testing.T) {
	c, err := LoadTextConfig(textGolden(t, "model/diffusers/text_encoder/config.json"))
	require.NoError(t, err)
	require.Equal(t, TextConfig{VocabSize: 49408, HiddenSize: 32, IntermediateSize: 37, ProjectionDim: 32,
		NumHiddenLayers: 5, NumAttentionHeads: 4, MaxPositionEmbeddings: 77, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}, c)

	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "config.json")
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	// Defaults fill absent keys.
	c, err = LoadTextConfig(write(`{"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12, "projection_dim": 768}`))
	require.NoError(t, err)
	require.Equal(t, SD15TextConfig(), c)

	for _, bad := range []struct{ json, want string }{
		{`{"hidden_act": "relu6"}`, `hidden_act "relu6"`},
		{`{"hidden_size": 30, "num_attention_heads": 8}`, "not a multiple"},
		{`{"num_hidden_layers": 0}`, "num_hidden_layers = 0"},
		{`{"layer_norm_eps": -1}`, "layer_norm_eps"},
		{`{"hidden_size": "big"}`, "config.json"},
	} {
		_, err := LoadTextConfig(write(bad.json))
		require.Error(t, err, bad.json)
		require.Contains(t, err.Error(), bad.want, bad.json)
	}
	_, err = LoadTextConfig(filepath.Join(dir, "absent.json"))
	require.Error(t, err)
	_, err = LoadTextModel(dir, tensor.F32) // the last config written is invalid
	require.Error(t, err)
	write(`{}`)
	_, err = LoadTextModel(dir, tensor.F32)
	require.ErrorContains(t, err, "holds no weight files: looked for diffusion_pytorch_model.safetensors, model.safetensors")
}

// sd2TinyConfig is an SD 2.x-style (OpenCLIP, GELU) text encoder, tiny.
func sd2TinyConfig() TextConfig {
	return TextConfig{VocabSize: 1000, HiddenSize: 64, IntermediateSize: 96, ProjectionDim: 64,
		NumHiddenLayers: 3, NumAttentionHeads: 4, MaxPositionEmbeddings: 77, HiddenAct: "gelu", LayerNormEps: 1e-5}
}

// TestTextModelSD2RoundTrip builds a random GELU model with F16 weights, saves it with
// nn.SaveSafetensors, reloads it through LoadTextModel and requires identical
// outputs; it also checks the causal mask (a change to the last token leaves
// every earlier position unchanged) and that the output is a unit-variance
// LayerNorm output.
func TestTextModelSD2RoundTrip(t *testing.T) {
	c := sd2TinyConfig()
	b := nn.NewRandomBuilder(7, tensor.F16)
	m, err := NewTextModel(b, c)
	require.NoError(t, err)
	require.NoError(t, b.Check())
	require.Nil(t, m.PositionIDs)

	rows := make([][]int32, 2)
	for r := range rows {
		rows[r] = make([]int32, 77)
		for j := range rows[r] {
			rows[r][j] = int32((j*37 + r*11) % 999)
		}
		rows[r][20+r] = 999 // the "EOS": the largest id
	}
	ids := IDs(rows...)
	out := m.ForwardOutput(ids, TextOptions{Pooled: true})
	y := out.LastHiddenState
	require.Equal(t, tensor.Shape{2, 77, 64}, y.Shape())
	for r := range 2 {
		requireNear(t, out.PoolerOutput.Select(0, r), y.Select(0, r).Select(0, 20+r), 0, 0, "pooler row")
	}
	v := y.Float32s()
	for _, x := range v {
		require.False(t, math.IsNaN(float64(x)) || math.IsInf(float64(x), 0))
	}
	// Each position's LayerNorm output has mean 0 and variance ~1 (weights 1, bias 0).
	var s, s2 float64
	for _, x := range v[:64] {
		s += float64(x)
		s2 += float64(x) * float64(x)
	}
	require.InDelta(t, 0, s/64, 1e-5)
	require.InDelta(t, 1, s2/64, 1e-3)

	// Causality: changing the last token changes only the last position.
	rows[0][76] = 5
	y2 := m.Forward(IDs(rows...))
	requireNear(t, y2.Narrow(1, 0, 76), y.Narrow(1, 0, 76), 0, 0, "positions before the changed token")
	require.NotEqual(t, y.Select(0, 0).Select(0, 76).Float32s(), y2.Select(0, 0).Select(0, 76).Float32s())

	// Round trip through a diffusers-style folder (the fp16 variant's name).
	dir := t.TempDir()
	require.NoError(t, nn.SaveSafetensors(filepath.Join(dir, "model.fp16.safetensors"), b.Params(), nil))
	cfg := `{"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 96, "projection_dim": 64,
	  "num_hidden_layers": 3, "num_attention_heads": 4, "hidden_act": "gelu", "layer_norm_eps": 1e-05}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644))
	m2, err := LoadTextModel(dir, tensor.F16)
	require.NoError(t, err)
	defer m2.Close()
	require.Equal(t, c, m2.Config)
	requireNear(t, m2.Forward(ids), y, 0, 0, "reloaded model")
}

// TestTextModelLoadErrors checks that a file missing a layer or with an extra
// key is refused with a message naming the key.
func TestTextModelLoadErrors(t *testing.T) {
	c := sd2TinyConfig()
	b := nn.NewRandomBuilder(1, tensor.F32)
	_, err := NewTextModel(b, c)
	require.NoError(t, err)
	params := b.Params()
	dir := t.TempDir()
	cfg := `{"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4, "hidden_act": "gelu"}`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644))
	var kept []nn.Param
	for _, p := range params {
		if !strings.HasSuffix(p.Name, "layers.2.mlp.fc2.bias") {
			kept = append(kept, p)
		}
	}
	kept = append(kept, nn.Param{Name: "text_model.extra", Tensor: tensor.Zeros(tensor.F32, 2)})
	require.NoError(t, nn.SaveSafetensors(filepath.Join(dir, "model.safetensors"), kept, nil))
	_, err = LoadTextModel(dir, tensor.F32)
	require.Error(t, err)
	require.Contains(t, err.Error(), "text_model.encoder.layers.2.mlp.fc2.bias: missing")
	require.Contains(t, err.Error(), "text_model.extra: unused")

	// position_ids out of range are replaced by 0..76 with a warning (see
	// TestPositionIDsDTypes).
	bad := append([]nn.Param(nil), params...)
	pid := make([]int64, 77)
	for i := range pid {
		pid[i] = int64(i)
	}
	pid[3] = 77
	bad = append(bad, nn.Param{Name: "text_model.embeddings.position_ids", Tensor: tensor.FromInt64(pid, 1, 77)})
	require.NoError(t, nn.SaveSafetensors(filepath.Join(dir, "model.safetensors"), bad, nil))
	m, err := LoadTextModel(dir, tensor.F32)
	require.NoError(t, err)
	require.Equal(t, []string{"clip: text_model.embeddings.position_ids is not 0..76 in order (e.g. [3] = 77); using positions 0..76 in order"}, m.Warnings)
	require.Equal(t, int64(3), m.PositionIDs.Int64s()[3])
	require.NoError(t, m.Close())
	_, err = LoadTextModel(dir, tensor.I64)
	require.ErrorContains(t, err, "dtype")
}

// TestTextModelSD15Params counts the parameters of Stable Diffusion 1.5's text
// encoder built with random weights: 123,060,480, as transformers'
// sum(p.numel() for p in model.parameters()) reports (the position_ids buffer
// is not a parameter and is not created by a random builder).
func TestTextModelSD15Params(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 123M-parameter model")
	}
	b := nn.NewRandomBuilder(1, tensor.F16)
	_, err := NewTextModel(b, SD15TextConfig())
	require.NoError(t, err)
	n := 0
	for _, p := range b.Params() {
		n += p.Tensor.Numel()
	}
	require.Equal(t, 123_060_480, n)
}

// TestTextModelBuffersReused checks that the forward passes release their
// intermediates: once the buffer pool is warm, a second round allocates
// nothing new.
func TestTextModelBuffersReused(t *testing.T) {
	m, err := LoadTextModel(textGolden(t, "model/diffusers"), tensor.F32)
	require.NoError(t, err)
	defer m.Close()
	ids := goldenNpy(t, textGolden(t, "text_encoder/input_ids.npy"))
	round := func() {
		m.Forward(ids).Release()
		m.ForwardOutput(ids, TextOptions{HiddenStates: true, Pooled: true}).Release()
		m.HiddenState(ids, -2, true).Release()
	}
	round()
	s0 := tensor.GetPoolStats()
	round()
	s1 := tensor.GetPoolStats()
	t.Logf("second round: %d buffers from the pool, %d new", s1.Hits-s0.Hits, s1.Misses-s0.Misses)
	require.Greater(t, s1.Hits-s0.Hits, int64(50))
	require.Zero(t, s1.Misses-s0.Misses, "allocations outside the pool in a warm round")
}

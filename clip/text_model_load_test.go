package clip

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
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

// TestTextModelLoadFormats loads the golden text encoder from every format —
// the diffusers folder (model.safetensors), a folder with pytorch_model.bin,
// the single-file checkpoint as safetensors and as a PyTorch .ckpt — and
// requires identical hidden states and pooled outputs, bit for bit.
func TestTextModelLoadFormats(t *testing.T) {
	folder := textGolden(t, "model/diffusers")
	ref, err := LoadTextModel(folder, tensor.F32)
	require.NoError(t, err)
	defer ref.Close()
	cfg, err := LoadTextConfig(filepath.Join(folder, "text_encoder", "config.json"))
	require.NoError(t, err)

	tmp := t.TempDir()
	dir := filepath.Join(tmp, "text_encoder")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	data, err := os.ReadFile(filepath.Join(folder, "text_encoder", "config.json"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644))
	require.NoError(t, torchzip.FromSafetensors(filepath.Join(folder, "text_encoder", "model.safetensors"),
		filepath.Join(dir, "pytorch_model.bin"), false))

	models := map[string]*TextModel{}
	bin, err := LoadTextModel(tmp, tensor.F32)
	require.NoError(t, err)
	defer bin.Close()
	models["pytorch_model.bin"] = bin
	single := textGolden(t, "model/tiny-sd1-fp32.safetensors")
	ckpt := filepath.Join(tmp, "tiny-sd1-fp32.ckpt")
	require.NoError(t, torchzip.FromSafetensors(single, ckpt, true))
	for _, path := range []string{single, ckpt} {
		ck, err := sdckpt.Open(path, nil)
		require.NoError(t, err)
		defer ck.Close()
		m, err := TextModelFromCheckpoint(ck, &cfg, tensor.F32)
		require.NoError(t, err, "strict check of the single file's text encoder")
		require.NotNil(t, m.PositionIDs)
		models[filepath.Base(path)] = m
	}

	ids := goldenNpy(t, textGolden(t, "text_encoder/input_ids.npy"))
	want := ref.ForwardOutput(ids, TextOptions{HiddenStates: true, Pooled: true})
	for name, m := range models {
		got := m.ForwardOutput(ids, TextOptions{HiddenStates: true, Pooled: true})
		requireBitEqual(t, got.LastHiddenState, want.LastHiddenState, name+": last_hidden_state")
		requireBitEqual(t, got.PoolerOutput, want.PoolerOutput, name+": pooler_output")
		for i := range want.HiddenStates {
			requireBitEqual(t, got.HiddenStates[i], want.HiddenStates[i], name+": hidden state")
		}
	}
}

func TestSD21TextConfig(t *testing.T) {
	c := SD21TextConfig()
	require.NoError(t, c.Validate())
	// OpenCLIP ViT-H/14's text tower without its last layer: 1024 wide, 16
	// heads of 64, MLP 4096.
	require.Equal(t, []int{1024, 16, 4096, 23}, []int{c.HiddenSize, c.NumAttentionHeads, c.IntermediateSize, c.NumHiddenLayers})
	require.Equal(t, "gelu", c.HiddenAct)
}

// TestTextModelFromSD2Checkpoint writes a random SD 2.x-style encoder in
// OpenCLIP's single-file layout (renamed and q/k/v fused by hand here, with
// an extra layer, the projection and logit_scale that the loader must skip)
// and requires the model built through sdckpt to give the original's outputs,
// bit for bit.
func TestTextModelFromSD2Checkpoint(t *testing.T) {
	c := sd2TinyConfig()
	b := nn.NewRandomBuilder(3, tensor.F32)
	ref, err := NewTextModel(b, c)
	require.NoError(t, err)
	p := map[string]*tensor.Tensor{}
	for _, q := range b.Params() {
		p[q.Name] = q.Tensor
	}
	pre := "cond_stage_model.model."
	src := nn.MapSource{
		pre + "token_embedding.weight": p["text_model.embeddings.token_embedding.weight"],
		pre + "positional_embedding":   p["text_model.embeddings.position_embedding.weight"],
		pre + "ln_final.weight":        p["text_model.final_layer_norm.weight"],
		pre + "ln_final.bias":          p["text_model.final_layer_norm.bias"],
		pre + "text_projection":        tensor.Zeros(tensor.F32, c.HiddenSize, c.ProjectionDim),
		pre + "logit_scale":            tensor.Zeros(tensor.F32, 1),
	}
	rename := map[string]string{"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}
	for n := 0; n <= c.NumHiddenLayers; n++ {
		l := fmt.Sprintf("text_model.encoder.layers.%d.", min(n, c.NumHiddenLayers-1)) // layer N+1 repeats the last: ignored
		o := fmt.Sprintf("%stransformer.resblocks.%d.", pre, n)
		for _, wb := range []string{"weight", "bias"} {
			src[o+"attn.in_proj_"+wb] = tensor.Cat(0, p[l+"self_attn.q_proj."+wb], p[l+"self_attn.k_proj."+wb], p[l+"self_attn.v_proj."+wb])
			for from, to := range rename {
				src[o+to+"."+wb] = p[l+from+"."+wb]
			}
		}
	}
	cfg := sdckpt.SD2Config()
	cfg.TextLayers = c.NumHiddenLayers
	ck, err := sdckpt.NewCheckpoint(src, &cfg)
	require.NoError(t, err)
	require.Equal(t, sdckpt.SD2, ck.Variant)
	require.Empty(t, ck.Mapping.Unmapped)
	m, err := TextModelFromCheckpoint(ck, &c, tensor.F32)
	require.NoError(t, err)
	require.Nil(t, m.PositionIDs)

	rows := [][]int32{make([]int32, 77)}
	for j := range rows[0] {
		rows[0][j] = int32((j*53 + 7) % 1000)
	}
	ids := IDs(rows...)
	requireBitEqual(t, m.Forward(ids), ref.Forward(ids), "SD2 single-file encoder")

	// The default SD 2.x config does not fit the tiny weights.
	_, err = TextModelFromCheckpoint(ck, nil, tensor.F32)
	require.ErrorContains(t, err, "shape")
}

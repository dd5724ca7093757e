package clip

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

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestLoRAAndEmbeddingFlags: -lora FILE:0 writes the base model's image
// (pixels identical), -lora FILE changes it, -embedding adds the token,
// and a LoRA of another architecture (the demo model's) or a missing file
// is one line of error naming the problem.
func TestLoRAAndEmbeddingFlags(t *testing.T) {
	model := goldenModel(t)
	train := testutil.SharedDir(t, "golden/tiny-sd1-train")
	lora := filepath.Join(train, "lora_random", "lora_save_attn_procs", "pytorch_lora_weights.safetensors")
	emb := filepath.Join(train, "textual_inversion", "learned_embeds", "learned_embeds.safetensors")
	dir := t.TempDir()
	gen := func(name string, extra ...string) []byte {
		out := filepath.Join(dir, name)
		args := append([]string{"-model", model, "-prompt", "a chest x-ray with <cxr-opacity>", "-steps", "2", "-height", "32", "-width", "32", "-q", "-out", out}, extra...)
		code, stderr := runProg(t, args...)
		require.Equal(t, 0, code, stderr)
		img, _ := readPNG(t, out)
		var buf bytes.Buffer
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bl, _ := img.At(x, y).RGBA()
				buf.Write([]byte{byte(r), byte(g), byte(bl)})
			}
		}
		return buf.Bytes()
	}
	base := gen("base.png")
	require.Equal(t, base, gen("zero.png", "-lora", lora+":0"), "-lora FILE:0 gives the base image")
	require.NotEqual(t, base, gen("one.png", "-lora", lora), "-lora FILE changes the image")
	gen("unmerged.png", "-lora", lora+":0.5", "-lora", lora+":0.5", "-lora-unmerged")
	require.NotEqual(t, base, gen("emb.png", "-embedding", emb))

	// An SD1 LoRA in kohya's layout whose attention is wider than the tiny model's.
	other := filepath.Join(dir, "other.safetensors")
	const q = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_q"
	require.NoError(t, tensor.SaveSafetensors(other, map[string]*tensor.Tensor{
		q + ".lora_down.weight": tensor.Zeros(tensor.F32, 4, 320), q + ".lora_up.weight": tensor.Zeros(tensor.F32, 320, 4)}, nil))
	code, stderr := runProg(t, "-model", model, "-prompt", "x", "-steps", "1", "-lora", other, "-out", filepath.Join(dir, "other.png"))
	require.Equal(t, 1, code, stderr)
	require.Contains(t, stderr, q+".lora_down.weight")
	require.Contains(t, stderr, "a LoRA for another architecture?")
	code, stderr = runProg(t, "-model", model, "-prompt", "x", "-lora", filepath.Join(dir, "missing.safetensors"), "-out", filepath.Join(dir, "m.png"))
	require.Equal(t, 1, code, stderr)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(stderr), "\n")+1, stderr)
	code, stderr = runProg(t, "-model", model, "-prompt", "x", "-embedding", "", "-out", filepath.Join(dir, "e.png"))
	require.Equal(t, 2, code, stderr)
	_, err := os.Stat(filepath.Join(dir, "m.png"))
	require.True(t, os.IsNotExist(err), "no output on error")
}

package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/stretchr/testify/require"
)

// trainDir returns a folder of the tiny-sd1-train golden set.
func trainDir(t *testing.T, rel string) string {
	return testutil.SharedDir(t, "golden/tiny-sd1-train/"+rel)
}

// sample runs a short txt2img on the golden tiny model with o and returns
// the decoder output.
func sample(t *testing.T, o Options, prompt string) []float32 {
	p, err := Load(goldenModel(t), o)
	require.NoError(t, err)
	defer p.Close()
	res, err := p.Txt2Img(context.Background(), Request{Prompt: prompt, Height: 64, Width: 64, Steps: 3, Seed: 5, KeepDecoded: true})
	require.NoError(t, err)
	return res.Decoded[0]
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestLoRAOptions: Options.LoRAs with diffusers' random LoRA of the golden
// set: scale 0 gives the base model's image bit for bit (merged or not),
// scale 1 changes it, and merged and unmerged agree within float32
// rounding; the same LoRA written in the kohya layout gives the merged
// result again; a LoRA for another architecture is an error naming the key.
func TestLoRAOptions(t *testing.T) {
	file := filepath.Join(trainDir(t, "lora_random"), "lora_save_attn_procs", "pytorch_lora_weights.safetensors")
	const prompt = "Small left-sided pleural effusion."
	base := sample(t, Options{}, prompt)
	for _, unmerged := range []bool{false, true} {
		zero := sample(t, Options{LoRAs: []LoRASpec{{file, 0}}, LoRAUnmerged: unmerged}, prompt)
		require.True(t, sameBits(base, zero), "scale 0 (unmerged %v) must give the base image bit for bit", unmerged)
	}
	merged := sample(t, Options{LoRAs: []LoRASpec{{file, 1}}}, prompt)
	unmerged := sample(t, Options{LoRAs: []LoRASpec{{file, 1}}, LoRAUnmerged: true}, prompt)
	require.False(t, sameBits(base, merged), "the LoRA changes the image")
	var worst float64
	for i := range merged {
		d := float64(merged[i] - unmerged[i])
		worst = max(worst, d*d)
	}
	require.Less(t, worst, 1e-6, "merged vs unmerged")

	// Bad files.
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, []byte("not a safetensors file at all"), 0o644))
	_, err := Load(goldenModel(t), Options{LoRAs: []LoRASpec{{bad, 1}}})
	require.Error(t, err)
	_, err = Load(goldenModel(t), Options{Embeddings: []string{file}})
	require.ErrorContains(t, err, "this text encoder takes") // a LoRA is no embedding
}

// TestParseLoRASpec: FILE, FILE:SCALE, and colons that belong to the name.
func TestParseLoRASpec(t *testing.T) {
	for in, want := range map[string]LoRASpec{
		"a.safetensors":          {"a.safetensors", 1},
		"a.safetensors:0.5":      {"a.safetensors", 0.5},
		"a.safetensors:0":        {"a.safetensors", 0},
		"a.safetensors:-1":       {"a.safetensors", -1},
		"dir:x/a.safetensors":    {"dir:x/a.safetensors", 1},
		`C:\loras\a.safetensors`: {`C:\loras\a.safetensors`, 1},
	} {
		got, err := ParseLoRASpec(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "a:NaN", "a:Inf"} {
		_, err := ParseLoRASpec(bad)
		require.Error(t, err, bad)
	}
}

// TestEmbeddingOption: Options.Embeddings adds the learned token of
// diffusers' textual inversion, and a prompt with it differs from one
// without it.
func TestEmbeddingOption(t *testing.T) {
	file := filepath.Join(trainDir(t, "textual_inversion"), "learned_embeds", "learned_embeds.safetensors")
	p, err := Load(goldenModel(t), Options{Embeddings: []string{file}})
	require.NoError(t, err)
	defer p.Close()
	tok := p.Tokenizer.(*clip.CLIPTokenizer)
	require.Equal(t, 49409, tok.VocabSize())
	ids, _, err := tok.Encode("a chest x-ray with <cxr-opacity>")
	require.NoError(t, err)
	require.Contains(t, ids, int32(49408))
	with := sample(t, Options{Embeddings: []string{file}}, "a chest x-ray with <cxr-opacity>")
	without := sample(t, Options{}, "a chest x-ray with <cxr-opacity>")
	require.False(t, sameBits(with, without))
}

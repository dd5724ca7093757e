package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// writeData writes n 64x64 gray images with captions.
func writeData(t *testing.T, n int) string {
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		img := image.NewGray(image.Rect(0, 0, 64, 64))
		for p := range img.Pix {
			img.Pix[p] = uint8(37*i + p%64*3)
		}
		var buf bytes.Buffer
		require.NoError(t, png.Encode(&buf, img))
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.png", i)), buf.Bytes(), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%d.txt", i)), []byte("small left pleural effusion"), 0o644))
	}
	return dir
}

// TestProgram: a 4-step run with a validation image, interrupted by a
// cancelled context after 2 steps (as Ctrl-C does), then resumed: the
// checkpoint, loss log (steps 1-4, each once), loss curve, samples and the
// output model exist; bad flags are refused with clear messages.
func TestProgram(t *testing.T) {
	model := filepath.Join(testutil.GoldenDir(t), "model", "diffusers")
	data := writeData(t, 3)
	out := t.TempDir()
	args := []string{"-model", model, "-data", data, "-out", out, "-resolution", "64", "-steps", "4", "-lr", "1e-3",
		"-validate", "left pleural effusion", "-validate-steps", "2", "-validate-every", "2", "-workers", "1"}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var log strings.Builder
	steps := 0
	w := &hookWriter{w: &log, hook: func(s string) {
		if strings.HasPrefix(s, "step ") {
			steps++
			if steps == 2 {
				cancel()
			}
		}
	}}
	require.Equal(t, 130, run(ctx, args, w), log.String())
	require.Contains(t, log.String(), "interrupted after step 2")
	require.FileExists(t, filepath.Join(out, "checkpoint-000002", "trainer.json"))

	log.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"-resume", out, "-validate", "left pleural effusion", "-validate-steps", "2"}, &log), log.String())
	t.Log(log.String())
	require.FileExists(t, filepath.Join(out, "model", "unet", "diffusion_pytorch_model.safetensors"))
	require.FileExists(t, filepath.Join(out, "model", "model_index.json"))
	require.FileExists(t, filepath.Join(out, "samples", "step-000000.png"))
	require.FileExists(t, filepath.Join(out, "samples", "step-000004.png"))
	require.FileExists(t, filepath.Join(out, "loss.png"))
	f, err := os.Open(filepath.Join(out, "loss.csv"))
	require.NoError(t, err)
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	require.NoError(t, err)
	require.Len(t, rows, 5)
	for i, r := range rows[1:] {
		require.Equal(t, fmt.Sprint(i+1), r[0])
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-model", model, "-data", data, "-out", out, "-steps", "1", "-resolution", "60"}, "resolution 60: expected a positive multiple of 8"},
		{[]string{"-model", model, "-data", data, "-out", out, "-steps", "1", "-mode", "dreambooth"}, `unknown mode "dreambooth"`},
		{[]string{"-model", model, "-data", data, "-out", out, "-steps", "1", "-mode", "ti"}, `placeholder "": expected one word`},
		{[]string{"-model", model, "-data", data, "-out", out, "-steps", "1", "-mode", "lora", "-lora-format", "a1111"}, `LoRA format "a1111"`},
		{[]string{"-model", model, "-data", data, "-out", out, "-steps", "1", "-lr-schedule", "exp"}, `unknown learning-rate schedule "exp"`},
		{[]string{"-model", model, "-data", t.TempDir(), "-out", out, "-steps", "1", "-resolution", "64"}, "has no usable images"},
		{[]string{"-model", model, "-data", data, "-out", out, "-steps", "1", "-latent", "mode"}, `-latent "mode"`},
		{[]string{"-resume", t.TempDir()}, "neither a checkpoint"},
	} {
		var b strings.Builder
		require.NotEqual(t, 0, run(context.Background(), tc.args, &b))
		require.Contains(t, b.String(), tc.want)
	}
}

// TestProgramAdapters: -mode lora with -rank, -alpha, -lora-targets and
// -lora-format kohya writes only the kohya file; -mode ti with
// -placeholder, -initializer and -vectors writes learned_embeds.safetensors
// holding [2, dim].
func TestProgramAdapters(t *testing.T) {
	model := filepath.Join(testutil.GoldenDir(t), "model", "diffusers")
	data := writeData(t, 2)
	common := []string{"-model", model, "-data", data, "-resolution", "64", "-steps", "2", "-lr", "1e-3", "-workers", "1"}

	out := t.TempDir()
	var log strings.Builder
	args := append([]string{"-out", out, "-mode", "lora", "-rank", "2", "-alpha", "4", "-lora-targets", "attention, proj", "-lora-format", "kohya"}, common...)
	require.Equal(t, 0, run(context.Background(), args, &log), log.String())
	require.Contains(t, log.String(), "LoRA in")
	require.FileExists(t, filepath.Join(out, "model", "lora_kohya.safetensors"))
	require.NoFileExists(t, filepath.Join(out, "model", "pytorch_lora_weights.safetensors"))
	require.FileExists(t, filepath.Join(out, "checkpoint-000002", "lora.safetensors"))

	out = t.TempDir()
	log.Reset()
	args = append([]string{"-out", out, "-mode", "ti", "-placeholder", "<effusion>", "-initializer", "haze", "-vectors", "2"}, common...)
	require.Equal(t, 0, run(context.Background(), args, &log), log.String())
	a, err := tensor.LoadSafetensors(filepath.Join(out, "model", "learned_embeds.safetensors"))
	require.NoError(t, err)
	defer a.Close()
	v, err := a.Get("<effusion>")
	require.NoError(t, err)
	require.Equal(t, 2, v.Dim(0))
}

// hookWriter passes writes through and calls hook with each.
type hookWriter struct {
	w    *strings.Builder
	hook func(string)
}

func (h *hookWriter) Write(p []byte) (int, error) {
	h.hook(string(p))
	return h.w.Write(p)
}

package main

import (
	"bytes"
	"encoding/json"
	"image"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
	"github.com/stretchr/testify/require"
)

// TestSD21Base512 writes a random model with Stable Diffusion 2.1-base's
// architecture (OpenCLIP-sized text encoder, linear-projection transformers,
// per-level head widths) with the mkmodel program, in F16, and runs the
// txt2img program's entry point on it at 512x512, once with epsilon
// prediction and once with v-prediction: the cheapest run that still goes
// through every stage (tokenizer, text encoder, the U-Net on 64x64 latents
// without classifier-free guidance, VAE decoding, PNG output).
//
// Two PNDM steps, not one: with steps_offset 1 a single step runs the U-Net
// only at t=1, where the image is the initial noise whatever the model
// predicts (the epsilon and v images then differ by one 8-bit level in 1% of
// the bytes). Two steps run it at t=501, 1 and 1 (PLMS with its warm-up).
//
// It writes a 2.6 GB model and takes several minutes on a two-core machine
// (the VAE decoder at 512x512 is the largest part), so -short skips it.
func TestSD21Base512(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 2.6 GB SD2.1-base-sized model and runs it at 512x512 twice (several minutes); not with -short")
	}
	start := time.Now()
	tmp := t.TempDir()

	// The model, from the mkmodel program itself.
	mkmodel := filepath.Join(tmp, "mkmodel")
	if out, err := exec.Command("go", "build", "-o", mkmodel, "../mkmodel").CombinedOutput(); err != nil {
		t.Fatalf("building mkmodel: %v\n%s", err, out)
	}
	model := filepath.Join(tmp, "sd21")
	out, err := exec.Command(mkmodel, "-config", "sd21", "-dtype", "f16", "-out", model).CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("mkmodel sd21 f16: %.1fs, %.2f GB", time.Since(start).Seconds(), float64(dirSize(t, model))/1e9)

	// What mkmodel wrote is SD2.1-base's layout: the 2.1-base scheduler
	// (PNDM, epsilon prediction: only the 768-pixel 2.x models predict v)
	// and the 2.x component configs.
	sched := readJSON(t, filepath.Join(model, "scheduler", "scheduler_config.json"))
	require.Equal(t, "PNDMScheduler", sched["_class_name"])
	require.Equal(t, "epsilon", sched["prediction_type"])
	require.Equal(t, "scaled_linear", sched["beta_schedule"])
	require.Equal(t, true, sched["skip_prk_steps"])
	require.EqualValues(t, 1, sched["steps_offset"])
	un := readJSON(t, filepath.Join(model, "unet", "config.json"))
	require.EqualValues(t, 1024, un["cross_attention_dim"])
	require.Equal(t, []any{5.0, 10.0, 20.0, 20.0}, un["attention_head_dim"])
	require.Equal(t, true, un["use_linear_projection"])
	require.EqualValues(t, 64, un["sample_size"], "512x512 by default")
	te := readJSON(t, filepath.Join(model, "text_encoder", "config.json"))
	require.EqualValues(t, 1024, te["hidden_size"])
	require.EqualValues(t, 23, te["num_hidden_layers"])
	require.Equal(t, "gelu", te["hidden_act"])
	for _, comp := range []string{"text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors"} {
		require.FileExists(t, filepath.Join(model, filepath.FromSlash(comp)))
	}

	// txt2img at 512x512, two steps, no guidance, each prediction type.
	images := map[string]*image.RGBA{}
	for _, pred := range []string{"epsilon", "v_prediction"} {
		t0 := time.Now()
		png := filepath.Join(tmp, pred+".png")
		var stderr bytes.Buffer
		code := cli.Main(cli.Txt2Img, []string{
			"-model", model, "-prompt", "small left-sided pleural effusion",
			"-height", "512", "-width", "512", "-steps", "2", "-guidance", "1",
			"-seed", "7", "-prediction", pred, "-q", "-out", png,
		}, io.Discard, &stderr)
		require.Equal(t, 0, code, stderr.String())
		t.Logf("txt2img -prediction %s: %.1fs; %s", pred, time.Since(t0).Seconds(), strings.TrimSpace(stderr.String()))

		img, meta := readPNG(t, png)
		require.Equal(t, image.Rect(0, 0, 512, 512), img.Bounds())
		require.Equal(t, "512x512", meta["size"])
		require.Equal(t, "2", meta["steps"])
		require.Equal(t, "pndm", meta["scheduler"])
		require.Equal(t, "1", meta["guidance_scale"])
		require.Equal(t, "7", meta["seed"])
		rgba, ok := img.(*image.RGBA)
		require.True(t, ok, "RGB output decodes as *image.RGBA, got %T", img)

		// Random weights give noise, never one flat colour.
		lo, hi := rgba.Pix[0], rgba.Pix[0]
		levels := map[uint8]bool{}
		clipped := 0
		for i, v := range rgba.Pix {
			if i%4 == 3 {
				require.Equal(t, uint8(255), v, "opaque")
				continue
			}
			lo, hi = min(lo, v), max(hi, v)
			levels[v] = true
			if v == 0 || v == 255 {
				clipped++
			}
		}
		t.Logf("%s: 8-bit values %d..%d, %d distinct, %.1f%% at 0 or 255", pred, lo, hi, len(levels), 100*float64(clipped)/float64(len(rgba.Pix)*3/4))
		require.Greater(t, len(levels), 16, "a random model's image should not be (nearly) constant")
		images[pred] = rgba
	}

	// v-prediction changes the step (the model output is turned into the
	// noise estimate sqrt(a)*v + sqrt(1-a)*x), so the images differ.
	a, b := images["epsilon"], images["v_prediction"]
	differ, worst := 0, 0
	for i := range a.Pix {
		d := int(a.Pix[i]) - int(b.Pix[i])
		if d != 0 {
			differ++
		}
		worst = max(worst, d, -d)
	}
	t.Logf("epsilon vs v_prediction: %d of %d bytes differ, largest difference %d; total %.1fs, peak RSS %s",
		differ, len(a.Pix), worst, time.Since(start).Seconds(), peakRSS())
	require.Greater(t, differ, len(a.Pix)/10, "v-prediction should change the image")
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m), path)
	return m
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	}))
	return n
}

// peakRSS returns the process's peak resident set size as Linux reports it
// (VmHWM), or "unknown".
func peakRSS() string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

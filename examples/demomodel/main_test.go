package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/stretchr/testify/require"
)

// smokeFlags is the recipe at smoke scale: 6 phantoms at 64x64, a few
// steps of each stage.
func smokeFlags(t *testing.T, out string) []string {
	return []string{"-out", out, "-clip-tokenizer", testutil.SharedDir(t, "data/clip-tokenizer"),
		"-images", "6", "-resolution", "64", "-workers", "2",
		"-vae-steps", "4", "-vae-batch", "2", "-vae-crop", "32",
		"-unet-steps", "4", "-batch", "2", "-warmup", "1", "-checkpoint-every", "2", "-log-every", "1"}
}

// cancelWriter records what is written and cancels when a line contains
// the trigger.
type cancelWriter struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	cancel  context.CancelFunc
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.trigger != "" && bytes.Contains(p, []byte(w.trigger)) {
		w.cancel()
	}
	return len(p), nil
}

// runRecipe runs the program and returns its exit code and stderr; when
// trigger is not empty the run is interrupted (as by Ctrl-C) after a line
// containing it.
func runRecipe(t *testing.T, args []string, trigger string) (int, string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelWriter{trigger: trigger, cancel: cancel}
	code := run(ctx, args, w, w)
	return code, w.buf.String()
}

// TestRecipeEndToEnd runs every stage at smoke scale, checks the exported
// F16 folder (loads, generates through the pipeline, carries the reduced
// CLIP tokenizer), then runs the recipe again interrupted during the VAE
// stage and during the U-Net stage, resumed each time: the VAE and the
// trained text encoder and U-Net are bit-identical to the straight run's.
func TestRecipeEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("about 10 s: three smoke-scale runs of the whole recipe")
	}
	a := t.TempDir()
	code, log := runRecipe(t, smokeFlags(t, a), "")
	require.Equal(t, 0, code, log)
	for _, s := range stages {
		require.Contains(t, log, "stage "+s+" done", log)
	}
	require.Contains(t, log, "latent cache: ", log)
	require.NotContains(t, log, " 0 hits", "the U-Net stage must read the latents stage's cache")

	// The exported folder: F16 weights, loads and generates.
	model := filepath.Join(a, "model")
	for comp := range weightFiles {
		src, closer, err := nn.OpenComponent(filepath.Join(model, comp), false)
		require.NoError(t, err)
		for _, k := range src.Keys() {
			dt, _, _ := src.Info(k)
			require.Equal(t, "F16", dt, "%s %s", comp, k)
		}
		closer.Close()
	}
	p, err := pipeline.Load(model, pipeline.Options{})
	require.NoError(t, err)
	ids, _, err := p.Tokenizer.Encode("Large left pleural effusion.")
	require.NoError(t, err)
	require.Less(t, int(ids[1]), 2000, "reduced vocabulary ids")
	p.Close()
	f, err := os.Open(filepath.Join(a, "sample.png"))
	require.NoError(t, err)
	img, err := png.Decode(f)
	f.Close()
	require.NoError(t, err)
	require.Equal(t, 64, img.Bounds().Dx())

	// Interrupted twice, resumed: the same weights.
	b := t.TempDir()
	code, log = runRecipe(t, smokeFlags(t, b), "vae: step 2/")
	require.Equal(t, 130, code, log)
	require.FileExists(t, filepath.Join(b, "vae", "checkpoint-000002", "vae.safetensors"))
	code, log = runRecipe(t, smokeFlags(t, b), "unet: step 2/")
	require.Equal(t, 130, code, log)
	require.Contains(t, log, "vae: resuming from")
	code, log = runRecipe(t, smokeFlags(t, b), "")
	require.Equal(t, 0, code, log)
	require.Contains(t, log, "unet: resuming at step 2 of 4")
	require.Contains(t, log, "data: 6 phantoms")
	require.Contains(t, log, "(0 rendered now)")
	for _, rel := range []string{
		"vae/final/diffusion_pytorch_model.safetensors",
		"unet/model/unet/diffusion_pytorch_model.safetensors",
		"unet/model/text_encoder/model.safetensors",
		"model/unet/diffusion_pytorch_model.safetensors",
	} {
		x, err := os.ReadFile(filepath.Join(a, rel))
		require.NoError(t, err)
		y, err := os.ReadFile(filepath.Join(b, rel))
		require.NoError(t, err)
		require.True(t, bytes.Equal(x, y), "%s differs between the straight and the resumed run", rel)
	}

	// A finished recipe does nothing more.
	code, log = runRecipe(t, smokeFlags(t, b), "")
	require.Equal(t, 0, code, log)
	require.Contains(t, log, "vae: already trained")
	require.Contains(t, log, "unet: already trained")

	// The measuring stages at smoke scale: the proof before the classifier
	// says which to run; then both write their reports.
	code, log = runRecipe(t, append(smokeFlags(t, a), "proof"), "")
	require.Equal(t, 1, code, log)
	require.Contains(t, log, "run stage classifier first")
	measure := append(smokeFlags(t, a), "-classifier-train", "24", "-classifier-val", "16", "-classifier-steps", "2",
		"-proof-n", "8", "-proof-fid-n", "8", "-proof-steps", "2", "classifier", "proof")
	code, log = runRecipe(t, measure, "")
	require.Equal(t, 0, code, log)
	require.FileExists(t, filepath.Join(a, "classifier", "classifier.safetensors"))
	require.FileExists(t, filepath.Join(a, "classifier", "report.md"))
	data, err := os.ReadFile(filepath.Join(a, "proof", "proof.json"))
	require.NoError(t, err)
	var res proofResult
	require.NoError(t, json.Unmarshal(data, &res))
	require.Len(t, res.Adherence, len(adherenceSets)-1, "one row per finding set")
	for _, row := range res.Adherence {
		require.Equal(t, 8, row.NStated, row.Finding)
		require.Equal(t, 8*(len(adherenceSets)-1), row.NNeg, "%s: the normal set and every other finding's set", row.Finding)
		require.True(t, row.Stated >= 0 && row.Stated <= 1 && row.AUROC >= 0 && row.AUROC <= 1, "%+v", row)
	}
	require.Len(t, res.Laterality, 2)
	require.Equal(t, 8, res.Fidelity.N)
	require.Greater(t, res.Fidelity.Floor, 0.0)
	require.NotEmpty(t, res.Diversity.Skipped, "64x64 is too small for MS-SSIM")
	grid, err := os.Open(filepath.Join(a, "proof", "grid.png"))
	require.NoError(t, err)
	gimg, err := png.Decode(grid)
	grid.Close()
	require.NoError(t, err)
	require.Equal(t, 4*64+3*4, gimg.Bounds().Dx(), "4 prompts a row")
	require.Equal(t, len(adherenceSets)*64+(len(adherenceSets)-1)*4, gimg.Bounds().Dy(), "one row per set")
}

// TestReducedVocabulary: the reduced tokenizer splits every report of the
// corpus as CLIP's full one does (reduceVocab checks it), is small, and
// still tokenizes words it has never seen.
func TestReducedVocabulary(t *testing.T) {
	full, err := loadFullTokenizer(testutil.SharedDir(t, "data/clip-tokenizer"))
	require.NoError(t, err)
	rv, err := reduceVocab(full, vocabCorpus(1, 0.7, 100))
	require.NoError(t, err)
	require.Less(t, rv.Size, 2000)
	require.Greater(t, rv.Size, 514)
	tok, err := rv.tokenizer()
	require.NoError(t, err)
	for _, s := range []string{"Small right pleural effusion.", "No acute cardiopulmonary process.", "1.8 cm left apex nodule."} {
		a, err := full.tokenStrings(full.tok, s)
		require.NoError(t, err)
		b, err := full.tokenStrings(tok, s)
		require.NoError(t, err)
		require.Equal(t, a, b, s)
	}
	ids, err := tok.Tokens("hyperinflation with emphysema")
	require.NoError(t, err)
	require.NotEmpty(t, ids)
	for _, id := range ids {
		require.Less(t, int(id), rv.Size)
	}
}

// TestBadFlags: flag errors exit 2 with one message; missing earlier
// stages are reported.
func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-out is empty"},
		{[]string{"-out", "x", "-resolution", "60"}, "-resolution 60"},
		{[]string{"-out", "x", "-vae-crop", "512"}, "-vae-crop 512"},
		{[]string{"-out", "x", "train"}, `unknown stage "train"`},
		{[]string{"-out", "x", "-proof-n", "4", "proof"}, "-proof-n 4"},
		{[]string{"-out", "x", "-compute", "f16"}, `-compute "f16"; expected f32 or bf16`},
	} {
		code, log := runRecipe(t, c.args, "")
		require.Equal(t, 2, code, log)
		require.Contains(t, log, c.want)
	}
	dir := t.TempDir()
	code, log := runRecipe(t, []string{"-out", dir, "vae"}, "")
	require.Equal(t, 1, code)
	require.Contains(t, log, "run stage data first")
	require.True(t, strings.Count(log, "\n") == 1, log)
}

package train

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestLossFalls: full U-Net fine-tuning of the tiny model on 8 synthetic
// images (two caption classes) for 40 steps (batch 2, lr 1e-3 with 5 warm-up
// steps, clipping at 1, EMA) learns. The statistic is EvalLoss: the mean
// epsilon MSE over the 8 images with fixed noise and timesteps (one per
// image, seed 99), before and after training; it must fall by at least 30%.
// The training loss (mean of the first and of the last 10 steps) is logged
// too. The output folder then loads in the pipeline and generates, its U-Net
// holds the EMA averages and its text encoder is the source's, byte for
// byte.
func TestLossFalls(t *testing.T) {
	if testing.Short() {
		t.Skip("40 training steps: skipped in -short")
	}
	c := testConfig(t, writeData(t, 8))
	c.Steps = 40
	c.Warmup = 5
	c.Schedule = "constant_with_warmup"
	c.EMA = true
	c.CheckpointEvery = 20
	c.KeepCheckpoints = 1
	tr, err := New(c)
	require.NoError(t, err)
	defer tr.Close()
	before, err := tr.EvalLoss(8, 99)
	require.NoError(t, err)
	var losses []float64
	tr.OnStep = func(s StepInfo) {
		require.False(t, math.IsNaN(s.Loss))
		losses = append(losses, s.Loss)
	}
	require.NoError(t, tr.Run(context.Background()))
	after, err := tr.EvalLoss(8, 99)
	require.NoError(t, err)
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	t.Logf("fixed-noise evaluation loss %.4f -> %.4f (%.0f%%); training loss, mean of steps 1-10 %.4f, 31-40 %.4f",
		before, after, 100*(after-before)/before, mean(losses[:10]), mean(losses[30:]))
	require.Less(t, after, 0.7*before, "the evaluation loss must fall by 30%")
	require.Less(t, mean(losses[30:]), mean(losses[:10]))

	// Checkpoints: only the newest is kept; latest names it.
	ents, err := filepath.Glob(filepath.Join(c.Out, "checkpoint-*"))
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(c.Out, CheckpointName(40))}, ents)
	cp, err := FindCheckpoint(c.Out)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(c.Out, CheckpointName(40)), cp)

	// The output model: EMA averages in the U-Net, the text encoder as it was.
	out := filepath.Join(c.Out, "model")
	a, err := tensor.LoadSafetensors(filepath.Join(out, "unet", "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	defer a.Close()
	for _, p := range tr.Models().UNet.All() {
		got, err := a.Get(p.Name)
		require.NoError(t, err)
		require.Equal(t, tr.ema.Shadow(p.Name).Float32s(), got.Float32s(), p.Name)
	}
	src, err := os.ReadFile(filepath.Join(c.Model, "text_encoder", "model.safetensors"))
	require.NoError(t, err)
	dst, err := os.ReadFile(filepath.Join(out, "text_encoder", "model.safetensors"))
	require.NoError(t, err)
	require.True(t, bytes.Equal(src, dst), "full mode must not change the text encoder")

	p, err := pipeline.Load(out, pipeline.Options{})
	require.NoError(t, err)
	defer p.Close()
	res, err := p.Txt2Img(context.Background(), pipeline.Request{Prompt: "left opacity", Height: 64, Width: 64, Steps: 3, Seed: 1})
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	require.Equal(t, 64, res.Images[0].Bounds().Dx())
}

// runCheckpointFiles returns the safetensors files of a checkpoint by name.
func checkpointFiles(t *testing.T, dir string) map[string][]byte {
	out := map[string][]byte{}
	for _, f := range []string{unetMasters, textMasters, optimizerFile, emaFile, "lora.safetensors", "embeddings.safetensors"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		require.NoError(t, err)
		out[f] = b
	}
	return out
}

// TestResumeExact: N = 5 steps straight, and 2 steps + checkpoint + Close +
// Resume + 3 steps, give bit-identical checkpoints (U-Net and text-encoder
// masters, AdamW moments and step counts, EMA averages) and output weights.
// The run is the hardest the loop offers: text+unet (row-sparse token
// embedding), batch 2 with 2 accumulated micro-batches over 5 shuffled
// images (epochs end inside batches), sampled latents through the latent
// cache (filled by the first run, read by the resumed one), conditioning
// dropout, noise offset, min-SNR weighting, EMA, a cosine schedule.
func TestResumeExact(t *testing.T) {
	data := writeData(t, 5)
	base := testConfig(t, data)
	base.Mode = "text+unet"
	base.Steps = 5
	base.Accumulate = 2
	base.Schedule = "cosine"
	base.Warmup = 1
	base.EMA = true
	base.CondDropout = 0.3
	base.NoiseOffset = 0.1
	base.SNRGamma = 5
	base.LatentCache = filepath.Join(t.TempDir(), "latents.cache")

	straight := base
	a, err := New(straight)
	require.NoError(t, err)
	require.NoError(t, a.Run(context.Background()))
	hits, misses := a.CacheStats()
	t.Logf("straight run: latent cache %d hits, %d misses", hits, misses)
	require.NoError(t, a.Close())

	split := base
	split.Out = t.TempDir()
	b, err := New(split)
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		_, err := b.Step()
		require.NoError(t, err)
	}
	cp, err := b.Checkpoint()
	require.NoError(t, err)
	require.NoError(t, b.Close())
	r, err := Resume(split.Out, nil)
	require.NoError(t, err)
	require.Equal(t, 2, r.StepsDone())
	require.NoError(t, r.Run(context.Background()))
	hits, misses = r.CacheStats()
	require.Zero(t, misses, "the resumed run reads every latent from the cache")
	require.NoError(t, r.Close())
	require.DirExists(t, cp)

	fa := checkpointFiles(t, filepath.Join(straight.Out, CheckpointName(5)))
	fb := checkpointFiles(t, filepath.Join(split.Out, CheckpointName(5)))
	require.Len(t, fa, 4)
	for name, want := range fa {
		require.True(t, bytes.Equal(want, fb[name]), "%s differs between the straight and the resumed run", name)
	}
	for _, f := range []string{"unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"} {
		x, err := os.ReadFile(filepath.Join(straight.Out, "model", f))
		require.NoError(t, err)
		y, err := os.ReadFile(filepath.Join(split.Out, "model", f))
		require.NoError(t, err)
		require.True(t, bytes.Equal(x, y), "output %s differs", f)
	}

	// text+unet changed the text encoder (its output file differs from the
	// source's values).
	src, err := tensor.LoadSafetensors(filepath.Join(base.Model, "text_encoder", "model.safetensors"))
	require.NoError(t, err)
	defer src.Close()
	out, err := tensor.LoadSafetensors(filepath.Join(straight.Out, "model", "text_encoder", "model.safetensors"))
	require.NoError(t, err)
	defer out.Close()
	changed := 0
	for _, n := range out.Names() {
		x, err := src.Get(n)
		require.NoError(t, err)
		y, err := out.Get(n)
		require.NoError(t, err)
		if !equalF32(x.Float32s(), y.Float32s()) {
			changed++
		}
	}
	t.Logf("text+unet: %d of %d text-encoder tensors changed", changed, len(out.Names()))
	require.Greater(t, changed, len(out.Names())/2)
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// TestMinSNRWeights: the weights match diffusers' train_text_to_image
// (golden unet_minsnr: mse_loss_weights for its timesteps, gamma 5) for
// epsilon, and v-prediction divides by snr+1.
func TestMinSNRWeights(t *testing.T) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/unet_minsnr")
	ts64 := testutil.ReadNpy(t, filepath.Join(dir, "timesteps.npy")).Int64s()
	want := testutil.ReadNpy(t, filepath.Join(dir, "mse_loss_weights.npy")).Float32s()
	cfg := diffusion.DefaultConfig()
	cfg.BetaStart, cfg.BetaEnd, cfg.BetaSchedule = 0.00085, 0.012, diffusion.BetaScaledLinear
	s, err := diffusion.NewSchedule(cfg)
	require.NoError(t, err)
	ts := make([]int, len(ts64))
	for i, v := range ts64 {
		ts[i] = int(v)
	}
	got := minSNRWeights(s, ts, 5, diffusion.Epsilon)
	require.Equal(t, want, got)
	v := minSNRWeights(s, ts, 5, diffusion.VPrediction)
	for i, w := range got {
		a := float64(s.AlphasCumprod[ts[i]])
		snr := a / (1 - a)
		require.InDelta(t, float64(w)*snr/(snr+1), float64(v[i]), 1e-6)
	}
}

// TestVPredictionAndNaN: a v-prediction run with min-SNR, dropout of every
// caption and the posterior mean trains; a NaN weight stops the next step
// with a NonFiniteLossError naming it and the last good checkpoint, and
// leaves that checkpoint in place.
func TestVPredictionAndNaN(t *testing.T) {
	c := testConfig(t, writeData(t, 2))
	c.Prediction = "v_prediction"
	c.SNRGamma = 5
	c.CondDropout = 1
	c.SampleLatents = false
	c.Steps = 3
	tr, err := New(c)
	require.NoError(t, err)
	defer tr.Close()
	require.Equal(t, diffusion.VPrediction, tr.pred)
	info, err := tr.Step()
	require.NoError(t, err)
	require.False(t, math.IsNaN(info.Loss))
	cp, err := tr.Checkpoint()
	require.NoError(t, err)
	p := tr.Models().UNet.Get("conv_out.bias")
	p.Master.F32Data()[0] = float32(math.NaN())
	require.NoError(t, p.SyncValue())
	_, err = tr.Step()
	var nf *NonFiniteLossError
	require.ErrorAs(t, err, &nf)
	require.Equal(t, 2, nf.Step)
	require.Equal(t, cp, nf.LastCheckpoint)
	require.Contains(t, err.Error(), "step 2")
	require.FileExists(t, filepath.Join(cp, stateFile))
	require.Equal(t, 1, tr.StepsDone())
}

// TestBadInput: configuration and data problems are clear errors.
func TestBadInput(t *testing.T) {
	data := writeData(t, 2)
	cases := []struct {
		name, want string
		change     func(c *Config)
	}{
		{"resolution", "resolution 60: expected a positive multiple of 8", func(c *Config) { c.Resolution = 60 }},
		{"mode", `unknown mode "dreambooth": expected one of full, lora, lora+text, text+unet, ti`, func(c *Config) { c.Mode = "dreambooth" }},
		{"lora rank", "LoRA rank 0: expected 1 to", func(c *Config) { c.Mode, c.LoRA.Rank = "lora", 0 }},
		{"lora format", `LoRA format "a1111"`, func(c *Config) { c.Mode, c.LoRA.Format = "lora", "a1111" }},
		{"lora targets", "match no Linear or Conv2d layer", func(c *Config) { c.Mode, c.LoRA.Targets = "lora", []string{"no_such_layer"} }},
		{"ti placeholder", `placeholder "": expected one word`, func(c *Config) { c.Mode = "ti" }},
		{"ti initializer", "must be a single token", func(c *Config) {
			c.Mode, c.TI.Placeholder, c.TI.Initializer = "ti", "<x>", "pleural effusion"
		}},
		{"schedule", `unknown learning-rate schedule "step"`, func(c *Config) { c.Schedule = "step" }},
		{"precision", `unknown precision "f8"`, func(c *Config) { c.Precision = "f8" }},
		{"no steps", "neither steps nor epochs", func(c *Config) { c.Steps = 0 }},
		{"empty dataset", "has no usable images", func(c *Config) { c.Data = t.TempDir() }},
		{"no model", "does not exist", func(c *Config) { c.Model = filepath.Join(t.TempDir(), "none") }},
		{"missing unet", "missing unet/config.json", func(c *Config) {
			dir := t.TempDir()
			require.NoError(t, os.CopyFS(dir, os.DirFS(c.Model)))
			require.NoError(t, os.RemoveAll(filepath.Join(dir, "unet")))
			c.Model = dir
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(t, data)
			tc.change(&c)
			_, err := New(c)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			t.Log(err)
		})
	}
	_, err := Resume(t.TempDir(), nil)
	require.ErrorContains(t, err, "neither a checkpoint")
}

// TestLatentCache: entries survive reopening; a torn tail is cut off.
func TestLatentCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c")
	c, err := OpenLatentCache(path)
	require.NoError(t, err)
	k1, k2 := [32]byte{1}, [32]byte{2}
	require.NoError(t, c.Put(k1, []float32{1, 2, 3, 4, 5, 6}, []int{1, 2, 3}))
	require.NoError(t, c.Put(k2, []float32{7, 8}, []int{2}))
	require.NoError(t, c.Close())
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.NoError(t, os.Truncate(path, st.Size()-3)) // tear the second record
	c, err = OpenLatentCache(path)
	require.NoError(t, err)
	defer c.Close()
	require.Equal(t, 1, c.Len())
	v, sh, ok, err := c.Get(k1)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, v)
	require.Equal(t, []int{1, 2, 3}, sh)
	_, _, ok, err = c.Get(k2)
	require.NoError(t, err)
	require.False(t, ok)
	require.NoError(t, c.Put(k2, []float32{9}, []int{1}))
	v, _, ok, _ = c.Get(k2)
	require.True(t, ok)
	require.Equal(t, []float32{9}, v)

	require.NoError(t, os.WriteFile(filepath.Join(t.TempDir(), "x"), []byte("not a cache"), 0o644))
	_, err = OpenLatentCache(filepath.Join(filepath.Dir(path), "..", filepath.Base(path)+"nope", "x"))
	require.Error(t, err)
}

// TestBF16GradCheckpointing: BF16 weight storage with F32 masters and
// gradient checkpointing train (2 steps, text+unet); the model computes
// with BF16 values, the checkpoint holds F32 masters and the output is F32.
func TestBF16GradCheckpointing(t *testing.T) {
	c := testConfig(t, writeData(t, 2))
	c.Precision = "bf16"
	c.GradCheckpointing = true
	c.Mode = "text+unet"
	c.Steps = 2
	tr, err := New(c)
	require.NoError(t, err)
	defer tr.Close()
	p := tr.Models().UNet.Get("conv_in.weight")
	require.Equal(t, tensor.BF16, p.Tensor.DType())
	require.Equal(t, tensor.F32, p.Master.DType())
	before := append([]float32(nil), p.Master.F32Data()...)
	require.NoError(t, tr.Run(context.Background()))
	require.False(t, equalF32(before, p.Master.F32Data()), "the master changed")
	a, err := tensor.LoadSafetensors(filepath.Join(c.Out, "model", "unet", "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	defer a.Close()
	w, err := a.Get("conv_in.weight")
	require.NoError(t, err)
	require.Equal(t, tensor.F32, w.DType())
	require.Equal(t, p.Master.Float32s(), w.Float32s())
}

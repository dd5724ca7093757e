package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/roentgo/roentgo/diffusion/train"
)

// unetConfig returns the diffusion/train configuration of the U-Net stage:
// text+unet mode from OUT/model0 (random text encoder and U-Net, trained
// VAE), epsilon objective on SD's DDPM schedule, min-SNR weighting,
// conditioning dropout, AdamW with a cosine schedule, EMA, latents from the
// cache written by stage latents.
func (o *options) unetConfig() train.Config {
	c := train.DefaultConfig()
	c.Model = o.path("model0")
	c.Data = o.path("data")
	c.Layout = "folder"
	c.Resolution = o.Res
	c.Batch = o.Batch
	c.LR = o.LR
	c.Schedule = "cosine"
	c.Warmup = min(o.Warmup, o.UNetSteps)
	c.Steps = o.UNetSteps
	c.Mode = "text+unet"
	c.EMA = o.EMA
	c.CheckpointEvery = o.CheckpointEvery
	c.KeepCheckpoints = 2
	c.Seed = o.Seed
	c.SNRGamma = o.SNRGamma
	c.CondDropout = o.CondDrop
	c.LatentCache = o.path("latents.cache")
	c.Workers = o.Workers
	c.Out = o.path("unet")
	return c
}

// stageUNet trains the text encoder and the U-Net jointly from scratch with
// diffusion/train (exact resume from OUT/unet's latest checkpoint). The
// result is OUT/unet/model (F32, EMA averages with -ema).
func (o *options) stageUNet(ctx context.Context) error {
	if _, err := o.needRecipe(); err != nil {
		return err
	}
	if !exists(o.path("model0", "model_index.json")) {
		return errors.New(o.path("model0") + " does not exist; run stage latents first")
	}
	out := o.path("unet")
	if name, _ := readLatest(out); name == train.CheckpointName(o.UNetSteps) && exists(filepath.Join(out, "model", "model_index.json")) {
		o.logf("unet: already trained for %d steps (%s)", o.UNetSteps, filepath.Join(out, "model"))
		return nil
	}
	cfg := o.unetConfig()
	var t *train.Trainer
	var err error
	if _, e := readLatest(out); e == nil {
		t, err = train.Resume(out, func(c *train.Config) {
			// The flags of this run win (train documents which keep the run
			// exact: steps change the schedule's length).
			keep := *c
			*c = cfg
			c.Accumulate = keep.Accumulate
		})
		if err == nil {
			o.logf("unet: resuming at step %d of %d", t.StepsDone(), t.TotalSteps())
		}
	} else {
		if err := os.MkdirAll(out, 0o755); err != nil {
			return err
		}
		t, err = train.New(cfg)
	}
	if err != nil {
		return err
	}
	defer t.Close()
	t.Warn = func(msg string) { o.logf("unet: warning: %s", msg) }
	start, startStep := time.Now(), t.StepsDone()
	var sum float64
	var n int
	t.OnStep = func(s train.StepInfo) {
		sum += s.Loss
		n++
		if o.LogEvery > 0 && (s.Step%o.LogEvery == 0 || s.Step == s.Total) {
			rate := float64(s.Step-startStep) / time.Since(start).Seconds()
			o.logf("unet: step %d/%d  loss %.4f (mean of %d)  lr %.3g  grad %.3g  %.2f steps/s  eta %s",
				s.Step, s.Total, sum/float64(n), n, s.LR, s.GradNorm, rate, eta(s.Total-s.Step, rate))
			sum, n = 0, 0
		}
	}
	err = t.Run(ctx)
	var intr *train.Interrupted
	if errors.As(err, &intr) {
		return errInterrupted
	}
	if err != nil {
		return err
	}
	hits, misses := t.CacheStats()
	o.logf("unet: model in %s (latent cache: %d hits, %d misses)", filepath.Join(out, "model"), hits, misses)
	return nil
}

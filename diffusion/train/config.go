package train

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"unicode"

	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/nn/optim"
)

// Config is a training run's settings. The zero value is not usable; start
// from DefaultConfig and set Model, Data and Out (and Steps or Epochs).
// The json names are those of the checkpoint's trainer.json.
type Config struct {
	// Model is the diffusers folder to fine-tune.
	Model string `json:"model"`
	// Data is the dataset (a folder or table file, see package dataset);
	// Layout is its layout name (dataset.ParseLayout: "" or "auto" detects).
	Data   string `json:"data"`
	Layout string `json:"layout"`
	// Split keeps only the records of this split ("" keeps all).
	Split string `json:"split,omitempty"`
	// Resolution is the side of the square training images (a positive
	// multiple of 8 and of the VAE's downsampling factor).
	Resolution int `json:"resolution"`
	// Batch is the number of samples per micro-batch; Accumulate the number
	// of micro-batches per optimiser step (the effective batch is their
	// product).
	Batch      int `json:"batch"`
	Accumulate int `json:"accumulate"`
	// LR is the peak learning rate; Schedule one of optim.ScheduleNames
	// (diffusers' get_scheduler); Warmup its warm-up steps.
	LR       float64 `json:"lr"`
	Schedule string  `json:"lr_schedule"`
	Warmup   int     `json:"warmup"`
	// Steps is the number of optimiser steps. When it is 0, Epochs passes
	// over the dataset set it: ceil(Epochs * records / (Batch * Accumulate)).
	Steps  int `json:"steps"`
	Epochs int `json:"epochs,omitempty"`
	// Mode is the training mode (ModeNames: "full", "text+unet", "lora",
	// "lora+text", "ti").
	Mode string `json:"mode"`
	// LoRA holds the settings of the "lora" and "lora+text" modes.
	LoRA LoRAConfig `json:"lora"`
	// TI holds the settings of the "ti" (textual inversion) mode.
	TI TIConfig `json:"ti"`
	// EMA keeps an exponential moving average of the U-Net's trained
	// parameters (diffusers' EMAModel defaults); the output model holds the
	// averages.
	EMA bool `json:"ema"`
	// CheckpointEvery writes a checkpoint every that many optimiser steps
	// (0: only at the end and on interruption); KeepCheckpoints keeps the
	// newest that many (0 keeps all).
	CheckpointEvery int `json:"checkpoint_every"`
	KeepCheckpoints int `json:"keep_checkpoints,omitempty"`
	// Seed seeds the dataset order and every random draw of training.
	Seed uint64 `json:"seed"`
	// Precision is the storage dtype of the trained models' weights: "f32",
	// or "bf16" / "f16" (16-bit values with F32 master weights, which the
	// optimiser updates; the CPU computes in F32 either way).
	Precision string `json:"precision"`
	// GradCheckpointing recomputes each U-Net block in backward instead of
	// keeping its activations (less memory, about a third more compute).
	GradCheckpointing bool `json:"grad_checkpointing"`
	// Prediction overrides the scheduler config's prediction_type
	// ("epsilon", "v_prediction"); "" follows the config.
	Prediction string `json:"prediction,omitempty"`
	// SNRGamma > 0 weights each sample's loss by min(SNR, gamma)/SNR
	// (epsilon) or min(SNR, gamma)/(SNR+1) (v_prediction): min-SNR-gamma
	// (Hang et al. 2023); 0 is the plain MSE.
	SNRGamma float64 `json:"snr_gamma"`
	// NoiseOffset adds NoiseOffset * N(0, 1) per sample and channel to the
	// noise (diffusers' --noise_offset); 0 disables it.
	NoiseOffset float64 `json:"noise_offset"`
	// CondDropout is the probability that a sample's caption is replaced by
	// the empty prompt (for classifier-free guidance).
	CondDropout float64 `json:"cond_dropout"`
	// MaxGradNorm clips the global gradient norm (0: no clipping).
	MaxGradNorm float64 `json:"max_grad_norm"`
	// AdamW holds the optimiser's betas, eps and weight decay.
	AdamW optim.AdamWConfig `json:"adamw"`
	// SampleLatents encodes each image as a sample of the VAE posterior
	// (mean + std * noise, drawn per step, as train_text_to_image does);
	// false uses the posterior mean.
	SampleLatents bool `json:"sample_latents"`
	// LatentCache is a cache file of VAE posteriors, reused across runs
	// ("" encodes every image at every use).
	LatentCache string `json:"latent_cache,omitempty"`
	// Shuffle shuffles the dataset every epoch (seeded by Seed).
	Shuffle bool `json:"shuffle"`
	// Workers is the number of image-decoding goroutines (0: default).
	Workers int `json:"workers,omitempty"`
	// Out is the output folder: checkpoints, the final model (Out/model),
	// the loss log.
	Out string `json:"out"`
}

// LoRAConfig is the LoRA modes' settings (package nn/lora).
type LoRAConfig struct {
	// Rank is the adapters' rank (train_dreambooth_lora's --rank, 4).
	Rank int `json:"rank"`
	// Alpha scales the adapters' output by Alpha/Rank; 0 means Alpha = Rank
	// (scale 1, diffusers 0.16's LoRA, which has no alpha).
	Alpha float64 `json:"alpha"`
	// Targets selects the adapted layers: the presets "attention" (the
	// U-Net's to_q, to_k, to_v, to_out.0 and the text encoder's q/k/v/out
	// projections), "ff" (the transformers' feed-forward layers and the
	// text encoder's MLPs), "proj" (proj_in, proj_out) and "conv" (ResNet,
	// down- and upsampling convolutions), or module-path patterns as
	// lora.Config.Targets takes them ("attn2.to_k", "*.resnets.*.conv1").
	Targets []string `json:"targets"`
	// Format is the output's file layout: "diffusers"
	// (pytorch_lora_weights.safetensors), "kohya" (lora_kohya.safetensors,
	// for AUTOMATIC1111 and ComfyUI) or "both".
	Format string `json:"format"`
}

// TIConfig is the textual-inversion mode's settings (package clip/ti).
type TIConfig struct {
	// Placeholder is the new token ("<cxr-opacity>"), which the captions
	// must contain; it is added to the tokenizer and the text encoder.
	Placeholder string `json:"placeholder"`
	// Initializer is the single vocabulary token whose embedding the new
	// rows start from ("opacity").
	Initializer string `json:"initializer"`
	// Vectors is the number of embedding vectors (rows) of the placeholder.
	Vectors int `json:"vectors"`
}

// LoRA target presets (LoRAConfig.Targets).
var loraPresets = map[string][]string{
	"attention": lora.AttentionTargets,
	"ff":        lora.FeedForwardTargets,
	"proj":      lora.ProjTargets,
	"conv":      lora.ConvTargets,
}

// LoRATargetPresets returns the names of the LoRA target presets, sorted.
func LoRATargetPresets() []string {
	var out []string
	for n := range loraPresets {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// loraPatterns expands targets (presets or patterns) into module-path
// patterns for component (lora.UNet or lora.TextEncoder): the text encoder
// takes the attention and ff presets and the plain patterns.
func loraPatterns(targets []string, component string) []string {
	var out []string
	for _, t := range targets {
		if ps, ok := loraPresets[t]; ok {
			if component == lora.TextEncoder && (t == "proj" || t == "conv") {
				continue
			}
			out = append(out, ps...)
			continue
		}
		out = append(out, t)
	}
	return out
}

// DefaultConfig returns the defaults of diffusers' train_text_to_image.py
// where it has them: resolution 512, batch 1, no accumulation, lr 1e-4
// constant without warm-up, AdamW (0.9, 0.999, 1e-8, weight decay 1e-2),
// gradient clipping at 1, sampled latents, shuffled data, full U-Net
// fine-tuning in F32, seed 0.
func DefaultConfig() Config {
	return Config{
		Resolution:    512,
		Batch:         1,
		Accumulate:    1,
		LR:            1e-4,
		Schedule:      "constant",
		Mode:          "full",
		LoRA:          LoRAConfig{Rank: 4, Targets: []string{"attention"}, Format: "both"},
		TI:            TIConfig{Vectors: 1},
		Precision:     "f32",
		MaxGradNorm:   1,
		AdamW:         optim.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2},
		SampleLatents: true,
		Shuffle:       true,
	}
}

// Validate checks the settings that do not need the model or the data.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Model == "" {
		bad("no model: expected a diffusers folder")
	}
	if c.Data == "" {
		bad("no dataset: expected a folder of images with captions, or a table (CSV/JSONL)")
	}
	if c.Out == "" {
		bad("no output folder")
	}
	if _, err := dataset.ParseLayout(c.Layout); err != nil {
		bad("%s", strings.TrimPrefix(err.Error(), "dataset: "))
	}
	if c.Resolution <= 0 || c.Resolution%8 != 0 {
		bad("resolution %d: expected a positive multiple of 8", c.Resolution)
	}
	if c.Batch <= 0 {
		bad("batch %d: expected >= 1", c.Batch)
	}
	if c.Accumulate <= 0 {
		bad("accumulate %d: expected >= 1", c.Accumulate)
	}
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		bad("learning rate %v: expected a finite value > 0", c.LR)
	}
	if !slices.Contains(optim.ScheduleNames(), c.Schedule) {
		bad("unknown learning-rate schedule %q: expected one of %s", c.Schedule, strings.Join(optim.ScheduleNames(), ", "))
	}
	if c.Warmup < 0 {
		bad("warm-up %d: expected >= 0", c.Warmup)
	}
	if c.Steps < 0 || c.Epochs < 0 {
		bad("steps %d, epochs %d: expected >= 0", c.Steps, c.Epochs)
	}
	if c.Steps == 0 && c.Epochs == 0 {
		bad("neither steps nor epochs given: expected one of them > 0")
	}
	if _, err := LookupMode(c.Mode); err != nil {
		bad("%s", strings.TrimPrefix(err.Error(), "train: "))
	}
	switch c.Mode {
	case "lora", "lora+text":
		l := c.LoRA
		if l.Rank < 1 || l.Rank > nn.MaxDim {
			bad("LoRA rank %d: expected 1 to %d", l.Rank, nn.MaxDim)
		}
		if !(l.Alpha >= 0) || math.IsInf(l.Alpha, 0) {
			bad("LoRA alpha %v: expected a finite value >= 0 (0: the rank)", l.Alpha)
		}
		if len(l.Targets) == 0 {
			bad("no LoRA targets: expected presets (%s) or module patterns", strings.Join(LoRATargetPresets(), ", "))
		}
		for _, t := range l.Targets {
			if strings.TrimSpace(t) == "" {
				bad("an empty LoRA target: expected presets (%s) or module patterns", strings.Join(LoRATargetPresets(), ", "))
			}
		}
		switch l.Format {
		case "diffusers", "kohya", "both":
		default:
			bad("LoRA format %q: expected diffusers, kohya or both", l.Format)
		}
	case "ti":
		ti := c.TI
		if ti.Placeholder == "" || strings.IndexFunc(ti.Placeholder, unicode.IsSpace) >= 0 {
			bad("placeholder %q: expected one word without spaces, such as <cxr-opacity>", ti.Placeholder)
		}
		if strings.TrimSpace(ti.Initializer) == "" {
			bad("no initializer: expected a single vocabulary token such as opacity")
		}
		if ti.Vectors < 1 || ti.Vectors > 1<<10 {
			bad("%d vectors: expected 1 to %d", ti.Vectors, 1<<10)
		}
	}
	if c.CheckpointEvery < 0 || c.KeepCheckpoints < 0 {
		bad("checkpoint-every %d, keep %d: expected >= 0", c.CheckpointEvery, c.KeepCheckpoints)
	}
	switch c.Precision {
	case "f32", "bf16", "f16":
	default:
		bad("unknown precision %q: expected f32, bf16 or f16", c.Precision)
	}
	switch c.Prediction {
	case "", "epsilon", "v_prediction":
	default:
		bad("prediction type %q: expected epsilon or v_prediction (or empty: the scheduler config's)", c.Prediction)
	}
	if !(c.SNRGamma >= 0) || math.IsInf(c.SNRGamma, 0) {
		bad("snr gamma %v: expected a finite value >= 0", c.SNRGamma)
	}
	if !(c.NoiseOffset >= 0) || math.IsInf(c.NoiseOffset, 0) {
		bad("noise offset %v: expected a finite value >= 0", c.NoiseOffset)
	}
	if !(c.CondDropout >= 0 && c.CondDropout <= 1) {
		bad("conditioning dropout %v: expected a probability in [0, 1]", c.CondDropout)
	}
	if !(c.MaxGradNorm >= 0) || math.IsInf(c.MaxGradNorm, 0) {
		bad("max grad norm %v: expected a finite value >= 0 (0: no clipping)", c.MaxGradNorm)
	}
	if c.Workers < 0 {
		bad("workers %d: expected >= 0", c.Workers)
	}
	if len(errs) > 0 {
		return errors.New("train: " + strings.Join(errs, "; "))
	}
	return nil
}

// totalSteps returns the number of optimiser steps for a dataset of n
// records.
func (c *Config) totalSteps(n int) int {
	if c.Steps > 0 {
		return c.Steps
	}
	per := c.Batch * c.Accumulate
	return (c.Epochs*n + per - 1) / per
}

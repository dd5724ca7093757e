// Command train fine-tunes a Stable Diffusion model (a diffusers folder) on
// images with captions, as diffusers' train_text_to_image.py does: the whole
// U-Net (-mode full, RoentGen's recipe), the U-Net and the text encoder
// (-mode text+unet), LoRA adapters (-mode lora, lora+text: a
// pytorch_lora_weights.safetensors and a kohya-layout copy) or a new token
// (-mode ti, textual inversion: learned_embeds.safetensors). See
// docs/TRAINING.md.
//
//	go run ./examples/train -model sd15 -data cxr/ -resolution 512 -batch 4 \
//	    -lr 5e-6 -steps 10000 -ema -checkpoint-every 1000 -out runs/cxr
//	go run ./examples/train -resume runs/cxr          # continue after Ctrl-C
//	go run ./examples/txt2img -model runs/cxr/model -prompt "left pleural effusion"
//	go run ./examples/train -model sd15 -data cxr/ -mode lora -rank 8 -lr 1e-4 -steps 2000 -out runs/lora
//	go run ./examples/txt2img -model sd15 -lora runs/lora/model/pytorch_lora_weights.safetensors -prompt "..."
//
// Ctrl-C finishes the current step, writes a checkpoint and exits; -resume
// continues exactly where it stopped.
package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/roentgo/roentgo/diffusion/train"
	"github.com/roentgo/roentgo/nn/optim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the program
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// exact are the flags that may change on -resume without changing the run.
var exact = map[string]bool{"resume": true, "out": true, "workers": true, "checkpoint-every": true, "keep-checkpoints": true, "lora-format": true,
	"latent-cache": true, "validate": true, "validate-every": true, "validate-steps": true, "validate-guidance": true, "validate-seed": true}

// run is the program; it returns the exit status (0, 1 on errors, 2 on bad
// flags, 130 when interrupted).
func run(ctx context.Context, args []string, stderr io.Writer) int {
	d := train.DefaultConfig()
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c := d
	fs.StringVar(&c.Model, "model", "", "diffusers model folder to fine-tune")
	fs.StringVar(&c.Data, "data", "", "dataset: a folder of images with .txt captions, a CSV/JSONL table, MIMIC-CXR-JPG or CheXpert (detected)")
	fs.StringVar(&c.Layout, "layout", "auto", "dataset layout: auto, folder, table, mimic-cxr, chexpert")
	fs.StringVar(&c.Split, "split", "", "keep only this split (train, validate, test); empty keeps all")
	fs.IntVar(&c.Resolution, "resolution", d.Resolution, "training image size (a multiple of 8)")
	fs.IntVar(&c.Batch, "batch", d.Batch, "samples per micro-batch")
	fs.IntVar(&c.Accumulate, "accumulate", d.Accumulate, "micro-batches per optimiser step (gradient accumulation)")
	fs.Float64Var(&c.LR, "lr", d.LR, "peak learning rate")
	fs.StringVar(&c.Schedule, "lr-schedule", d.Schedule, "learning-rate schedule: "+strings.Join(optim.ScheduleNames(), ", "))
	fs.IntVar(&c.Warmup, "warmup", 0, "learning-rate warm-up steps")
	fs.IntVar(&c.Steps, "steps", 0, "optimiser steps (or -epochs)")
	fs.IntVar(&c.Epochs, "epochs", 0, "passes over the dataset, when -steps is not given")
	fs.StringVar(&c.Mode, "mode", d.Mode, "what to train: "+strings.Join(train.ModeNames(), ", "))
	fs.IntVar(&c.LoRA.Rank, "rank", d.LoRA.Rank, "LoRA rank (-mode lora, lora+text)")
	fs.Float64Var(&c.LoRA.Alpha, "alpha", 0, "LoRA alpha: the adapters are scaled by alpha/rank (0: alpha = rank)")
	loraTargets := fs.String("lora-targets", strings.Join(d.LoRA.Targets, ","), "comma-separated LoRA targets: presets "+strings.Join(train.LoRATargetPresets(), ", ")+", or module patterns (attn2.to_k)")
	fs.StringVar(&c.LoRA.Format, "lora-format", d.LoRA.Format, "LoRA output layout: diffusers (pytorch_lora_weights.safetensors), kohya (lora_kohya.safetensors) or both")
	fs.StringVar(&c.TI.Placeholder, "placeholder", "", "textual inversion (-mode ti): the new token, e.g. <cxr-opacity>, which the captions contain")
	fs.StringVar(&c.TI.Initializer, "initializer", "", "textual inversion: the vocabulary token the new embedding starts from")
	fs.IntVar(&c.TI.Vectors, "vectors", d.TI.Vectors, "textual inversion: embedding vectors of the new token")
	fs.BoolVar(&c.EMA, "ema", false, "keep an EMA of the weights (the output holds the averages)")
	fs.IntVar(&c.CheckpointEvery, "checkpoint-every", 0, "write a checkpoint every N steps (0: only at the end and on Ctrl-C)")
	fs.IntVar(&c.KeepCheckpoints, "keep-checkpoints", 0, "keep only the newest N checkpoints (0: all)")
	resume := fs.String("resume", "", "continue from a checkpoint folder, or an output folder's latest checkpoint")
	validate := fs.String("validate", "", "prompt of validation images written to OUT/samples")
	validateEvery := fs.Int("validate-every", 0, "validation image every N steps (0: at the start and the end only)")
	validateSteps := fs.Int("validate-steps", 20, "inference steps of the validation images")
	validateGuidance := fs.Float64("validate-guidance", 4, "guidance scale of the validation images")
	validateSeed := fs.Uint64("validate-seed", 0, "seed of the validation images")
	fs.StringVar(&c.Precision, "precision", d.Precision, "weight storage: f32, or bf16/f16 with F32 master weights")
	fs.BoolVar(&c.GradCheckpointing, "grad-checkpointing", false, "recompute U-Net blocks in backward (less memory)")
	fs.Uint64Var(&c.Seed, "seed", 0, "seed of the data order and of every random draw")
	fs.StringVar(&c.Out, "out", "", "output folder: checkpoints, model/, loss.csv, loss.png, samples/")
	fs.StringVar(&c.Prediction, "prediction", "", "override the scheduler's prediction type: epsilon or v_prediction")
	fs.Float64Var(&c.SNRGamma, "snr-gamma", 0, "min-SNR-gamma loss weighting (0: off; 5 is usual)")
	fs.Float64Var(&c.NoiseOffset, "noise-offset", 0, "noise offset (0: off)")
	fs.Float64Var(&c.CondDropout, "cond-dropout", 0, "probability of training a sample with the empty prompt")
	fs.Float64Var(&c.MaxGradNorm, "max-grad-norm", d.MaxGradNorm, "clip the gradient norm (0: no clipping)")
	fs.Float64Var(&c.AdamW.WeightDecay, "weight-decay", d.AdamW.WeightDecay, "AdamW weight decay")
	latent := fs.String("latent", "sample", "latents from the VAE posterior: sample (as diffusers) or mean")
	fs.StringVar(&c.LatentCache, "latent-cache", "", "cache file of VAE posteriors, reused across runs")
	noShuffle := fs.Bool("no-shuffle", false, "iterate the dataset in file order")
	fs.IntVar(&c.Workers, "workers", 0, "image decoding goroutines (0: default)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: train -model DIR -data DATA -out DIR (-steps N | -epochs N) [flags]\n       train -resume DIR [flags]\n\nFine-tunes a Stable Diffusion model on images with captions.\n\nFlags:\n")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "train: %v (run with -h for the flags)\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "train: unexpected argument %q (every setting is a flag; run with -h)\n", fs.Arg(0))
		return 2
	}
	switch *latent {
	case "sample":
		c.SampleLatents = true
	case "mean":
		c.SampleLatents = false
	default:
		fmt.Fprintf(stderr, "train: -latent %q: expected sample or mean\n", *latent)
		return 2
	}
	c.Shuffle = !*noShuffle
	c.LoRA.Targets = nil
	for _, t := range strings.Split(*loraTargets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.LoRA.Targets = append(c.LoRA.Targets, t)
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var tr *train.Trainer
	var err error
	if *resume != "" {
		tr, err = train.Resume(*resume, func(saved *train.Config) {
			// Flags given on the command line replace the saved settings.
			for name := range set {
				if !exact[name] {
					fmt.Fprintf(stderr, "train: warning: -%s differs from the checkpoint's run; the resumed run is not the one that was interrupted\n", name)
				}
			}
			applySet(saved, &c, set, *latent)
		})
	} else {
		tr, err = train.New(c)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	defer tr.Close()
	c = tr.Config()
	tr.Warn = func(msg string) { fmt.Fprintf(stderr, "train: warning: %s\n", msg) }
	st := tr.DataStats()
	fmt.Fprintf(stderr, "train: %s, mode %s, %d images, %d steps of %d x %d samples from step %d; output %s\n",
		c.Model, c.Mode, st.Records, tr.TotalSteps(), c.Batch, c.Accumulate, tr.StepsDone(), c.Out)

	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		fmt.Fprintf(stderr, "train: %v\n", err)
		return 1
	}
	logPath := filepath.Join(c.Out, "loss.csv")
	log, history, err := openLog(logPath, tr.StepsDone())
	if err != nil {
		fmt.Fprintf(stderr, "train: loss log: %v\n", err)
		return 1
	}
	defer log.Close()
	w := csv.NewWriter(log)

	sample := func(step int) {
		if *validate == "" {
			return
		}
		path := filepath.Join(c.Out, "samples", fmt.Sprintf("step-%06d.png", step))
		if err := tr.Sample(ctx, *validate, *validateSeed, *validateSteps, *validateGuidance, path); err != nil {
			fmt.Fprintf(stderr, "\ntrain: warning: %v\n", err)
		}
	}
	if tr.StepsDone() == 0 {
		sample(0)
	}
	var rate float64 // steps per second, smoothed
	tty := isTerminal(os.Stderr)
	tr.OnStep = func(s train.StepInfo) {
		sec := s.Duration.Seconds()
		if rate == 0 {
			rate = 1 / sec
		} else {
			rate = 0.9*rate + 0.1/sec
		}
		eta := time.Duration(float64(s.Total-s.Step) / rate * float64(time.Second)).Round(time.Second)
		end := "\n"
		if tty {
			end = "\033[K\r"
		}
		fmt.Fprintf(stderr, "step %d/%d  loss %.4f  lr %.3g  grad %.3g  %.2f it/s  ETA %v%s", s.Step, s.Total, s.Loss, s.LR, s.GradNorm, rate, eta, end)
		w.Write([]string{strconv.Itoa(s.Step), fmtF(s.Loss), fmtF(s.LR), fmtF(s.GradNorm), fmtF(sec), strconv.Itoa(s.Epoch)})
		w.Flush()
		history = append(history, s.Loss)
		if *validateEvery > 0 && s.Step%*validateEvery == 0 && s.Step < s.Total {
			sample(s.Step)
		}
	}
	err = tr.Run(ctx)
	if tty {
		fmt.Fprintln(stderr)
	}
	if perr := writeLossPNG(filepath.Join(c.Out, "loss.png"), history); perr != nil {
		fmt.Fprintf(stderr, "train: warning: loss curve: %v\n", perr)
	}
	var intr *train.Interrupted
	switch {
	case errors.As(err, &intr):
		fmt.Fprintf(stderr, "train: interrupted after step %d; checkpoint %s\ntrain: continue with: train -resume %s\n", intr.Step, intr.Checkpoint, c.Out)
		return 130
	case err != nil:
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	sample(tr.StepsDone())
	hits, misses := tr.CacheStats()
	st = tr.DataStats()
	what := "model"
	switch c.Mode {
	case "lora", "lora+text":
		what = "LoRA"
	case "ti":
		what = "embedding"
	}
	fmt.Fprintf(stderr, "train: done: %d steps; %s in %s", tr.StepsDone(), what, filepath.Join(c.Out, "model"))
	if c.LatentCache != "" {
		fmt.Fprintf(stderr, "; latent cache %d hits, %d misses", hits, misses)
	}
	if n := st.NoCaption + st.Corrupt + st.MissingImage; n > 0 {
		fmt.Fprintf(stderr, "; %d images skipped", n)
	}
	fmt.Fprintln(stderr)
	return 0
}

// applySet copies the flags in set from c into saved.
func applySet(saved, c *train.Config, set map[string]bool, latent string) {
	for name := range set {
		switch name {
		case "model":
			saved.Model = c.Model
		case "data":
			saved.Data = c.Data
		case "layout":
			saved.Layout = c.Layout
		case "split":
			saved.Split = c.Split
		case "resolution":
			saved.Resolution = c.Resolution
		case "batch":
			saved.Batch = c.Batch
		case "accumulate":
			saved.Accumulate = c.Accumulate
		case "lr":
			saved.LR = c.LR
		case "lr-schedule":
			saved.Schedule = c.Schedule
		case "warmup":
			saved.Warmup = c.Warmup
		case "steps":
			saved.Steps = c.Steps
		case "epochs":
			saved.Epochs = c.Epochs
		case "mode":
			saved.Mode = c.Mode
		case "rank":
			saved.LoRA.Rank = c.LoRA.Rank
		case "alpha":
			saved.LoRA.Alpha = c.LoRA.Alpha
		case "lora-targets":
			saved.LoRA.Targets = c.LoRA.Targets
		case "lora-format":
			saved.LoRA.Format = c.LoRA.Format
		case "placeholder":
			saved.TI.Placeholder = c.TI.Placeholder
		case "initializer":
			saved.TI.Initializer = c.TI.Initializer
		case "vectors":
			saved.TI.Vectors = c.TI.Vectors
		case "ema":
			saved.EMA = c.EMA
		case "checkpoint-every":
			saved.CheckpointEvery = c.CheckpointEvery
		case "keep-checkpoints":
			saved.KeepCheckpoints = c.KeepCheckpoints
		case "precision":
			saved.Precision = c.Precision
		case "grad-checkpointing":
			saved.GradCheckpointing = c.GradCheckpointing
		case "seed":
			saved.Seed = c.Seed
		case "out":
			saved.Out = c.Out
		case "prediction":
			saved.Prediction = c.Prediction
		case "snr-gamma":
			saved.SNRGamma = c.SNRGamma
		case "noise-offset":
			saved.NoiseOffset = c.NoiseOffset
		case "cond-dropout":
			saved.CondDropout = c.CondDropout
		case "max-grad-norm":
			saved.MaxGradNorm = c.MaxGradNorm
		case "weight-decay":
			saved.AdamW.WeightDecay = c.AdamW.WeightDecay
		case "latent":
			saved.SampleLatents = latent == "sample"
		case "latent-cache":
			saved.LatentCache = c.LatentCache
		case "no-shuffle":
			saved.Shuffle = c.Shuffle
		case "workers":
			saved.Workers = c.Workers
		}
	}
}

func fmtF(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }

// openLog opens the loss log for appending, keeping only the rows of steps
// up to done (a resumed run rewrites what followed its checkpoint), and
// returns the losses kept.
func openLog(path string, done int) (*os.File, []float64, error) {
	header := []string{"step", "loss", "lr", "grad_norm", "seconds", "epoch"}
	var rows [][]string
	var losses []float64
	if f, err := os.Open(path); err == nil {
		all, _ := csv.NewReader(f).ReadAll()
		f.Close()
		for _, r := range all {
			if len(r) < 2 {
				continue
			}
			s, err := strconv.Atoi(r[0])
			if err != nil || s > done {
				continue
			}
			rows = append(rows, r)
			if l, err := strconv.ParseFloat(r[1], 64); err == nil {
				losses = append(losses, l)
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	w := csv.NewWriter(f)
	w.Write(header)
	w.WriteAll(rows)
	if err := w.Error(); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, losses, nil
}

// isTerminal reports whether f is a character device (a terminal).
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Command demomodel is the recipe of roentgo's built-in demo model: a small
// Stable Diffusion (VAE, CLIP text encoder, U-Net) trained from scratch on
// chest-radiograph phantoms (package phantom) on the CPU. See
// docs/DEMO_MODEL.md for the architecture, the measured speeds and the
// planned run.
//
//	go run ./examples/demomodel -out runs/demo                 # every stage
//	go run ./examples/demomodel -out runs/demo vae             # one stage
//
// Stages, each resumable (run the same command again after Ctrl-C):
//
//	data     phantoms OUT/data (PNG + report), the reduced CLIP tokenizer and a
//	         random-weight model OUT/init
//	vae      trains the VAE from scratch on random crops: OUT/vae
//	latents  encodes the dataset with it (posterior cache OUT/latents.cache),
//	         sets the latent scaling factor, writes OUT/model0
//	unet     trains text encoder + U-Net jointly with diffusion/train: OUT/unet
//	export   writes the F16 diffusers folder OUT/model (txt2img -model loads it)
//	bench    prints the architecture's sizes and measured training speeds
//
// Two more stages measure the result (named explicitly; not part of the
// default run):
//
//	classifier  trains a findings classifier on held-out phantoms:
//	            OUT/classifier (weights, per-finding validation report)
//	proof       prompt adherence, laterality, Frechet distance and MS-SSIM
//	            diversity of OUT/model, judged by the classifier: OUT/proof
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/roentgo/roentgo/tensor"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the program
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// stages are the recipe's stages in order.
var stages = []string{"data", "vae", "latents", "unet", "export"}

// extraStages run only when named: they measure the trained model.
var extraStages = []string{"classifier", "proof"}

// options are the recipe's settings (flags).
type options struct {
	Out       string
	Tokenizer string // the full CLIP tokenizer folder
	Compute   string // "f32" or "bf16": what the CPU's matrix products multiply in
	Images    int
	Res       int
	Seed      uint64
	Rate      float64
	Workers   int

	VAESteps, VAEBatch, VAECrop int
	VAELR                       float64
	KLWeight                    float64

	UNetSteps, Batch, Warmup int
	LR, SNRGamma, CondDrop   float64
	EMA                      bool
	CheckpointEvery          int
	LogEvery                 int

	ClassifierSteps   int
	ClassifierTrain   int
	ClassifierVal     int
	ProofN, ProofFIDN int
	ProofSteps        int
	ProofGuidance     float64

	stdout, stderr io.Writer
}

// errInterrupted reports a stage stopped by a signal after a checkpoint.
var errInterrupted = errors.New("interrupted; run the same command again to resume")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := options{stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("demomodel", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&o.Out, "out", "", "work folder (every stage's output and state)")
	fs.StringVar(&o.Tokenizer, "clip-tokenizer", "../shared/data/clip-tokenizer", "folder with CLIP's vocab.json and merges.txt (the reduced vocabulary is drawn from it)")
	fs.IntVar(&o.Images, "images", 2000, "number of phantoms to train on")
	fs.IntVar(&o.Res, "resolution", 256, "image side in pixels (a multiple of 8)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the phantoms, the initial weights and every random draw")
	fs.Float64Var(&o.Rate, "findings-rate", 0.7, "fraction of phantoms with findings")
	fs.IntVar(&o.Workers, "workers", runtime.GOMAXPROCS(0), "phantom rendering / image decoding goroutines")
	fs.StringVar(&o.Compute, "compute", "f32", "what the CPU's matrix products multiply in: f32 (the recipe's reference) or bf16 (CPUs with AVX512_BF16: faster, results differ in the last bits and so, over training, in detail)")
	fs.IntVar(&o.VAESteps, "vae-steps", 2000, "VAE optimiser steps")
	fs.IntVar(&o.VAEBatch, "vae-batch", 8, "VAE crops per step")
	fs.IntVar(&o.VAECrop, "vae-crop", 64, "side of the VAE's random training crops (a multiple of 8, <= resolution)")
	fs.Float64Var(&o.VAELR, "vae-lr", 1e-3, "VAE learning rate (AdamW, 100 warm-up steps, then constant)")
	fs.Float64Var(&o.KLWeight, "kl-weight", defaultKLWeight, "weight of the VAE's KL term")
	fs.IntVar(&o.UNetSteps, "unet-steps", 7000, "text encoder + U-Net optimiser steps")
	fs.IntVar(&o.Batch, "batch", 8, "text encoder + U-Net samples per step")
	fs.Float64Var(&o.LR, "lr", 5e-4, "text encoder + U-Net peak learning rate (cosine schedule)")
	fs.IntVar(&o.Warmup, "warmup", 200, "warm-up steps of the U-Net's schedule")
	fs.Float64Var(&o.SNRGamma, "snr-gamma", 5, "min-SNR-gamma loss weighting (0: plain MSE)")
	fs.Float64Var(&o.CondDrop, "cond-dropout", 0.1, "probability of training on the empty caption (for classifier-free guidance)")
	fs.BoolVar(&o.EMA, "ema", true, "export the EMA average of the U-Net and text encoder")
	fs.IntVar(&o.CheckpointEvery, "checkpoint-every", 250, "checkpoint every N steps (VAE and U-Net stages)")
	fs.IntVar(&o.LogEvery, "log-every", 50, "progress line every N steps")
	fs.IntVar(&o.ClassifierSteps, "classifier-steps", 0, "classifier stage: optimiser steps (0: phantom/classify's default)")
	fs.IntVar(&o.ClassifierTrain, "classifier-train", 0, "classifier stage: training phantoms (0: phantom/classify's default)")
	fs.IntVar(&o.ClassifierVal, "classifier-val", 0, "classifier stage: validation phantoms (0: phantom/classify's default)")
	fs.IntVar(&o.ProofN, "proof-n", 64, "proof stage: images per prompt set (4 prompts, seeds split evenly)")
	fs.IntVar(&o.ProofFIDN, "proof-fid-n", 256, "proof stage: held-out phantoms (and reports) for the Frechet distance")
	fs.IntVar(&o.ProofSteps, "proof-steps", 20, "proof stage: sampling steps")
	fs.Float64Var(&o.ProofGuidance, "proof-guidance", 4, "proof stage: classifier-free guidance scale")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "Usage: demomodel -out DIR [flags] [%s|bench|classifier|proof ...]\n\nTrains the built-in demo model from scratch (all training stages when none is named; classifier and proof measure it).\n\nFlags:\n", strings.Join(stages, "|"))
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return 0
		}
		fmt.Fprintf(stderr, "demomodel: %v (run with -h for the flags)\n", err)
		return 2
	}
	todo := fs.Args()
	if len(todo) == 0 {
		todo = stages
	}
	for _, s := range todo {
		if s != "bench" && !contains(stages, s) && !contains(extraStages, s) {
			fmt.Fprintf(stderr, "demomodel: unknown stage %q; expected %s, %s or bench\n", s, strings.Join(stages, ", "), strings.Join(extraStages, ", "))
			return 2
		}
	}
	if err := o.check(len(todo) == 1 && todo[0] == "bench"); err != nil {
		fmt.Fprintf(stderr, "demomodel: %v\n", err)
		return 2
	}
	ct := tensor.F32
	switch o.Compute {
	case "f32":
	case "bf16":
		ct = tensor.BF16
	default:
		fmt.Fprintf(stderr, "demomodel: -compute %q; expected f32 or bf16\n", o.Compute)
		return 2
	}
	if err := tensor.SetComputeDType(tensor.CPU, ct); err != nil {
		fmt.Fprintf(stderr, "demomodel: -compute %s: %v\n", o.Compute, err)
		return 2
	}
	defer tensor.SetComputeDType(tensor.CPU, tensor.F32)
	for _, s := range todo {
		start := time.Now()
		var err error
		switch s {
		case "data":
			err = o.stageData(ctx)
		case "vae":
			err = o.stageVAE(ctx)
		case "latents":
			err = o.stageLatents(ctx)
		case "unet":
			err = o.stageUNet(ctx)
		case "export":
			err = o.stageExport()
		case "classifier":
			err = o.stageClassifier(ctx)
		case "proof":
			err = o.stageProof(ctx)
		case "bench":
			err = o.stageBench()
		}
		if errors.Is(err, errInterrupted) {
			fmt.Fprintf(stderr, "demomodel: %s: %v\n", s, err)
			return 130
		}
		if err != nil {
			fmt.Fprintf(stderr, "demomodel: %s: %v\n", s, err)
			return 1
		}
		fmt.Fprintf(stderr, "demomodel: stage %s done in %s\n", s, time.Since(start).Round(time.Second/10))
	}
	return 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// check validates the flags.
func (o *options) check(benchOnly bool) error {
	var errs []string
	bad := func(f string, a ...any) { errs = append(errs, fmt.Sprintf(f, a...)) }
	if o.Out == "" && !benchOnly {
		bad("-out is empty; expected the work folder")
	}
	if o.Images < 1 {
		bad("-images %d: expected >= 1", o.Images)
	}
	if o.Res < 64 || o.Res%vaeFactor != 0 {
		bad("-resolution %d: expected a multiple of %d, at least 64", o.Res, vaeFactor)
	}
	if !(o.Rate >= 0 && o.Rate <= 1) {
		bad("-findings-rate %v: expected a fraction in [0, 1]", o.Rate)
	}
	if o.Workers < 1 {
		bad("-workers %d: expected >= 1", o.Workers)
	}
	if o.VAESteps < 1 || o.VAEBatch < 1 || o.UNetSteps < 1 || o.Batch < 1 {
		bad("-vae-steps %d, -vae-batch %d, -unet-steps %d, -batch %d: expected >= 1", o.VAESteps, o.VAEBatch, o.UNetSteps, o.Batch)
	}
	if o.VAECrop < 8 || o.VAECrop%vaeFactor != 0 || o.VAECrop > o.Res {
		bad("-vae-crop %d: expected a multiple of %d in [8, resolution]", o.VAECrop, vaeFactor)
	}
	if !(o.VAELR > 0) || !(o.LR > 0) {
		bad("-vae-lr %v, -lr %v: expected > 0", o.VAELR, o.LR)
	}
	if !(o.KLWeight >= 0) || !(o.SNRGamma >= 0) || !(o.CondDrop >= 0 && o.CondDrop <= 1) {
		bad("-kl-weight %v, -snr-gamma %v, -cond-dropout %v: expected >= 0 (dropout <= 1)", o.KLWeight, o.SNRGamma, o.CondDrop)
	}
	if o.ClassifierSteps < 0 || o.ClassifierTrain < 0 || o.ClassifierVal < 0 || o.ProofN < 8 || o.ProofFIDN < 8 || o.ProofSteps < 1 || !(o.ProofGuidance >= 0) {
		bad("-classifier-steps/-train/-val %d/%d/%d, -proof-n %d, -proof-fid-n %d, -proof-steps %d, -proof-guidance %v: expected >= 0, >= 8 (2 images a prompt), >= 8, >= 1, >= 0",
			o.ClassifierSteps, o.ClassifierTrain, o.ClassifierVal, o.ProofN, o.ProofFIDN, o.ProofSteps, o.ProofGuidance)
	}
	if o.Warmup < 0 || o.CheckpointEvery < 0 || o.LogEvery < 0 {
		bad("-warmup, -checkpoint-every, -log-every: expected >= 0")
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// logf prints a progress line.
func (o *options) logf(format string, a ...any) {
	fmt.Fprintf(o.stderr, "demomodel: "+format+"\n", a...)
}

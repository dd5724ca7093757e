// Package cli is the command-line front end shared by the txt2img and
// img2img example programs: flag definitions, input checks that run before
// any model is loaded, a progress bar, PNG output with metadata, and error
// reporting as one line on stderr with a non-zero exit status.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
)

// Mode selects the program.
type Mode int

// The programs.
const (
	Txt2Img Mode = iota
	Img2Img
)

func (m Mode) String() string {
	if m == Img2Img {
		return "img2img"
	}
	return "txt2img"
}

type options struct {
	model, prompt, negative, scheduler, out, dtype, init string
	device, compute                                      string
	tokenizer, configDir, prediction                     string
	steps, n, batch, height, width                       int
	seed                                                 int64
	guidance, rescale, eta, strength                     float64
	gray, quiet, encodeMode                              bool
}

// usageError is a bad flag or value: exit status 2.
type usageError struct{ error }

// Main runs the program with the command-line arguments args (without the
// program name), writing progress and errors to stderr, and returns the exit
// status: 0 on success, 1 when generation or I/O fails, 2 for bad usage,
// 130 when interrupted.
func Main(mode Mode, args []string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, mode, args, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "%s: interrupted; no image written\n", mode)
		return 130
	}
	msg := strings.TrimPrefix(err.Error(), "pipeline: ")
	msg = strings.ReplaceAll(msg, "\n", "; ")
	fmt.Fprintf(stderr, "%s: %s\n", mode, msg)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func newFlags(mode Mode, o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(mode.String(), flag.ContinueOnError)
	fs.StringVar(&o.model, "model", "", "diffusers pipeline folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/; safetensors or .bin weights) or single-file SD 1.x/2.x checkpoint (.safetensors or .ckpt; needs -tokenizer or -config); empty: the built-in tiny demo model with random weights (its images are noise)")
	fs.StringVar(&o.tokenizer, "tokenizer", "", "tokenizer folder (vocab.json, merges.txt), e.g. a diffusers model's tokenizer/: needed with a single-file checkpoint; with a folder, replaces its tokenizer")
	fs.StringVar(&o.configDir, "config", "", "with a single-file checkpoint: a diffusers folder whose unet/, vae/, text_encoder/ config.json, scheduler/ and tokenizer/ are used with the file's weights (for non-standard sizes); empty: the standard SD 1.x/2.x configs and a PNDM scheduler")
	fs.StringVar(&o.prediction, "prediction", "", "what the U-Net predicts: epsilon, v_prediction or sample; empty: the scheduler config's (epsilon for single files: pass v_prediction for the 768-pixel SD 2.x models)")
	fs.StringVar(&o.prompt, "prompt", "", "the text to generate from")
	fs.StringVar(&o.negative, "negative", "", "negative prompt (what to steer away from); empty: the unconditional prompt \"\"")
	fs.IntVar(&o.steps, "steps", 50, "number of denoising steps")
	fs.Float64Var(&o.guidance, "guidance", 7.5, "classifier-free guidance scale; 1 or less turns guidance off")
	fs.Float64Var(&o.rescale, "guidance-rescale", 0, "guidance rescale phi in [0, 1] (for v-prediction models); 0: off")
	fs.StringVar(&o.scheduler, "scheduler", "", "sampler: "+strings.Join(diffusion.SchedulerNames, ", ")+"; empty: the model's (scheduler/scheduler_config.json)")
	fs.Float64Var(&o.eta, "eta", 0, "DDIM eta in [0, 1] (0: deterministic)")
	fs.Int64Var(&o.seed, "seed", 42, "seed of the torch-compatible generator (same initial noise as diffusers' torch.Generator().manual_seed(seed)); -1 picks one from the clock")
	fs.IntVar(&o.n, "n", 1, "number of images")
	fs.IntVar(&o.batch, "batch", 0, "images denoised together (memory bound); 0: all")
	fs.IntVar(&o.height, "height", 0, "image height in pixels, a multiple of the VAE's factor (8 for Stable Diffusion); 0: the model's default")
	fs.IntVar(&o.width, "width", 0, "image width in pixels, a multiple of the VAE's factor; 0: the model's default")
	fs.BoolVar(&o.gray, "gray", false, "write 8-bit grayscale PNGs (ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B) instead of RGB")
	fs.StringVar(&o.out, "out", mode.String()+".png", "output PNG file; with several images a pattern with %d (the image index from 0), else -0, -1, ... is added before the extension")
	fs.StringVar(&o.dtype, "dtype", "auto", "weight dtype: auto (as stored), f32, f16 or bf16")
	fs.StringVar(&o.device, "device", "cpu", "where the models run: cpu, cuda (the first GPU), cuda:N, or sim (the simulated accelerator, for tests); cuda needs a program built with -tags cuda")
	fs.StringVar(&o.compute, "compute", "f16", "on a GPU, the dtype activations are computed and stored in: f16, bf16 or f32 (f32 for checking against the CPU); the CPU always computes in f32")
	fs.BoolVar(&o.quiet, "q", false, "no progress bar")
	if mode == Img2Img {
		fs.StringVar(&o.init, "init", "", "init image (PNG or JPEG, any size: resized to cover the output size and centre-cropped; grayscale becomes 3 channels)")
		fs.Float64Var(&o.strength, "strength", 0.8, "how much the init image is changed, in [0, 1]: 1 starts from pure noise, 0 keeps the image")
		fs.BoolVar(&o.encodeMode, "encode-mode", false, "encode the init image to the mean of the VAE posterior instead of a sample from it (diffusers samples)")
	}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\n", mode)
		if mode == Img2Img {
			fmt.Fprintf(stderr, "Generates images from an init image and a prompt with Stable Diffusion (diffusers' img2img).\n\n")
		} else {
			fmt.Fprintf(stderr, "Generates images from a prompt with Stable Diffusion (diffusers' txt2img), as 8-bit PNGs\nwith the generation parameters in tEXt chunks.\n\n")
		}
		fmt.Fprintf(stderr, "Flags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// outputPaths returns the file of each of n images.
func outputPaths(pattern string, n int) []string {
	if n == 1 {
		return []string{strings.Replace(pattern, "%d", "0", 1)}
	}
	if !strings.Contains(pattern, "%d") {
		ext := filepath.Ext(pattern)
		pattern = strings.TrimSuffix(pattern, ext) + "-%d" + ext
	}
	out := make([]string, n)
	for i := range out {
		out[i] = strings.Replace(pattern, "%d", strconv.Itoa(i), 1)
	}
	return out
}

func run(ctx context.Context, mode Mode, args []string, stderr io.Writer) error {
	var o options
	fs := newFlags(mode, &o, stderr)
	usage := fs.Usage
	fs.Usage = func() {} // one line of our own on a bad flag
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			usage()
			return err
		}
		return usageError{fmt.Errorf("%v (run with -h for the flags)", err)}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q; the prompt goes in -prompt \"...\"", fs.Arg(0))}
	}
	// Checks that need no model.
	if o.out == "" {
		return usageError{errors.New("-out is empty; expected an output PNG file name")}
	}
	if o.scheduler != "" && !known(o.scheduler) {
		return usageError{fmt.Errorf("unknown scheduler %q; expected one of %s", o.scheduler, strings.Join(diffusion.SchedulerNames, ", "))}
	}
	if o.height < 0 || o.width < 0 {
		return usageError{fmt.Errorf("bad size %dx%d; expected positive multiples of 8", o.width, o.height)}
	}
	if o.steps < 1 {
		return usageError{fmt.Errorf("-steps %d; expected at least 1", o.steps)}
	}
	if o.n < 1 {
		return usageError{fmt.Errorf("-n %d; expected at least 1", o.n)}
	}
	if o.batch < 0 {
		return usageError{fmt.Errorf("-batch %d; expected 0 (all) or more", o.batch)}
	}
	if math.IsNaN(o.guidance) || math.IsInf(o.guidance, 0) {
		return usageError{fmt.Errorf("-guidance %v; expected a finite number", o.guidance)}
	}
	switch strings.ToLower(o.dtype) {
	case "auto", "", "f32", "f16", "bf16":
	default:
		return usageError{fmt.Errorf("-dtype %q; expected auto, f32, f16 or bf16", o.dtype)}
	}
	if _, err := tensor.ParseDevice(o.device); err != nil {
		return usageError{fmt.Errorf("-device %q: %v", o.device, err)}
	}
	switch strings.ToLower(o.compute) {
	case "f16", "bf16", "f32":
	default:
		return usageError{fmt.Errorf("-compute %q; expected f16, bf16 or f32", o.compute)}
	}
	switch o.prediction {
	case "", "epsilon", "v_prediction", "sample":
	default:
		return usageError{fmt.Errorf("-prediction %q; expected epsilon, v_prediction or sample", o.prediction)}
	}
	if o.model == "" && (o.tokenizer != "" || o.configDir != "") {
		return usageError{errors.New("-tokenizer and -config go with -model (a single-file checkpoint or a diffusers folder)")}
	}
	var initImg image.Image
	if mode == Img2Img {
		if !(o.strength >= 0 && o.strength <= 1) {
			return usageError{fmt.Errorf("-strength %v; expected a value in [0, 1]", o.strength)}
		}
		if o.init == "" {
			return usageError{errors.New("-init is empty; expected an init image (PNG or JPEG)")}
		}
		var err error
		if initImg, err = pipeline.LoadImage(o.init); err != nil {
			return err
		}
	}
	paths := outputPaths(o.out, o.n)
	for _, p := range paths {
		if err := pipeline.CheckWritable(p); err != nil {
			return err
		}
	}
	seed := uint64(o.seed)
	if o.seed < 0 {
		seed = uint64(time.Now().UnixNano() & math.MaxUint32)
	}

	// The model.
	var p *pipeline.Pipeline
	var err error
	if o.model == "" {
		fmt.Fprintf(stderr, "%s: no -model given: using the built-in tiny demo model with random weights; its output is noise (pass -model DIR for a diffusers Stable Diffusion folder)\n", mode)
		p, err = pipeline.Demo()
		if err == nil && o.scheduler != "" {
			p.SchedulerName = o.scheduler
		}
		if err == nil {
			if err = p.ToDevice(o.device, o.compute); err != nil {
				p.Close()
			}
		}
	} else {
		p, err = pipeline.Load(o.model, pipeline.Options{DType: o.dtype, Scheduler: o.scheduler,
			Prediction: o.prediction, Tokenizer: o.tokenizer, ConfigDir: o.configDir,
			Device: o.device, Compute: o.compute})
	}
	if err != nil {
		return err
	}
	defer p.Close()

	req := pipeline.Request{
		Prompt: o.prompt, Negative: o.negative, Height: o.height, Width: o.width,
		Steps: o.steps, Guidance: o.guidance, GuidanceRescale: o.rescale,
		Scheduler: o.scheduler, Eta: o.eta, Seed: seed, NumImages: o.n, BatchSize: o.batch,
		InitImage: initImg, Strength: o.strength, EncodeMode: o.encodeMode,
	}
	if err := p.Validate(&req); err != nil {
		return usageError{err}
	}
	var bar *progress
	if !o.quiet {
		bar = &progress{w: stderr}
		req.Callback = bar.update
	}
	var res *pipeline.Result
	if mode == Img2Img {
		res, err = p.Img2Img(ctx, req)
	} else {
		res, err = p.Txt2Img(ctx, req)
	}
	bar.finish()
	if err != nil {
		return err
	}
	for i, img := range res.Images {
		var out image.Image = img
		if o.gray {
			out = pipeline.Gray(img)
		}
		data, err := pipeline.EncodePNG(out, res.Text(i))
		if err != nil {
			return err
		}
		if err := pipeline.WriteFileAtomic(paths[i], data); err != nil {
			return err
		}
	}
	tm := res.Timings
	rate := ""
	if tm.Steps > 0 && tm.Denoising > 0 {
		rate = fmt.Sprintf(", %.2f it/s", float64(tm.Steps)/tm.Denoising.Seconds())
	}
	where := paths[0]
	if len(paths) > 1 {
		where = fmt.Sprintf("%s ... %s", paths[0], paths[len(paths)-1])
	}
	on := ""
	if p.Device != tensor.CPU {
		on = fmt.Sprintf(" on %v (%s, %v)", p.Device, tensor.DeviceName(p.Device), tensor.ComputeDType(p.Device))
	}
	fmt.Fprintf(stderr, "%s: %d image(s) %dx%d, %d steps %s, seed %d%s: text encoding %.2fs, denoising %.2fs%s, decoding %.2fs; wrote %s\n",
		mode, len(res.Images), res.Width, res.Height, res.Steps, res.Scheduler, res.Seed, on,
		tm.TextEncoding.Seconds(), tm.Denoising.Seconds(), rate, tm.Decoding.Seconds(), where)
	return nil
}

func known(name string) bool {
	if name == "euler_ancestral" {
		return true
	}
	for _, n := range diffusion.SchedulerNames {
		if n == name {
			return true
		}
	}
	return false
}

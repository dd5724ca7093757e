// Package cli is the command-line front end shared by the txt2img, img2img
// and inpaint example programs: flag definitions, input checks that run before
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
	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/tensor"
)

// Mode selects the program.
type Mode int

// The programs.
const (
	Txt2Img Mode = iota
	Img2Img
	// Inpaint repaints the white part of -mask in -init (pipeline.Inpaint).
	Inpaint
)

func (m Mode) String() string {
	switch m {
	case Img2Img:
		return "img2img"
	case Inpaint:
		return "inpaint"
	}
	return "txt2img"
}

type options struct {
	model, prompt, negative, scheduler, out, dtype, init string
	mask                                                 string
	strengthSet                                          bool
	device, compute                                      string
	tokenizer, configDir, prediction                     string
	longPrompt                                           string
	steps, n, batch, height, width, index                int
	seed                                                 int64
	guidance, rescale, eta, strength                     float64
	gray, quiet, encodeMode, perImageSeeds, nonFinite    bool
	loras                                                []pipeline.LoRASpec
	embeddings                                           []string
	loraUnmerged                                         bool
}

// usageError is a bad flag or value: exit status 2.
type usageError struct{ error }

// Main runs the program with the command-line arguments args (without the
// program name), writing the image to stdout when the output is "-", and
// progress, warnings and errors to stderr; it returns the exit status: 0 on
// success, 1 when generation or I/O fails, 2 for bad usage, 130 when
// interrupted (the images finished before the interruption are kept).
func Main(mode Mode, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err := run(ctx, mode, args, stdout, stderr)
	var ie *interrupted
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ie):
		fmt.Fprintf(stderr, "%s: %v\n", mode, ie)
		return 130
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
	fs.StringVar(&o.model, "model", "", "diffusers pipeline folder (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/; safetensors or .bin weights) or single-file SD 1.x/2.x checkpoint (.safetensors or .ckpt; needs -tokenizer or -config); "+ModelHelp)
	fs.StringVar(&o.tokenizer, "tokenizer", "", "tokenizer folder (vocab.json, merges.txt), e.g. a diffusers model's tokenizer/: needed with a single-file checkpoint; with a folder, replaces its tokenizer")
	fs.StringVar(&o.configDir, "config", "", "with a single-file checkpoint: a diffusers folder whose unet/, vae/, text_encoder/ config.json, scheduler/ and tokenizer/ are used with the file's weights (for non-standard sizes); empty: the standard SD 1.x/2.x configs and a PNDM scheduler")
	fs.StringVar(&o.prediction, "prediction", "", "what the U-Net predicts: epsilon, v_prediction or sample; empty: the scheduler config's (epsilon for single files: pass v_prediction for the 768-pixel SD 2.x models)")
	fs.StringVar(&o.prompt, "prompt", "", "the text to generate from")
	fs.StringVar(&o.negative, "negative", "", "negative prompt (what to steer away from); empty: the unconditional prompt \"\"")
	fs.IntVar(&o.steps, "steps", 50, "number of denoising steps (the built-in demo model: 20 unless given)")
	fs.Float64Var(&o.guidance, "guidance", 7.5, "classifier-free guidance scale; 1 or less turns guidance off (the built-in demo model: 4 unless given)")
	fs.Float64Var(&o.rescale, "guidance-rescale", 0, "guidance rescale phi in [0, 1] (for v-prediction models); 0: off")
	fs.StringVar(&o.scheduler, "scheduler", "", "sampler: "+strings.Join(diffusion.SchedulerNames, ", ")+" (common spellings such as \"Euler a\", \"DPM++ 2M Karras\", plms and diffusers class names are accepted, in any case); empty: the model's (scheduler/scheduler_config.json)")
	fs.Float64Var(&o.eta, "eta", 0, "DDIM eta in [0, 1] (0: deterministic)")
	fs.Int64Var(&o.seed, "seed", 42, "seed of the torch-compatible generator (same initial noise as diffusers' torch.Generator().manual_seed(seed)), 0 or more; -1 picks one from the clock (the summary and the PNG say which)")
	fs.BoolVar(&o.perImageSeeds, "per-image-seeds", false, "give image i its own generator seeded with seed+i (as AUTOMATIC1111 does), so that -seed seed+i -n 1 regenerates it alone; default: one generator draws every image's noise in turn (as diffusers does), and -index regenerates one image")
	fs.IntVar(&o.n, "n", 1, "number of images (at most 10000)")
	fs.IntVar(&o.index, "index", -1, "generate only image I (0-based) of the -n images, with the noise it has in the whole run (the PNG's \"regenerate\" text gives these flags); -1: all")
	fs.StringVar(&o.longPrompt, "long-prompt", "truncate", "prompts longer than the text encoder's 75 tokens: truncate (drop the rest, as diffusers does, with a warning) or chunk (encode every token in windows of 75 and concatenate them, as the AUTOMATIC1111 and ComfyUI front ends do; images then differ from diffusers')")
	fs.BoolVar(&o.nonFinite, "allow-nonfinite", false, "keep going when the latents or the decoded image become NaN or infinite (by default the run stops with an error naming the step)")
	fs.IntVar(&o.batch, "batch", 0, "images denoised together (memory bound); 0: all")
	fs.IntVar(&o.height, "height", 0, "image height in pixels, a multiple of the VAE's factor (8 for Stable Diffusion); 0: the model's default")
	fs.IntVar(&o.width, "width", 0, "image width in pixels, a multiple of the VAE's factor; 0: the model's default")
	fs.BoolVar(&o.gray, "gray", false, "write 8-bit grayscale PNGs (ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B) instead of RGB")
	fs.StringVar(&o.out, "out", mode.String()+".png", "output file: .png (with the parameters in tEXt chunks) or .jpg/.jpeg (quality 95, the parameters in a comment), or - for a PNG on standard output (one image); with several images a pattern with %d (the image index from 0), else -0, -1, ... is added before the extension. A symbolic link is written through to its target; anything else but a regular file (a folder, a device, a FIFO) is refused")
	fs.StringVar(&o.dtype, "dtype", "auto", "weight dtype: auto (as stored), f32, f16 or bf16")
	fs.StringVar(&o.device, "device", "cpu", "where the models run: cpu, cuda (the first GPU), cuda:N, or sim (the simulated accelerator, for tests); cuda needs a program built with -tags cuda")
	fs.StringVar(&o.compute, "compute", "f16", "on a GPU, the dtype activations are computed and stored in: f16, bf16 or f32 (f32 for checking against the CPU); on the CPU, bf16 multiplies the linear and convolution products in bfloat16 with F32 sums (CPUs with AVX512_BF16; faster, slightly less exact), anything else computes in f32")
	fs.Func("lora", "LoRA file to apply, FILE or FILE:SCALE (scale 1 by default; 0 gives the base model's output); repeatable. Reads the diffusers (pytorch_lora_weights.safetensors/.bin), kohya/AUTOMATIC1111 (lora_unet_..., lora_te_...) and peft layouts", func(s string) error {
		l, err := pipeline.ParseLoRASpec(s)
		if err == nil {
			o.loras = append(o.loras, l)
		}
		return err
	})
	fs.BoolVar(&o.loraUnmerged, "lora-unmerged", false, "run the LoRAs beside the weights instead of merging them into them (slower; the weights stay as loaded)")
	fs.Func("embedding", "textual-inversion file (diffusers' learned_embeds.safetensors or .bin) whose token the prompt can use; repeatable", func(s string) error {
		if s == "" {
			return errors.New("empty file name")
		}
		o.embeddings = append(o.embeddings, s)
		return nil
	})
	fs.BoolVar(&o.quiet, "q", false, "no progress bar (it is drawn only when standard error is a terminal)")
	if mode != Txt2Img {
		fs.StringVar(&o.init, "init", "", "init image (PNG or JPEG, any size: resized to cover the output size and centre-cropped; grayscale becomes 3 channels)")
		strengthHelp := "how much the init image is changed, in [0, 1]: 1 starts from pure noise, 0 keeps the image"
		if mode == Inpaint {
			strengthHelp += "; used with ordinary (4-channel) models, whose inpainting is img2img with the kept region restored after every step (diffusers' legacy inpainting); an inpainting model (9-channel U-Net, sd-v1-5-inpainting) always starts from pure noise, as diffusers 0.16.1 does, and ignores it"
		}
		fs.Float64Var(&o.strength, "strength", 0.8, strengthHelp)
		fs.BoolVar(&o.encodeMode, "encode-mode", false, "encode the init image to the mean of the VAE posterior instead of a sample from it (diffusers samples)")
	}
	if mode == Inpaint {
		fs.StringVar(&o.mask, "mask", "", fmt.Sprintf("mask image (PNG or JPEG): white repaints, black keeps; resized with the init image to the output size (nearest), so a mask of another size is stretched (with a warning). Gray values: an inpainting model thresholds the luma at %g (128 of 255 and more repaint), an ordinary model blends in proportion, as diffusers' two inpainting pipelines do (with a warning)", pipeline.MaskThreshold))
	}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s [flags]\n\n", mode)
		if mode == Img2Img {
			fmt.Fprintf(stderr, "Generates images from an init image and a prompt with Stable Diffusion (diffusers' img2img).\n\n")
		} else if mode == Inpaint {
			fmt.Fprintf(stderr, "Repaints the white part of a mask in an init image from a prompt with Stable Diffusion\n(diffusers' inpainting: an inpainting model's 9-channel U-Net, or mask blending with an ordinary model).\n\n")
		} else {
			fmt.Fprintf(stderr, "Generates images from a prompt with Stable Diffusion (diffusers' txt2img), as 8-bit PNGs\nwith the generation parameters in tEXt chunks.\n\n")
		}
		fmt.Fprintf(stderr, "Flags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// outputPaths returns the file of each of n images; first is the index of
// the first (-index).
func outputPaths(pattern string, n, first int) []string {
	if n == 1 {
		return []string{strings.Replace(pattern, "%d", strconv.Itoa(first), 1)}
	}
	if !strings.Contains(pattern, "%d") {
		ext := filepath.Ext(pattern)
		pattern = strings.TrimSuffix(pattern, ext) + "-%d" + ext
	}
	out := make([]string, n)
	for i := range out {
		out[i] = strings.Replace(pattern, "%d", strconv.Itoa(first+i), 1)
	}
	return out
}

// format is an output image format.
type format int

const (
	formatPNG format = iota
	formatJPEG
)

// outputFormat returns the format a file name asks for: .png (or no
// extension) and .jpg/.jpeg, case-insensitive; anything else is an error.
func outputFormat(path string) (format, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png", "":
		return formatPNG, nil
	case ".jpg", ".jpeg":
		return formatJPEG, nil
	default:
		return 0, fmt.Errorf("-out %s: unknown image format %q; expected .png, .jpg or .jpeg (or - for a PNG on standard output)", path, ext)
	}
}

// checkOutputs checks, before any work, that every output may be written:
// each path is a new name, a regular file or a link to one (atomicfile), and
// each distinct folder accepts a new file (probed once per folder, not once
// per image).
func checkOutputs(paths []string) error {
	probed := map[string]bool{}
	for _, p := range paths {
		target, err := atomicfile.Target(p)
		if err != nil {
			return err
		}
		dir := filepath.Dir(target)
		if probed[dir] {
			continue
		}
		probed[dir] = true
		if err := atomicfile.CheckWritable(p); err != nil {
			return err
		}
	}
	return nil
}

// interrupted is the error of a run stopped after some images were written.
type interrupted struct {
	written, total int
	first, last    string
	cause          error
}

func (e *interrupted) Error() string {
	where := e.first
	if e.written > 1 {
		where = e.first + " ... " + e.last
	}
	return fmt.Sprintf("interrupted; kept the %d of %d image(s) finished before: %s", e.written, e.total, where)
}

func (e *interrupted) Unwrap() error { return e.cause }

// isTerminal reports whether w is a terminal (a character device), where a
// progress bar redrawn with carriage returns belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func run(ctx context.Context, mode Mode, args []string, stdout, stderr io.Writer) error {
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
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "strength" {
			o.strengthSet = true
		}
	})
	ApplyBuiltinDefaults(fs, o.model, &o.steps, &o.guidance)
	// Checks that need neither the model nor the disk.
	if o.out == "" {
		return usageError{errors.New("-out is empty; expected an output file name (.png or .jpg), or - for standard output")}
	}
	if o.n < 1 || o.n > pipeline.MaxImages {
		return usageError{fmt.Errorf("-n %d; expected 1 to %d", o.n, pipeline.MaxImages)}
	}
	if o.index < -1 || o.index >= o.n {
		return usageError{fmt.Errorf("-index %d; expected 0 to %d (an image of the -n %d run), or -1 for all", o.index, o.n-1, o.n)}
	}
	count := o.n
	if o.index >= 0 {
		count = 1
	}
	toStdout := o.out == "-"
	if toStdout && count > 1 {
		return usageError{fmt.Errorf("-out - writes one image to standard output; -n %d makes %d (use a file pattern, or -index)", o.n, count)}
	}
	format := formatPNG
	if !toStdout {
		var err error
		if format, err = outputFormat(o.out); err != nil {
			return usageError{err}
		}
	}
	if o.seed < -1 {
		return usageError{fmt.Errorf("-seed %d; expected 0 or more, or -1 for a seed picked from the clock", o.seed)}
	}
	switch o.longPrompt {
	case pipeline.LongPromptTruncate, pipeline.LongPromptChunk:
	default:
		return usageError{fmt.Errorf("-long-prompt %q; expected truncate or chunk", o.longPrompt)}
	}
	if o.scheduler != "" && !known(o.scheduler) {
		return usageError{fmt.Errorf("unknown scheduler %q; expected one of %s (or a common spelling of one, such as \"Euler a\" or \"DPM++ 2M Karras\")", o.scheduler, strings.Join(diffusion.SchedulerNames, ", "))}
	}
	if o.height < 0 || o.width < 0 || o.height > pipeline.MaxSize || o.width > pipeline.MaxSize {
		return usageError{pipeline.SizeError(o.width, o.height, 0)}
	}
	if o.steps < 1 {
		return usageError{fmt.Errorf("-steps %d; expected at least 1", o.steps)}
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
	if err := CheckBuiltin(o.model, o.tokenizer, o.configDir); err != nil {
		return usageError{err}
	}
	var initImg, maskImg image.Image
	if mode != Txt2Img {
		if !(o.strength >= 0 && o.strength <= 1) {
			return usageError{fmt.Errorf("-strength %v; expected a value in [0, 1]", o.strength)}
		}
		if o.init == "" {
			return usageError{errors.New("-init is empty; expected an init image (PNG or JPEG)")}
		}
		if mode == Inpaint && o.mask == "" {
			return usageError{errors.New("-mask is empty; expected a mask image (PNG or JPEG; white = repaint)")}
		}
		var err error
		if initImg, err = pipeline.LoadImage(o.init); err != nil {
			return err
		}
		if mode == Inpaint {
			if maskImg, err = pipeline.LoadMask(o.mask); err != nil {
				return err
			}
		}
	}
	var paths []string
	if !toStdout {
		paths = outputPaths(o.out, count, max(o.index, 0))
		if err := checkOutputs(paths); err != nil {
			return err
		}
	}
	seed := uint64(o.seed)
	if o.seed < 0 {
		seed = uint64(time.Now().UnixNano() & math.MaxUint32)
	}

	// The model.
	warn := func(msg string) { fmt.Fprintf(stderr, "%s: warning: %s\n", mode, msg) }
	var p *pipeline.Pipeline
	var err error
	opts := pipeline.Options{DType: o.dtype, Scheduler: o.scheduler,
		Prediction: o.prediction, Tokenizer: o.tokenizer, ConfigDir: o.configDir,
		Device: o.device, Compute: o.compute, Warn: warn,
		LoRAs: o.loras, LoRAUnmerged: o.loraUnmerged, Embeddings: o.embeddings}
	if IsBuiltin(o.model) {
		p, err = LoadBuiltin(mode.String(), o.model, opts, stderr)
	} else {
		p, err = pipeline.Load(o.model, opts)
	}
	if err != nil {
		return err
	}
	defer p.Close()

	req := pipeline.Request{
		Prompt: o.prompt, Negative: o.negative, Height: o.height, Width: o.width,
		Steps: o.steps, Guidance: o.guidance, GuidanceRescale: o.rescale,
		Scheduler: o.scheduler, Eta: o.eta, Seed: seed, NumImages: o.n, BatchSize: o.batch,
		InitImage: initImg, MaskImage: maskImg, Strength: o.strength, EncodeMode: o.encodeMode,
		PerImageSeeds: o.perImageSeeds, LongPrompt: o.longPrompt, AllowNonFinite: o.nonFinite,
	}
	if o.index >= 0 {
		req.Only = []int{o.index}
	}
	if mode == Inpaint && p.IsInpaintModel() && !o.strengthSet {
		req.Strength = 1 // not used: no warning about the default
	}
	if err := p.Validate(&req); err != nil {
		return usageError{err}
	}
	var bar *progress
	if !o.quiet && isTerminal(stderr) {
		bar = &progress{w: stderr}
		req.Callback = bar.update
	}
	// Each image is written as soon as it is decoded, so that an
	// interruption keeps the finished ones.
	written := 0
	req.Done = func(res *pipeline.Result, i int) error {
		var out image.Image = res.Images[i]
		if o.gray {
			out = pipeline.Gray(res.Images[i])
		}
		var data []byte
		var err error
		if format == formatJPEG {
			data, err = pipeline.EncodeJPEG(out, res.Text(i))
		} else {
			data, err = pipeline.EncodePNG(out, res.Text(i))
		}
		if err != nil {
			return err
		}
		if toStdout {
			_, err = stdout.Write(data)
		} else {
			err = pipeline.WriteFileAtomic(paths[i], data)
		}
		if err == nil {
			written++
		}
		return err
	}
	var res *pipeline.Result
	switch mode {
	case Img2Img:
		res, err = p.Img2Img(ctx, req)
	case Inpaint:
		res, err = p.Inpaint(ctx, req)
	default:
		res, err = p.Txt2Img(ctx, req)
	}
	bar.finish()
	if err != nil {
		if written > 0 && !toStdout && (errors.Is(err, context.Canceled) || errors.Is(err, pipeline.ErrCancelled)) {
			return &interrupted{written: written, total: count, first: paths[0], last: paths[written-1], cause: err}
		}
		if written > 0 && !toStdout {
			return fmt.Errorf("%w (kept the %d image(s) finished before: %s ... %s)", err, written, paths[0], paths[written-1])
		}
		return err
	}
	tm := res.Timings
	rate := ""
	if tm.Steps > 0 && tm.Denoising > 0 {
		rate = fmt.Sprintf(", %.2f it/s", float64(tm.Steps)/tm.Denoising.Seconds())
	}
	where := "standard output"
	if !toStdout {
		where = paths[0]
		if len(paths) > 1 {
			where = fmt.Sprintf("%s ... %s", paths[0], paths[len(paths)-1])
		}
	}
	steps := fmt.Sprintf("%d steps", res.Steps)
	if mode == Img2Img || res.Inpaint == pipeline.InpaintLegacy {
		steps = fmt.Sprintf("%d of %d steps (strength %g)", res.StepsRun, res.Steps, res.Strength)
	}
	sched := res.Scheduler
	if res.Inpaint != "" {
		sched += ", inpainting " + map[string]string{pipeline.InpaintModel: "with the inpainting U-Net", pipeline.InpaintLegacy: "by mask blending (4-channel model)"}[res.Inpaint]
	}
	seedNote := ""
	if o.seed < 0 {
		seedNote = " (picked from the clock)"
	}
	on := ""
	if p.Device != tensor.CPU {
		on = fmt.Sprintf(" on %v (%s, %v)", p.Device, tensor.DeviceName(p.Device), tensor.ComputeDType(p.Device))
	} else if cpu.Compute() == cpu.BF16 {
		on = " on the CPU with BF16 products"
	}
	fmt.Fprintf(stderr, "%s: %d image(s) %dx%d, %s %s, seed %d%s%s: text encoding %.2fs, denoising %.2fs%s, decoding %.2fs; wrote %s\n",
		mode, len(res.Images), res.Width, res.Height, steps, sched, res.Seed, seedNote, on,
		tm.TextEncoding.Seconds(), tm.Denoising.Seconds(), rate, tm.Decoding.Seconds(), where)
	return nil
}

// known reports whether name is a scheduler name or one of its accepted
// spellings (diffusion.CanonicalSchedulerName).
func known(name string) bool {
	_, ok := diffusion.CanonicalSchedulerName(name)
	return ok
}

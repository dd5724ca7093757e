package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"path/filepath"
	"strconv"
	"time"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// Callback is called after every denoising step with the step index
// (0-based, counted over all batches), the total number of steps of the
// request, the timestep just taken and the batch's new latents (valid only
// during the call). Returning false cancels the request (Txt2Img then
// returns ErrCancelled).
type Callback func(step, total int, t float64, latents *tensor.Tensor) bool

// ErrCancelled is returned when a Callback asks to stop.
var ErrCancelled = errors.New("pipeline: cancelled by the callback")

// Request describes a generation.
type Request struct {
	// Prompt is the text to generate from; Prompts, if not empty, replaces it
	// with several prompts (NumImages images each, in prompt order).
	Prompt  string
	Prompts []string
	// Negative is the negative prompt of every prompt; Negatives, if not
	// empty, gives one per prompt. Without either, the unconditional
	// embeddings are those of "" (as in diffusers).
	Negative  string
	Negatives []string
	// Height and Width are the image size in pixels, multiples of the VAE's
	// downsampling factor (8 for Stable Diffusion); 0 selects DefaultSize.
	Height, Width int
	// Steps is the number of inference steps (0: 50, diffusers' default).
	Steps int
	// Guidance is the classifier-free guidance scale (diffusers' default is
	// 7.5); 1 or less turns guidance off (one U-Net row per image, no
	// negative prompt), as in diffusers. GuidanceRescale (phi of Lin et al.
	// 2023, for v-prediction models; 0: off) rescales the guided output.
	Guidance        float64
	GuidanceRescale float64
	// Scheduler names the sampler (diffusion.SchedulerNames); "" uses the
	// pipeline's. Eta is DDIM's eta.
	Scheduler string
	Eta       float64
	// Seed seeds the generator of the initial noise (and of every later draw:
	// VAE posterior sample, per-step noise), as
	// torch.Generator("cpu").manual_seed(Seed) in diffusers.
	Seed uint64
	// NumImages is the number of images per prompt (0: 1). All initial
	// latents are one draw [N, 4, h, w] from the generator, as diffusers'
	// num_images_per_prompt does.
	NumImages int
	// BatchSize bounds the images denoised together (0: all at once), to
	// limit memory. Deterministic schedulers give the same images whatever
	// the batch size; schedulers that draw noise per step (DDPM, DDIM with
	// eta > 0, Euler ancestral) draw it per batch, so they match diffusers
	// only when every image is in one batch.
	BatchSize int
	// Callback, if set, reports progress and may cancel.
	Callback Callback

	// InitImage (Img2Img) is the image to start from; Strength in [0, 1] how
	// much noise is added (1: start from pure noise). EncodeMode uses the
	// posterior's mean instead of a sample (diffusers samples).
	InitImage  image.Image
	Strength   float64
	EncodeMode bool
	// MaskImage (Inpaint) says where to repaint the init image: white
	// (luma >= 128 of 255, a value >= 0.5) is repainted, black kept (see
	// Inpaint for how each kind of model reads gray values). Init image and
	// mask are both brought to the output size (centre crop to its aspect
	// ratio, then resizing: antialiased for the image, nearest for the
	// mask), so a mask of another size than the init image is stretched
	// with it (Warn says so).
	MaskImage image.Image

	// PerImageSeeds gives image i of the request its own generator, seeded
	// with Seed+i, for its initial noise, its VAE posterior sample (img2img)
	// and its per-step noise, as AUTOMATIC1111's web UI does: image i is then
	// regenerated alone by Seed+i with one image, and stochastic schedulers
	// give the same images whatever the batch size. By default (false) one
	// generator seeded with Seed draws the noise of every image in turn, as
	// diffusers' num_images_per_prompt does.
	PerImageSeeds bool
	// Seeds, if not empty, holds one seed per image of the whole request
	// (prompt-major, as Only counts them) and gives image i its own
	// generator seeded with Seeds[i], as PerImageSeeds does with Seed+i
	// (which it replaces): images of unrelated seeds are denoised together,
	// and each is regenerated alone by its seed.
	Seeds []uint64
	// KeepDecoded keeps each image's raw VAE decoder output in
	// Result.Decoded, for outputs of more than 8 bits (Gray16).
	KeepDecoded bool
	// TextCache, if set, keeps the text encoder's outputs across requests:
	// each distinct prompt is encoded once (alone, so that its embedding
	// does not depend on the other prompts of a batch) and reused. Not used
	// with LongPrompt "chunk".
	TextCache *TextCache
	// Only, if not empty, lists the images of the request to generate
	// (indices in [0, prompts x NumImages), prompt-major, increasing): each
	// gets the noise it has in the whole request, so "-n 4 -index 3"
	// regenerates image 3 of a four-image run alone. With the default single
	// generator, the initial noise of every image is drawn and the others
	// discarded; schedulers that draw noise per step (DDPM, DDIM with eta > 0,
	// Euler ancestral) then match the whole run only when both denoise their
	// images in one batch.
	Only []int
	// LongPrompt says what happens to prompts longer than the text encoder's
	// window (75 tokens for CLIP): "" or "truncate" drops the rest, as
	// diffusers does (the pipeline's Warn says so); "chunk" encodes the
	// tokens in windows of 75, each wrapped in BOS/EOS and padded to 77, and
	// concatenates the windows' hidden states along the sequence (as the
	// AUTOMATIC1111 and ComfyUI front ends do), so the U-Net's
	// cross-attention sees every token. Every prompt and negative prompt of a
	// batch gets as many windows as the longest (empty windows are added), so
	// a chunked prompt's images differ from diffusers' even when it fits.
	LongPrompt string
	// Done, if set, is called with the result so far right after image i
	// (an index into res.Images) is decoded, so that a program can write each
	// image as soon as it exists; an error from it stops the generation and
	// is returned.
	Done func(res *Result, i int) error
	// AllowNonFinite keeps going when the latents or the decoded images hold
	// NaN or infinite values; by default the generation stops with an error
	// naming the step (a black image is never written silently).
	AllowNonFinite bool

	trace *trace // test hooks
}

// MaxImages is the most images one request may generate.
const MaxImages = 10000

// MaxSize is the largest image width or height a request may ask for.
const MaxSize = 16384

// SizeError is the error for an image size that is not positive multiples
// of the VAE's downsampling factor f (0 when the model is not known yet) of
// at most MaxSize: one wording for every check of a size.
func SizeError(width, height, f int) error {
	of := "the VAE's downsampling factor (8 for Stable Diffusion)"
	if f > 0 {
		of = fmt.Sprintf("%d (the VAE's downsampling factor)", f)
	}
	return fmt.Errorf("pipeline: image size %dx%d (width x height); expected positive multiples of %s, at most %d", width, height, of, MaxSize)
}

// Long-prompt modes (Request.LongPrompt).
const (
	LongPromptTruncate = "truncate"
	LongPromptChunk    = "chunk"
)

// ErrNonFinite is wrapped by the error a generation returns when the latents
// or the decoded images hold NaN or infinite values.
var ErrNonFinite = errors.New("values are not finite (NaN or infinite)")

// trace records the intermediate values of a run (tests).
type trace struct {
	// named, if set, gets named intermediates: prep_image, init_latents,
	// noise (img2img and legacy inpainting), prep_mask, masked_image,
	// mask_latent, masked_image_latents, keep_mask (inpainting),
	// step_prev_sample, init_latents_proper, latents_after_blend (legacy
	// inpainting, per step).
	named  func(name string, v []float32)
	embeds func(e *tensor.Tensor)
	init   func(latents *tensor.Tensor)
	unet   func(in, out *tensor.Tensor, t float64)
	step   func(sample, guided *tensor.Tensor, t float64)
	final  func(latents, decoded *tensor.Tensor)
}

// values passes a named intermediate to the trace, if there is one.
func (tr *trace) values(name string, t *tensor.Tensor) {
	if tr != nil && tr.named != nil {
		tr.named(name, t.Float32s())
	}
}

// Timings are the wall times of a generation's phases.
type Timings struct {
	TextEncoding, Denoising, Decoding, Total time.Duration
	// Steps is the number of denoising steps run (over all batches).
	Steps int
}

// Result holds the generated images and what produced them.
type Result struct {
	// Images are 8-bit RGB, in prompt order, NumImages per prompt.
	Images []*image.NRGBA
	// Prompts and Negatives give each image's prompt and negative prompt.
	Prompts, Negatives []string
	Timings            Timings

	// The parameters that were used (defaults filled in).
	Seed                 uint64
	Steps                int
	Guidance             float64
	Scheduler            string
	Height, Width        int
	ModelHash, ModelName string
	Strength             float64 // Img2Img and legacy Inpaint only
	// Inpaint is "" for txt2img and img2img, else InpaintModel (a 9-channel
	// inpainting U-Net) or InpaintLegacy (mask blending with a 4-channel
	// U-Net).
	Inpaint string
	// Indices gives each image's index in the whole request (prompt-major):
	// 0, 1, ... unless Request.Only selected some.
	Indices []int
	// Total is the number of images of the whole request (prompts x
	// NumImages), of which Images holds those in Indices.
	Total int
	// PerImageSeeds is Request.PerImageSeeds (or set by Request.Seeds).
	PerImageSeeds bool
	// Seeds is Request.Seeds.
	Seeds []uint64
	// Decoded, with Request.KeepDecoded, holds each image's VAE decoder
	// output [3, Height, Width] (float32, about [-1, 1]), beside Images.
	Decoded [][]float32
	// StepsRun is the number of the Steps inference steps that were run per
	// image: Steps for txt2img, int(Steps x strength) for img2img (as
	// diffusers' get_timesteps); the model may be evaluated more often
	// (Timings.Steps counts evaluations: PNDM's warm-up adds one).
	StepsRun int
	img2img  bool
}

// ImageSeed returns the seed that regenerates image i of the result alone
// (with one image and no selection): Seed+index with PerImageSeeds, and for
// the single-generator default Seed when the request had one image; with
// several images the single generator's image is regenerated by Seed, the
// image count and its index (Regenerate), and ImageSeed returns Seed.
func (r *Result) ImageSeed(i int) uint64 {
	if len(r.Seeds) > 0 {
		return r.Seeds[r.Indices[i]]
	}
	if r.PerImageSeeds {
		return r.Seed + uint64(r.Indices[i])
	}
	return r.Seed
}

// Regenerate returns the txt2img/img2img flags (beyond the prompt, model
// and size) that regenerate image i alone: "-seed S" when that is enough,
// else "-seed S -n N -index I" (or with -per-image-seeds).
func (r *Result) Regenerate(i int) string {
	if r.PerImageSeeds {
		return fmt.Sprintf("-seed %d", r.ImageSeed(i))
	}
	if r.Total <= 1 {
		return fmt.Sprintf("-seed %d", r.Seed)
	}
	return fmt.Sprintf("-seed %d -n %d -index %d", r.Seed, r.Total, r.Indices[i])
}

// Text returns the PNG text metadata of image i: prompt, negative_prompt,
// seed (ImageSeed), steps, scheduler, guidance_scale, size (WxH),
// model_hash, model (the model's name, not its path), index (in the whole
// request), regenerate (Regenerate's flags), strength (img2img), software
// and an A1111-style "parameters" line that common tools read (its Seed is
// ImageSeed; with one generator for several images, "Batch size" and "Batch
// pos" say which of the batch's images it is, as A1111 writes them).
func (r *Result) Text(i int) []TextChunk {
	g := strconv.FormatFloat(r.Guidance, 'g', -1, 64)
	size := fmt.Sprintf("%dx%d", r.Width, r.Height)
	t := []TextChunk{
		{"prompt", r.Prompts[i]},
		{"negative_prompt", r.Negatives[i]},
		{"seed", strconv.FormatUint(r.ImageSeed(i), 10)},
		{"steps", strconv.Itoa(r.Steps)},
		{"scheduler", r.Scheduler},
		{"guidance_scale", g},
		{"size", size},
		{"model_hash", r.ModelHash},
		{"model", r.ModelName},
		{"index", strconv.Itoa(r.Indices[i])},
		{"regenerate", r.Regenerate(i)},
	}
	if r.img2img {
		t = append(t, TextChunk{"strength", strconv.FormatFloat(r.Strength, 'g', -1, 64)})
	}
	if r.Inpaint != "" {
		t = append(t, TextChunk{"inpaint", r.Inpaint})
	}
	t = append(t, TextChunk{"software", "roentgo"})
	params := r.Prompts[i]
	if r.Negatives[i] != "" {
		params += "\nNegative prompt: " + r.Negatives[i]
	}
	params += fmt.Sprintf("\nSteps: %d, Sampler: %s, CFG scale: %s, Seed: %d, Size: %s, Model hash: %s, Model: %s", r.Steps, r.Scheduler, g, r.ImageSeed(i), size, r.ModelHash, r.ModelName)
	if !r.PerImageSeeds && r.Total > 1 {
		// One generator fed every image: the seed alone gives image 0.
		params += fmt.Sprintf(", Batch size: %d, Batch pos: %d", r.Total, r.Indices[i])
	}
	if r.img2img {
		params += ", Denoising strength: " + strconv.FormatFloat(r.Strength, 'g', -1, 64)
	}
	return append(t, TextChunk{"parameters", params})
}

// mode is what a generation starts from.
type mode int

const (
	modeTxt2Img mode = iota // noise
	modeImg2Img             // the noised init image
	modeInpaint             // init image and mask
)

// modeOf is the mode a request asks for by what it holds.
func modeOf(req *Request) mode {
	switch {
	case req.MaskImage != nil:
		return modeInpaint
	case req.InitImage != nil:
		return modeImg2Img
	}
	return modeTxt2Img
}

// plan is a validated request.
type plan struct {
	prompts, negatives []string // one per generated image
	indices            []int    // each generated image's index in the whole request
	total              int      // images of the whole request
	h, w, lh, lw       int
	steps              int
	cfg                bool
	chunk              bool
	sched              diffusion.Scheduler
	batch              int
	tiledDecode        bool
	mode               mode
	inpaintModel       bool // a 9-channel U-Net (with modeInpaint)
}

// Validate checks a request against the pipeline without running it and
// returns the first problem (sizes, steps, scheduler, counts, strength,
// selection, the memory the size needs).
func (p *Pipeline) Validate(req *Request) error {
	_, err := p.plan(req, modeOf(req), false)
	return err
}

func (p *Pipeline) plan(req *Request, m mode, warn bool) (*plan, error) {
	pl := &plan{mode: m}
	img2img := m != modeTxt2Img
	prompts := req.Prompts
	if len(prompts) == 0 {
		prompts = []string{req.Prompt}
	}
	negs := req.Negatives
	if len(negs) == 0 {
		negs = make([]string, len(prompts))
		for i := range negs {
			negs[i] = req.Negative
		}
	} else if len(negs) != len(prompts) {
		return nil, fmt.Errorf("pipeline: %d negative prompts for %d prompts; expected one per prompt", len(negs), len(prompts))
	}
	n := req.NumImages
	if n == 0 {
		n = 1
	}
	if n < 0 || n > MaxImages || len(prompts)*n > MaxImages {
		return nil, fmt.Errorf("pipeline: %d images per prompt (%d prompts); expected 1 to %d images in all", n, len(prompts), MaxImages)
	}
	pl.total = len(prompts) * n
	if len(req.Only) == 0 {
		for i := 0; i < pl.total; i++ {
			pl.indices = append(pl.indices, i)
		}
	} else {
		for k, i := range req.Only {
			if i < 0 || i >= pl.total {
				return nil, fmt.Errorf("pipeline: image index %d; expected 0 to %d (the request has %d images)", i, pl.total-1, pl.total)
			}
			if k > 0 && i <= req.Only[k-1] {
				return nil, fmt.Errorf("pipeline: image indices %v; expected increasing indices without repeats", req.Only)
			}
			pl.indices = append(pl.indices, i)
		}
	}
	if len(req.Seeds) > 0 && len(req.Seeds) != pl.total {
		return nil, fmt.Errorf("pipeline: %d seeds for %d images; expected one per image", len(req.Seeds), pl.total)
	}
	for _, i := range pl.indices {
		pl.prompts = append(pl.prompts, prompts[i/n])
		pl.negatives = append(pl.negatives, negs[i/n])
	}
	switch req.LongPrompt {
	case "", LongPromptTruncate:
	case LongPromptChunk:
		pl.chunk = true
	default:
		return nil, fmt.Errorf("pipeline: long-prompt mode %q; expected %q or %q", req.LongPrompt, LongPromptTruncate, LongPromptChunk)
	}
	pl.h, pl.w = req.Height, req.Width
	dh, dw := p.DefaultSize()
	if pl.h == 0 {
		pl.h = dh
	}
	if pl.w == 0 {
		pl.w = dw
	}
	f := p.VAEScaleFactor()
	if pl.h < 0 || pl.w < 0 || pl.h%f != 0 || pl.w%f != 0 || pl.h > MaxSize || pl.w > MaxSize {
		return nil, SizeError(pl.w, pl.h, f)
	}
	pl.lh, pl.lw = pl.h/f, pl.w/f
	pl.steps = req.Steps
	if pl.steps == 0 {
		pl.steps = 50
	}
	if pl.steps < 1 || pl.steps > 1000 {
		return nil, fmt.Errorf("pipeline: %d steps; expected 1 to 1000", pl.steps)
	}
	if math.IsNaN(req.Guidance) || math.IsInf(req.Guidance, 0) {
		return nil, fmt.Errorf("pipeline: guidance scale %v; expected a finite number (7.5 is usual)", req.Guidance)
	}
	if !(req.GuidanceRescale >= 0 && req.GuidanceRescale <= 1) {
		return nil, fmt.Errorf("pipeline: guidance rescale %v; expected a value in [0, 1]", req.GuidanceRescale)
	}
	if !(req.Eta >= 0 && req.Eta <= 1) {
		return nil, fmt.Errorf("pipeline: eta %v; expected a value in [0, 1]", req.Eta)
	}
	pl.cfg = req.Guidance > 1
	pl.batch = req.BatchSize
	if pl.batch < 0 {
		return nil, fmt.Errorf("pipeline: batch size %d; expected 0 (all at once) or more", pl.batch)
	}
	if pl.batch == 0 || pl.batch > len(pl.prompts) {
		pl.batch = len(pl.prompts)
	}
	if img2img {
		if req.InitImage == nil {
			if m == modeInpaint {
				return nil, errors.New("pipeline: inpainting needs an init image")
			}
			return nil, errors.New("pipeline: image-to-image needs an init image")
		}
		if !(req.Strength >= 0 && req.Strength <= 1) {
			return nil, fmt.Errorf("pipeline: strength %v; expected a value in [0, 1]", req.Strength)
		}
	}
	if err := p.planInpaint(pl, req, warn); err != nil {
		return nil, err
	}
	if err := p.checkMemory(pl, img2img, warn); err != nil {
		return nil, err
	}
	s, err := p.NewScheduler(req.Scheduler, req.Eta)
	if err != nil {
		return nil, err
	}
	if err := s.SetTimesteps(pl.steps); err != nil {
		return nil, errctx.Wrap("pipeline", err)
	}
	pl.sched = s
	if warn {
		if math.Abs(req.Guidance) > 100 {
			p.warn(fmt.Sprintf("guidance scale %g is far outside the usual 1 to 20: expect saturated images, or values that overflow (the run then stops at the step that went non-finite)", req.Guidance))
		}
		if err := p.warnPrompts(pl, req); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// warnPrompts tells Warn about prompts that are empty or that the text
// encoder's window truncates.
func (p *Pipeline) warnPrompts(pl *plan, req *Request) error {
	seen := map[string]bool{}
	for i, text := range pl.prompts {
		neg := pl.negatives[i]
		if text == "" && !seen[""] {
			seen[""] = true
			p.warn("the prompt is empty: the images are generated without text conditioning")
		}
		for _, t := range []string{text, neg} {
			if seen[t] || t == "" {
				continue
			}
			seen[t] = true
			if pl.chunk {
				continue
			}
			toks, err := p.Tokenizer.Tokens(t)
			if err != nil {
				return fmt.Errorf("pipeline: prompt %q: %w", t, err)
			}
			keep := p.Tokenizer.MaxLength() - 2
			if len(toks) > keep {
				what := "the prompt"
				if t != text {
					what = "the negative prompt"
				}
				p.warn(fmt.Sprintf("%s has %d tokens; the text encoder reads %d, so the last %d (%q) are dropped (as diffusers does); -long-prompt chunk encodes all of them",
					what, len(toks), keep, len(toks)-keep, p.Tokenizer.Decode(toks[keep:])))
			}
		}
	}
	return nil
}

// warn passes a message to the pipeline's Warn, if set.
func (p *Pipeline) warn(msg string) {
	if p.Warn != nil {
		p.Warn(msg)
	}
}

// encodeText returns the text encoder's last hidden states for texts: [len,
// S, D] with S the tokenizer's length, or with chunk a multiple of it (as
// many windows as the longest text needs, for every text).
func (p *Pipeline) encodeText(texts []string, chunk bool) (*tensor.Tensor, error) {
	var rows [][]int32
	windows := 1
	if chunk {
		per := make([][][]int32, len(texts))
		for i, t := range texts {
			ids, _, err := p.Tokenizer.EncodeChunks(t)
			if err != nil {
				return nil, fmt.Errorf("pipeline: prompt %q: %w", t, err)
			}
			per[i] = ids
			windows = max(windows, len(ids))
		}
		empty, _, err := p.Tokenizer.Encode("")
		if err != nil {
			return nil, errctx.Wrap("pipeline", err)
		}
		for _, ids := range per {
			rows = append(rows, ids...)
			for k := len(ids); k < windows; k++ {
				rows = append(rows, empty)
			}
		}
	} else {
		for _, t := range texts {
			ids, _, err := p.Tokenizer.Encode(t)
			if err != nil {
				return nil, fmt.Errorf("pipeline: prompt %q: %w", t, err)
			}
			rows = append(rows, ids)
		}
	}
	ids := clip.IDs(rows...)
	defer ids.Release()
	di := p.toDevice(ids)
	defer di.Release()
	h := p.TextEncoder.Forward(di) // [len*windows, S, D]
	if windows == 1 {
		return h, nil
	}
	defer h.Release()
	return h.Reshape(len(texts), windows*h.Dim(1), h.Dim(2)), nil
}

// Txt2Img generates images from text (see the package doc). When it stops
// early (the context is cancelled, the callback cancels, or a step goes
// non-finite) after some batches were finished, it returns those batches'
// images in a Result together with the error.
func (p *Pipeline) Txt2Img(ctx context.Context, req Request) (*Result, error) {
	if req.MaskImage != nil {
		return nil, errors.New("pipeline: Txt2Img got a mask; use Inpaint")
	}
	return p.run(ctx, &req, modeTxt2Img)
}

// Img2Img generates images from req.InitImage and text (see the package
// doc). With a strength so low that no step remains, the images are the
// VAE's reconstruction of the init image. It returns finished images with
// an error as Txt2Img does.
func (p *Pipeline) Img2Img(ctx context.Context, req Request) (*Result, error) {
	if req.MaskImage != nil {
		return nil, errors.New("pipeline: Img2Img got a mask; use Inpaint")
	}
	return p.run(ctx, &req, modeImg2Img)
}

// run is generate with device failures (out of device memory, a failed
// kernel launch) returned as errors.
func (p *Pipeline) run(ctx context.Context, req *Request, m mode) (res *Result, err error) {
	if derr := tensor.Catch(func() { res, err = p.generate(ctx, req, m) }); derr != nil {
		return res, errctx.Wrap("pipeline", derr)
	}
	return res, err
}

// noiseFor returns the generators of a request's images: gens[j] for image
// pl.indices[j] with per-image seeds, or one shared generator.
func noiseFor(req *Request, pl *plan) (shared *rng.Generator, gens []*rng.Generator) {
	if !req.PerImageSeeds && len(req.Seeds) == 0 {
		return rng.New(req.Seed), nil
	}
	gens = make([]*rng.Generator, len(pl.indices))
	for j, i := range pl.indices {
		if len(req.Seeds) > 0 {
			gens[j] = rng.New(req.Seeds[i])
		} else {
			gens[j] = rng.New(req.Seed + uint64(i))
		}
	}
	return nil, gens
}

// batchSource is the tensor.RandSource of one batch of images lo..hi-1 (of
// the generated ones): with per-image generators, each image's share of a
// draw comes from its own generator; with the shared generator and a
// selection (Request.Only), a draw for the batch draws for every image of
// the whole request and keeps the batch's rows; otherwise the shared
// generator itself.
func batchSource(pl *plan, shared *rng.Generator, gens []*rng.Generator, lo, hi int) tensor.RandSource {
	switch {
	case gens != nil:
		return rowSource(gens[lo:hi])
	case len(pl.indices) != pl.total:
		return &selectSource{g: shared, total: pl.total, rows: pl.indices[lo:hi]}
	}
	return shared
}

// rowSource splits every draw into equal parts, one per generator.
type rowSource []*rng.Generator

func (r rowSource) split(dst []float32, f func(g *rng.Generator, part []float32)) {
	n := len(dst) / len(r)
	if n*len(r) != len(dst) {
		panic(fmt.Sprintf("pipeline: a draw of %d values for %d images", len(dst), len(r)))
	}
	for j, g := range r {
		f(g, dst[j*n:(j+1)*n])
	}
}

// Normal draws each image's part from its generator.
func (r rowSource) Normal(dst []float32, mean, std float32) {
	r.split(dst, func(g *rng.Generator, part []float32) { g.Normal(part, mean, std) })
}

// Uniform draws each image's part from its generator.
func (r rowSource) Uniform(dst []float32, from, to float32) {
	r.split(dst, func(g *rng.Generator, part []float32) { g.Uniform(part, from, to) })
}

// selectSource draws for all total images and keeps rows.
type selectSource struct {
	g     *rng.Generator
	total int
	rows  []int
}

func (s *selectSource) draw(dst []float32, f func(all []float32)) {
	n := len(dst) / len(s.rows)
	if n*len(s.rows) != len(dst) {
		panic(fmt.Sprintf("pipeline: a draw of %d values for %d images", len(dst), len(s.rows)))
	}
	all := make([]float32, n*s.total)
	f(all)
	for j, i := range s.rows {
		copy(dst[j*n:(j+1)*n], all[i*n:(i+1)*n])
	}
}

// Normal draws for every image of the request and keeps the selected rows.
func (s *selectSource) Normal(dst []float32, mean, std float32) {
	s.draw(dst, func(all []float32) { s.g.Normal(all, mean, std) })
}

// Uniform draws for every image of the request and keeps the selected rows.
func (s *selectSource) Uniform(dst []float32, from, to float32) {
	s.draw(dst, func(all []float32) { s.g.Uniform(all, from, to) })
}

// finite reports whether every value of the F32 host tensor t is finite. It
// reads the latents in place (they are contiguous F32 on the host), so the
// per-step check allocates nothing.
func finite(t *tensor.Tensor) bool {
	vals := func() []float32 { return t.Float32s() }
	if t.DType() == tensor.F32 && t.Device() == tensor.CPU && t.IsContiguous() {
		vals = t.F32Data
	}
	for _, v := range vals() {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return true
}

func (p *Pipeline) generate(ctx context.Context, req *Request, m mode) (*Result, error) {
	start := time.Now()
	pl, err := p.plan(req, m, true)
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	res := &Result{
		Prompts: pl.prompts, Negatives: pl.negatives, Seed: req.Seed, Steps: pl.steps,
		Guidance: req.Guidance, Scheduler: pl.sched.Name(), Height: pl.h, Width: pl.w,
		ModelName: p.name(), Strength: req.Strength, img2img: m == modeImg2Img || (m == modeInpaint && !pl.inpaintModel),
		Total: pl.total, PerImageSeeds: req.PerImageSeeds || len(req.Seeds) > 0, Seeds: req.Seeds,
	}
	n := len(pl.prompts)

	// Text: rows [negatives; prompts] (only prompts without guidance).
	t0 := time.Now()
	texts := pl.prompts
	if pl.cfg {
		texts = append(append([]string{}, pl.negatives...), pl.prompts...)
	}
	embeds, err := p.encodeCached(req.TextCache, texts, pl.chunk)
	if err != nil {
		return nil, err
	}
	defer embeds.Release()
	if req.trace != nil && req.trace.embeds != nil {
		req.trace.embeds(embeds)
	}
	p.dropResident(p.TextEncoder)
	res.Timings.TextEncoding = time.Since(t0)
	traceMem("text encoded")

	// Initial latents.
	shared, gens := noiseFor(req, pl)
	all := batchSource(pl, shared, gens, 0, n)
	c := p.VAE.Config.LatentChannels
	var latents *tensor.Tensor
	var inp *inpaintState
	first := 0
	switch {
	case m == modeTxt2Img || pl.inpaintModel:
		noise := tensor.Randn(all, n, c, pl.lh, pl.lw)
		latents = noise.MulScalar(float32(pl.sched.InitNoiseSigma()))
		noise.Release()
		if pl.inpaintModel {
			res.Inpaint = InpaintModel
			if inp, err = p.inpaintModelInputs(req, pl, shared, gens); err != nil {
				latents.Release()
				return nil, err
			}
		}
	case m == modeImg2Img:
		latents, first, err = p.img2imgLatents(req, pl, shared, gens)
		if err != nil {
			return nil, err
		}
	default:
		res.Inpaint = InpaintLegacy
		if latents, inp, first, err = p.legacyInpaintLatents(req, pl, shared, gens); err != nil {
			return nil, err
		}
	}
	defer latents.Release()
	defer inp.release()
	if req.trace != nil && req.trace.init != nil {
		req.trace.init(latents)
	}
	// Denoise and decode batch by batch, so that an interruption keeps the
	// finished batches' images.
	nsteps := len(pl.sched.Timesteps()) - first
	res.StepsRun = pl.steps - first/max(pl.sched.Order(), 1)
	nb := (n + pl.batch - 1) / pl.batch
	total := nsteps * nb
	inv := float32(1 / p.VAE.Config.ScalingFactor)
	for b := 0; b < nb; b++ {
		lo, hi := b*pl.batch, min((b+1)*pl.batch, n)
		tb := time.Now()
		x := latents.Narrow(0, lo, hi-lo)
		var cond *tensor.Tensor
		if pl.cfg {
			u, c := embeds.Narrow(0, lo, hi-lo), embeds.Narrow(0, n+lo, hi-lo)
			cond = tensor.Cat(0, u, c)
			u.Release()
			c.Release()
		} else {
			c := embeds.Narrow(0, lo, hi-lo)
			cond = c.Contiguous()
			c.Release()
		}
		if b > 0 {
			if err := pl.sched.SetTimesteps(pl.steps); err != nil { // resets the multistep state
				x.Release()
				cond.Release()
				return res.partial(err)
			}
		}
		cancelled := false
		var bad error
		opts := diffusion.SampleOptions{Noise: batchSource(pl, shared, gens, lo, hi), Start: first}
		offset := b * nsteps
		opts.Callback = func(step, all int, t float64, lat *tensor.Tensor) bool {
			if inp.legacy() {
				inp.blend(pl.sched, lat, lo, hi, t, req.trace)
			}
			if !req.AllowNonFinite && !finite(lat) {
				bad = fmt.Errorf("pipeline: step %d of %d (timestep %v): the latents' %w; check the weights, the guidance scale and the scheduler config, or allow it with AllowNonFinite (-allow-nonfinite)",
					first+step+1, first+all, t, ErrNonFinite)
				return false
			}
			if req.Callback != nil && !req.Callback(offset+step, total, t, lat) {
				cancelled = true
				return false
			}
			return true
		}
		extra := inp.extraRows(lo, hi)
		out, err := diffusion.Sample(ctx, pl.sched, p.denoiser(req, pl, cond, extra), x, opts)
		extra.Release()
		if err == nil && inp.legacy() {
			out = inp.finalBlend(out, lo, hi)
		}
		cond.Release()
		x.Release()
		if err == nil && bad != nil {
			err = bad
		} else if err == nil && cancelled {
			err = ErrCancelled
		}
		if err != nil {
			if out != nil {
				out.Release()
			}
			return res.partial(err)
		}
		res.Timings.Steps += nsteps
		res.Timings.Denoising += time.Since(tb)
		traceMem("denoised")
		if b == nb-1 {
			p.dropResident(p.UNet)
			p.trimMemory()
		}

		td := time.Now()
		zh := out.MulScalar(inv)
		z := p.toDevice(zh)
		zh.Release()
		var dec *tensor.Tensor
		if pl.tiledDecode {
			dec = toHost(p.VAE.TiledDecode(z))
		} else {
			dec = toHost(p.VAE.Decode(z))
		}
		z.Release()
		traceMem("vae decode")
		if req.trace != nil && req.trace.final != nil {
			req.trace.final(out, dec)
		}
		out.Release()
		if !req.AllowNonFinite && !finite(dec) {
			dec.Release()
			return res.partial(fmt.Errorf("pipeline: the VAE decoder's output %w; check the VAE weights, or allow it with AllowNonFinite (-allow-nonfinite)", ErrNonFinite))
		}
		res.Images = append(res.Images, TensorToImages(dec)...)
		if req.KeepDecoded {
			res.Decoded = append(res.Decoded, splitDecoded(dec)...)
		}
		res.Indices = append(res.Indices, pl.indices[lo:hi]...)
		dec.Release()
		res.Timings.Decoding += time.Since(td)
		if req.Done != nil {
			if res.ModelHash == "" {
				res.ModelHash = p.ModelHash()
			}
			for i := lo; i < hi; i++ {
				if err := req.Done(res, i); err != nil {
					res.Images, res.Indices = res.Images[:i], res.Indices[:i]
					if req.KeepDecoded {
						res.Decoded = res.Decoded[:i]
					}
					return res.partial(err)
				}
			}
		}
		if b < nb-1 {
			if err := ctx.Err(); err != nil {
				return res.partial(err)
			}
		}
	}
	traceMem("decoded")
	res.ModelHash = p.ModelHash()
	res.Timings.Total = time.Since(start)
	return res, nil
}

// partial returns the images finished so far (nil if none) with err.
func (r *Result) partial(err error) (*Result, error) {
	if len(r.Images) == 0 {
		return nil, err
	}
	r.Prompts = r.Prompts[:len(r.Images)]
	r.Negatives = r.Negatives[:len(r.Images)]
	return r, err
}

// denoiser is the guided U-Net for one batch: cond holds [uncond; cond]
// embeddings (2B rows) with guidance, B rows without. extra (nil but for an
// inpainting U-Net) holds the batch's extra input channels [B, 5, h, w]
// (mask, masked-image latents), concatenated after the scaled latents as
// diffusers' StableDiffusionInpaintPipeline does (duplicated with
// guidance).
func (p *Pipeline) denoiser(req *Request, pl *plan, cond, extra *tensor.Tensor) diffusion.Denoiser {
	return func(ctx context.Context, x *tensor.Tensor, t float64) (*tensor.Tensor, error) {
		in := x
		if pl.cfg {
			in = tensor.Cat(0, x, x)
		}
		if extra != nil {
			e := extra
			if pl.cfg {
				e = tensor.Cat(0, extra, extra)
			}
			cat := tensor.Cat(1, in, e)
			if e != extra {
				e.Release()
			}
			if in != x {
				in.Release()
			}
			in = cat
		}
		hts := tensor.Scalar(float32(t))
		ts := p.toDevice(hts)
		hts.Release()
		din := p.toDevice(in)
		out := toHost(p.UNet.Forward(din, ts, cond))
		din.Release()
		ts.Release()
		traceMem("unet step")
		if req.trace != nil && req.trace.unet != nil {
			req.trace.unet(in, out, t)
		}
		if in != x {
			in.Release()
		}
		if !pl.cfg {
			if req.trace != nil && req.trace.step != nil {
				req.trace.step(x, out, t)
			}
			return out, nil
		}
		guided := diffusion.Guide(out, req.Guidance)
		if req.GuidanceRescale > 0 {
			b := x.Dim(0)
			c := out.Narrow(0, b, b)
			r := diffusion.RescaleGuidance(guided, c, req.GuidanceRescale)
			c.Release()
			guided.Release()
			guided = r
		}
		out.Release()
		if req.trace != nil && req.trace.step != nil {
			req.trace.step(x, guided, t)
		}
		return guided, nil
	}
}

// img2imgLatents encodes the init image and noises it to the first timestep
// of the img2img schedule; it returns the latents [N, C, h, w] and the index
// of that timestep. With the shared generator the posterior is sampled once
// for every image (diffusers duplicates one encoding); with per-image
// generators each image samples it from its own.
func (p *Pipeline) img2imgLatents(req *Request, pl *plan, shared *rng.Generator, gens []*rng.Generator) (*tensor.Tensor, int, error) {
	lat, init, noise, first, err := p.noisedInit(req, pl, shared, gens)
	if err != nil {
		return nil, 0, err
	}
	init.Release()
	noise.Release()
	return lat, first, nil
}

// noisedInit is img2imgLatents keeping its parts: the noised latents, the
// encoded init image (scaled, [N, C, h, w]) and the noise (nil when no step
// is left: the latents are then a copy of the encoded image).
func (p *Pipeline) noisedInit(req *Request, pl *plan, shared *rng.Generator, gens []*rng.Generator) (lat, init, noise *tensor.Tensor, first int, err error) {
	first, err = diffusion.ImageToImageStart(pl.steps, req.Strength, pl.sched.Order())
	if err != nil {
		return nil, nil, nil, 0, errctx.Wrap("pipeline", err)
	}
	hx := ImageToTensor(req.InitImage, pl.w, pl.h)
	req.trace.values("prep_image", hx)
	init = p.encodeImage(hx, req.EncodeMode, len(pl.prompts), shared, gens)
	hx.Release()
	req.trace.values("init_latents", init)
	ts := pl.sched.Timesteps()
	if first >= len(ts) {
		return init.Clone(), init, nil, first, nil
	}
	n := len(pl.prompts)
	noise = tensor.Randn(batchSource(pl, shared, gens, 0, n), init.Shape()...)
	req.trace.values("noise", noise)
	tsRows := make([]float64, n)
	for i := range tsRows {
		tsRows[i] = ts[first]
	}
	lat = pl.sched.AddNoise(init, noise, tsRows)
	return lat, init, noise, first, nil
}

// encodeImage encodes the host image tensor hx [1, 3, H, W] with the VAE
// and returns n rows of scaled latents [n, C, h, w]: the posterior's mean
// with mode, else a sample, drawn once from the shared generator (one
// encoding repeated, as diffusers does) or once per image from gens.
func (p *Pipeline) encodeImage(hx *tensor.Tensor, mode bool, n int, shared *rng.Generator, gens []*rng.Generator) *tensor.Tensor {
	x := p.toDevice(hx)
	dist := p.VAE.Encode(x)
	x.Release()
	defer dist.Release()
	sample := func(g tensor.RandSource) *tensor.Tensor {
		var z *tensor.Tensor
		if mode {
			z = dist.Mode()
		} else {
			z = dist.Sample(g)
		}
		z = toHost(z)
		scaled := z.MulScalar(float32(p.VAE.Config.ScalingFactor))
		z.Release()
		return scaled
	}
	rows := make([]*tensor.Tensor, n)
	if gens == nil {
		scaled := sample(shared)
		defer scaled.Release()
		for i := range rows {
			rows[i] = scaled
		}
	} else {
		for i := range rows {
			rows[i] = sample(gens[i])
			defer rows[i].Release()
		}
	}
	return tensor.Cat(0, rows...)
}

// name is the model's name for the metadata: the folder's or file's base
// name, never the path as typed.
func (p *Pipeline) name() string {
	switch {
	case p.Demo:
		return "roentgo-demo (random weights)"
	case p.modelName != "":
		return p.modelName
	case p.Path != "":
		abs, err := filepath.Abs(p.Path)
		if err != nil {
			abs = p.Path
		}
		return filepath.Base(abs)
	}
	return "random"
}

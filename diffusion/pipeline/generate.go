package pipeline

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"strconv"
	"time"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/diffusion"
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

	trace *trace // test hooks
}

// trace records the intermediate values of a run (tests).
type trace struct {
	embeds func(e *tensor.Tensor)
	init   func(latents *tensor.Tensor)
	unet   func(in, out *tensor.Tensor, t float64)
	step   func(sample, guided *tensor.Tensor, t float64)
	final  func(latents, decoded *tensor.Tensor)
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
	Strength             float64 // Img2Img only
	img2img              bool
}

// Text returns the PNG text metadata of image i: prompt, negative_prompt,
// seed, steps, scheduler, guidance_scale, size (WxH), model_hash, model,
// strength (img2img), index, software and an A1111-style "parameters" line
// that common tools read.
func (r *Result) Text(i int) []TextChunk {
	g := strconv.FormatFloat(r.Guidance, 'g', -1, 64)
	size := fmt.Sprintf("%dx%d", r.Width, r.Height)
	t := []TextChunk{
		{"prompt", r.Prompts[i]},
		{"negative_prompt", r.Negatives[i]},
		{"seed", strconv.FormatUint(r.Seed, 10)},
		{"steps", strconv.Itoa(r.Steps)},
		{"scheduler", r.Scheduler},
		{"guidance_scale", g},
		{"size", size},
		{"model_hash", r.ModelHash},
		{"model", r.ModelName},
		{"index", strconv.Itoa(i)},
	}
	if r.img2img {
		t = append(t, TextChunk{"strength", strconv.FormatFloat(r.Strength, 'g', -1, 64)})
	}
	t = append(t, TextChunk{"software", "roentgo"})
	params := r.Prompts[i]
	if r.Negatives[i] != "" {
		params += "\nNegative prompt: " + r.Negatives[i]
	}
	params += fmt.Sprintf("\nSteps: %d, Sampler: %s, CFG scale: %s, Seed: %d, Size: %s, Model hash: %s", r.Steps, r.Scheduler, g, r.Seed, size, r.ModelHash)
	if r.img2img {
		params += ", Denoising strength: " + strconv.FormatFloat(r.Strength, 'g', -1, 64)
	}
	return append(t, TextChunk{"parameters", params})
}

// plan is a validated request.
type plan struct {
	prompts, negatives []string // one per image
	h, w, lh, lw       int
	steps              int
	cfg                bool
	sched              diffusion.Scheduler
	batch              int
}

// Validate checks a request against the pipeline without running it and
// returns the first problem (sizes, steps, scheduler, counts, strength).
func (p *Pipeline) Validate(req *Request) error {
	_, err := p.plan(req, req.InitImage != nil)
	return err
}

func (p *Pipeline) plan(req *Request, img2img bool) (*plan, error) {
	pl := &plan{}
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
	if n < 0 || n > 10000 {
		return nil, fmt.Errorf("pipeline: %d images per prompt; expected 1 to 10000", n)
	}
	for i := range prompts {
		for k := 0; k < n; k++ {
			pl.prompts = append(pl.prompts, prompts[i])
			pl.negatives = append(pl.negatives, negs[i])
		}
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
	if pl.h < 0 || pl.w < 0 || pl.h%f != 0 || pl.w%f != 0 || pl.h > 16384 || pl.w > 16384 {
		return nil, fmt.Errorf("pipeline: image size %dx%d: width and height must be positive multiples of %d (the VAE's downsampling factor), at most 16384", pl.w, pl.h, f)
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
			return nil, errors.New("pipeline: image-to-image needs an init image")
		}
		if !(req.Strength >= 0 && req.Strength <= 1) {
			return nil, fmt.Errorf("pipeline: strength %v; expected a value in [0, 1]", req.Strength)
		}
	}
	s, err := p.NewScheduler(req.Scheduler, req.Eta)
	if err != nil {
		return nil, err
	}
	if err := s.SetTimesteps(pl.steps); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	pl.sched = s
	return pl, nil
}

// encodeText returns the text encoder's last hidden states for texts [len, S, D].
func (p *Pipeline) encodeText(texts []string) (*tensor.Tensor, error) {
	rows := make([][]int32, len(texts))
	for i, t := range texts {
		ids, _, err := p.Tokenizer.Encode(t)
		if err != nil {
			return nil, fmt.Errorf("pipeline: prompt %q: %w", t, err)
		}
		rows[i] = ids
	}
	ids := clip.IDs(rows...)
	defer ids.Release()
	di := p.toDevice(ids)
	defer di.Release()
	return p.TextEncoder.Forward(di), nil
}

// Txt2Img generates images from text (see the package doc).
func (p *Pipeline) Txt2Img(ctx context.Context, req Request) (*Result, error) {
	return p.run(ctx, &req, false)
}

// Img2Img generates images from req.InitImage and text (see the package
// doc). With a strength so low that no step remains, the images are the
// VAE's reconstruction of the init image.
func (p *Pipeline) Img2Img(ctx context.Context, req Request) (*Result, error) {
	return p.run(ctx, &req, true)
}

// run is generate with device failures (out of device memory, a failed
// kernel launch) returned as errors.
func (p *Pipeline) run(ctx context.Context, req *Request, img2img bool) (res *Result, err error) {
	if derr := tensor.Catch(func() { res, err = p.generate(ctx, req, img2img) }); derr != nil {
		return nil, fmt.Errorf("pipeline: %w", derr)
	}
	return res, err
}

func (p *Pipeline) generate(ctx context.Context, req *Request, img2img bool) (*Result, error) {
	start := time.Now()
	pl, err := p.plan(req, img2img)
	if err != nil {
		return nil, err
	}
	if ctx == nil {
		ctx = context.Background()
	}
	res := &Result{
		Prompts: pl.prompts, Negatives: pl.negatives, Seed: req.Seed, Steps: pl.steps,
		Guidance: req.Guidance, Scheduler: pl.sched.Name(), Height: pl.h, Width: pl.w,
		ModelName: p.name(), Strength: req.Strength, img2img: img2img,
	}
	n := len(pl.prompts)

	// Text: rows [negatives; prompts] (only prompts without guidance).
	t0 := time.Now()
	texts := pl.prompts
	if pl.cfg {
		texts = append(append([]string{}, pl.negatives...), pl.prompts...)
	}
	embeds, err := p.encodeText(texts)
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
	t1 := time.Now()
	g := rng.New(req.Seed)
	c := p.UNet.Config.InChannels
	var latents *tensor.Tensor
	first := 0
	if !img2img {
		noise := tensor.Randn(g, n, c, pl.lh, pl.lw)
		latents = noise.MulScalar(float32(pl.sched.InitNoiseSigma()))
		noise.Release()
	} else {
		latents, first, err = p.img2imgLatents(req, pl, g)
		if err != nil {
			return nil, err
		}
	}
	if req.trace != nil && req.trace.init != nil {
		req.trace.init(latents)
	}
	// Denoise batch by batch.
	nsteps := len(pl.sched.Timesteps()) - first
	nb := (n + pl.batch - 1) / pl.batch
	total := nsteps * nb
	finals := make([]*tensor.Tensor, 0, nb)
	defer func() {
		for _, f := range finals {
			f.Release()
		}
	}()
	for b := 0; b < nb; b++ {
		lo, hi := b*pl.batch, min((b+1)*pl.batch, n)
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
				return nil, err
			}
		}
		cancelled := false
		opts := diffusion.SampleOptions{Noise: g, Start: first}
		offset := b * nsteps
		opts.Callback = func(step, _ int, t float64, lat *tensor.Tensor) bool {
			if req.Callback != nil && !req.Callback(offset+step, total, t, lat) {
				cancelled = true
				return false
			}
			return true
		}
		out, err := diffusion.Sample(ctx, pl.sched, p.denoiser(req, pl, cond), x, opts)
		cond.Release()
		if err != nil {
			latents.Release()
			return nil, err
		}
		if cancelled {
			out.Release()
			latents.Release()
			return nil, ErrCancelled
		}
		finals = append(finals, out)
		res.Timings.Steps += nsteps
	}
	latents.Release()
	p.dropResident(p.UNet)
	p.trimMemory()
	res.Timings.Denoising = time.Since(t1)
	traceMem("denoised")

	// Decode.
	t2 := time.Now()
	inv := float32(1 / p.VAE.Config.ScalingFactor)
	for _, f := range finals {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		zh := f.MulScalar(inv)
		z := p.toDevice(zh)
		zh.Release()
		dec := toHost(p.VAE.Decode(z))
		z.Release()
		traceMem("vae decode")
		if req.trace != nil && req.trace.final != nil {
			req.trace.final(f, dec)
		}
		res.Images = append(res.Images, TensorToImages(dec)...)
		dec.Release()
	}
	res.Timings.Decoding = time.Since(t2)
	traceMem("decoded")
	res.ModelHash = p.ModelHash()
	res.Timings.Total = time.Since(start)
	return res, nil
}

// denoiser is the guided U-Net for one batch: cond holds [uncond; cond]
// embeddings (2B rows) with guidance, B rows without.
func (p *Pipeline) denoiser(req *Request, pl *plan, cond *tensor.Tensor) diffusion.Denoiser {
	return func(ctx context.Context, x *tensor.Tensor, t float64) (*tensor.Tensor, error) {
		in := x
		if pl.cfg {
			in = tensor.Cat(0, x, x)
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
// of that timestep.
func (p *Pipeline) img2imgLatents(req *Request, pl *plan, g *rng.Generator) (*tensor.Tensor, int, error) {
	first, err := diffusion.ImageToImageStart(pl.steps, req.Strength, pl.sched.Order())
	if err != nil {
		return nil, 0, fmt.Errorf("pipeline: %w", err)
	}
	n := len(pl.prompts)
	hx := ImageToTensor(req.InitImage, pl.w, pl.h)
	x := p.toDevice(hx)
	hx.Release()
	dist := p.VAE.Encode(x)
	x.Release()
	var z *tensor.Tensor
	if req.EncodeMode {
		z = dist.Mode()
	} else {
		z = dist.Sample(g)
	}
	dist.Release()
	z = toHost(z)
	scaled := z.MulScalar(float32(p.VAE.Config.ScalingFactor))
	z.Release()
	// One encoding for every image, as diffusers duplicates it.
	rows := make([]*tensor.Tensor, n)
	for i := range rows {
		rows[i] = scaled
	}
	init := tensor.Cat(0, rows...)
	scaled.Release()
	ts := pl.sched.Timesteps()
	if first >= len(ts) {
		return init, first, nil
	}
	noise := tensor.Randn(g, init.Shape()...)
	tsRows := make([]float64, n)
	for i := range tsRows {
		tsRows[i] = ts[first]
	}
	lat := pl.sched.AddNoise(init, noise, tsRows)
	noise.Release()
	init.Release()
	return lat, first, nil
}

func (p *Pipeline) name() string {
	switch {
	case p.Demo:
		return "roentgo-demo (random weights)"
	case p.Path != "":
		return p.Path
	}
	return "random"
}

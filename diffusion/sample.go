package diffusion

import (
	"context"
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// Denoiser is the model as the samplers see it: given the scaled latents
// x ([B, C, H, W], ScaleModelInput's output) and the timestep t, it returns
// the model output (noise, v or x0 as the scheduler's prediction type says),
// shaped like x. Classifier-free guidance lives inside a Denoiser (double the
// batch, evaluate, Guide). The returned tensor belongs to the caller.
type Denoiser func(ctx context.Context, x *tensor.Tensor, t float64) (*tensor.Tensor, error)

// Callback is called after each step with the step index (0-based), the
// number of steps, the timestep just taken and the new latents (valid only
// during the call: Clone them to keep them). Returning false stops the loop
// early; Sample then returns those latents.
type Callback func(step, total int, t float64, latents *tensor.Tensor) bool

// SampleOptions are Sample's optional inputs.
type SampleOptions struct {
	// Noise is the generator for schedulers that draw noise per step (DDPM,
	// DDIM with eta > 0, Euler ancestral; Euler draws and discards one, as
	// diffusers does). In diffusers it is the pipeline's generator, after the
	// initial latents were drawn.
	Noise tensor.RandSource
	// Start is the index into Timesteps() to start from (img2img: see
	// ImageToImageStart); 0 runs every step.
	Start int
	// Callback, if set, is called after every step.
	Callback Callback
}

// Sample runs the sampling loop of a diffusers pipeline: for each timestep t
// of s.Timesteps()[opts.Start:], it evaluates denoise on
// s.ScaleModelInput(x, t) and moves x with s.Step. x is the starting
// latents, already scaled (txt2img: standard normal noise times
// s.InitNoiseSigma(); img2img: s.AddNoise of the encoded image at the first
// timestep); it is not modified nor released. Call s.SetTimesteps first.
//
// The context is checked before every step: when it is cancelled Sample
// returns nil and ctx.Err(). A Denoiser error stops the loop and is
// returned.
func Sample(ctx context.Context, s Scheduler, denoise Denoiser, x *tensor.Tensor, opts SampleOptions) (*tensor.Tensor, error) {
	ts := s.Timesteps()
	if len(ts) == 0 {
		panic("diffusion: Sample: call SetTimesteps first")
	}
	if opts.Start < 0 || opts.Start > len(ts) {
		panic(fmt.Sprintf("diffusion: Sample: start %d outside [0, %d]", opts.Start, len(ts)))
	}
	ts = ts[opts.Start:]
	cur := x
	own := false // whether cur is ours to release
	drop := func() {
		if own {
			cur.Release()
		}
	}
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			drop()
			return nil, err
		}
		in := s.ScaleModelInput(cur, t)
		out, err := denoise(ctx, in, t)
		if in != cur {
			in.Release()
		}
		if err != nil {
			drop()
			return nil, fmt.Errorf("diffusion: step %d of %d (t=%v): %w", i+1, len(ts), t, err)
		}
		if !out.Shape().Equal(cur.Shape()) {
			drop()
			return nil, fmt.Errorf("diffusion: step %d: the denoiser returned shape %v for latents %v", i+1, out.Shape(), cur.Shape())
		}
		so := s.Step(out, t, cur, opts.Noise)
		out.Release()
		so.PredOriginal.Release()
		drop()
		cur, own = so.PrevSample, true
		if opts.Callback != nil && !opts.Callback(i, len(ts), t, cur) {
			break
		}
	}
	if !own {
		cur = cur.Clone()
	}
	return cur, nil
}

// ImageToImageStart returns the index into Timesteps() at which img2img
// starts for n inference steps, a strength in [0, 1] and the scheduler's
// order (diffusers' get_timesteps): init = min(int(n strength), n),
// start = max(n - init, 0) * order. Strength 1 starts at pure noise (index
// 0); strength 0 skips every step. The img2img latents are
// s.AddNoise(image latents, noise, []float64{Timesteps()[start]}) per row.
func ImageToImageStart(n int, strength float64, order int) (int, error) {
	if !(strength >= 0 && strength <= 1) {
		return 0, fmt.Errorf("diffusion: strength is %v, expected a value in [0, 1]", strength)
	}
	if n < 1 {
		return 0, fmt.Errorf("diffusion: %d inference steps, expected at least 1", n)
	}
	if order < 1 {
		panic(fmt.Sprintf("diffusion: ImageToImageStart: order %d", order))
	}
	init := min(int(float64(n)*strength), n)
	return max(n-init, 0) * order, nil
}

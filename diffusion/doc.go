// Package diffusion is the mathematics of latent diffusion, independent of any
// network: noise schedules read from diffusers' scheduler_config.json, the
// model parameterisations (epsilon, v-prediction, sample), the samplers
// (DDPM, DDIM, PNDM/PLMS, Euler, Euler ancestral, Heun, LMS, DPM-Solver++ 2M),
// classifier-free guidance, the sampling loop and the training-side pieces
// (forward noising, training targets, timestep sampling).
//
// The split follows stable-diffusion.cpp and diffusers:
//
//   - Schedule holds betas, alphas and alphas_cumprod (float32, as torch
//     computes them) and gives AddNoise, Velocity and Target for training.
//   - A Scheduler (built by New from a name and a Config) turns model outputs
//     into the next latents with the semantics of diffusers 0.16.1, so that
//     the same inputs give the same trajectories (checked against golden data
//     from diffusers to 1e-5 relative). The names are SchedulerNames; New
//     also takes the spellings users know from other tools ("Euler a",
//     "DPM++ 2M Karras", "plms", "k_lms", diffusers class names), which
//     CanonicalSchedulerName maps to them. Where diffusers would fail on a
//     step count (1000 steps with Stable Diffusion's steps_offset 1 index
//     alphas_cumprod[1000]), SetTimesteps returns an error instead.
//   - Sample drives any Scheduler with a Denoiser, a function from (latents,
//     timestep) to the model output, so a U-Net, a guided U-Net or a test
//     function plug in the same way.
//
// Timesteps are float64 values: integers for DDPM, DDIM, PNDM and DPM-Solver
// (exactly representable), fractional for the sigma-based schedulers with
// Karras sigmas.
//
// Ownership: every tensor a function returns belongs to the caller (who may
// Release it), except that ScaleModelInput may return its input unchanged
// (compare pointers before releasing). Schedulers keep handles on the model
// outputs and samples they need for later steps; do not modify tensors in
// place after passing them to Step.
package diffusion

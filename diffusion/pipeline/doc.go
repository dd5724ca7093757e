// Package pipeline wires the pieces of Stable Diffusion together: the
// tokenizer and text encoder (package clip), the U-Net (package unet), the
// VAE (package vae) and a scheduler (package diffusion), loaded from a
// diffusers pipeline folder, into text-to-image and image-to-image
// generation with the semantics of diffusers 0.16.1's
// StableDiffusionPipeline, StableDiffusionImg2ImgPipeline and its two
// inpainting pipelines.
//
// Load reads a folder with model_index.json and the subfolders tokenizer/,
// text_encoder/, unet/, vae/ and scheduler/ (weights as .safetensors, PyTorch
// .bin, .fp16 variants or sharded index files, kept in their stored dtype or
// converted to Options.DType), or a single-file original checkpoint
// (.safetensors or .ckpt, SD1 or SD2 layout) with its tokenizer from
// Options.Tokenizer and non-standard configs from Options.ConfigDir. NewRandom builds a model with random
// weights from a fixed seed (Demo is the tiny one the example programs use
// when no model is given, with a byte-level tokenizer: its images are noise),
// and WriteRandom saves such a model as a diffusers folder.
//
// Generation follows diffusers step by step:
//
//	prompt_embeds = [text_encoder(negative or ""); text_encoder(prompt)]   [2N, 77, D]
//	latents       = randn([N, 4, H/f, W/f], generator(seed)) * init_noise_sigma
//	for t in timesteps:
//	    x   = scheduler.scale_model_input(latents, t)
//	    out = unet(cat([x, x]), t, prompt_embeds)                      one call on 2N rows
//	    eps = out_uncond + guidance (out_cond - out_uncond)            (rescaled if asked)
//	    latents = scheduler.step(eps, t, latents, generator)
//	image = clamp(vae.decode(latents / scaling_factor) / 2 + 0.5, 0, 1)
//	uint8 = round(image * 255)
//
// where f is the VAE's downsampling factor (8 for Stable Diffusion). The
// generator is tensor/rng's, which reproduces torch.Generator("cpu") bit for
// bit, so a seed gives diffusers' initial latents. Guidance of 1 or less
// turns classifier-free guidance off (one U-Net row per image), as in
// diffusers.
//
// Image-to-image encodes the init image (resized to cover the requested size,
// centre-cropped, scaled to [-1, 1]) with the VAE, samples the posterior with
// the generator (as diffusers does; Request.EncodeMode selects the mean
// instead), multiplies by scaling_factor, draws the noise from the same
// generator, and noises the latents to the first timestep of
// scheduler.timesteps[start:], start = diffusion.ImageToImageStart(steps,
// strength, order).
//
// Inpainting (Inpaint) repaints the white part of a mask: with an
// inpainting U-Net (9 input channels) as diffusers 0.16.1's
// StableDiffusionInpaintPipeline, with an ordinary model as its
// StableDiffusionInpaintPipelineLegacy (img2img plus blending at every
// step); see Inpaint.
//
// Outputs are 8-bit images; EncodePNG adds tEXt chunks with the generation
// parameters (ReadPNGText reads them back) and WriteFileAtomic writes files
// through a temporary file and a rename, so that no partial output is left
// behind.
package pipeline

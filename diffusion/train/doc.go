// Package train fine-tunes Stable Diffusion models on image + caption data
// (RoentGen's recipe: chest radiographs with the impressions of their
// reports), with the loop of diffusers 0.16.1's train_text_to_image.py:
//
//	latents = vae.encode(x).latent_dist.sample() * scaling_factor    (or the mean)
//	noise   = randn_like(latents) [+ noise_offset * randn(B, C, 1, 1)]
//	t       = randint(0, T, (B,))
//	noisy   = sqrt(acp[t]) latents + sqrt(1 - acp[t]) noise
//	ehs     = text_encoder(tokenize(caption, or "" with probability p))
//	target  = noise (epsilon) | sqrt(acp[t]) noise - sqrt(1 - acp[t]) latents (v_prediction)
//	loss    = mse(unet(noisy, t, ehs), target)   [min-SNR-gamma: per-sample weights]
//	backward; average over Accumulate micro-batches; clip; AdamW; EMA; LR schedule
//
// Config holds the settings (DefaultConfig: the script's defaults). New
// loads the model (pipeline.LoadForTraining: a diffusers folder, its U-Net
// and text encoder built with their parameters named), opens the dataset
// (package dataset, any layout) and prepares the optimiser; Step runs one
// optimiser step, Run all of them with checkpoints and the final model.
//
// # Modes
//
// A Mode chooses the trained parameters and how the result is saved:
// "full" trains every U-Net parameter with the text encoder frozen;
// "text+unet" trains both, the token embedding with row-sparse gradients.
// Both write a diffusers folder (Out/model) whose unet/ (and text_encoder/)
// weights are replaced — F32 safetensors under diffusers' names, the EMA
// averages when EMA is on — and whose other files are hard links or copies
// of the source model's; txt2img, img2img and diffusers load it.
// "lora" and "lora+text" freeze the models and train LoRA adapters
// (package nn/lora; Config.LoRA: rank, alpha, target presets or patterns)
// on the U-Net (and the text encoder), writing Out/model/
// pytorch_lora_weights.safetensors (diffusers' layout) and/or
// lora_kohya.safetensors; "ti" adds Config.TI.Placeholder to the tokenizer
// and the text encoder (package clip/ti) and trains only its rows, writing
// Out/model/learned_embeds.safetensors. pipeline.Options.LoRAs and
// Options.Embeddings load these files. RegisterMode adds modes; a mode's
// own parameters go to Models.Extra.
//
// # Latents
//
// Every image is encoded by the VAE on the data loader's goroutines into its
// posterior (mean and standard deviation); the training step samples
// mean + std * noise with the step's generator (SampleLatents) or uses the
// mean. With Config.LatentCache the posteriors go to a cache file
// (LatentCache) keyed by image path, size and modification time, resolution,
// flip and the hash of the VAE folder, reused across epochs and runs.
//
// # Randomness and exact resume
//
// Every random draw of micro-batch k (posterior sample, noise, noise
// offset, timesteps, conditioning dropout, in that order) comes from a
// tensor/rng generator (torch's CPU generator) seeded from (Seed, k), and
// the dataset order from Seed and the epoch. A checkpoint therefore needs
// no generator state: it holds the step, the dataset position, the F32
// masters of the trained parameters, the AdamW moments and step counts and
// the EMA averages. Resume from it and the remaining steps reproduce the
// uninterrupted run bit for bit on the CPU (the tests check N steps against
// k steps + checkpoint + Resume + N-k steps, file by file).
//
// # Checkpoints
//
// Out/checkpoint-NNNNNN/ holds trainer.json (version, step, total steps,
// dataset position, micro-batches drawn, mode, the whole Config),
// unet.safetensors and text_encoder.safetensors (the trained parameters'
// F32 masters under their diffusers names), lora.safetensors or
// embeddings.safetensors (the masters of a mode's own parameters,
// Models.Extra), optimizer.safetensors (AdamW:
// adamw.exp_avg.<name>, adamw.exp_avg_sq.<name>, step counts in metadata)
// and ema.safetensors (the averages under the parameters' names). A
// checkpoint is written into a temporary folder and renamed when complete,
// then Out/latest names it, so an interrupted write (a full disk) leaves the
// previous checkpoints intact.
//
// # Failures
//
// A NaN or infinite loss or gradient stops training with a
// *NonFiniteLossError naming the step; nothing is updated and the last
// checkpoint stays the newest. Run returns an *Interrupted after writing a
// checkpoint when its context is cancelled (Ctrl-C in examples/train).
package train

// Package sdckpt maps the parameter names of original single-file Stable
// Diffusion checkpoints (CompVis/Stability `.ckpt` and `.safetensors`: the
// LatentDiffusion state dict) to the diffusers names of the three model
// folders, through one table of rules:
//
//	model.diffusion_model.*            -> unet          (LDM UNetModel layout)
//	first_stage_model.*                -> vae           (LDM AutoencoderKL layout)
//	cond_stage_model.transformer.*     -> text_encoder  (SD1: HF CLIPTextModel, already text_model.*)
//	cond_stage_model.model.*           -> text_encoder  (SD2: OpenCLIP layout)
//
// Each original tensor gives one or more targets with a transform: Identity;
// Squeeze1x1 (VAE attention 1x1-conv weights [C,C,1,1] -> linear [C,C]);
// Chunk (OpenCLIP's fused attn.in_proj_weight/bias split along dim 0 into
// q, k, v); Transpose (OpenCLIP text_projection, only when requested).
//
// # U-Net
//
// The LDM U-Net numbers its blocks linearly: input_blocks.0 is conv_in, then
// each resolution level i has layers_per_block slots (ResBlock at .0, spatial
// transformer at .1) followed by one downsampler slot (.0.op) except the last
// level; output_blocks has layers_per_block+1 slots per level, where the
// last slot of a level (except the last) also holds the upsampler (.1 or .2,
// after the transformer when there is one). Sub-modules are recognised by
// their own parameter names (a transformer has proj_in/transformer_blocks, an
// upsampler has conv), so the map needs only layers_per_block; the block
// count and which blocks have attentions are checked when Config gives them.
// Inside a ResBlock: in_layers.0 -> norm1, in_layers.2 -> conv1,
// emb_layers.1 -> time_emb_proj, out_layers.0 -> norm2, out_layers.3 -> conv2,
// skip_connection -> conv_shortcut; transformer names are the same in both
// layouts.
//
// # VAE
//
// encoder.down.N.block.M -> encoder.down_blocks.N.resnets.M,
// down.N.downsample -> downsamplers.0, mid.block_1/attn_1/block_2 ->
// mid_block.resnets.0/attentions.0/resnets.1, norm_out -> conv_norm_out,
// nin_shortcut -> conv_shortcut. The decoder's levels run the other way:
// decoder.up.N -> decoder.up_blocks.(top-N), where top is the number of
// blocks minus one — or the largest index present when it is larger:
// diffusers' convert_diffusers_to_original_stable_diffusion.py writes
// up.(3-i) whatever the depth, so files it made from VAEs with fewer than four
// levels (like the tiny golden model) use indices 3, 2, ... The attention
// names come in two diffusers generations (see VAEAttentionNames): the golden
// diffusers 0.16.1 folder uses query/key/value/proj_attn.
//
// # Keys that are not weights of the three models
//
// Ignored on purpose (listed in Mapping.Ignored with the reason):
// model_ema.* (the EMA copy and its decay/num_updates), the DDPM schedule
// buffers at the top level (betas, alphas_cumprod, sqrt_..., posterior_...,
// logvar, lvlb_weights), first_stage_model.loss.* (the VAE's training loss
// and discriminator), OpenCLIP's logit_scale, attn_mask and visual tower,
// text_projection unless Config.TextProjection, and OpenCLIP layers at or
// beyond Config.TextLayers (SD2's text encoder uses the penultimate layer, so
// its diffusers config has 23 of the 24 layers). Keys under
// model.diffusion_model that already carry diffusers names (conversion
// scripts leave modules they do not know, such as up_blocks.0.attentions of
// a model whose first up block has attention) map to themselves.
// cond_stage_model.transformer.text_model.embeddings.position_ids maps to
// the same diffusers buffer; loaders may treat it as optional.
//
// # Loading
//
// Open reads a single file (.safetensors memory-mapped, or a PyTorch .ckpt
// through nn.OpenTorch), detects SD1 or SD2 from the text encoder's keys
// (DetectVariant), infers the sizes the mapping needs from the keys
// (InferConfig: U-Net and VAE levels and layers per level) unless a Config is
// given, and returns a Checkpoint whose Source(component) is an nn.Source in
// diffusers names with the transforms applied lazily on Load (views for
// Identity, Squeeze1x1 and Chunk). The models build from it with
// unet.FromCheckpoint, vae.FromCheckpoint and clip.TextModelFromCheckpoint,
// which default to the SD 1.5 or SD 2.1 configs by variant. The VAE attention
// names follow Config.VAEAttention (legacy by default); package vae accepts
// either. Report summarises the mapped, ignored and unmapped keys.
package sdckpt

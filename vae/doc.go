// Package vae is Stable Diffusion's first stage: diffusers' AutoencoderKL, the
// KL-regularised convolutional autoencoder of latent diffusion, built from
// package nn's layers with diffusers' parameter names and configured by a
// diffusers vae/config.json.
//
// The model is the variational autoencoder of Kingma & Welling 2014
// (Auto-Encoding Variational Bayes, https://arxiv.org/abs/1312.6114) in the form
// Rombach et al. 2022 use to compress images for diffusion (High-Resolution
// Image Synthesis with Latent Diffusion Models, https://arxiv.org/abs/2112.10752):
//
//	Encode: x [N, 3, H, W] in [-1, 1]
//	  conv_in; down_blocks[i]: ResNet x layers_per_block, downsamplers.0
//	  (pad right/bottom by 1, 3x3 conv stride 2; not after the last block);
//	  mid_block: ResNet, attention, ResNet; GroupNorm + SiLU, conv_out;
//	  quant_conv -> moments [N, 2L, h, w] = (mean, logvar)
//	  -> DiagonalGaussian: std = exp(logvar/2), z = mean + std * eps
//	Decode: z [N, L, h, w]
//	  post_quant_conv; conv_in; mid_block; up_blocks[i]: ResNet x
//	  (layers_per_block+1), upsamplers.0 (nearest 2x + 3x3 conv; not after the
//	  last block); GroupNorm + SiLU, conv_out -> [N, 3, H, W]
//
// The ResNet blocks have no time embedding (eps 1e-6); the mid-block attention
// is a single head over the C channels at the h*w positions, with a residual.
// Both its key sets are accepted: diffusers 0.16's query/key/value/proj_attn
// and the newer to_q/to_k/to_v/to_out.0.
//
// Latents are raw: the pipeline multiplies encoder samples by the config's
// scaling_factor (0.18215 for SD 1.x and 2.x) and divides by it before Decode.
//
// Large images are decoded in overlapping tiles whose seams are blended
// linearly, as diffusers' tiled_decode does (see AutoencoderKL.Tiling), which
// bounds the memory of the mid-block attention and the full-resolution
// activations. Use Load for a diffusers folder, or New with an nn.Builder.
package vae

// Package unet is Stable Diffusion's denoiser: diffusers' UNet2DConditionModel,
// the text-conditioned U-Net of latent diffusion, built from package nn's layers
// with diffusers' parameter names and configured by a diffusers unet/config.json.
//
// The network follows the figure of Ronneberger et al. 2015 (U-Net: Convolutional
// Networks for Biomedical Image Segmentation, https://arxiv.org/abs/1505.04597) as
// adapted to latent diffusion by Rombach et al. 2022 (High-Resolution Image
// Synthesis with Latent Diffusion Models, https://arxiv.org/abs/2112.10752):
//
//	sample [N, 4, h, w], timestep t, text states [N, 77, D]
//	  time_proj(t) -> time_embedding -> temb [N, 4*C0]        (every ResNet adds temb)
//	  conv_in                                  -> skip
//	  down_blocks[i]: (ResNet [+ Transformer2D]) x layers_per_block -> skip each,
//	                  downsamplers.0 (3x3 conv, stride 2)            -> skip
//	  mid_block:      ResNet, Transformer2D, ResNet
//	  up_blocks[i]:   (cat(h, skip) -> ResNet [+ Transformer2D]) x (layers_per_block+1),
//	                  upsamplers.0 (nearest 2x, or to the skip's size, + 3x3 conv)
//	  conv_norm_out (GroupNorm) + SiLU, conv_out -> [N, 4, h, w]
//
// The Transformer2D blocks attend to the text-encoder states (cross-attention);
// diffusers 0.16's attention_head_dim is the number of heads of each block, whose
// head width is channels/heads.
//
// Use Load for a diffusers folder, or New with an nn.Builder (random weights, a
// MapSource, converted dtypes) and check the Builder before running the model.
// Forward releases its intermediates as it goes (tensor's buffer pool), so a
// sampling loop reuses memory instead of churning the garbage collector.
package unet

// Package lora adds low-rank adapters (LoRA: Hu et al. 2021, "LoRA: Low-Rank
// Adaptation of Large Language Models", https://arxiv.org/abs/2106.09685) to
// the nn.Linear and nn.Conv2d layers of a model (the U-Net, the CLIP text
// encoder), trains them, merges them into the weights, and reads and writes
// them in the file layouts of diffusers and kohya.
//
// A LoRA on a layer of weight W computes
//
//	y = W x + b + scale * up(down(x)),   scale = multiplier * alpha / rank
//
// with down [rank, in] and up [out, rank] for a Linear, and for a Conv2d
// (kohya's conv LoRA, LyCORIS LoCon) down a convolution with the layer's
// kernel, stride and padding [rank, in, kh, kw] and up a 1x1 convolution
// [out, rank, 1, 1]. alpha/rank is diffusers/peft's (and kohya's) scaling;
// diffusers 0.16 had no alpha, which is alpha = rank (scale 1). The
// multiplier is the user's weight ("-lora file:0.8", diffusers'
// cross_attention_kwargs={"scale": s}).
//
// Layers are found by their diffusers module path (nn.Linear.Name,
// nn.Conv2d.Name, set by the nn.Builder): Attach selects them by name
// patterns (AttentionTargets by default: to_q, to_k, to_v, to_out.0 and the
// text encoder's q/k/v/out_proj), gives each new adapter weights (diffusers
// 0.16.1's LoRALinearLayer initialisation by default, or peft's) and hooks
// it into the layer (nn.Adapter), unmerged: the base weights are not
// touched. Network.Trainable hands the adapters' weights to an optimiser
// (package nn/optim) as nn.Trainable parameters named as diffusers names
// them; the base model's parameters stay frozen (nothing marks them for
// autograd). Network.Merge adds scale * up·down into the weights (new
// tensors; the originals are kept) and Network.Unmerge puts the originals
// back exactly.
//
// Files (Save, Read, Apply):
//   - LayoutDiffusers: diffusers 0.16's pytorch_lora_weights.safetensors as
//     UNet2DConditionModel.save_attn_procs writes it:
//     "<attention>.processor.to_q_lora.down.weight" (also to_k, to_v,
//     to_out; .up.weight), without a component prefix for a U-Net-only
//     network, and with "unet." / "text_encoder." prefixes (LoraLoaderMixin,
//     "text_encoder.text_model.encoder.layers.0.self_attn.to_q_lora...")
//     when the text encoder has adapters too. Layers other than the
//     attention projections use later diffusers' "<module>.lora.down.weight".
//     The layout has no alpha: alpha/rank is folded into up.
//   - LayoutKohya: what kohya's sd-scripts write and AUTOMATIC1111 and
//     ComfyUI load: "lora_unet_<module with _ for .>.lora_down.weight",
//     ".lora_up.weight" and ".alpha" (a scalar), "lora_te_..." for the text
//     encoder.
//
// Read also takes diffusers/peft's later layout
// ("unet.<module>.lora_A.weight" / "lora_B.weight", ".lora.down.weight",
// ".lora_linear_layer.down.weight") with optional "<module>.alpha", and
// PyTorch .bin files. Keys that fit no layout, modules the model lacks and
// shapes that do not fit the layer are errors naming the key: the usual sign
// of a LoRA made for another architecture (SDXL, SD2 for SD1).
package lora

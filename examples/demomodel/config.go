package main

import (
	"encoding/json"
	"fmt"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/unet"
	"github.com/roentgo/roentgo/vae"
)

// The demo model's architecture (see docs/DEMO_MODEL.md for the reasons and
// the measured costs): Stable Diffusion 1.x's structure, scaled down for
// 256x256 grayscale phantoms and a 2-core CPU.
//
//   - VAE: AutoencoderKL with 4 levels, channels 32/64/64/64, one ResNet
//     per level, 4 latent channels: downsampling factor 8, so a 256x256
//     image is a 4x32x32 latent (SD's factor; 4 would make the U-Net 4x
//     dearer per step).
//   - Text encoder: CLIPTextModel, width 128, 3 layers, 4 heads, MLP 512,
//     77 positions, on a reduced CLIP BPE vocabulary (vocab.go); the
//     vocab_size below is a placeholder, set from the tokenizer.
//   - U-Net: UNet2DConditionModel, channels 32/64/128, one ResNet per
//     level, cross-attention (to the 128-wide text states) at 16x16 and 8x8
//     and in the middle block, 4 heads.
const (
	textConfigJSON = `{
  "architectures": ["CLIPTextModel"],
  "model_type": "clip_text_model",
  "vocab_size": 49408,
  "hidden_size": 128,
  "intermediate_size": 512,
  "projection_dim": 128,
  "num_hidden_layers": 3,
  "num_attention_heads": 4,
  "max_position_embeddings": 77,
  "hidden_act": "quick_gelu",
  "layer_norm_eps": 1e-05,
  "bos_token_id": 0,
  "eos_token_id": 2,
  "pad_token_id": 1
}
`
	unetConfigJSON = `{
  "_class_name": "UNet2DConditionModel",
  "sample_size": 32,
  "in_channels": 4,
  "out_channels": 4,
  "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
  "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
  "block_out_channels": [32, 64, 128],
  "layers_per_block": 1,
  "cross_attention_dim": 128,
  "attention_head_dim": 4,
  "norm_num_groups": 32
}
`
	vaeConfigJSON = `{
  "_class_name": "AutoencoderKL",
  "in_channels": 3,
  "out_channels": 3,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  "block_out_channels": [32, 64, 64, 64],
  "layers_per_block": 1,
  "latent_channels": 4,
  "norm_num_groups": 32,
  "sample_size": 256,
  "scaling_factor": 1.0
}
`
	// schedulerJSON is SD 1.x's noise schedule (scaled_linear, 1000 steps,
	// epsilon). Training draws from it as DDPM; txt2img samples with the
	// class named here unless told otherwise.
	schedulerJSON = `{
  "_class_name": "DPMSolverMultistepScheduler",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "algorithm_type": "dpmsolver++",
  "solver_order": 2,
  "solver_type": "midpoint",
  "lower_order_final": true,
  "steps_offset": 1,
  "trained_betas": null
}
`
	modelIndexJSON = `{
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.16.1",
  "feature_extractor": [null, null],
  "requires_safety_checker": false,
  "safety_checker": [null, null],
  "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}
`
)

// architecture is the demo model's parsed configuration.
type architecture struct {
	Text clip.TextConfig
	UNet unet.Config
	VAE  vae.Config
}

// demoArchitecture returns the configuration for a vocabulary of vocab
// tokens and images of side resolution (the U-Net's sample
// size follows it; the weights do not depend on it).
func demoArchitecture(vocab, resolution int) (architecture, error) {
	var a architecture
	a.Text = clip.DefaultTextConfig()
	if err := json.Unmarshal([]byte(textConfigJSON), &a.Text); err != nil {
		return a, fmt.Errorf("text config: %v", err)
	}
	a.Text.VocabSize = vocab
	var err error
	if a.UNet, err = unet.ParseConfig([]byte(unetConfigJSON)); err != nil {
		return a, err
	}
	a.UNet.SampleSize = unet.IntList{resolution / vaeFactor}
	if a.VAE, err = vae.ParseConfig([]byte(vaeConfigJSON)); err != nil {
		return a, err
	}
	return a, nil
}

// vaeFactor is the VAE's downsampling factor (2^(levels-1)).
const vaeFactor = 8

// configJSON returns the config.json documents of the three models for a
// vocabulary of vocab tokens, images of side resolution and the VAE's
// latent scaling factor.
func configJSON(vocab, resolution int, scaling float64) (text, un, va []byte, err error) {
	patch := func(doc string, set map[string]any) ([]byte, error) {
		var m map[string]any
		if err := json.Unmarshal([]byte(doc), &m); err != nil {
			return nil, err
		}
		for k, v := range set {
			m[k] = v
		}
		return json.MarshalIndent(m, "", "  ")
	}
	if text, err = patch(textConfigJSON, map[string]any{"vocab_size": vocab}); err != nil {
		return
	}
	if un, err = patch(unetConfigJSON, map[string]any{"sample_size": resolution / vaeFactor}); err != nil {
		return
	}
	va, err = patch(vaeConfigJSON, map[string]any{"sample_size": resolution, "scaling_factor": scaling})
	return
}

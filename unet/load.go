package unet

import (
	"errors"
	"fmt"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/sdckpt"
	"github.com/roentgo/roentgo/tensor"
)

// sd15JSON and sd21JSON are the unet/config.json files of
// runwayml/stable-diffusion-v1-5 and stabilityai/stable-diffusion-2-1.
const (
	sd15JSON = `{"act_fn": "silu", "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280],
 "center_input_sample": false, "cross_attention_dim": 768,
 "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
 "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
 "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
 "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]}`
	sd21JSON = `{"act_fn": "silu", "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
 "center_input_sample": false, "cross_attention_dim": 1024,
 "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
 "downsample_padding": 1, "dual_cross_attention": false, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4,
 "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
 "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4, "sample_size": 96,
 "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
 "upcast_attention": true, "use_linear_projection": true}`
)

func mustParse(s string) Config {
	c, err := ParseConfig([]byte(s))
	if err != nil {
		panic("unet: built-in config: " + err.Error())
	}
	return c
}

// SD15Config returns the U-Net configuration of Stable Diffusion 1.x (1.4,
// 1.5: cross_attention_dim 768, 8 heads per attention).
func SD15Config() Config { return mustParse(sd15JSON) }

// SD21Config returns the U-Net configuration of Stable Diffusion 2.x (2.0,
// 2.1, and their 512-base models: cross_attention_dim 1024, heads 5/10/20/20,
// linear projections; sample_size 96 as in the 768 models, informative only).
func SD21Config() Config { return mustParse(sd21JSON) }

// build constructs the model from src with a builder converting to dt and
// runs the strict check.
func build(src nn.Source, cfg Config, dt tensor.DType) (*Model, error) {
	m, _, err := nn.Build(src, cfg, dt, New)
	return m, err
}

// FromSource builds the U-Net from the weights of src (the state dict of a
// diffusers UNet2DConditionModel, as in its unet/ folder) with config cfg (e.g.
// from ParseConfig), kept as dt (F32, F16 or BF16), with the strict check of
// every tensor that Load does. The model does not own src: its Close does
// nothing, and a src whose tensors alias memory it releases (an
// nn.OpenSafetensors file) must stay open while the model is used. Any
// problem (bad config, missing, misshapen or unused tensors) is returned as
// one error.
func FromSource(src nn.Source, cfg Config, dt tensor.DType) (*Model, error) {
	if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
		return nil, fmt.Errorf("unet: FromSource: dtype %v, want F32, F16 or BF16", dt)
	}
	if src == nil {
		return nil, errors.New("unet: FromSource: no weights source given")
	}
	m, err := build(src, cfg, dt)
	if err != nil {
		return nil, errctx.Wrap("unet", err)
	}
	return m, nil
}

// FromCheckpoint builds the U-Net from the model.diffusion_model.* weights of
// an original single-file checkpoint (sdckpt.Open), kept as dt (F32, F16 or
// BF16). A nil cfg takes SD15Config, or SD21Config for an SD2 checkpoint
// (sdckpt.SD2); pass the config of other architectures (e.g. from a diffusers
// unet/config.json). The model does not own ck: close ck when the model is no
// longer used. A checkpoint lacking U-Net weights gives an error naming a few
// of them.
func FromCheckpoint(ck *sdckpt.Checkpoint, cfg *Config, dt tensor.DType) (*Model, error) {
	m, err := sdckpt.BuildModel(ck, sdckpt.UNet, cfg, SD15Config, SD21Config, dt, New)
	if err != nil {
		return nil, errctx.Wrap("unet", err)
	}
	return m, nil
}

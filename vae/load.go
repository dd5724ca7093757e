package vae

import (
	"errors"
	"fmt"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/sdckpt"
	"github.com/roentgo/roentgo/tensor"
)

// SD21Config returns the configuration of Stable Diffusion 2.x's VAE: SD 1.x's
// with sample_size 768.
func SD21Config() Config {
	c := SD15Config()
	c.SampleSize = 768
	return c
}

// build constructs the model from src with a builder converting to dt and
// runs the strict check.
func build(src nn.Source, c Config, dt tensor.DType) (*AutoencoderKL, error) {
	m, _, err := nn.Build(src, c, dt, New)
	return m, err
}

// FromSource builds the VAE from the weights of src (the state dict of a
// diffusers AutoencoderKL, as in its vae/ folder) with config cfg (e.g.
// from ParseConfig), kept as dt (F32, F16 or BF16), with the strict check of
// every tensor that Load does. The model does not own src: its Close does
// nothing, and a src whose tensors alias memory it releases (an
// nn.OpenSafetensors file) must stay open while the model is used. Any
// problem (bad config, missing, misshapen or unused tensors) is returned as
// one error.
func FromSource(src nn.Source, cfg Config, dt tensor.DType) (*AutoencoderKL, error) {
	if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
		return nil, fmt.Errorf("vae: FromSource: dtype %v, want F32, F16 or BF16", dt)
	}
	if src == nil {
		return nil, errors.New("vae: FromSource: no weights source given")
	}
	m, err := build(src, cfg, dt)
	if err != nil {
		return nil, errctx.Wrap("vae", err)
	}
	return m, nil
}

// FromCheckpoint builds the VAE from the first_stage_model.* weights of an
// original single-file checkpoint (sdckpt.Open), kept as dt (F32, F16 or
// BF16). A nil cfg takes SD15Config, or SD21Config for an SD2 checkpoint;
// pass the config of other architectures. The model does not own ck: close ck
// when the model is no longer used. A checkpoint lacking VAE weights gives an
// error naming a few of them.
func FromCheckpoint(ck *sdckpt.Checkpoint, cfg *Config, dt tensor.DType) (*AutoencoderKL, error) {
	m, err := sdckpt.BuildModel(ck, sdckpt.VAE, cfg, SD15Config, SD21Config, dt, New)
	if err != nil {
		return nil, errctx.Wrap("vae", err)
	}
	return m, nil
}

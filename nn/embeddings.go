package nn

import (
	"github.com/roentgo/roentgo/tensor"
)

// TimestepEmbedding is diffusers' TimestepEmbedding with the SiLU activation
// (the U-Net's time_embedding): linear_2(SiLU(linear_1(x))). Keys: linear_1,
// linear_2.
type TimestepEmbedding struct {
	Linear1 *Linear // [dim, in]
	Linear2 *Linear // [outDim, dim]
}

// NewTimestepEmbedding returns the TimestepEmbedding at b from in features (the
// sinusoidal embedding's width) to dim features, with linear_2 mapping dim to
// outDim (0: dim, diffusers' out_dim=None).
func NewTimestepEmbedding(b *Builder, in, dim, outDim int) *TimestepEmbedding {
	if outDim == 0 {
		outDim = dim
	}
	return &TimestepEmbedding{
		Linear1: NewLinear(b.Sub("linear_1"), in, dim, true),
		Linear2: NewLinear(b.Sub("linear_2"), dim, outDim, true),
	}
}

// Forward returns linear_2(SiLU(linear_1(x))) for x [N, in]: [N, outDim].
func (t *TimestepEmbedding) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor { return t.Linear2.Forward(tensor.SiLU(t.Linear1.Forward(x))) })
}

// Timesteps is diffusers' Timesteps module (the U-Net's time_proj): the
// sinusoidal embedding of get_timestep_embedding. It has no parameters.
type Timesteps struct {
	Dim                int     // num_channels
	FlipSinToCos       bool    // flip_sin_to_cos: cos half first
	DownscaleFreqShift float32 // downscale_freq_shift
	Scale              float32 // multiplies the arguments (1)
	MaxPeriod          float32 // longest period (10000)
}

// NewTimesteps returns the Timesteps embedding of width dim (Stable Diffusion:
// 320, flipSinToCos true, downscaleFreqShift 0), with scale 1 and max period 10000.
func NewTimesteps(dim int, flipSinToCos bool, downscaleFreqShift float32) *Timesteps {
	return &Timesteps{Dim: dim, FlipSinToCos: flipSinToCos, DownscaleFreqShift: downscaleFreqShift, Scale: 1, MaxPeriod: 10000}
}

// Forward returns the embeddings [N, Dim] of the timesteps t [N] (any dtype).
func (t *Timesteps) Forward(ts *tensor.Tensor) *tensor.Tensor {
	return tensor.TimestepEmbedding(ts, t.Dim, t.FlipSinToCos, t.DownscaleFreqShift, t.Scale, t.MaxPeriod)
}

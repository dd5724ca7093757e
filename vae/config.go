package vae

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
)

// Size is sample_size: one integer, or a list [height, width] of which the
// first is used, as diffusers does.
type Size int

// UnmarshalJSON accepts a number or a non-empty list of numbers.
func (s *Size) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var v []int
		if err := json.Unmarshal(b, &v); err != nil || len(v) == 0 {
			return fmt.Errorf("sample_size: want an integer or a list of integers, got %s", b)
		}
		*s = Size(v[0])
		return nil
	}
	var v int
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("sample_size: want an integer or a list of integers, got %s", b)
	}
	*s = Size(v)
	return nil
}

// Config is the configuration of an AutoencoderKL: the keys of a diffusers
// vae/config.json with diffusers' defaults (DefaultConfig). Other keys
// (force_upcast, latents_mean, ...) are ignored.
type Config struct {
	InChannels       int      `json:"in_channels"`
	OutChannels      int      `json:"out_channels"`
	DownBlockTypes   []string `json:"down_block_types"` // DownEncoderBlock2D
	UpBlockTypes     []string `json:"up_block_types"`   // UpDecoderBlock2D
	BlockOutChannels []int    `json:"block_out_channels"`
	LayersPerBlock   int      `json:"layers_per_block"`
	ActFn            string   `json:"act_fn"` // silu
	LatentChannels   int      `json:"latent_channels"`
	NormNumGroups    int      `json:"norm_num_groups"`
	// SampleSize is the image size the model was trained at; tiled decoding
	// uses it as the tile size in pixels.
	SampleSize    Size    `json:"sample_size"`
	ScalingFactor float64 `json:"scaling_factor"`
	// MidBlockAddAttention (newer diffusers) drops the mid-block attention
	// when false.
	MidBlockAddAttention *bool `json:"mid_block_add_attention"`
}

// DefaultConfig returns diffusers' AutoencoderKL defaults: one level of 64
// channels. Stable Diffusion's VAE is SD15Config.
func DefaultConfig() Config {
	return Config{
		InChannels: 3, OutChannels: 3,
		DownBlockTypes:   []string{"DownEncoderBlock2D"},
		UpBlockTypes:     []string{"UpDecoderBlock2D"},
		BlockOutChannels: []int{64},
		LayersPerBlock:   1,
		ActFn:            "silu",
		LatentChannels:   4,
		NormNumGroups:    32,
		SampleSize:       32,
		ScalingFactor:    0.18215,
	}
}

// SD15Config returns the configuration of Stable Diffusion 1.x's VAE
// (83,653,863 parameters; SD 2.x's is the same with sample_size 768).
func SD15Config() Config {
	c := DefaultConfig()
	c.DownBlockTypes = []string{"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"}
	c.UpBlockTypes = []string{"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"}
	c.BlockOutChannels = []int{128, 256, 512, 512}
	c.LayersPerBlock = 2
	c.SampleSize = 512
	return c
}

// LoadConfig reads a diffusers vae/config.json: keys absent from the file keep
// diffusers' defaults. Errors name the file and every problem (see Validate).
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, errctx.Wrap("vae", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// ParseConfig decodes and validates the JSON of a diffusers vae/config.json.
func ParseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, errctx.Wrap("vae: config", err)
	}
	return c, c.Validate()
}

// Validate checks that c describes an AutoencoderKL this package builds:
// positive sizes within nn.MaxDim, at most nn.MaxLevels blocks, channel
// counts that are multiples of norm_num_groups, a positive finite
// scaling_factor, a sample_size that tiled decoding can split into tiles of
// whole latents, and at most nn.MaxParams parameters. The error names the keys
// and lists every problem.
func (c *Config) Validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	posInt := func(key string, v int) bool {
		switch {
		case v < 1:
			bad("%s = %d, want a positive number", key, v)
		case v > nn.MaxDim:
			bad("%s = %d, want at most %d", key, v, nn.MaxDim)
		default:
			return true
		}
		return false
	}
	for _, f := range []struct {
		key string
		v   int
	}{{"in_channels", c.InChannels}, {"out_channels", c.OutChannels}, {"layers_per_block", c.LayersPerBlock},
		{"latent_channels", c.LatentChannels}, {"norm_num_groups", c.NormNumGroups}} {
		posInt(f.key, f.v)
	}
	n := len(c.BlockOutChannels)
	if n == 0 {
		bad("block_out_channels is empty")
	}
	if n > nn.MaxLevels {
		bad("block_out_channels has %d entries, want at most %d", n, nn.MaxLevels)
	}
	for i, ch := range c.BlockOutChannels {
		if ch < 1 || ch > nn.MaxDim || (c.NormNumGroups > 0 && ch%c.NormNumGroups != 0) {
			bad("block_out_channels[%d] = %d, want a positive multiple of norm_num_groups %d up to %d", i, ch, c.NormNumGroups, nn.MaxDim)
		}
	}
	if len(c.DownBlockTypes) != n || len(c.UpBlockTypes) != n {
		bad("%d down_block_types and %d up_block_types for %d block_out_channels, want one each",
			len(c.DownBlockTypes), len(c.UpBlockTypes), n)
	}
	for i, t := range c.DownBlockTypes {
		if t != "DownEncoderBlock2D" {
			bad("down_block_types[%d] = %q is not supported (want DownEncoderBlock2D)", i, t)
		}
	}
	for i, t := range c.UpBlockTypes {
		if t != "UpDecoderBlock2D" {
			bad("up_block_types[%d] = %q is not supported (want UpDecoderBlock2D)", i, t)
		}
	}
	if c.ActFn != "silu" && c.ActFn != "swish" {
		bad("act_fn = %q is not supported (want silu)", c.ActFn)
	}
	if !(c.ScalingFactor > 0) || math.IsInf(c.ScalingFactor, 0) {
		bad("scaling_factor = %g, want a positive finite number", c.ScalingFactor)
	}
	// sample_size is the tile size of tiled decoding: it must split into
	// tiles of whole latents with the default overlap.
	if posInt("sample_size", int(c.SampleSize)) && n > 0 && n <= nn.MaxLevels {
		f := c.downFactor()
		if _, ok := tileGeometry(int(c.SampleSize), f, defaultTileOverlap); !ok {
			bad("sample_size = %d does not split into tiles of whole latents for tiled decoding (want a multiple of %d, 4 times the downsampling factor %d)",
				c.SampleSize, 4*f, f)
		}
	}
	if len(errs) > 0 {
		return errors.New("vae: config: " + strings.Join(errs, "; "))
	}
	if np := c.numParams(); np > nn.MaxParams {
		return fmt.Errorf("vae: config: block_out_channels %v, layers_per_block %d and latent_channels %d make a model of %.4g parameters, want at most %d",
			c.BlockOutChannels, c.LayersPerBlock, c.LatentChannels, np, nn.MaxParams)
	}
	return nil
}

// numParams returns the number of parameters of the model c describes, as a
// float64 so that the sums of an absurd config cannot overflow (New creates
// exactly this many; c must be valid otherwise).
func (c *Config) numParams() float64 {
	f := func(v int) float64 { return float64(v) }
	resnet := func(in, out float64) float64 {
		n := 2*in + 9*in*out + out + 2*out + 9*out*out + out // norm1, conv1, norm2, conv2
		if in != out {
			n += in*out + out // conv_shortcut
		}
		return n
	}
	ch := c.BlockOutChannels
	last, c0 := f(ch[len(ch)-1]), f(ch[0])
	lat, layers := f(c.LatentChannels), c.LayersPerBlock
	mid := 2 * resnet(last, last)
	if c.midAttention() {
		mid += 2*last + 4*(last*last+last) // group_norm, q, k, v, out
	}
	conv3 := func(in, out float64) float64 { return 9*in*out + out }
	// Encoder.
	n := conv3(f(c.InChannels), c0)
	in := c0
	for i, out := range ch {
		for range layers {
			n += resnet(in, f(out))
			in = f(out)
		}
		if i < len(ch)-1 {
			n += conv3(f(out), f(out)) // downsampler
		}
	}
	n += mid + 2*last + conv3(last, 2*lat)   // mid block, conv_norm_out, conv_out
	n += 2*lat*2*lat + 2*lat + lat*lat + lat // quant_conv, post_quant_conv
	// Decoder.
	n += conv3(lat, last) + mid
	in = last
	for i := range ch {
		out := f(ch[len(ch)-1-i])
		for range layers + 1 {
			n += resnet(in, out)
			in = out
		}
		if i < len(ch)-1 {
			n += conv3(out, out) // upsampler
		}
	}
	n += 2*c0 + conv3(c0, f(c.OutChannels)) // conv_norm_out, conv_out
	return n
}

// midAttention reports whether the mid blocks have their attention.
func (c *Config) midAttention() bool { return c.MidBlockAddAttention == nil || *c.MidBlockAddAttention }

// downFactor is the ratio of image to latent size, 2^(levels-1).
func (c *Config) downFactor() int { return 1 << (len(c.BlockOutChannels) - 1) }

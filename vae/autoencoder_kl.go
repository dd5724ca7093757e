package vae

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// TilingMode says when Decode works in tiles.
type TilingMode uint8

// The tiling modes.
const (
	// TileAuto tiles decodes whose output has at least 1024x1024 pixels and
	// is larger than one tile.
	TileAuto TilingMode = iota
	// TileAlways tiles every decode larger than one tile.
	TileAlways
	// TileNever decodes in one piece.
	TileNever
)

// AutoencoderKL is diffusers' AutoencoderKL. Keys: encoder, quant_conv,
// post_quant_conv, decoder.
type AutoencoderKL struct {
	Config        Config
	Encoder       *Encoder
	QuantConv     *nn.Conv2d // 1x1, 2L -> 2L
	PostQuantConv *nn.Conv2d // 1x1, L -> L
	Decoder       *Decoder

	// Tiling selects tiled decoding (TileAuto by default). Tiles are
	// TileSampleSize pixels square (the config's sample_size), overlap by
	// TileOverlap of their size (0.25) and are blended linearly over that
	// overlap: diffusers' tiled_decode with tile_sample_min_size and
	// tile_overlap_factor.
	Tiling         TilingMode
	TileSampleSize int
	TileOverlap    float64

	closer io.Closer
	obs    observer // tests: block outputs
}

// New builds the AutoencoderKL described by c from b (at the root of the VAE's
// keys). It returns an error only for an invalid c; parameter problems are
// recorded in b: call b.Check before running the model.
func New(b *nn.Builder, c Config) (*AutoencoderKL, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	l := c.LatentChannels
	return &AutoencoderKL{
		Config:         c,
		Encoder:        newEncoder(b.Sub("encoder"), c),
		QuantConv:      nn.NewConv2d(b.Sub("quant_conv"), 2*l, 2*l, 1, 1, 0),
		PostQuantConv:  nn.NewConv2d(b.Sub("post_quant_conv"), l, l, 1, 1, 0),
		Decoder:        newDecoder(b.Sub("decoder"), c),
		TileSampleSize: int(c.SampleSize),
		TileOverlap:    defaultTileOverlap,
	}, nil
}

// Load opens the VAE of a diffusers folder: dir is the pipeline folder (with
// vae/ inside) or the vae folder itself, holding config.json and the weights:
// diffusion_pytorch_model.safetensors, a PyTorch diffusion_pytorch_model.bin,
// their .fp16 variants or a sharded checkpoint (see nn.FindWeights).
// Within a variant safetensors are preferred over .bin; the weights are kept as dt (F32, F16 or
// BF16); the .fp16 variant is preferred for 16-bit dtypes, the full one for
// F32, and either is converted when it is the only one. Safetensors are
// memory-mapped; Close the model to unmap them. Any problem (not a vae folder,
// config, missing, misshapen or unused tensors) is returned as one error.
func Load(dir string, dt tensor.DType) (*AutoencoderKL, error) {
	if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
		return nil, fmt.Errorf("vae: Load: dtype %v, want F32, F16 or BF16", dt)
	}
	dir, err := nn.ComponentDir(dir, "vae")
	if err != nil {
		return nil, errctx.Wrap("vae", err)
	}
	c, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	w, err := nn.FindWeights(dir, dt != tensor.F32)
	if err != nil {
		return nil, errctx.Wrap("vae", err)
	}
	src, closer, err := w.Open()
	if err != nil {
		return nil, errctx.Wrap("vae", err)
	}
	m, err := build(src, c, dt)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("vae: %s: %w", w, err)
	}
	if w.Mapped() {
		m.closer = closer
	} else {
		closer.Close() // the tensors were read into memory: drop the reader's cache
	}
	return m, nil
}

// Close unmaps the weights of a model from Load (a no-op for a model from
// New). The model must not be used afterwards.
func (m *AutoencoderKL) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

// DiagonalGaussian is the posterior q(z|x) = N(Mean, diag(exp(LogVar))) that
// Encode returns (diffusers' DiagonalGaussianDistribution). All tensors are
// [N, L, h, w] except Moments.
type DiagonalGaussian struct {
	Moments *tensor.Tensor // quant_conv output [N, 2L, h, w]: mean, then logvar unclamped
	Mean    *tensor.Tensor
	LogVar  *tensor.Tensor // clamped to [-30, 20]
	Std     *tensor.Tensor // exp(LogVar / 2)
}

// Sample returns Mean + Std * eps with eps = tensor.Randn(g, shape) (for g a
// tensor/rng generator, torch.randn(shape, generator=g), as diffusers draws;
// the noise is drawn on the host and copied to the distribution's device).
func (d *DiagonalGaussian) Sample(g tensor.RandSource) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		eps := tensor.Randn(g, d.Mean.Shape()...).ToDevice(d.Mean.Device())
		return d.Std.Mul(eps).AddInPlace(d.Mean)
	})
}

// Mode returns a copy of Mean, the most likely latent.
func (d *DiagonalGaussian) Mode() *tensor.Tensor { return d.Mean.Clone() }

// Release releases the distribution's tensors.
func (d *DiagonalGaussian) Release() {
	for _, t := range []*tensor.Tensor{d.Mean, d.LogVar, d.Std, d.Moments} {
		t.Release()
	}
}

// Encode returns the posterior of the images x [N, in_channels, H, W] (values
// in [-1, 1]): latents [N, L, H/f, W/f] with f = 2^(levels-1) (8 for SD), H and
// W rounded as the stride-2 convolutions do.
func (m *AutoencoderKL) Encode(x *tensor.Tensor) *DiagonalGaussian {
	if x.Rank() != 4 || x.Dim(1) != m.Config.InChannels {
		panic(fmt.Sprintf("vae: Encode: x %v, want [N, %d, H, W]", x.Shape(), m.Config.InChannels))
	}
	d := &DiagonalGaussian{}
	tensor.Do(func() {
		mom := tensor.Chain(m.Encoder.forward(x, m.obs), m.QuantConv.Forward)
		m.obs.see("quant_conv", mom)
		l := m.Config.LatentChannels
		d.Moments, d.Mean, d.LogVar = mom, mom.Narrow(1, 0, l).Contiguous(), mom.Narrow(1, l, l).Clamp(-30, 20)
		d.Std = d.LogVar.MulScalar(0.5).Exp()
		tensor.Escape(d.Moments, d.Mean, d.LogVar, d.Std) // the distribution holds them
	})
	return d
}

// Decode returns the images [N, out_channels, H, W] of the latents z [N, L, h,
// w] as the decoder computes them (no scaling factor applied, no clamping),
// in tiles when m.Tiling asks for it (see TiledDecode).
func (m *AutoencoderKL) Decode(z *tensor.Tensor) *tensor.Tensor {
	m.checkLatents("Decode", z)
	if m.tiled(z.Dim(2), z.Dim(3)) {
		return m.TiledDecode(z)
	}
	return m.decodeOne(z)
}

// tiled reports whether Decode tiles latents of h x w.
func (m *AutoencoderKL) tiled(h, w int) bool {
	f, tile := m.Config.downFactor(), m.tileLatent()
	big := h > tile || w > tile
	switch m.Tiling {
	case TileAlways:
		return big
	case TileAuto:
		return big && h*f*w*f >= 1024*1024
	}
	return false
}

// decodeOne runs post_quant_conv and the decoder on z.
func (m *AutoencoderKL) decodeOne(z *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		p := m.PostQuantConv.Forward(z)
		m.obs.see("post_quant_conv", p)
		return m.Decoder.forward(p, m.obs)
	})
}

func (m *AutoencoderKL) checkLatents(op string, z *tensor.Tensor) {
	if z.Rank() != 4 || z.Dim(1) != m.Config.LatentChannels {
		panic(fmt.Sprintf("vae: %s: z %v, want [N, %d, h, w]", op, z.Shape(), m.Config.LatentChannels))
	}
}

package unet

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// DownBlock is CrossAttnDownBlock2D (with Attentions) or DownBlock2D (without):
// ResNets, each followed by a Transformer2DModel in the cross-attention variant,
// and an optional stride-2 downsampler. Every ResNet (or attention) output and
// the downsampler's output are skip connections. Keys: resnets.J, attentions.J,
// downsamplers.0.
type DownBlock struct {
	Resnets     []*nn.ResnetBlock2D
	Attentions  []*nn.Transformer2DModel // nil for DownBlock2D
	Downsampler *nn.Downsample2D         // nil in the last block
}

// MidBlock is UNetMidBlock2DCrossAttn: ResNet, Transformer2DModel, ResNet.
// Keys: resnets.0, attentions.0, resnets.1.
type MidBlock struct {
	Resnets   [2]*nn.ResnetBlock2D
	Attention *nn.Transformer2DModel
}

// UpBlock is CrossAttnUpBlock2D (with Attentions) or UpBlock2D (without):
// layers_per_block+1 ResNets, each consuming one skip connection concatenated
// to its input along the channels, each followed by a Transformer2DModel in the
// cross-attention variant, and an optional upsampler. Keys: resnets.J,
// attentions.J, upsamplers.0.
type UpBlock struct {
	Resnets    []*nn.ResnetBlock2D
	Attentions []*nn.Transformer2DModel // nil for UpBlock2D
	Upsampler  *nn.Upsample2D           // nil in the last block
}

// Model is UNet2DConditionModel. Keys: conv_in, time_embedding, down_blocks.I,
// mid_block, up_blocks.I, conv_norm_out, conv_out (time_proj has no parameters).
type Model struct {
	Config        Config
	ConvIn        *nn.Conv2d
	TimeProj      *nn.Timesteps
	TimeEmbedding *nn.TimestepEmbedding
	DownBlocks    []*DownBlock
	MidBlock      *MidBlock
	UpBlocks      []*UpBlock
	ConvNormOut   *nn.GroupNorm
	ConvOut       *nn.Conv2d

	// GradientCheckpointing runs every ResNet and transformer block through
	// tensor.Checkpoint (as diffusers' enable_gradient_checkpointing does):
	// training keeps only the blocks' outputs for backward and recomputes
	// the rest, for less memory and about one more forward per step. It
	// changes nothing without autograd (inference).
	GradientCheckpointing bool

	closer io.Closer                           // the weights' source (Load)
	hook   func(name string, t *tensor.Tensor) // tests: observes block outputs
}

// New builds the U-Net described by cfg from b (at the root of the U-Net's
// keys). It returns an error only for an invalid cfg; parameter problems
// (missing keys, wrong shapes) are recorded in b: check b.Check() or b.Err()
// before running the model.
func New(b *nn.Builder, cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := cfg.plan()
	if err != nil {
		return nil, errctx.Wrap("unet", err)
	}
	c0, temb := cfg.BlockOutChannels[0], 4*cfg.BlockOutChannels[0]
	resnet := func(b *nn.Builder, r resnetSpec, scale float32) *nn.ResnetBlock2D {
		return nn.NewResnetBlock2D(b, nn.ResnetBlock2DConfig{In: r.in, Out: r.out, TembChannels: temb,
			Groups: p.groups, Eps: cfg.NormEps, OutputScaleFactor: scale})
	}
	transformer := func(b *nn.Builder, ch, heads, cross int) *nn.Transformer2DModel {
		return nn.NewTransformer2DModel(b, nn.Transformer2DConfig{Channels: ch, Heads: heads, DimHead: ch / heads,
			CrossDim: cross, Groups: p.groups, UseLinearProjection: cfg.UseLinearProjection})
	}
	m := &Model{
		Config:        cfg,
		ConvIn:        nn.NewConv2d(b.Sub("conv_in"), cfg.InChannels, c0, cfg.ConvInKernel, 1, cfg.ConvInKernel/2),
		TimeProj:      nn.NewTimesteps(c0, cfg.FlipSinToCos, cfg.FreqShift),
		TimeEmbedding: nn.NewTimestepEmbedding(b.Sub("time_embedding"), c0, temb, 0),
	}
	for i, s := range p.down {
		bb := b.Path("down_blocks", i)
		d := &DownBlock{}
		for j, r := range s.resnets {
			d.Resnets = append(d.Resnets, resnet(bb.Path("resnets", j), r, 1))
			if s.attn {
				d.Attentions = append(d.Attentions, transformer(bb.Path("attentions", j), s.out, s.heads, s.cross))
			}
		}
		if s.resample {
			d.Downsampler = nn.NewDownsample2D(bb.Path("downsamplers", 0), s.out, s.out, cfg.DownsamplePadding)
		}
		m.DownBlocks = append(m.DownBlocks, d)
	}
	mb, mc := b.Sub("mid_block"), p.midChannels
	m.MidBlock = &MidBlock{
		Resnets: [2]*nn.ResnetBlock2D{
			resnet(mb.Path("resnets", 0), resnetSpec{mc, mc}, cfg.MidBlockScaleFactor),
			resnet(mb.Path("resnets", 1), resnetSpec{mc, mc}, cfg.MidBlockScaleFactor)},
		Attention: transformer(mb.Path("attentions", 0), mc, p.midHeads, p.midCross),
	}
	for i, s := range p.up {
		bb := b.Path("up_blocks", i)
		u := &UpBlock{}
		for j, r := range s.resnets {
			u.Resnets = append(u.Resnets, resnet(bb.Path("resnets", j), r, 1))
			if s.attn {
				u.Attentions = append(u.Attentions, transformer(bb.Path("attentions", j), s.out, s.heads, s.cross))
			}
		}
		if s.resample {
			u.Upsampler = nn.NewUpsample2D(bb.Path("upsamplers", 0), s.out, s.out)
		}
		m.UpBlocks = append(m.UpBlocks, u)
	}
	m.ConvNormOut = nn.NewGroupNorm(b.Sub("conv_norm_out"), p.groups, c0, cfg.NormEps)
	m.ConvOut = nn.NewConv2d(b.Sub("conv_out"), c0, cfg.OutChannels, cfg.ConvOutKernel, 1, cfg.ConvOutKernel/2)
	return m, nil
}

// Load opens the U-Net of a diffusers folder: dir is the pipeline folder (with
// unet/ inside) or the unet folder itself, holding config.json and the weights:
// diffusion_pytorch_model.safetensors, a PyTorch diffusion_pytorch_model.bin,
// their .fp16 variants or a sharded checkpoint (an *.index.json file and its
// shards); see nn.FindWeights. The weights are kept as dt (F32, F16 or BF16):
// for F16 and BF16 the .fp16 variant is preferred, for F32 the full one; when
// only one exists it is used and converted as needed. Within a variant,
// safetensors are preferred over .bin. Safetensors are memory-mapped (no copy when the stored
// dtype is dt); Close the model to unmap them. Any problem — not a unet
// folder, bad config, missing or misshapen tensors, unused tensors — is
// returned as one error listing them.
func Load(dir string, dt tensor.DType) (*Model, error) {
	if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
		return nil, fmt.Errorf("unet: Load: dtype %v, want F32, F16 or BF16", dt)
	}
	dir, err := nn.ComponentDir(dir, "unet")
	if err != nil {
		return nil, errctx.Wrap("unet", err)
	}
	cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	w, err := nn.FindWeights(dir, dt != tensor.F32)
	if err != nil {
		return nil, errctx.Wrap("unet", err)
	}
	src, closer, err := w.Open()
	if err != nil {
		return nil, errctx.Wrap("unet", err)
	}
	m, err := build(src, cfg, dt)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("unet: %s: %w", w, err)
	}
	if w.Mapped() {
		m.closer = closer
	} else {
		closer.Close() // the tensors were read into memory: drop the reader's cache
	}
	return m, nil
}

// Close releases the memory-mapped weights of a model from Load (a no-op for a
// model from New). The model must not be used afterwards.
func (m *Model) Close() error {
	if m.closer == nil {
		return nil
	}
	err := m.closer.Close()
	m.closer = nil
	return err
}

// Forward predicts the model output (noise, or v) for the latents sample
// [N, in_channels, h, w] at timesteps (a scalar or a one-element tensor for
// the whole batch, or [N], any dtype; usually float32) conditioned on the
// text-encoder states ctx [N, S, cross_attention_dim]: [N, out_channels, h, w].
// Any h and w work; sizes not divisible by 2^(levels-1) upsample to the skip
// connections' sizes, as in diffusers. The inputs are not modified.
func (m *Model) Forward(sample, timesteps, ctx *tensor.Tensor) *tensor.Tensor {
	if sample.Rank() != 4 || sample.Dim(1) != m.Config.InChannels {
		panic(fmt.Sprintf("unet: Forward: sample %v, want [N, %d, H, W]", sample.Shape(), m.Config.InChannels))
	}
	n := sample.Dim(0)
	if ctx.Rank() != 3 || ctx.Dim(0) != n {
		panic(fmt.Sprintf("unet: Forward: encoder hidden states %v, want [%d, S, D]", ctx.Shape(), n))
	}

	ck := m.GradientCheckpointing
	return tensor.Scope(func() *tensor.Tensor {
		temb := m.timeEmbedding(timesteps, n) // [N, 4*C0]
		h := tensor.Scope(func() *tensor.Tensor {
			if m.Config.CenterInputSample {
				return m.ConvIn.Forward(sample.Affine(2, -1))
			}
			return m.ConvIn.Forward(sample)
		})
		m.observe("conv_in", h)

		// Down: every output is a skip connection, kept until an up block consumes it.
		skips := []*tensor.Tensor{h}
		for i, d := range m.DownBlocks {
			outs := d.forward(h, temb, ctx, ck)
			skips = append(skips, outs...)
			h = outs[len(outs)-1]
			m.observe(fmt.Sprintf("down_blocks.%d", i), h)
		}
		h = m.MidBlock.forward(h, temb, ctx, ck)
		m.observe("mid_block", h)
		for i, u := range m.UpBlocks {
			k := len(skips) - len(u.Resnets)
			res := skips[k:]
			skips = skips[:k]
			oh, ow := 0, 0
			if u.Upsampler != nil {
				// The next skip's size: 2x, or the odd size it had on the way down.
				oh, ow = skips[k-1].Dim(2), skips[k-1].Dim(3)
			}
			h = u.forward(h, res, temb, ctx, oh, ow, ck)
			m.observe(fmt.Sprintf("up_blocks.%d", i), h)
		}

		a := tensor.Scope(func() *tensor.Tensor { return m.ConvNormOut.ForwardSiLU(h) }, h) // conv_norm_out + conv_act
		m.observe("conv_act", a)
		return m.ConvOut.Forward(a)
	})
}

// timeEmbedding returns the time embedding [n, 4*C0] of timesteps (a scalar,
// a one-element tensor or [n]).
func (m *Model) timeEmbedding(timesteps *tensor.Tensor, n int) *tensor.Tensor {
	var ts *tensor.Tensor
	switch {
	case timesteps.Numel() == 1:
		ts = timesteps.Reshape(1).Expand(n)
	case timesteps.Rank() == 1 && timesteps.Dim(0) == n:
		ts = timesteps.Reshape(n)
	default:
		panic(fmt.Sprintf("unet: Forward: timesteps %v, want a scalar or [%d]", timesteps.Shape(), n))
	}
	return tensor.Scope(func() *tensor.Tensor {
		tp := m.TimeProj.Forward(ts)
		m.observe("time_proj", tp)
		temb := m.TimeEmbedding.Forward(tp)
		m.observe("time_embedding", temb)
		return temb
	})
}

func (m *Model) observe(name string, t *tensor.Tensor) {
	if m.hook != nil {
		tensor.Unscoped(func() { m.hook(name, t) }) // what the hook keeps is its own
	}
}

// forward runs the block on h (a skip connection, left alone) and returns its
// outputs, each a skip connection; the last is the block's output.
func (d *DownBlock) forward(h, temb, ctx *tensor.Tensor, ck bool) []*tensor.Tensor {
	return tensor.ScopeN(func() []*tensor.Tensor {
		var outs []*tensor.Tensor
		for j, r := range d.Resnets {
			h = tensor.Scope(func() *tensor.Tensor {
				y := run2(ck, r.Forward, h, temb)
				if d.Attentions != nil {
					y = run2(ck, d.Attentions[j].Forward, y, ctx)
				}
				return y
			})
			outs = append(outs, h)
		}
		if d.Downsampler != nil {
			outs = append(outs, d.Downsampler.Forward(h))
		}
		return outs
	})
}

// forward returns the mid block applied to h (a skip connection, left alone).
func (mb *MidBlock) forward(h, temb, ctx *tensor.Tensor, ck bool) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		r := run2(ck, mb.Resnets[0].Forward, h, temb)
		a := run2(ck, mb.Attention.Forward, r, ctx)
		return run2(ck, mb.Resnets[1].Forward, a, temb)
	})
}

// forward runs the block on h, consuming the skip connections res from the last
// to the first: h and each skip are freed once concatenated (when a scope of
// the caller owns them). With an upsampler the output is resized to [oh, ow].
func (u *UpBlock) forward(h *tensor.Tensor, res []*tensor.Tensor, temb, ctx *tensor.Tensor, oh, ow int, ck bool) *tensor.Tensor {
	if len(res) != len(u.Resnets) {
		panic(fmt.Sprintf("unet: up block with %d resnets given %d skip connections", len(u.Resnets), len(res)))
	}
	return tensor.Scope(func() *tensor.Tensor {
		for j, r := range u.Resnets {
			s := res[len(res)-1-j]
			h = tensor.Scope(func() *tensor.Tensor {
				c := tensor.Scope(func() *tensor.Tensor { return tensor.Cat(1, h, s) }, h, s) // [N, C + Cskip, H, W]
				return run2(ck, r.Forward, c, temb)
			})
			if u.Attentions != nil {
				h = tensor.Scope(func() *tensor.Tensor { return run2(ck, u.Attentions[j].Forward, h, ctx) }, h)
			}
		}
		if u.Upsampler != nil {
			return tensor.Scope(func() *tensor.Tensor { return u.Upsampler.ForwardSize(h, oh, ow) }, h)
		}
		return h
	})
}

// run2 returns f(a, b), through tensor.Checkpoint when ck is set.
func run2(ck bool, f func(a, b *tensor.Tensor) *tensor.Tensor, a, b *tensor.Tensor) *tensor.Tensor {
	if !ck {
		return f(a, b)
	}
	return tensor.Checkpoint(func(in []*tensor.Tensor) *tensor.Tensor { return f(in[0], in[1]) }, a, b)
}

package vae

import (
	"math"
	"strconv"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Attention is the VAE's spatial self-attention (diffusers 0.16 AttentionBlock,
// later Attention with spatial_norm off): GroupNorm (eps 1e-6), one head over
// the C channels at the H*W positions with biased query/key/value projections,
// an output projection and the residual. Keys: group_norm and either
// query/key/value/proj_attn (diffusers 0.16) or to_q/to_k/to_v/to_out.0 (later
// versions; a random builder uses these).
type Attention struct {
	GroupNorm            *nn.GroupNorm
	ToQ, ToK, ToV, ToOut *nn.Linear // [C, C] with bias
}

// NewAttention returns the Attention at b over channels in groups groups.
func NewAttention(b *nn.Builder, channels, groups int) *Attention {
	names := [4]string{"to_q", "to_k", "to_v", "to_out.0"}
	if b.Has("query.weight") || b.Has("proj_attn.weight") {
		names = [4]string{"query", "key", "value", "proj_attn"}
	}
	lin := func(name string) *nn.Linear { return nn.NewLinear(b.Sub(name), channels, channels, true) }
	return &Attention{
		GroupNorm: nn.NewGroupNorm(b.Sub("group_norm"), groups, channels, 1e-6),
		ToQ:       lin(names[0]), ToK: lin(names[1]), ToV: lin(names[2]), ToOut: lin(names[3]),
	}
}

// Forward returns x + attention(x) for x [N, C, H, W].
func (a *Attention) Forward(x *tensor.Tensor) *tensor.Tensor {
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	scale := float32(1 / math.Sqrt(float64(c)))
	// Each value goes as soon as the next stage exists: the normalised input
	// once projected, q, k and v once attended, the attention once projected.
	return tensor.Scope(func() *tensor.Tensor {
		p := tensor.Scope(func() *tensor.Tensor {
			o := tensor.Scope(func() *tensor.Tensor {
				qkv := tensor.ScopeN(func() []*tensor.Tensor {
					seq := a.GroupNorm.Forward(x).View(n, c, h*w).Transpose(1, 2) // [N, HW, C]
					return []*tensor.Tensor{a.ToQ.Forward(seq), a.ToK.Forward(seq), a.ToV.Forward(seq)}
				})
				return tensor.Attention(qkv[0], qkv[1], qkv[2], 1, scale, false)
			})
			return a.ToOut.Forward(o) // [N, HW, C]
		})
		return x.Add(p.Transpose(1, 2).Reshape(n, c, h, w))
	})
}

// MidBlock is UNetMidBlock2D without time embedding: ResNet, Attention (absent
// when mid_block_add_attention is false), ResNet. Keys: resnets.0,
// attentions.0, resnets.1.
type MidBlock struct {
	Resnets   [2]*nn.ResnetBlock2D
	Attention *Attention // nil without attention
}

func newMidBlock(b *nn.Builder, ch, groups int, attn bool) *MidBlock {
	m := &MidBlock{Resnets: [2]*nn.ResnetBlock2D{
		resnet(b.Path("resnets", 0), ch, ch, groups),
		resnet(b.Path("resnets", 1), ch, ch, groups)}}
	if attn {
		m.Attention = NewAttention(b.Path("attentions", 0), ch, groups)
	}
	return m
}

// Forward returns the block applied to x [N, C, H, W].
func (m *MidBlock) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		h := m.Resnets[0].Forward(x, nil)
		if m.Attention != nil {
			h = tensor.Chain(h, m.Attention.Forward)
		}
		return m.Resnets[1].Forward(h, nil)
	})
}

func resnet(b *nn.Builder, in, out, groups int) *nn.ResnetBlock2D {
	return nn.NewResnetBlock2D(b, nn.ResnetBlock2DConfig{In: in, Out: out, Groups: groups, Eps: 1e-6})
}

// Block is a DownEncoderBlock2D (ResNets, then Downsampler) or an
// UpDecoderBlock2D (ResNets, then Upsampler). Keys: resnets.J, downsamplers.0
// or upsamplers.0.
type Block struct {
	Resnets     []*nn.ResnetBlock2D
	Downsampler *nn.Downsample2D // nil in the last down block and in up blocks
	Upsampler   *nn.Upsample2D   // nil in the last up block and in down blocks
}

// Forward returns the block applied to x [N, C, H, W].
func (blk *Block) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		h := x // the input is the caller's: the chain consumes only what this block makes
		for _, r := range blk.Resnets {
			if h == x {
				h = r.Forward(x, nil)
			} else {
				h = tensor.Chain(h, func(h *tensor.Tensor) *tensor.Tensor { return r.Forward(h, nil) })
			}
		}
		switch {
		case blk.Downsampler != nil:
			return blk.Downsampler.Forward(h)
		case blk.Upsampler != nil:
			return blk.Upsampler.Forward(h)
		case h == x:
			return x.Clone()
		}
		return h
	})
}

// Encoder is diffusers' Encoder with double_z: conv_in, down_blocks.I,
// mid_block, conv_norm_out (+ SiLU), conv_out to 2*latent_channels.
type Encoder struct {
	ConvIn      *nn.Conv2d
	DownBlocks  []*Block
	MidBlock    *MidBlock
	ConvNormOut *nn.GroupNorm
	ConvOut     *nn.Conv2d
}

func newEncoder(b *nn.Builder, c Config) *Encoder {
	ch, g := c.BlockOutChannels, c.NormNumGroups
	e := &Encoder{ConvIn: nn.NewConv2d(b.Sub("conv_in"), c.InChannels, ch[0], 3, 1, 1)}
	in := ch[0]
	for i, out := range ch {
		bb := b.Path("down_blocks", i)
		blk := &Block{}
		for j := 0; j < c.LayersPerBlock; j++ {
			blk.Resnets = append(blk.Resnets, resnet(bb.Path("resnets", j), in, out, g))
			in = out
		}
		if i < len(ch)-1 {
			blk.Downsampler = nn.NewDownsample2D(bb.Path("downsamplers", 0), out, out, 0)
		}
		e.DownBlocks = append(e.DownBlocks, blk)
	}
	last := ch[len(ch)-1]
	e.MidBlock = newMidBlock(b.Sub("mid_block"), last, g, c.midAttention())
	e.ConvNormOut = nn.NewGroupNorm(b.Sub("conv_norm_out"), g, last, 1e-6)
	e.ConvOut = nn.NewConv2d(b.Sub("conv_out"), last, 2*c.LatentChannels, 3, 1, 1)
	return e
}

// forward returns the encoder applied to x [N, in, H, W]: [N, 2L, h, w].
func (e *Encoder) forward(x *tensor.Tensor, obs observer) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		h := e.ConvIn.Forward(x)
		obs.see("encoder.conv_in", h)
		for i, blk := range e.DownBlocks {
			h = tensor.Chain(h, blk.Forward)
			obs.see("encoder.down_blocks."+strconv.Itoa(i), h)
		}
		h = tensor.Chain(h, e.MidBlock.Forward)
		obs.see("encoder.mid_block", h)
		out := tensor.Chain(h, e.ConvNormOut.ForwardSiLU, e.ConvOut.Forward)
		obs.see("encoder.conv_out", out)
		return out
	})
}

// Decoder is diffusers' Decoder: conv_in, mid_block, up_blocks.I,
// conv_norm_out (+ SiLU), conv_out.
type Decoder struct {
	ConvIn      *nn.Conv2d
	MidBlock    *MidBlock
	UpBlocks    []*Block
	ConvNormOut *nn.GroupNorm
	ConvOut     *nn.Conv2d
}

func newDecoder(b *nn.Builder, c Config) *Decoder {
	ch, g := c.BlockOutChannels, c.NormNumGroups
	last := ch[len(ch)-1]
	d := &Decoder{
		ConvIn:   nn.NewConv2d(b.Sub("conv_in"), c.LatentChannels, last, 3, 1, 1),
		MidBlock: newMidBlock(b.Sub("mid_block"), last, g, c.midAttention()),
	}
	in := last
	for i := range ch {
		out := ch[len(ch)-1-i] // reversed block_out_channels
		bb := b.Path("up_blocks", i)
		blk := &Block{}
		for j := 0; j <= c.LayersPerBlock; j++ {
			blk.Resnets = append(blk.Resnets, resnet(bb.Path("resnets", j), in, out, g))
			in = out
		}
		if i < len(ch)-1 {
			blk.Upsampler = nn.NewUpsample2D(bb.Path("upsamplers", 0), out, out)
		}
		d.UpBlocks = append(d.UpBlocks, blk)
	}
	d.ConvNormOut = nn.NewGroupNorm(b.Sub("conv_norm_out"), g, ch[0], 1e-6)
	d.ConvOut = nn.NewConv2d(b.Sub("conv_out"), ch[0], c.OutChannels, 3, 1, 1)
	return d
}

// forward returns the decoder applied to z [N, L, h, w]: [N, out, H, W].
func (d *Decoder) forward(z *tensor.Tensor, obs observer) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		h := d.ConvIn.Forward(z)
		obs.see("decoder.conv_in", h)
		h = tensor.Chain(h, d.MidBlock.Forward)
		obs.see("decoder.mid_block", h)
		for i, blk := range d.UpBlocks {
			h = tensor.Chain(h, blk.Forward)
			obs.see("decoder.up_blocks."+strconv.Itoa(i), h)
		}
		out := tensor.Chain(h, d.ConvNormOut.ForwardSiLU, d.ConvOut.Forward)
		obs.see("decoder.conv_out", out)
		return out
	})
}

// observer receives block outputs by their diffusers module names (tests).
type observer func(name string, t *tensor.Tensor)

func (o observer) see(name string, t *tensor.Tensor) {
	if o != nil {
		tensor.Unscoped(func() { o(name, t) }) // what the observer keeps is its own
	}
}

package nn

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// Attention is diffusers' Attention (attention_processor.Attention, formerly
// CrossAttention) as used by Stable Diffusion: multi-head scaled-dot-product
// attention with query, key and value projections without bias (to_q, to_k,
// to_v) and an output projection with bias (to_out.0). Keys and values come from
// the input itself (self-attention) or from a context of another width
// (cross-attention, e.g. text-encoder states). Scale is DimHead^-0.5.
type Attention struct {
	Heads   int
	DimHead int
	ToQ     *Linear // [H*D, queryDim], no bias
	ToK     *Linear // [H*D, crossDim], no bias
	ToV     *Linear // [H*D, crossDim], no bias
	ToOut   *Linear // to_out.0: [queryDim, H*D] with bias
}

// NewAttention returns the Attention at b for inputs of queryDim features, with
// heads heads of dimHead features each; crossDim is the width of the context for
// cross-attention, or 0 for self-attention (context width queryDim).
func NewAttention(b *Builder, queryDim, crossDim, heads, dimHead int) *Attention {
	if heads < 1 || dimHead < 1 {
		panic(fmt.Sprintf("nn: NewAttention: %d heads of %d features", heads, dimHead))
	}
	if crossDim == 0 {
		crossDim = queryDim
	}
	inner := heads * dimHead
	return &Attention{
		Heads: heads, DimHead: dimHead,
		ToQ:   NewLinear(b.Sub("to_q"), queryDim, inner, false),
		ToK:   NewLinear(b.Sub("to_k"), crossDim, inner, false),
		ToV:   NewLinear(b.Sub("to_v"), crossDim, inner, false),
		ToOut: NewLinear(b.Path("to_out", 0), inner, queryDim, true),
	}
}

// Forward returns the attention of x [B, Sq, queryDim] over ctx [B, Sk, crossDim]
// (nil: over x itself): [B, Sq, queryDim].
func (a *Attention) Forward(x, ctx *tensor.Tensor) *tensor.Tensor {
	if ctx == nil {
		ctx = x
	}
	scale := float32(1 / math.Sqrt(float64(a.DimHead)))
	return tensor.Scope(func() *tensor.Tensor {
		// q, k and v go when the attention exists.
		o := tensor.Scope(func() *tensor.Tensor {
			return tensor.Attention(a.ToQ.Forward(x), a.ToK.Forward(ctx), a.ToV.Forward(ctx), a.Heads, scale, false) // [B, Sq, H*D]
		})
		return a.ToOut.Forward(o)
	})
}

// FeedForward is diffusers' FeedForward with the GEGLU activation (Stable
// Diffusion's transformer MLP): net.0.proj projects dim to 2*inner, the first
// half is gated by GELU of the second (GEGLU), and net.2 projects inner back to
// dim. inner = dim*mult.
type FeedForward struct {
	Proj *Linear // net.0.proj: [2*inner, dim]
	Out  *Linear // net.2: [dim, inner]
}

// NewFeedForward returns the FeedForward at b for dim features with the hidden
// width dim*mult (diffusers' default mult is 4).
func NewFeedForward(b *Builder, dim, mult int) *FeedForward {
	inner := dim * mult
	return &FeedForward{
		Proj: NewLinear(b.Path("net", 0, "proj"), dim, 2*inner, true),
		Out:  NewLinear(b.Path("net", 2), inner, dim, true),
	}
}

// Forward returns net.2(GEGLU(net.0.proj(x))) for x [..., dim].
func (f *FeedForward) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		g := tensor.Scope(func() *tensor.Tensor { return tensor.GEGLU(f.Proj.Forward(x)) }) // the projection goes here
		return f.Out.Forward(g)
	})
}

// BasicTransformerBlock is diffusers' BasicTransformerBlock with the layer-norm
// layout of Stable Diffusion: self-attention, cross-attention and a GEGLU
// feed-forward, each after a LayerNorm (eps 1e-5) and added to its input.
// Keys: norm1, attn1, norm2, attn2, norm3, ff.
type BasicTransformerBlock struct {
	Norm1 *LayerNorm
	Attn1 *Attention
	Norm2 *LayerNorm
	Attn2 *Attention
	Norm3 *LayerNorm
	FF    *FeedForward
}

// NewBasicTransformerBlock returns the block at b for dim features (the
// transformer's inner width, usually heads*dimHead) with cross-attention to a
// context of crossDim features (0: attn2 is self-attention too); the argument
// order is NewAttention's.
func NewBasicTransformerBlock(b *Builder, dim, crossDim, heads, dimHead int) *BasicTransformerBlock {
	return &BasicTransformerBlock{
		Norm1: NewLayerNorm(b.Sub("norm1"), dim, 1e-5),
		Attn1: NewAttention(b.Sub("attn1"), dim, 0, heads, dimHead),
		Norm2: NewLayerNorm(b.Sub("norm2"), dim, 1e-5),
		Attn2: NewAttention(b.Sub("attn2"), dim, crossDim, heads, dimHead),
		Norm3: NewLayerNorm(b.Sub("norm3"), dim, 1e-5),
		FF:    NewFeedForward(b.Sub("ff"), dim, 4),
	}
}

// Forward returns the block applied to x [B, S, dim] with context ctx [B, Sc,
// crossDim] (nil when attn2 is self-attention): [B, S, dim].
func (t *BasicTransformerBlock) Forward(x, ctx *tensor.Tensor) *tensor.Tensor {
	// One scope per residual branch: each consumes the previous h.
	return tensor.Scope(func() *tensor.Tensor {
		h := tensor.Scope(func() *tensor.Tensor { return t.Attn1.Forward(t.Norm1.Forward(x), nil).AddInPlace(x) })
		h = tensor.Scope(func() *tensor.Tensor { return t.Attn2.Forward(t.Norm2.Forward(h), ctx).AddInPlace(h) }, h)
		return tensor.Scope(func() *tensor.Tensor { return t.FF.Forward(t.Norm3.Forward(h)).AddInPlace(h) }, h)
	})
}

// Transformer2DConfig is the configuration of a Transformer2DModel (diffusers'
// names in parentheses).
type Transformer2DConfig struct {
	Channels            int  // in_channels
	Heads               int  // num_attention_heads
	DimHead             int  // attention_head_dim
	Layers              int  // num_layers (0 means 1)
	CrossDim            int  // cross_attention_dim (0: self-attention only)
	Groups              int  // norm_num_groups (0 means 32)
	UseLinearProjection bool // use_linear_projection: proj_in/out are Linear, else 1x1 Conv2d
}

// Transformer2DModel is diffusers' Transformer2DModel for continuous (image)
// inputs, the spatial transformer of the Stable Diffusion U-Net: GroupNorm (eps
// 1e-6), a projection to the inner width (proj_in), the BasicTransformerBlocks
// over the H*W positions as a sequence, the projection back (proj_out) and the
// residual. Keys: norm, proj_in, transformer_blocks.N, proj_out.
type Transformer2DModel struct {
	Config Transformer2DConfig
	Norm   *GroupNorm
	// ProjIn and ProjOut: weight [out, in] (linear projection) or [out, in, 1, 1]
	// (1x1 convolution), bias [out].
	ProjIn, ProjOut *Linear
	Blocks          []*BasicTransformerBlock
}

// NewTransformer2DModel returns the Transformer2DModel at b with configuration c.
func NewTransformer2DModel(b *Builder, c Transformer2DConfig) *Transformer2DModel {
	if c.Layers == 0 {
		c.Layers = 1
	}
	if c.Groups == 0 {
		c.Groups = 32
	}
	inner := c.Heads * c.DimHead
	t := &Transformer2DModel{Config: c, Norm: NewGroupNorm(b.Sub("norm"), c.Groups, c.Channels, 1e-6)}
	if c.UseLinearProjection {
		t.ProjIn = NewLinear(b.Sub("proj_in"), c.Channels, inner, true)
		t.ProjOut = NewLinear(b.Sub("proj_out"), inner, c.Channels, true)
	} else {
		// A 1x1 convolution is a Linear over the channels at each position.
		ci := NewConv2d(b.Sub("proj_in"), c.Channels, inner, 1, 1, 0)
		co := NewConv2d(b.Sub("proj_out"), inner, c.Channels, 1, 1, 0)
		t.ProjIn = &Linear{Weight: ci.Weight, Bias: ci.Bias, Name: ci.Name}
		t.ProjOut = &Linear{Weight: co.Weight, Bias: co.Bias, Name: co.Name}
	}
	for i := 0; i < c.Layers; i++ {
		t.Blocks = append(t.Blocks, NewBasicTransformerBlock(b.Path("transformer_blocks", i), inner, c.CrossDim, c.Heads, c.DimHead))
	}
	return t
}

// matrix returns w as [rows, cols] (a view of a 1x1 convolution's weight).
func matrix(w *tensor.Tensor) *tensor.Tensor {
	if w.Rank() == 2 {
		return w
	}
	return w.Reshape(w.Dim(0), -1)
}

// forwardMatrix is Forward for a Linear whose weight may be a 1x1
// convolution's [out, in, 1, 1] (the projections of Transformer2DModel).
func (l *Linear) forwardMatrix(x *tensor.Tensor) *tensor.Tensor {
	y := tensor.Linear(x, matrix(l.Weight), l.Bias)
	if l.Adapter != nil {
		y = l.Adapter.Adapt(x, y)
	}
	return y
}

// Forward returns the transformer applied to x [B, C, H, W] with context ctx
// [B, S, CrossDim] (nil without cross-attention): [B, C, H, W].
func (t *Transformer2DModel) Forward(x, ctx *tensor.Tensor) *tensor.Tensor {
	nb, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	inner := t.Config.Heads * t.Config.DimHead
	return tensor.Scope(func() *tensor.Tensor {
		seq := tensor.Scope(func() *tensor.Tensor {
			nt := t.Norm.Forward(x).Permute(0, 2, 3, 1)            // [B, H, W, C]
			return t.ProjIn.forwardMatrix(nt).View(nb, h*w, inner) // [B, H*W, inner]
		})
		for _, blk := range t.Blocks {
			seq = tensor.Scope(func() *tensor.Tensor { return blk.Forward(seq, ctx) }, seq)
		}
		o := tensor.Scope(func() *tensor.Tensor {
			return t.ProjOut.forwardMatrix(seq) // [B, H*W, C]
		}, seq)
		return x.Add(o.View(nb, h, w, c).Permute(0, 3, 1, 2))
	})
}

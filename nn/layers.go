package nn

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// Adapter adds a learned correction to the output of a Linear or Conv2d
// layer, such as a LoRA (package nn/lora): the layer computes y from x as
// usual and returns Adapt(x, y). Adapt may write into y (it is the layer's
// fresh output) and returns the result.
type Adapter interface {
	Adapt(x, y *tensor.Tensor) *tensor.Tensor
}

// Linear is torch.nn.Linear: y = x W^T + b, with weight [out, in] (F32, F16 or
// BF16, used as stored) and an optional bias [out]. Keys: weight, bias.
type Linear struct {
	Weight *tensor.Tensor // [out, in]
	Bias   *tensor.Tensor // [out] or nil
	// Name is the layer's module path in the diffusers state dict
	// ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"), set
	// by NewLinear; adapters find layers by it. "" for a layer made
	// otherwise.
	Name string
	// Adapter, if set, corrects the output (see Adapter); nil for the plain
	// layer, which then costs nothing more.
	Adapter Adapter
}

// NewLinear returns the Linear layer at b with in inputs and out outputs, with or
// without bias (PyTorch's default initialisation for random builders).
func NewLinear(b *Builder, in, out int, bias bool) *Linear {
	l := &Linear{Weight: b.GetInit("weight", InitKaimingUniform(), out, in), Name: b.Prefix()}
	if bias {
		l.Bias = b.GetInit("bias", InitBias(in), out)
	}
	return l
}

// Forward returns x W^T + b for x [..., in]: [..., out].
func (l *Linear) Forward(x *tensor.Tensor) *tensor.Tensor {
	y := tensor.Linear(x, l.Weight, l.Bias)
	if l.Adapter != nil {
		y = l.Adapter.Adapt(x, y)
	}
	return y
}

// Conv2d is torch.nn.Conv2d (groups 1): weight [out, in, kh, kw] (F32, F16 or
// BF16, used as stored), optional bias [out], stride and zero padding. Keys:
// weight, bias.
type Conv2d struct {
	Weight *tensor.Tensor // [out, in, kh, kw]
	Bias   *tensor.Tensor // [out] or nil
	Opts   tensor.ConvOpts
	// Name is the layer's module path in the diffusers state dict
	// ("down_blocks.0.resnets.0.conv1"), set by NewConv2dOpts; "" for a
	// layer made otherwise.
	Name string
	// Adapter, if set, corrects the output (see Adapter).
	Adapter Adapter
}

// NewConv2d returns the square-kernel Conv2d at b with bias (as every conv of the
// U-Net and VAE): kernel x kernel, the same stride and padding in both directions.
func NewConv2d(b *Builder, in, out, kernel, stride, padding int) *Conv2d {
	return NewConv2dOpts(b, in, out, kernel, kernel, tensor.ConvSquare(stride, padding), true)
}

// NewConv2dOpts returns the Conv2d at b with a kh x kw kernel, the given strides
// and paddings, with or without bias.
func NewConv2dOpts(b *Builder, in, out, kh, kw int, o tensor.ConvOpts, bias bool) *Conv2d {
	c := &Conv2d{Weight: b.GetInit("weight", InitKaimingUniform(), out, in, kh, kw), Opts: o, Name: b.Prefix()}
	if bias {
		c.Bias = b.GetInit("bias", InitBias(in*kh*kw), out)
	}
	return c
}

// Forward returns the convolution of x [N, in, H, W]: [N, out, OH, OW].
func (c *Conv2d) Forward(x *tensor.Tensor) *tensor.Tensor {
	y := tensor.Conv2d(x, c.Weight, c.Bias, c.Opts)
	if c.Adapter != nil {
		y = c.Adapter.Adapt(x, y)
	}
	return y
}

// GroupNorm is torch.nn.GroupNorm with affine parameters: weight [C] (gamma),
// bias [C] (beta). Keys: weight, bias.
type GroupNorm struct {
	Groups int
	Eps    float32
	Weight *tensor.Tensor // [C]
	Bias   *tensor.Tensor // [C]
}

// NewGroupNorm returns the GroupNorm at b over channels in groups groups, with
// epsilon eps (diffusers: 1e-6 in the U-Net and VAE ResNet and attention blocks).
func NewGroupNorm(b *Builder, groups, channels int, eps float32) *GroupNorm {
	if groups < 1 || channels%groups != 0 {
		panic(fmt.Sprintf("nn: NewGroupNorm: %d channels in %d groups", channels, groups))
	}
	return &GroupNorm{Groups: groups, Eps: eps,
		Weight: b.GetInit("weight", InitConst(1), channels),
		Bias:   b.GetInit("bias", InitConst(0), channels)}
}

// Forward normalises x [N, C, ...].
func (g *GroupNorm) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.GroupNorm(x, g.Groups, g.Weight, g.Bias, g.Eps, false)
}

// ForwardSiLU returns SiLU(GroupNorm(x)) in one fused pass (the ResNet blocks'
// norm + nonlinearity).
func (g *GroupNorm) ForwardSiLU(x *tensor.Tensor) *tensor.Tensor {
	return tensor.GroupNorm(x, g.Groups, g.Weight, g.Bias, g.Eps, true)
}

// LayerNorm is torch.nn.LayerNorm over the last dimension with affine parameters.
// Keys: weight, bias.
type LayerNorm struct {
	Eps    float32
	Weight *tensor.Tensor // [D]
	Bias   *tensor.Tensor // [D]
}

// NewLayerNorm returns the LayerNorm at b over dim features with epsilon eps
// (PyTorch's default 1e-5, as in diffusers' BasicTransformerBlock and CLIP).
func NewLayerNorm(b *Builder, dim int, eps float32) *LayerNorm {
	return &LayerNorm{Eps: eps,
		Weight: b.GetInit("weight", InitConst(1), dim),
		Bias:   b.GetInit("bias", InitConst(0), dim)}
}

// Forward normalises x [..., D] over its last dimension.
func (l *LayerNorm) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.LayerNorm(x, l.Weight, l.Bias, l.Eps)
}

// Embedding is torch.nn.Embedding: a table weight [num, dim] indexed by I64 ids.
// Key: weight.
type Embedding struct {
	Weight *tensor.Tensor // [num, dim]
}

// NewEmbedding returns the Embedding at b with num rows of dim features (random
// builders: N(0, 1), PyTorch's default).
func NewEmbedding(b *Builder, num, dim int) *Embedding {
	return &Embedding{Weight: b.GetInit("weight", InitNormal(0, 1), num, dim)}
}

// Forward returns the rows selected by ids [...] (I64): F32 [..., dim].
func (e *Embedding) Forward(ids *tensor.Tensor) *tensor.Tensor {
	return tensor.Embedding(ids, e.Weight)
}

// Activation is an elementwise nonlinearity, named as diffusers and transformers
// configs name it (act_fn, hidden_act).
type Activation uint8

// The activations.
const (
	ActSiLU      Activation = iota // "silu", "swish"
	ActGELU                        // "gelu" (exact, erf)
	ActGELUTanh                    // "gelu_pytorch_tanh", "gelu_new" (tanh approximation)
	ActQuickGELU                   // "quick_gelu" (x sigmoid(1.702 x), OpenAI CLIP)
)

// ParseActivation returns the activation of a config name ("silu", "swish",
// "gelu", "gelu_pytorch_tanh", "gelu_new", "quick_gelu"), or an error.
func ParseActivation(name string) (Activation, error) {
	switch name {
	case "silu", "swish":
		return ActSiLU, nil
	case "gelu":
		return ActGELU, nil
	case "gelu_pytorch_tanh", "gelu_new":
		return ActGELUTanh, nil
	case "quick_gelu":
		return ActQuickGELU, nil
	}
	return 0, fmt.Errorf("nn: unknown activation %q (want silu, swish, gelu, gelu_pytorch_tanh, gelu_new or quick_gelu)", name)
}

// Forward applies the activation to x elementwise.
func (a Activation) Forward(x *tensor.Tensor) *tensor.Tensor {
	switch a {
	case ActSiLU:
		return tensor.SiLU(x)
	case ActGELU:
		return tensor.GELU(x)
	case ActGELUTanh:
		return tensor.GELUTanh(x)
	case ActQuickGELU:
		return tensor.QuickGELU(x)
	}
	panic(fmt.Sprintf("nn: Activation.Forward: invalid activation %d", a))
}

// String returns the activation's config name.
func (a Activation) String() string {
	switch a {
	case ActSiLU:
		return "silu"
	case ActGELU:
		return "gelu"
	case ActGELUTanh:
		return "gelu_pytorch_tanh"
	case ActQuickGELU:
		return "quick_gelu"
	}
	return fmt.Sprintf("Activation(%d)", uint8(a))
}

package features

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// CLIP's image tower (Radford et al., "Learning Transferable Visual Models
// From Natural Language Supervision", arXiv:2103.00020; ViT of Dosovitskiy et
// al., arXiv:2010.11929) as transformers' CLIPVisionModelWithProjection
// computes it: patch embedding (a stride-P convolution without bias), a class
// token, learned positions, pre-LayerNorm, pre-norm transformer layers
// (non-causal attention, QuickGELU MLP for OpenAI's weights), post-LayerNorm
// of the class token and a bias-free projection to the joint embedding.

// CLIPVisionConfig is transformers' CLIPVisionConfig (plus the projection
// size); DefaultCLIPVisionConfig is ViT-B/32.
type CLIPVisionConfig struct {
	HiddenSize        int
	IntermediateSize  int
	NumHiddenLayers   int
	NumAttentionHeads int
	PatchSize         int
	ImageSize         int
	ProjectionDim     int
	HiddenAct         string
	LayerNormEps      float64
}

// DefaultCLIPVisionConfig returns OpenAI's ViT-B/32 (openai/clip-vit-base-patch32):
// width 768, 12 layers, 12 heads, patch 32, 224x224 images, 512-d
// projection, quick_gelu, LayerNorm eps 1e-5.
func DefaultCLIPVisionConfig() CLIPVisionConfig {
	return CLIPVisionConfig{HiddenSize: 768, IntermediateSize: 3072, NumHiddenLayers: 12, NumAttentionHeads: 12,
		PatchSize: 32, ImageSize: 224, ProjectionDim: 512, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
}

// Validate checks the sizes and the activation name.
func (c CLIPVisionConfig) Validate() error {
	if c.HiddenSize < 1 || c.IntermediateSize < 1 || c.NumHiddenLayers < 1 || c.NumAttentionHeads < 1 ||
		c.PatchSize < 1 || c.ImageSize < c.PatchSize || c.ProjectionDim < 1 || c.HiddenSize%c.NumAttentionHeads != 0 ||
		c.HiddenSize > nn.MaxDim || c.IntermediateSize > nn.MaxDim || c.NumHiddenLayers > 1024 ||
		c.ImageSize > nn.MaxDim || c.ProjectionDim > nn.MaxDim || !(c.LayerNormEps > 0) {
		return fmt.Errorf("features: invalid CLIP vision config %+v", c)
	}
	if _, err := nn.ParseActivation(c.HiddenAct); err != nil {
		return fmt.Errorf("features: CLIP vision config: %w", err)
	}
	return nil
}

// positions returns the number of positions: patches plus the class token.
func (c CLIPVisionConfig) positions() int {
	g := c.ImageSize / c.PatchSize
	return g*g + 1
}

// CLIPVision is the image tower. Keys are transformers' names
// (vision_model.embeddings.patch_embedding.weight, vision_model.pre_layrnorm.weight,
// vision_model.encoder.layers.0.self_attn.q_proj.weight, ...,
// vision_model.post_layernorm.bias, visual_projection.weight); the other keys
// of a full CLIPModel checkpoint (text_model.*, logit_scale) are ignored.
// OpenAI / open_clip state dicts (visual.*) are renamed to these (see
// OpenAIVisionSource).
type CLIPVision struct {
	Config         CLIPVisionConfig
	ClassEmbedding *tensor.Tensor // [D]
	PatchEmbedding *nn.Conv2d     // [D, 3, P, P], no bias
	Positions      *tensor.Tensor // [positions, D]
	PreLN, PostLN  *nn.LayerNorm
	Layers         []*ViTLayer
	Projection     *nn.Linear // [proj, D], no bias
	// Hook, when set, sees each stage's output by its golden name (pre,
	// layerN, pooled, image_embeds); for tests.
	Hook func(name string, t *tensor.Tensor)
}

// ViTLayer is CLIPEncoderLayer without a mask: x += attn(ln1(x)); x += mlp(ln2(x)).
type ViTLayer struct {
	Heads                        int
	LN1, LN2                     *nn.LayerNorm
	QProj, KProj, VProj, OutProj *nn.Linear
	FC1, FC2                     *nn.Linear
	Act                          nn.Activation
}

// NewCLIPVision builds the image tower from b (at the state dict's root).
func NewCLIPVision(b *nn.Builder, c CLIPVisionConfig) (*CLIPVision, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	act, _ := nn.ParseActivation(c.HiddenAct)
	d, eps := c.HiddenSize, float32(c.LayerNormEps)
	vb := b.Sub("vision_model")
	emb := vb.Sub("embeddings")
	m := &CLIPVision{Config: c,
		ClassEmbedding: emb.GetInit("class_embedding", nn.InitNormal(0, 1), d),
		PatchEmbedding: nn.NewConv2dOpts(emb.Sub("patch_embedding"), 3, d, c.PatchSize, c.PatchSize,
			tensor.ConvSquare(c.PatchSize, 0), false),
		Positions: emb.Sub("position_embedding").GetInit("weight", nn.InitNormal(0, 1), c.positions(), d),
		PreLN:     nn.NewLayerNorm(vb.Sub("pre_layrnorm"), d, eps),
		PostLN:    nn.NewLayerNorm(vb.Sub("post_layernorm"), d, eps),
	}
	emb.Skip("position_ids") // always 0..positions-1
	for i := 0; i < c.NumHiddenLayers; i++ {
		lb := vb.Path("encoder", "layers", i)
		ab := lb.Sub("self_attn")
		m.Layers = append(m.Layers, &ViTLayer{Heads: c.NumAttentionHeads, Act: act,
			LN1:     nn.NewLayerNorm(lb.Sub("layer_norm1"), d, eps),
			LN2:     nn.NewLayerNorm(lb.Sub("layer_norm2"), d, eps),
			QProj:   nn.NewLinear(ab.Sub("q_proj"), d, d, true),
			KProj:   nn.NewLinear(ab.Sub("k_proj"), d, d, true),
			VProj:   nn.NewLinear(ab.Sub("v_proj"), d, d, true),
			OutProj: nn.NewLinear(ab.Sub("out_proj"), d, d, true),
			FC1:     nn.NewLinear(lb.Path("mlp", "fc1"), d, c.IntermediateSize, true),
			FC2:     nn.NewLinear(lb.Path("mlp", "fc2"), c.IntermediateSize, d, true),
		})
	}
	m.Projection = nn.NewLinear(b.Sub("visual_projection"), d, c.ProjectionDim, false)
	return m, nil
}

// Forward returns the layer applied to x [N, S, D].
func (l *ViTLayer) Forward(x *tensor.Tensor) *tensor.Tensor {
	scale := float32(1 / math.Sqrt(float64(x.Dim(-1)/l.Heads)))
	return tensor.Scope(func() *tensor.Tensor {
		h := tensor.Scope(func() *tensor.Tensor {
			t := l.LN1.Forward(x)
			o := tensor.Attention(l.QProj.Forward(t), l.KProj.Forward(t), l.VProj.Forward(t), l.Heads, scale, false)
			return l.OutProj.Forward(o).AddInPlace(x)
		})
		return tensor.Scope(func() *tensor.Tensor {
			return l.FC2.Forward(l.Act.Forward(l.FC1.Forward(l.LN2.Forward(h)))).AddInPlace(h)
		}, h)
	})
}

// Features returns the image embeddings [N, ProjectionDim] (the
// image_embeds of CLIPVisionModelWithProjection, not L2-normalised) of x [N,
// 3, ImageSize, ImageSize], normalised as PreprocessCLIP does.
func (m *CLIPVision) Features(x *tensor.Tensor) *tensor.Tensor {
	c := m.Config
	if x.Rank() != 4 || x.Dim(1) != 3 || x.Dim(2) != c.ImageSize || x.Dim(3) != c.ImageSize {
		panic(fmt.Sprintf("features: CLIPVision.Features: x %v (want [N, 3, %d, %d])", x.Shape(), c.ImageSize, c.ImageSize))
	}
	hook := func(name string, t *tensor.Tensor) {
		if m.Hook != nil {
			m.Hook(name, t)
		}
	}
	n, d := x.Dim(0), c.HiddenSize
	var out *tensor.Tensor
	tensor.NoGrad(func() {
		out = tensor.Scope(func() *tensor.Tensor {
			h := tensor.Scope(func() *tensor.Tensor {
				p := m.PatchEmbedding.Forward(x)                       // [N, D, g, g]
				p = p.Reshape(n, d, p.Dim(2)*p.Dim(3)).Transpose(1, 2) // [N, P, D]
				cls := m.ClassEmbedding.View(1, 1, d).Expand(n, 1, d)
				h := tensor.Cat(1, cls, p).Add(m.Positions.Unsqueeze(0))
				return m.PreLN.Forward(h)
			})
			hook("pre", h)
			for i, l := range m.Layers {
				h = tensor.Scope(func() *tensor.Tensor { return l.Forward(h) }, h)
				hook(fmt.Sprintf("layer%d", i), h)
			}
			pooled := m.PostLN.Forward(h.Select(1, 0))
			hook("pooled", pooled)
			return m.Projection.Forward(pooled)
		})
	})
	hook("image_embeds", out)
	return out
}

// LoadCLIPVision builds the ViT-B/32 image tower (or another size, given c)
// from a weight file at path: transformers' CLIPModel or
// CLIPVisionModelWithProjection weights (model.safetensors,
// pytorch_model.bin), or an OpenAI / open_clip state dict with visual.* keys
// (safetensors or a zip checkpoint; OpenAI's TorchScript .pt archives are not
// read, convert them first: docs/EVALUATION.md).
func LoadCLIPVision(path string, c CLIPVisionConfig) (*CLIPVision, error) {
	src, closer, err := openWeights(path, "CLIP vision",
		"openai/clip-vit-base-patch32's model.safetensors from Hugging Face, or an open_clip ViT-B-32 checkpoint; see docs/EVALUATION.md")
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	var s nn.Source = prefixSource{src, []string{"vision_model.", "visual_projection."}}
	if _, _, ok := src.Info("visual.class_embedding"); ok {
		s = OpenAIVisionSource(src)
	}
	m, _, err := nn.Build(s, c, tensor.F32, NewCLIPVision)
	if err != nil {
		return nil, fmt.Errorf("features: CLIP vision weights %s: %w", path, err)
	}
	m.detach()
	return m, nil
}

// detach replaces every parameter by a copy of its own, so that the weight
// file can be closed.
func (m *CLIPVision) detach() {
	cp := func(t **tensor.Tensor) {
		if *t != nil {
			*t = tensor.Persist((*t).Clone())
		}
	}
	cp(&m.ClassEmbedding)
	cp(&m.PatchEmbedding.Weight)
	cp(&m.Positions)
	for _, ln := range []*nn.LayerNorm{m.PreLN, m.PostLN} {
		cp(&ln.Weight)
		cp(&ln.Bias)
	}
	for _, l := range m.Layers {
		for _, ln := range []*nn.LayerNorm{l.LN1, l.LN2} {
			cp(&ln.Weight)
			cp(&ln.Bias)
		}
		for _, li := range []*nn.Linear{l.QProj, l.KProj, l.VProj, l.OutProj, l.FC1, l.FC2} {
			cp(&li.Weight)
			cp(&li.Bias)
		}
	}
	cp(&m.Projection.Weight)
}

package features

import (
	"fmt"
	"slices"
	"strings"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// openAIKey says how one transformers key is made from an OpenAI key.
type openAIKey struct {
	src   string
	part  int  // 0: whole tensor; 1..3: the q, k or v third of an in_proj tensor (rows)
	trans bool // transposed (visual.proj [D, proj] -> visual_projection.weight [proj, D])
}

// openAISource serves an OpenAI / open_clip state dict's visual.* tensors
// under transformers' CLIPVisionModelWithProjection names.
type openAISource struct {
	src  nn.Source
	keys map[string]openAIKey
}

// OpenAIVisionSource returns src (an OpenAI CLIP or open_clip state dict:
// visual.conv1.weight, visual.class_embedding, visual.positional_embedding,
// visual.ln_pre, visual.transformer.resblocks.N.{ln_1, attn.in_proj_weight,
// attn.in_proj_bias, attn.out_proj, ln_2, mlp.c_fc, mlp.c_proj},
// visual.ln_post, visual.proj) under transformers' names, as
// transformers' convert_clip_original_pytorch_to_hf.py maps them: in_proj
// split into q, k and v by rows, visual.proj transposed. Keys outside
// visual.* are not served.
func OpenAIVisionSource(src nn.Source) nn.Source {
	s := &openAISource{src: src, keys: map[string]openAIKey{}}
	add := func(hf, oa string) { s.keys[hf] = openAIKey{src: oa} }
	add("vision_model.embeddings.class_embedding", "visual.class_embedding")
	add("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight")
	add("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding")
	for _, p := range []string{"weight", "bias"} {
		add("vision_model.pre_layrnorm."+p, "visual.ln_pre."+p)
		add("vision_model.post_layernorm."+p, "visual.ln_post."+p)
	}
	s.keys["visual_projection.weight"] = openAIKey{src: "visual.proj", trans: true}
	for _, k := range src.Keys() {
		rest, ok := strings.CutPrefix(k, "visual.transformer.resblocks.")
		if !ok {
			continue
		}
		i, name, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		hf := "vision_model.encoder.layers." + i + "."
		switch name {
		case "attn.in_proj_weight", "attn.in_proj_bias":
			p := strings.TrimPrefix(name, "attn.in_proj_")
			for j, q := range []string{"q_proj", "k_proj", "v_proj"} {
				s.keys[hf+"self_attn."+q+"."+p] = openAIKey{src: k, part: j + 1}
			}
		default:
			for _, r := range [][2]string{{"attn.out_proj.", "self_attn.out_proj."}, {"ln_1.", "layer_norm1."},
				{"ln_2.", "layer_norm2."}, {"mlp.c_fc.", "mlp.fc1."}, {"mlp.c_proj.", "mlp.fc2."}} {
				if p, ok := strings.CutPrefix(name, r[0]); ok {
					add(hf+r[1]+p, k)
				}
			}
		}
	}
	for hf, k := range s.keys {
		if _, _, ok := src.Info(k.src); !ok {
			delete(s.keys, hf)
		}
	}
	return s
}

// Keys returns the transformers names served.
func (s *openAISource) Keys() []string {
	ks := make([]string, 0, len(s.keys))
	for k := range s.keys {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Info returns the dtype and shape of the renamed tensor.
func (s *openAISource) Info(name string) (string, []int, bool) {
	k, ok := s.keys[name]
	if !ok {
		return "", nil, false
	}
	dt, shape, ok := s.src.Info(k.src)
	if !ok {
		return "", nil, false
	}
	shape = slices.Clone(shape)
	switch {
	case k.part > 0 && len(shape) >= 1:
		shape[0] /= 3
	case k.trans && len(shape) == 2:
		shape[0], shape[1] = shape[1], shape[0]
	}
	return dt, shape, true
}

// Load returns the renamed tensor (a copy for split or transposed ones).
func (s *openAISource) Load(name string) (*tensor.Tensor, error) {
	k, ok := s.keys[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	t, err := s.src.Load(k.src)
	if err != nil {
		return nil, err
	}
	switch {
	case k.part > 0:
		if t.Rank() < 1 || t.Dim(0)%3 != 0 {
			return nil, fmt.Errorf("%s: shape %v cannot be split into q, k and v", k.src, t.Shape())
		}
		n := t.Dim(0) / 3
		v := t.Slice(0, (k.part-1)*n, k.part*n)
		defer v.Release()
		return tensor.Persist(v.Contiguous()), nil
	case k.trans:
		if t.Rank() != 2 {
			return nil, fmt.Errorf("%s: shape %v, want [D, proj]", k.src, t.Shape())
		}
		v := t.Transpose(0, 1)
		defer v.Release()
		return tensor.Persist(v.Contiguous()), nil
	}
	return t, nil
}

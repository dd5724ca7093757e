package pipeline

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/clip/ti"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/tensor"
)

// LoRASpec is a LoRA file to apply (package nn/lora reads diffusers, kohya
// and peft layouts) with its multiplier (diffusers' cross_attention_kwargs
// scale, AUTOMATIC1111's <lora:name:weight>).
type LoRASpec struct {
	Path  string
	Scale float64
}

// ParseLoRASpec reads "FILE" or "FILE:SCALE" (scale 1 when absent; a colon
// not followed by a number is part of the file name).
func ParseLoRASpec(s string) (LoRASpec, error) {
	if s == "" {
		return LoRASpec{}, fmt.Errorf("pipeline: empty LoRA; expected FILE or FILE:SCALE")
	}
	if i := strings.LastIndexByte(s, ':'); i > 0 {
		if v, err := strconv.ParseFloat(s[i+1:], 64); err == nil {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return LoRASpec{}, fmt.Errorf("pipeline: LoRA %q: scale %v, want a finite number", s, v)
			}
			return LoRASpec{Path: s[:i], Scale: v}, nil
		}
	}
	return LoRASpec{Path: s, Scale: 1}, nil
}

// String returns "FILE:SCALE".
func (l LoRASpec) String() string {
	return l.Path + ":" + strconv.FormatFloat(l.Scale, 'g', -1, 64)
}

// ApplyAdapters loads o.Embeddings (textual inversion, in order) and
// applies o.LoRAs (in order; merged into the weights unless
// o.LoRAUnmerged), as Load does after loading. The pipeline must be on the
// CPU (apply before ToDevice). A LoRA of scale 0 is read and checked but
// changes nothing: the output is the base model's bit for bit.
func (p *Pipeline) ApplyAdapters(o Options) error {
	for _, path := range o.Embeddings {
		if _, err := p.LoadEmbedding(path); err != nil {
			return err
		}
	}
	for _, l := range o.LoRAs {
		if _, err := p.ApplyLoRA(l, !o.LoRAUnmerged); err != nil {
			return err
		}
	}
	return nil
}

// ApplyLoRA applies a LoRA file to the U-Net and, when it has text-encoder
// layers, the text encoder, with multiplier spec.Scale: merged into the
// weights (merge; the model then runs at the base model's speed, and the
// replaced weights are dropped) or hooked in unmerged (each adapted layer
// computes its LoRA; Network.Remove takes them off). The pipeline must be
// on the CPU. Errors name the file and the key (a LoRA of another
// architecture).
func (p *Pipeline) ApplyLoRA(spec LoRASpec, merge bool) (*lora.Network, error) {
	if p.Device != tensor.CPU {
		return nil, fmt.Errorf("pipeline: LoRA %s: apply LoRAs before moving the pipeline to %v", spec.Path, p.Device)
	}
	f, err := lora.Read(spec.Path)
	if err != nil {
		return nil, errctx.Wrap("pipeline", err)
	}
	models := map[string]any{lora.UNet: p.UNet}
	if p.TextEncoder != nil {
		models[lora.TextEncoder] = p.TextEncoder
	}
	net, err := f.Apply(models, spec.Scale)
	if err != nil {
		return nil, errctx.Wrap("pipeline", err)
	}
	if spec.Scale == 0 {
		net.Remove() // checked, and nothing changes
		return net, nil
	}
	if merge {
		if err := net.Merge(); err != nil {
			net.Remove()
			return nil, errctx.Wrap("pipeline", err)
		}
		net.Commit()
	}
	return net, nil
}

// LoadEmbedding loads a textual-inversion file (diffusers'
// learned_embeds.safetensors or .bin, AUTOMATIC1111's embeddings) and adds
// its tokens to the tokenizer and the text encoder; prompts can use them
// from then on. It needs a CLIP tokenizer (not the demo model's byte
// tokenizer) and a pipeline on the CPU.
func (p *Pipeline) LoadEmbedding(path string) ([]*ti.Embedding, error) {
	if p.Device != tensor.CPU {
		return nil, fmt.Errorf("pipeline: embedding %s: load embeddings before moving the pipeline to %v", path, p.Device)
	}
	tok, ok := p.Tokenizer.(*clip.CLIPTokenizer)
	if !ok || p.TextEncoder == nil {
		return nil, fmt.Errorf("pipeline: embedding %s: this model's tokenizer (%T) cannot take new tokens; textual inversion needs a CLIP tokenizer", path, p.Tokenizer)
	}
	embs, err := ti.Load(path, "", tok, p.TextEncoder)
	if err != nil {
		return nil, errctx.Wrap("pipeline", err)
	}
	return embs, nil
}

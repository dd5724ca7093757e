package train

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/clip/ti"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/tensor"
)

// Output files of the LoRA and textual-inversion modes (in Out/model).
const (
	// LoRADiffusersFile is the LoRA in diffusers' layout
	// (UNet2DConditionModel.save_attn_procs, LoraLoaderMixin).
	LoRADiffusersFile = "pytorch_lora_weights.safetensors"
	// LoRAKohyaFile is the LoRA in kohya's layout (AUTOMATIC1111, ComfyUI).
	LoRAKohyaFile = "lora_kohya.safetensors"
	// EmbeddingFile is the learned embedding in diffusers' textual-inversion
	// layout ({placeholder: [vectors, dim]}).
	EmbeddingFile = "learned_embeds.safetensors"
)

// freezeAll freezes every parameter of the U-Net and the text encoder.
func freezeAll(m *Models) error {
	if _, err := m.UNet.Freeze("*"); err != nil {
		return err
	}
	if _, err := m.Text.Freeze("*"); err != nil {
		return err
	}
	return nil
}

// loraMode trains LoRA adapters (package nn/lora) on the U-Net ("lora") or
// on the U-Net and the text encoder ("lora+text"), with the base models
// frozen, and writes them as LoRA files.
type loraMode struct{ text bool }

func (l loraMode) Name() string {
	if l.text {
		return "lora+text"
	}
	return "lora"
}

func (l loraMode) Select(m *Models) error {
	c := m.Config
	if err := freezeAll(m); err != nil {
		return err
	}
	cfg := lora.Config{Rank: c.LoRA.Rank, Alpha: c.LoRA.Alpha, Component: lora.UNet,
		Targets: loraPatterns(c.LoRA.Targets, lora.UNet), Seed: c.Seed}
	net, err := lora.Attach(m.Pipeline.UNet, cfg)
	if err != nil {
		return err
	}
	if l.text {
		cfg.Component, cfg.Targets, cfg.Seed = lora.TextEncoder, loraPatterns(c.LoRA.Targets, lora.TextEncoder), c.Seed+1
		if len(cfg.Targets) == 0 {
			net.Remove()
			return fmt.Errorf("the LoRA targets %q have no text-encoder layers (use attention or ff)", c.LoRA.Targets)
		}
		tnet, err := lora.Attach(m.Pipeline.TextEncoder, cfg)
		if err != nil {
			net.Remove()
			return err
		}
		net.Extend(tnet)
	}
	ps, err := net.ParamSet()
	if err != nil {
		net.Remove()
		return err
	}
	m.LoRA = net
	m.Extra = append(m.Extra, ExtraParams{Name: "lora", Params: ps})
	return nil
}

// SaveOutput writes the adapters' final values (EMA averages with EMA) as
// pytorch_lora_weights.safetensors and/or lora_kohya.safetensors.
func (l loraMode) SaveOutput(m *Models, weight WeightFunc, dir string) error {
	if m.LoRA == nil {
		return fmt.Errorf("train: mode %s: no LoRA network", l.Name())
	}
	ps, err := m.LoRA.ParamSet()
	if err != nil {
		return errctx.Wrap("train", err)
	}
	out := &lora.Network{}
	for _, a := range m.LoRA.Adapters {
		c := *a // the same layer, with the final factors
		for _, f := range []struct {
			factor string
			dst    **tensor.Tensor
		}{{"down", &c.Down}, {"up", &c.Up}} {
			p := ps.Get(a.ParamName(f.factor))
			if p == nil {
				return fmt.Errorf("train: internal error: no parameter %s", a.ParamName(f.factor))
			}
			*f.dst = weight(p)
		}
		out.Adapters = append(out.Adapters, &c)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	meta := map[string]string{"roentgo.base_model": filepath.Base(filepath.Clean(m.Config.Model)), "roentgo.mode": l.Name()}
	f := m.Config.LoRA.Format
	if f == "diffusers" || f == "both" {
		if err := out.Save(filepath.Join(dir, LoRADiffusersFile), lora.LayoutDiffusers, meta); err != nil {
			return errctx.Wrap("train", err)
		}
	}
	if f == "kohya" || f == "both" {
		if err := out.Save(filepath.Join(dir, LoRAKohyaFile), lora.LayoutKohya, meta); err != nil {
			return errctx.Wrap("train", err)
		}
	}
	return nil
}

// tiMode is textual inversion (package clip/ti): a new token whose
// embedding rows are the only trained parameters.
type tiMode struct{}

func (tiMode) Name() string { return "ti" }

func (tiMode) Select(m *Models) error {
	c := m.Config.TI
	tok, ok := m.Pipeline.Tokenizer.(*clip.CLIPTokenizer)
	if !ok || m.Pipeline.TextEncoder == nil {
		return fmt.Errorf("textual inversion needs a CLIP tokenizer and text encoder; this model's tokenizer is %T", m.Pipeline.Tokenizer)
	}
	if err := freezeAll(m); err != nil {
		return err
	}
	emb, err := ti.AddToken(tok, m.Pipeline.TextEncoder, c.Placeholder, c.Initializer, c.Vectors)
	if err != nil {
		return err
	}
	m.Embeddings = []*ti.Embedding{emb}
	m.Extra = append(m.Extra, ExtraParams{Name: "embeddings", Params: &tiParams{embs: m.Embeddings}})
	return nil
}

// SaveOutput writes learned_embeds.safetensors: the placeholder's final
// rows (EMA averages with EMA), F32 [vectors, dim], under its name.
func (tiMode) SaveOutput(m *Models, weight WeightFunc, dir string) error {
	var params []nn.Param
	for _, e := range m.Embeddings {
		p, err := e.Trainable()
		if err != nil {
			return errctx.Wrap("train", err)
		}
		params = append(params, nn.Param{Name: e.Token, Tensor: weight(p)})
	}
	if len(params) == 0 {
		return fmt.Errorf("train: mode ti: no embedding")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return errctx.Wrap("train", nn.SaveSafetensors(filepath.Join(dir, EmbeddingFile), params, map[string]string{"format": "pt"}))
}

// tiParams is the Params of textual-inversion embeddings: one parameter per
// token, its rows [vectors, dim] of the token-embedding table.
type tiParams struct {
	embs []*ti.Embedding
}

func (p *tiParams) Trainable() ([]*nn.Trainable, error) {
	var out []*nn.Trainable
	for _, e := range p.embs {
		t, err := e.Trainable()
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (p *tiParams) CollectGrads(scale float32) error { return ti.CollectGrads(scale, p.embs...) }

func (p *tiParams) ZeroGrad() {
	for _, e := range p.embs {
		if t, err := e.Trainable(); err == nil && t.Grad != nil {
			clear(t.Grad.F32Data())
		}
	}
}

func (p *tiParams) SaveMasters(path string, metadata map[string]string) error {
	var params []nn.Param
	for _, e := range p.embs {
		t, err := e.Trainable()
		if err != nil {
			return err
		}
		params = append(params, nn.Param{Name: t.Name, Tensor: t.Master})
	}
	return nn.SaveSafetensors(path, params, metadata)
}

func (p *tiParams) LoadMasters(path string) error {
	a, err := tensor.LoadSafetensors(path)
	if err != nil {
		return err
	}
	defer a.Close()
	ts, err := p.Trainable()
	if err != nil {
		return err
	}
	if len(a.Names()) != len(ts) {
		return fmt.Errorf("%s holds %d embeddings, the run trains %d", path, len(a.Names()), len(ts))
	}
	vals := make([][]float32, len(ts))
	for i, t := range ts {
		v, err := a.Get(t.Name)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		if v.DType() != tensor.F32 || !v.Shape().Equal(t.Master.Shape()) {
			return fmt.Errorf("%s: %q is %v %v, want F32 %v", path, t.Name, v.DType(), v.Shape(), t.Master.Shape())
		}
		vals[i] = v.Float32s()
	}
	for i, t := range ts {
		copy(t.Master.F32Data(), vals[i])
		if err := t.SyncValue(); err != nil {
			return err
		}
	}
	return nil
}

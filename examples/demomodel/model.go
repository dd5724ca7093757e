package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/roentgo/roentgo/vae"
)

// randomModels are the demo architecture's three models with random
// weights (PyTorch's default initialisations, as nn.NewRandomBuilder
// draws them), with the builders that hold their parameters.
type randomModels struct {
	Text            *clip.TextModel
	UNet            *unet.Model
	VAE             *vae.AutoencoderKL
	text, unet, vae *nn.Builder
}

// newRandomModels builds the models of a with weights from seed (text
// encoder seed, U-Net seed+1, VAE seed+2), stored as dt.
func newRandomModels(a architecture, seed uint64, dt tensor.DType) (*randomModels, error) {
	m := &randomModels{
		text: nn.NewRandomBuilder(seed, dt).FillInBackground(),
		unet: nn.NewRandomBuilder(seed+1, dt).FillInBackground(),
		vae:  nn.NewRandomBuilder(seed+2, dt).FillInBackground(),
	}
	var err error
	if m.Text, err = clip.NewTextModel(m.text, a.Text); err != nil {
		return nil, err
	}
	if m.UNet, err = unet.New(m.unet, a.UNet); err != nil {
		return nil, err
	}
	if m.VAE, err = vae.New(m.vae, a.VAE); err != nil {
		return nil, err
	}
	for _, b := range []*nn.Builder{m.text, m.unet, m.vae} {
		if err := b.Check(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// numParams returns the number of values of params.
func numParams(params []nn.Param) int {
	n := 0
	for _, p := range params {
		n += p.Tensor.Numel()
	}
	return n
}

// writeModelFolder writes a diffusers folder dir (created) with the demo
// architecture's configs, the tokenizer files, the scheduler and the three
// components' weights (each a parameter list; nil skips the component's
// weights, for a caller that writes them itself).
func writeModelFolder(dir string, rv *reducedVocab, resolution int, scaling float64, text, un, va []nn.Param) error {
	tc, uc, vc, err := configJSON(rv.Size, resolution, scaling)
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"model_index.json":                []byte(modelIndexJSON),
		"scheduler/scheduler_config.json": []byte(schedulerJSON),
		"text_encoder/config.json":        tc,
		"unet/config.json":                uc,
		"vae/config.json":                 vc,
	}
	for name, b := range rv.tokenizerFiles() {
		files["tokenizer/"+name] = b
	}
	for _, sub := range []string{"scheduler", "text_encoder", "unet", "vae", "tokenizer"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	for rel, b := range files {
		if err := pipeline.WriteFileAtomic(filepath.Join(dir, filepath.FromSlash(rel)), b); err != nil {
			return err
		}
	}
	meta := map[string]string{"format": "pt"}
	for _, w := range []struct {
		path   string
		params []nn.Param
	}{
		{"text_encoder/model.safetensors", text},
		{"unet/diffusion_pytorch_model.safetensors", un},
		{"vae/diffusion_pytorch_model.safetensors", va},
	} {
		if w.params == nil {
			continue
		}
		if err := nn.SaveSafetensors(filepath.Join(dir, filepath.FromSlash(w.path)), w.params, meta); err != nil {
			return fmt.Errorf("writing %s: %w", w.path, err)
		}
	}
	return nil
}

package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/roentgo/roentgo/vae"
)

// NamedParams are the parameters of the trainable components of a pipeline
// loaded by LoadForTraining, under their diffusers state-dict names, as the
// nn.Builder that built each component lists them (nn.NewParamSet takes
// them). Index buffers (I64, such as the text encoder's position_ids) are
// left out.
type NamedParams struct {
	UNet        []nn.Param
	TextEncoder []nn.Param
}

// LoadForTraining loads the diffusers folder dir as Load does, on the CPU,
// but builds the U-Net and the text encoder so that their parameters are
// known by name (for nn.NewParamSet): the returned pipeline's models are the
// ones whose parameters NamedParams lists, so training them changes what the
// pipeline generates. Options.Device and Options.Compute must be empty (the
// training loop runs on the CPU); single-file checkpoints are refused (they
// hold no per-component folders to write the trained weights back to).
func LoadForTraining(dir string, o Options) (*Pipeline, *NamedParams, error) {
	if dir == "" {
		return nil, nil, errors.New("pipeline: no model given; expected a diffusers pipeline folder")
	}
	if o.Device != "" && o.Device != "cpu" {
		return nil, nil, fmt.Errorf("pipeline: training runs on the CPU; device %q is not supported yet", o.Device)
	}
	if _, err := dtypeOption(o.DType); err != nil {
		return nil, nil, err
	}
	if err := checkPrediction(o.Prediction); err != nil {
		return nil, nil, err
	}
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("pipeline: model %s does not exist; expected a diffusers pipeline folder (model_index.json with tokenizer/, text_encoder/, unet/, vae/, scheduler/)", dir)
		}
		return nil, nil, errctx.Wrap("pipeline: model", err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("pipeline: model %s is a file; training needs a diffusers pipeline folder (convert a single-file checkpoint to one first)", dir)
	}
	if o.ConfigDir != "" {
		return nil, nil, fmt.Errorf("pipeline: a config folder (%s) applies only to single-file checkpoints", o.ConfigDir)
	}
	if err := checkFolder(dir, o); err != nil {
		return nil, nil, err
	}
	p := &Pipeline{Path: dir, Warn: o.Warn, Device: tensor.CPU}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	schedPath := filepath.Join(dir, "scheduler", "scheduler_config.json")
	schedJSON, err := os.ReadFile(schedPath)
	if err != nil {
		return nil, nil, errctx.Wrap("pipeline", err)
	}
	if err := p.setScheduler(schedJSON, schedPath, o); err != nil {
		return nil, nil, err
	}
	fixed, _ := dtypeOption(o.DType)
	dtypeFor := func(comp string) tensor.DType {
		if fixed != nil {
			return *fixed
		}
		return storedDType(filepath.Join(dir, comp))
	}
	tokDir := filepath.Join(dir, "tokenizer")
	if o.Tokenizer != "" {
		tokDir = o.Tokenizer
	}
	if p.Tokenizer, err = clip.Load(tokDir); err != nil {
		return nil, nil, errctx.Wrap("pipeline: tokenizer", err)
	}
	np := &NamedParams{}

	textDir := filepath.Join(dir, "text_encoder")
	tcfg, err := clip.LoadTextConfig(filepath.Join(textDir, "config.json"))
	if err != nil {
		return nil, nil, errctx.Wrap("pipeline: text encoder", err)
	}
	text, tparams, err := buildNamed(p, textDir, "text encoder", tcfg, dtypeFor("text_encoder"), clip.NewTextModel)
	if err != nil {
		return nil, nil, err
	}
	p.TextEncoder, np.TextEncoder = text, tparams
	for _, w := range p.TextEncoder.Warnings {
		p.warn(strings.TrimPrefix(w, "clip: "))
	}

	unetDir := filepath.Join(dir, "unet")
	ucfg, err := unet.LoadConfig(filepath.Join(unetDir, "config.json"))
	if err != nil {
		return nil, nil, errctx.Wrap("pipeline: unet", err)
	}
	u, uparams, err := buildNamed(p, unetDir, "unet", ucfg, dtypeFor("unet"), unet.New)
	if err != nil {
		return nil, nil, err
	}
	p.UNet, np.UNet = u, uparams

	if p.VAE, err = vae.Load(filepath.Join(dir, "vae"), dtypeFor("vae")); err != nil {
		return nil, nil, errctx.Wrap("pipeline: vae", err)
	}
	if err := p.checkCompatible(); err != nil {
		return nil, nil, err
	}
	p.hash = startHash(dir)
	ok = true
	return p, np, nil
}

// buildNamed builds the component in dir with newModel, registers the
// weights' closer with p and returns the model and its float parameters.
func buildNamed[M, C any](p *Pipeline, dir, what string, cfg C, dt tensor.DType, newModel func(*nn.Builder, C) (M, error)) (M, []nn.Param, error) {
	var zero M
	w, err := nn.FindWeights(dir, dt != tensor.F32)
	if err != nil {
		return zero, nil, errctx.Wrap("pipeline: "+what, err)
	}
	src, closer, err := w.Open()
	if err != nil {
		return zero, nil, errctx.Wrap("pipeline: "+what, err)
	}
	m, b, err := nn.Build(src, cfg, dt, newModel)
	if err != nil {
		closer.Close()
		return zero, nil, fmt.Errorf("pipeline: %s: %s: %w", what, w, err)
	}
	if w.Mapped() {
		p.closers = append(p.closers, closer)
	} else {
		closer.Close()
	}
	var params []nn.Param
	for _, q := range b.Params() {
		if q.Tensor.DType() != tensor.I64 {
			params = append(params, q)
		}
	}
	return m, params, nil
}

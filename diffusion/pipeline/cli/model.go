package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
)

// ModelFlags are the flags that choose and load a model, with the meanings
// txt2img and img2img give them, for other programs (examples/generate).
type ModelFlags struct {
	Model, Tokenizer, ConfigDir, Prediction string
	DType, Device, Compute                  string
}

// Register defines -model, -tokenizer, -config, -prediction, -dtype,
// -device and -compute on fs.
func (m *ModelFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&m.Model, "model", "", "diffusers pipeline folder or single-file SD 1.x/2.x checkpoint (.safetensors or .ckpt; needs -tokenizer or -config); empty: the built-in tiny demo model with random weights (its images are noise)")
	fs.StringVar(&m.Tokenizer, "tokenizer", "", "tokenizer folder (vocab.json, merges.txt): needed with a single-file checkpoint; with a folder, replaces its tokenizer")
	fs.StringVar(&m.ConfigDir, "config", "", "with a single-file checkpoint: a diffusers folder whose configs, scheduler and tokenizer are used with the file's weights")
	fs.StringVar(&m.Prediction, "prediction", "", "what the U-Net predicts: epsilon, v_prediction or sample; empty: the scheduler config's")
	fs.StringVar(&m.DType, "dtype", "auto", "weight dtype: auto (as stored), f32, f16 or bf16")
	fs.StringVar(&m.Device, "device", "cpu", "where the models run: cpu, cuda, cuda:N (a program built with -tags cuda) or sim")
	fs.StringVar(&m.Compute, "compute", "f16", "on a GPU, the activations' dtype: f16, bf16 or f32")
}

// Check validates the flags' values without loading anything.
func (m *ModelFlags) Check() error {
	switch strings.ToLower(m.DType) {
	case "auto", "", "f32", "f16", "bf16":
	default:
		return fmt.Errorf("-dtype %q; expected auto, f32, f16 or bf16", m.DType)
	}
	if _, err := tensor.ParseDevice(m.Device); err != nil {
		return fmt.Errorf("-device %q: %v", m.Device, err)
	}
	switch strings.ToLower(m.Compute) {
	case "f16", "bf16", "f32":
	default:
		return fmt.Errorf("-compute %q; expected f16, bf16 or f32", m.Compute)
	}
	switch m.Prediction {
	case "", "epsilon", "v_prediction", "sample":
	default:
		return fmt.Errorf("-prediction %q; expected epsilon, v_prediction or sample", m.Prediction)
	}
	if m.Model == "" && (m.Tokenizer != "" || m.ConfigDir != "") {
		return errors.New("-tokenizer and -config go with -model (a single-file checkpoint or a diffusers folder)")
	}
	return nil
}

// Load loads the model (the demo model, with a note on stderr, when -model
// is empty) on the flags' device; warn receives the pipeline's warnings.
func (m *ModelFlags) Load(program string, stderr io.Writer, warn func(string)) (*pipeline.Pipeline, error) {
	if m.Model != "" {
		return pipeline.Load(m.Model, pipeline.Options{DType: m.DType, Prediction: m.Prediction,
			Tokenizer: m.Tokenizer, ConfigDir: m.ConfigDir, Device: m.Device, Compute: m.Compute, Warn: warn})
	}
	fmt.Fprintf(stderr, "%s: no -model given: using the built-in tiny demo model with random weights; its output is noise (pass -model DIR for a diffusers Stable Diffusion folder)\n", program)
	p, err := pipeline.Demo()
	if err != nil {
		return nil, err
	}
	p.Warn = warn
	if err := p.ToDevice(m.Device, m.Compute); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool { return isTerminal(w) }

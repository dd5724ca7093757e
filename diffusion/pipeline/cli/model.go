package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/phantom/demo"
	"github.com/roentgo/roentgo/tensor"
)

// Names of the built-in models -model accepts besides paths.
const (
	// BuiltinPhantom is the demo model trained by roentgo on chest
	// phantoms, embedded in the program (package phantom/demo); an empty
	// -model selects it.
	BuiltinPhantom = "builtin:phantom"
	// BuiltinTinyRandom is a tiny model with random weights
	// (pipeline.Demo): its images are noise; for tests and smoke runs.
	BuiltinTinyRandom = "builtin:tiny-random"
)

// ModelHelp is the -model flag's description of the built-in models.
const ModelHelp = "empty or " + BuiltinPhantom + ": the built-in demo model (trained by roentgo on procedural chest-radiograph phantoms, 256x256; a phantom model, not a clinical one); " +
	BuiltinTinyRandom + ": a tiny model with random weights (its images are noise; for tests)"

// IsBuiltin reports whether the -model value names a built-in model (or is
// empty).
func IsBuiltin(model string) bool { return model == "" || strings.HasPrefix(model, "builtin:") }

// ApplyBuiltinDefaults sets *steps and *guidance to the values the
// built-in model named by the -model value model is tuned for, unless fs
// (parsed) was given -steps or -guidance; other models keep them as they
// are.
func ApplyBuiltinDefaults(fs *flag.FlagSet, model string, steps *int, guidance *float64) {
	if model != "" && model != BuiltinPhantom {
		return
	}
	s, g := demo.Steps, demo.Guidance
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "steps":
			s = *steps
		case "guidance":
			g = *guidance
		}
	})
	*steps, *guidance = s, g
}

// CheckBuiltin reports a -model value that names no built-in model (an
// unknown builtin: name) and -tokenizer or -config given with a built-in
// model, which they do not apply to.
func CheckBuiltin(model, tokenizer, configDir string) error {
	if !IsBuiltin(model) {
		return nil
	}
	if BuiltinName(model) == "" {
		return fmt.Errorf("-model %q: unknown built-in model; expected %s or %s (or a diffusers folder or checkpoint file)", model, BuiltinPhantom, BuiltinTinyRandom)
	}
	if tokenizer != "" || configDir != "" {
		return errors.New("-tokenizer and -config go with -model (a single-file checkpoint or a diffusers folder)")
	}
	return nil
}

// BuiltinName is the name outputs' metadata give the built-in model that
// the -model value model names ("" for other values).
func BuiltinName(model string) string {
	switch model {
	case "", BuiltinPhantom:
		return demo.Name
	case BuiltinTinyRandom:
		return "roentgo-demo (random weights)"
	}
	return ""
}

// LoadBuiltin loads the built-in model named by the -model value model (""
// is BuiltinPhantom) with o's options, after a note on stderr saying what it
// is. An unknown builtin: name is an error listing the known ones.
func LoadBuiltin(program, model string, o pipeline.Options, stderr io.Writer) (*pipeline.Pipeline, error) {
	switch model {
	case "", BuiltinPhantom:
		if model == "" {
			fmt.Fprintf(stderr, "%s: no -model given: using the built-in demo model (trained by roentgo on chest-radiograph phantoms; a phantom model, not a clinical one; -model DIR loads a diffusers Stable Diffusion folder)\n", program)
		}
		return demo.Load(o)
	case BuiltinTinyRandom:
		if o.Tokenizer != "" || o.ConfigDir != "" || o.Prediction != "" {
			return nil, fmt.Errorf("-tokenizer, -config and -prediction do not apply to %s", model)
		}
		fmt.Fprintf(stderr, "%s: %s: a tiny model with random weights; its output is noise\n", program, model)
		p, err := pipeline.Demo()
		if err != nil {
			return nil, err
		}
		p.Warn = o.Warn
		if o.Scheduler != "" {
			p.SchedulerName = o.Scheduler
		}
		err = p.ApplyAdapters(o)
		if err == nil {
			err = p.ToDevice(o.Device, o.Compute)
		}
		if err != nil {
			p.Close()
			return nil, err
		}
		return p, nil
	}
	return nil, CheckBuiltin(model, "", "")
}

// ModelFlags are the flags that choose and load a model, with the meanings
// txt2img and img2img give them, for other programs (examples/generate).
type ModelFlags struct {
	Model, Tokenizer, ConfigDir, Prediction string
	DType, Device, Compute                  string
}

// Register defines -model, -tokenizer, -config, -prediction, -dtype,
// -device and -compute on fs.
func (m *ModelFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&m.Model, "model", "", "diffusers pipeline folder or single-file SD 1.x/2.x checkpoint (.safetensors or .ckpt; needs -tokenizer or -config); "+ModelHelp)
	fs.StringVar(&m.Tokenizer, "tokenizer", "", "tokenizer folder (vocab.json, merges.txt): needed with a single-file checkpoint; with a folder, replaces its tokenizer")
	fs.StringVar(&m.ConfigDir, "config", "", "with a single-file checkpoint: a diffusers folder whose configs, scheduler and tokenizer are used with the file's weights")
	fs.StringVar(&m.Prediction, "prediction", "", "what the U-Net predicts: epsilon, v_prediction or sample; empty: the scheduler config's")
	fs.StringVar(&m.DType, "dtype", "auto", "weight dtype: auto (as stored), f32, f16 or bf16")
	fs.StringVar(&m.Device, "device", "cpu", "where the models run: cpu, cuda, cuda:N (a program built with -tags cuda) or sim")
	fs.StringVar(&m.Compute, "compute", "f16", "on a GPU, the activations' dtype: f16, bf16 or f32; on the CPU, bf16 multiplies the linear and convolution products in bfloat16 (AVX512_BF16 CPUs), anything else computes in f32")
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
	return CheckBuiltin(m.Model, m.Tokenizer, m.ConfigDir)
}

// Load loads the model (a built-in one, see LoadBuiltin, when -model is
// empty or names one) on the flags' device; warn receives the pipeline's
// warnings.
func (m *ModelFlags) Load(program string, stderr io.Writer, warn func(string)) (*pipeline.Pipeline, error) {
	o := pipeline.Options{DType: m.DType, Prediction: m.Prediction,
		Tokenizer: m.Tokenizer, ConfigDir: m.ConfigDir, Device: m.Device, Compute: m.Compute, Warn: warn}
	if IsBuiltin(m.Model) {
		return LoadBuiltin(program, m.Model, o, stderr)
	}
	return pipeline.Load(m.Model, o)
}

// IsTerminal reports whether w is a terminal (a character device).
func IsTerminal(w io.Writer) bool { return isTerminal(w) }

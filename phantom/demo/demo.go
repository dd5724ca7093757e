// Package demo is roentgo's built-in demo model: a small Stable Diffusion
// (VAE, CLIP text encoder with a reduced vocabulary, U-Net with
// cross-attention) trained from scratch by roentgo, with its own training
// code, on procedural chest-radiograph phantoms and their reports (package
// phantom). Its F16 weights are embedded in the program with go:embed, so
// the model needs no files and no download: txt2img uses it when no -model
// is given.
//
// It is a phantom model, not a clinical one: it draws the phantoms'
// simplified anatomy and findings (pleural effusion, cardiomegaly,
// pneumothorax, consolidation, nodules and masses, atelectasis, support
// devices) as their reports describe them, at 256x256. The recipe that
// trained it is examples/demomodel (docs/DEMO_MODEL.md), which also holds
// the measurements of how well it follows prompts.
package demo

import (
	"embed"
	"io/fs"

	"github.com/roentgo/roentgo/diffusion/pipeline"
)

//go:embed all:model
var files embed.FS

// Name is the model's name in outputs' metadata.
const Name = "roentgo-phantom-demo"

// The settings the model was tuned for: images of Size x Size pixels, Steps
// steps of its scheduler (DPM-Solver++ 2M) and classifier-free guidance
// Guidance.
const (
	Size     = 256
	Steps    = 20
	Guidance = 4.0
)

// FS returns the embedded diffusers folder (model_index.json, scheduler/,
// tokenizer/, text_encoder/, unet/, vae/), read-only.
func FS() fs.FS {
	sub, err := fs.Sub(files, "model")
	if err != nil {
		panic(err) // "model" is a valid path: cannot happen
	}
	return sub
}

// Load loads the embedded model with pipeline.LoadFS; o applies as there
// (its Name defaults to Name). Its weights are F16 as stored unless
// o.DType says otherwise.
func Load(o pipeline.Options) (*pipeline.Pipeline, error) {
	if o.Name == "" {
		o.Name = Name
	}
	return pipeline.LoadFS(FS(), o)
}

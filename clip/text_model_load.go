package clip

import (
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/sdckpt"
	"github.com/roentgo/roentgo/tensor"
)

// SD21TextConfig returns the configuration of Stable Diffusion 2.x's text
// encoder as diffusers stores it: OpenCLIP ViT-H/14's text tower (hidden 1024,
// 16 heads, intermediate 4096, gelu) with 23 of its 24 layers, since SD 2.x
// conditions on the penultimate layer.
func SD21TextConfig() TextConfig {
	c := DefaultTextConfig()
	c.HiddenSize, c.IntermediateSize, c.ProjectionDim = 1024, 4096, 512
	c.NumHiddenLayers, c.NumAttentionHeads, c.HiddenAct = 23, 16, "gelu"
	return c
}

// buildText constructs the model from src with a builder converting to dt
// and runs the strict check.
func buildText(src nn.Source, c TextConfig, dt tensor.DType) (*TextModel, error) {
	m, _, err := nn.Build(src, c, dt, NewTextModel)
	return m, err
}

// TextModelFromCheckpoint builds the text encoder from the cond_stage_model.*
// weights of an original single-file checkpoint (sdckpt.Open), kept as dt
// (F32, F16 or BF16). A nil cfg takes SD15TextConfig, or SD21TextConfig for an
// SD2 checkpoint (OpenCLIP weights, mapped by sdckpt); pass the config of
// other architectures. The model does not own ck: close ck when the model is
// no longer used. A checkpoint lacking text-encoder weights gives an error
// naming a few of them.
func TextModelFromCheckpoint(ck *sdckpt.Checkpoint, cfg *TextConfig, dt tensor.DType) (*TextModel, error) {
	m, err := sdckpt.BuildModel(ck, sdckpt.TextEncoder, cfg, SD15TextConfig, SD21TextConfig, dt, NewTextModel)
	if err != nil {
		return nil, errctx.Wrap("clip: text encoder", err)
	}
	return m, nil
}

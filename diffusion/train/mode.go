package train

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Models are the loaded models a Mode selects parameters from: the
// pipeline (tokenizer, text encoder, U-Net, VAE, scheduler config) and the
// parameter sets of its U-Net and text encoder under their diffusers names.
// Every parameter starts trainable; a Mode freezes what it does not train.
type Models struct {
	Pipeline *pipeline.Pipeline
	UNet     *nn.ParamSet
	Text     *nn.ParamSet
}

// WeightFunc returns the final F32 value of a trained parameter: its EMA
// average when the run keeps one, else its master.
type WeightFunc func(p *nn.Trainable) *tensor.Tensor

// A Mode is one kind of training: which parameters are trained and how the
// result is saved. The training loop is the same for every mode: it computes
// the loss through the text encoder and the U-Net, back-propagates into
// whatever parameters Select left trainable (in m.UNet and m.Text), and
// checkpoints those parameters' masters with the optimiser and EMA state.
//
// Full U-Net fine-tuning ("full") and joint U-Net + text-encoder training
// ("text+unet") are built in. LoRA and textual inversion fit the same
// shape: Select adds or unfreezes their parameters (LoRA matrices beside the
// attention projections, one embedding row) and SaveOutput writes a LoRA or
// embedding file instead of a diffusers folder.
type Mode interface {
	// Name is the mode's name as Config.Mode gives it.
	Name() string
	// Select freezes the parameters of m the mode does not train (and may
	// mark embedding tables row-sparse); it runs before the masters are made.
	Select(m *Models) error
	// SaveOutput writes the result of training to the folder dir (which
	// does not exist yet and is created by SaveOutput): for the built-in
	// modes, a diffusers folder in which txt2img and diffusers load the
	// trained weights. weight gives each trained parameter's final value.
	SaveOutput(m *Models, weight WeightFunc, dir string) error
}

var (
	modesMu sync.Mutex
	modes   = map[string]Mode{}
)

// RegisterMode makes a mode available to Config.Mode under its name,
// replacing any mode of that name.
func RegisterMode(m Mode) {
	modesMu.Lock()
	defer modesMu.Unlock()
	modes[m.Name()] = m
}

// ModeNames returns the registered modes' names, sorted.
func ModeNames() []string {
	modesMu.Lock()
	defer modesMu.Unlock()
	var out []string
	for n := range modes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LookupMode returns the mode called name.
func LookupMode(name string) (Mode, error) {
	modesMu.Lock()
	m, ok := modes[name]
	modesMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("train: unknown mode %q: expected one of %s", name, strings.Join(ModeNames(), ", "))
	}
	return m, nil
}

func init() {
	RegisterMode(fullMode{})
	RegisterMode(textUNetMode{})
}

// TokenEmbedding is the text encoder's token-embedding table, trained with
// row-sparse gradients in the modes that train the text encoder.
const TokenEmbedding = "text_model.embeddings.token_embedding.weight"

// fullMode trains every U-Net parameter (RoentGen's main recipe) and
// freezes the text encoder.
type fullMode struct{}

func (fullMode) Name() string { return "full" }

func (fullMode) Select(m *Models) error {
	if _, err := m.Text.Freeze("text_model"); err != nil {
		return err
	}
	return nil
}

func (fullMode) SaveOutput(m *Models, weight WeightFunc, dir string) error {
	return SaveDiffusers(m, weight, dir, "unet")
}

// textUNetMode trains the U-Net and the whole text encoder jointly
// (dreambooth's --train_text_encoder), the token embedding with row-sparse
// gradients.
type textUNetMode struct{}

func (textUNetMode) Name() string { return "text+unet" }

func (textUNetMode) Select(m *Models) error {
	if m.Text.Get(TokenEmbedding) != nil {
		if _, err := m.Text.SetRowSparse(TokenEmbedding); err != nil {
			return err
		}
	}
	return nil
}

func (textUNetMode) SaveOutput(m *Models, weight WeightFunc, dir string) error {
	return SaveDiffusers(m, weight, dir, "unet", "text_encoder")
}

package train

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/roentgo/roentgo/clip/ti"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/tensor"
)

// Models are the loaded models a Mode selects parameters from: the
// pipeline (tokenizer, text encoder, U-Net, VAE, scheduler config) and the
// parameter sets of its U-Net and text encoder under their diffusers names.
// Every parameter starts trainable; a Mode freezes what it does not train.
// Config is the run's configuration (the mode's settings: Config.LoRA,
// Config.TI). A mode that trains parameters of its own (LoRA factors, new
// embedding rows) adds them to Extra; LoRA and Embeddings hold what the
// built-in LoRA and textual-inversion modes added.
type Models struct {
	Pipeline *pipeline.Pipeline
	UNet     *nn.ParamSet
	Text     *nn.ParamSet
	Config   Config

	Extra      []ExtraParams
	LoRA       *lora.Network
	Embeddings []*ti.Embedding
}

// Params is a set of trainable parameters: an *nn.ParamSet, or any set
// with the same training protocol. Trainable gives the parameters to the
// optimiser (masters ready, values marked for autograd); after each
// micro-batch's backward CollectGrads adds scale times the gradients
// autograd left into the parameters' Grad; ZeroGrad clears them after the
// optimiser step; SaveMasters and LoadMasters write and read the F32
// masters under the parameters' names (checkpoints; LoadMasters also sets
// the values).
type Params interface {
	Trainable() ([]*nn.Trainable, error)
	CollectGrads(scale float32) error
	ZeroGrad()
	SaveMasters(path string, metadata map[string]string) error
	LoadMasters(path string) error
}

// ExtraParams is a parameter set a mode adds to training (Models.Extra),
// checkpointed as Name + ".safetensors" beside the U-Net's and the text
// encoder's masters. Name must be a plain file name other than those of
// the checkpoint's own files ("unet", "text_encoder", "optimizer", "ema").
type ExtraParams struct {
	Name   string
	Params Params
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
// ("text+unet") are built in, and so are LoRA ("lora": adapters on the
// U-Net; "lora+text": on the U-Net and the text encoder) and textual
// inversion ("ti"): their Select freezes the models and adds their own
// parameters (Models.Extra: the LoRA factors, the new token's embedding
// rows), and their SaveOutput writes a LoRA or embedding file instead of a
// diffusers folder.
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
	RegisterMode(loraMode{text: false})
	RegisterMode(loraMode{text: true})
	RegisterMode(tiMode{})
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

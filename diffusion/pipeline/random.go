package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

// RandomConfigs are the names of the architectures NewRandom and WriteRandom
// build: "tiny" (a few hundred thousand parameters: SD1-style with 32/64
// channels, a 4-level VAE with SD's downsampling factor 8, default size
// 256x256), "sd15" (Stable Diffusion 1.5's architecture, 1.07 B parameters)
// and "sd21" (Stable Diffusion 2.1-base's, OpenCLIP-sized text encoder).
var RandomConfigs = []string{"tiny", "sd15", "sd21"}

// DemoSeed is the seed of the built-in demo model's weights.
const DemoSeed = 20240101

// randomSpec holds the config.json documents of a random model.
type randomSpec struct {
	text, unet, vae string
	pad             string // the tokenizer's padding token
}

const sdScheduler = `{
  "_class_name": "PNDMScheduler",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "clip_sample": false,
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null
}
`

var randomSpecs = map[string]randomSpec{
	"tiny": {
		text: `{
  "architectures": ["CLIPTextModel"],
  "model_type": "clip_text_model",
  "vocab_size": 49408,
  "hidden_size": 32,
  "intermediate_size": 37,
  "projection_dim": 32,
  "num_hidden_layers": 5,
  "num_attention_heads": 4,
  "max_position_embeddings": 77,
  "hidden_act": "quick_gelu",
  "layer_norm_eps": 1e-05
}
`,
		unet: `{
  "_class_name": "UNet2DConditionModel",
  "sample_size": 32,
  "in_channels": 4,
  "out_channels": 4,
  "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
  "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
  "block_out_channels": [32, 64],
  "layers_per_block": 2,
  "cross_attention_dim": 32,
  "attention_head_dim": 8,
  "norm_num_groups": 32
}
`,
		vae: `{
  "_class_name": "AutoencoderKL",
  "in_channels": 3,
  "out_channels": 3,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  "block_out_channels": [32, 32, 64, 64],
  "layers_per_block": 1,
  "latent_channels": 4,
  "norm_num_groups": 32,
  "sample_size": 256,
  "scaling_factor": 0.18215
}
`,
		pad: "<|endoftext|>",
	},
	"sd15": {
		text: `{
  "architectures": ["CLIPTextModel"],
  "model_type": "clip_text_model",
  "vocab_size": 49408,
  "hidden_size": 768,
  "intermediate_size": 3072,
  "projection_dim": 768,
  "num_hidden_layers": 12,
  "num_attention_heads": 12,
  "max_position_embeddings": 77,
  "hidden_act": "quick_gelu",
  "layer_norm_eps": 1e-05
}
`,
		unet: `{
  "_class_name": "UNet2DConditionModel",
  "sample_size": 64,
  "in_channels": 4,
  "out_channels": 4,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "block_out_channels": [320, 640, 1280, 1280],
  "layers_per_block": 2,
  "cross_attention_dim": 768,
  "attention_head_dim": 8,
  "norm_num_groups": 32
}
`,
		vae: sdVAE,
		pad: "<|endoftext|>",
	},
	"sd21": {
		text: `{
  "architectures": ["CLIPTextModel"],
  "model_type": "clip_text_model",
  "vocab_size": 49408,
  "hidden_size": 1024,
  "intermediate_size": 4096,
  "projection_dim": 512,
  "num_hidden_layers": 23,
  "num_attention_heads": 16,
  "max_position_embeddings": 77,
  "hidden_act": "gelu",
  "layer_norm_eps": 1e-05
}
`,
		unet: `{
  "_class_name": "UNet2DConditionModel",
  "sample_size": 64,
  "in_channels": 4,
  "out_channels": 4,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "block_out_channels": [320, 640, 1280, 1280],
  "layers_per_block": 2,
  "cross_attention_dim": 1024,
  "attention_head_dim": [5, 10, 20, 20],
  "use_linear_projection": true,
  "norm_num_groups": 32
}
`,
		vae: sdVAE,
		pad: "!",
	},
}

const sdVAE = `{
  "_class_name": "AutoencoderKL",
  "in_channels": 3,
  "out_channels": 3,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
  "block_out_channels": [128, 256, 512, 512],
  "layers_per_block": 2,
  "latent_channels": 4,
  "norm_num_groups": 32,
  "sample_size": 512,
  "scaling_factor": 0.18215
}
`

// randomModel is a random pipeline with the builders that hold its
// parameters (for saving).
type randomModel struct {
	p               *Pipeline
	text, unet, vae *nn.Builder
	spec            randomSpec
	textCfg         clip.TextConfig
}

func lookupSpec(name string) (randomSpec, error) {
	s, ok := randomSpecs[name]
	if !ok {
		return s, fmt.Errorf("pipeline: unknown random model %q; expected one of %s", name, strings.Join(RandomConfigs, ", "))
	}
	return s, nil
}

// buildRandom builds the random model spec with weights from seed (the text
// encoder from seed, the U-Net from seed+1, the VAE from seed+2) as dt and
// the given tokenizer; vocab > 0 overrides the text encoder's vocab_size.
func buildRandom(spec randomSpec, seed uint64, dt tensor.DType, tok clip.Tokenizer, vocab int) (*randomModel, error) {
	tc := clip.DefaultTextConfig()
	if err := json.Unmarshal([]byte(spec.text), &tc); err != nil {
		panic("pipeline: bad built-in text config: " + err.Error())
	}
	if vocab > 0 {
		tc.VocabSize = vocab
	}
	uc, err := unet.ParseConfig([]byte(spec.unet))
	if err != nil {
		panic("pipeline: bad built-in unet config: " + err.Error())
	}
	vc, err := vae.ParseConfig([]byte(spec.vae))
	if err != nil {
		panic("pipeline: bad built-in vae config: " + err.Error())
	}
	m := &randomModel{spec: spec, textCfg: tc}
	// Filled on every core; Check below waits for the values.
	m.text = nn.NewRandomBuilder(seed, dt).FillInBackground()
	m.unet = nn.NewRandomBuilder(seed+1, dt).FillInBackground()
	m.vae = nn.NewRandomBuilder(seed+2, dt).FillInBackground()
	p := &Pipeline{Tokenizer: tok, SchedulerName: "pndm", SchedulerJSON: []byte(sdScheduler)}
	if p.TextEncoder, err = clip.NewTextModel(m.text, tc); err != nil {
		return nil, err
	}
	if p.UNet, err = unet.New(m.unet, uc); err != nil {
		return nil, err
	}
	if p.VAE, err = vae.New(m.vae, vc); err != nil {
		return nil, err
	}
	for _, b := range []*nn.Builder{m.text, m.unet, m.vae} {
		if err := b.Check(); err != nil {
			return nil, err
		}
	}
	if err := p.checkCompatible(); err != nil {
		return nil, err
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("random %s %d %v %s%s%s", "spec", seed, dt, spec.text, spec.unet, spec.vae)))
	p.hash = fixedHash(hex.EncodeToString(h[:]))
	m.p = p
	return m, nil
}

// NewRandom returns the random model called name (RandomConfigs) with
// weights drawn from seed (PyTorch's default initialisations; see
// nn.NewRandomBuilder) stored as dt, a byte-level CLIP tokenizer
// (ByteLevelVocab) and SD's PNDM scheduler. WriteRandom saves the same model.
func NewRandom(name string, seed uint64, dt tensor.DType) (*Pipeline, error) {
	spec, err := lookupSpec(name)
	if err != nil {
		return nil, err
	}
	tok, err := byteLevelCLIP(spec.pad)
	if err != nil {
		return nil, err
	}
	m, err := buildRandom(spec, seed, dt, tok, 0)
	if err != nil {
		return nil, err
	}
	return m.p, nil
}

// Demo returns the built-in demo model: the "tiny" architecture with random
// weights from DemoSeed in float32 and clip.NewByteTokenizer (one token per
// byte, so its text encoder has 259 embeddings). It needs no files; its
// images are noise.
func Demo() (*Pipeline, error) {
	tok := clip.NewByteTokenizer()
	m, err := buildRandom(randomSpecs["tiny"], DemoSeed, tensor.F32, tok, tok.VocabSize())
	if err != nil {
		return nil, err
	}
	m.p.Demo = true
	return m.p, nil
}

// WriteRandom writes the random model NewRandom(name, seed, dt) returns as a
// diffusers folder dir (created; it must not hold a model_index.json
// already): model_index.json, text_encoder/, unet/, vae/ (config.json and
// safetensors weights in dt), scheduler/ and a byte-level CLIP tokenizer/.
func WriteRandom(dir, name string, seed uint64, dt tensor.DType) error {
	spec, err := lookupSpec(name)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "model_index.json")); err == nil {
		return fmt.Errorf("pipeline: %s already holds a model (model_index.json); expected a new or empty folder", dir)
	}
	tok, err := byteLevelCLIP(spec.pad)
	if err != nil {
		return err
	}
	m, err := buildRandom(spec, seed, dt, tok, 0)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": "pt", "roentgo_random": fmt.Sprintf("%s seed %d", name, seed)}
	files := map[string]string{
		"model_index.json":                modelIndexJSON,
		"scheduler/scheduler_config.json": sdScheduler,
		"text_encoder/config.json":        spec.text,
		"unet/config.json":                spec.unet,
		"vae/config.json":                 spec.vae,
		"tokenizer/merges.txt":            byteLevelMerges,
		"tokenizer/special_tokens_map.json": fmt.Sprintf(`{"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": %q, "unk_token": "<|endoftext|>"}
`, spec.pad),
		"tokenizer/tokenizer_config.json": fmt.Sprintf(`{"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": %q, "unk_token": "<|endoftext|>", "do_lower_case": true, "errors": "replace"}
`, spec.pad),
	}
	vocab, err := json.MarshalIndent(byteLevelVocab(), "", " ")
	if err != nil {
		return err
	}
	files["tokenizer/vocab.json"] = string(vocab)
	for _, sub := range []string{"scheduler", "text_encoder", "unet", "vae", "tokenizer"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return errctx.Wrap("pipeline", err)
		}
	}
	for rel, content := range files {
		if err := WriteFileAtomic(filepath.Join(dir, filepath.FromSlash(rel)), []byte(content)); err != nil {
			return err
		}
	}
	for _, w := range []struct {
		path string
		b    *nn.Builder
	}{
		{"text_encoder/model.safetensors", m.text},
		{"unet/diffusion_pytorch_model.safetensors", m.unet},
		{"vae/diffusion_pytorch_model.safetensors", m.vae},
	} {
		if err := nn.SaveSafetensors(filepath.Join(dir, filepath.FromSlash(w.path)), w.b.Params(), meta); err != nil {
			return fmt.Errorf("pipeline: writing %s: %w", w.path, err)
		}
	}
	return nil
}

const modelIndexJSON = `{
  "_class_name": "StableDiffusionPipeline",
  "_diffusers_version": "0.16.1",
  "feature_extractor": [null, null],
  "requires_safety_checker": false,
  "safety_checker": [null, null],
  "scheduler": ["diffusers", "PNDMScheduler"],
  "text_encoder": ["transformers", "CLIPTextModel"],
  "tokenizer": ["transformers", "CLIPTokenizer"],
  "unet": ["diffusers", "UNet2DConditionModel"],
  "vae": ["diffusers", "AutoencoderKL"]
}
`

// byteLevelVocab returns a minimal CLIP vocabulary: the 256 byte symbols of
// CLIP's byte-to-unicode table, the same with the end-of-word mark "</w>",
// <|startoftext|> and <|endoftext|> (ids 512 and 513) and "th</w>" (514),
// the result of byteLevelMerges' single merge. With it a CLIP tokenizer
// splits words into single bytes. Ids 0..255 are those of OpenAI's
// vocabulary ("!" is 0).
func byteLevelVocab() map[string]int {
	syms := byteSymbols()
	v := make(map[string]int, 514)
	for i, s := range syms {
		v[s] = i
		v[s+"</w>"] = 256 + i
	}
	v["<|startoftext|>"] = 512
	v["<|endoftext|>"] = 513
	v["th</w>"] = 514 // the one merge (CLIP's loader wants at least one)
	return v
}

// byteSymbols is CLIP's (GPT-2's) bytes_to_unicode table in vocabulary
// order: the printable bytes '!'..'~', '¡'..'¬', '®'..'ÿ' stand for
// themselves, the others for U+0100 onwards in byte order.
func byteSymbols() []string {
	var order []int
	printable := map[int]bool{}
	for _, r := range [][2]int{{'!', '~'}, {0xA1, 0xAC}, {0xAE, 0xFF}} {
		for b := r[0]; b <= r[1]; b++ {
			order = append(order, b)
			printable[b] = true
		}
	}
	sym := map[int]rune{}
	n := 0
	for b := 0; b < 256; b++ {
		if printable[b] {
			sym[b] = rune(b)
		} else {
			sym[b] = rune(256 + n)
			n++
			order = append(order, b)
		}
	}
	out := make([]string, 256)
	for i, b := range order {
		out[i] = string(sym[b])
	}
	return out
}

// byteLevelCLIP returns the CLIP tokenizer of byteLevelVocab with the given
// padding token.
func byteLevelCLIP(pad string) (*clip.CLIPTokenizer, error) {
	vocab, err := json.Marshal(byteLevelVocab())
	if err != nil {
		return nil, err
	}
	cfg := clip.DefaultConfig()
	cfg.Pad = pad
	t, err := clip.New(bytes.NewReader(vocab), strings.NewReader(byteLevelMerges), cfg)
	if err != nil {
		return nil, errors.Join(errors.New("pipeline: byte-level tokenizer"), err)
	}
	return t, nil
}

// byteLevelMerges is the merges.txt of byteLevelVocab.
const byteLevelMerges = "#version: 0.2\nt h</w>\n"

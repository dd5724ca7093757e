package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/roentgo/roentgo/vae"
)

// Options configure Load.
type Options struct {
	// DType is the weights' dtype: "f32", "f16" or "bf16" (as
	// tensor.ParseDType reads them) converts every component to it; "" or
	// "auto" keeps each component's stored dtype (an F16 folder gives F16
	// weights). Computation is in float32 either way.
	DType string
	// Scheduler, if set, replaces the folder's scheduler by the one with this
	// name (diffusion.SchedulerNames), configured from the folder's
	// scheduler_config.json as diffusers' from_config does.
	Scheduler string
	// Prediction, if set, replaces the scheduler config's prediction_type:
	// "epsilon", "v_prediction" or "sample". Single-file checkpoints do not
	// say what their U-Net predicts: Stable Diffusion 1.x and 2.x-base
	// predict epsilon (the default), the 768-pixel 2.x models v_prediction.
	Prediction string
	// Tokenizer is a tokenizer folder (vocab.json and merges.txt, optionally
	// tokenizer_config.json and special_tokens_map.json). A single-file
	// checkpoint holds no tokenizer and needs this (or ConfigDir/tokenizer);
	// for a diffusers folder it replaces the folder's tokenizer/.
	Tokenizer string
	// ConfigDir, for a single-file checkpoint, is a diffusers folder whose
	// unet/config.json, vae/config.json, text_encoder/config.json,
	// scheduler/scheduler_config.json and tokenizer/ are used with the
	// file's weights, for architectures other than the standard SD 1.x /
	// 2.x sizes; each one it lacks takes the default of the variant. It is
	// an error with a diffusers folder (which has its own configs).
	ConfigDir string
	// Device is where the models run: "" or "cpu", "cuda" (the first GPU),
	// "cuda:N", or "sim" (the simulated accelerator of package tensor, for
	// tests). CUDA needs a binary built with -tags cuda.
	Device string
	// Compute is the dtype an accelerator computes in: "f16" (the default),
	// "bf16", or "f32" (for checking against the CPU). On the CPU, "bf16"
	// makes the matrix products multiply in BF16 (process-wide; needs
	// AVX512_BF16) and anything else keeps F32.
	Compute string
	// Warn, if set, receives the warnings of loading and, as Pipeline.Warn,
	// of every later generation.
	Warn func(msg string)
	// Embeddings are textual-inversion files (diffusers'
	// learned_embeds.safetensors or .bin) whose tokens are added after
	// loading (Pipeline.LoadEmbedding).
	Embeddings []string
	// LoRAs are applied after loading, in order (Pipeline.ApplyLoRA):
	// merged into the weights, or hooked in unmerged with LoRAUnmerged.
	LoRAs        []LoRASpec
	LoRAUnmerged bool
	// Name, for LoadFS only, is the model name outputs' metadata give the
	// pipeline (default EmbeddedName); Load names a model after its folder
	// or file.
	Name string
}

// Pipeline is a loaded Stable Diffusion model. Its components may be used
// directly; Txt2Img and Img2Img run the whole generation. A Pipeline is not
// safe for concurrent use (schedulers keep per-run state, the buffer pool is
// shared).
type Pipeline struct {
	Tokenizer   clip.Tokenizer
	TextEncoder *clip.TextModel
	UNet        *unet.Model
	VAE         *vae.AutoencoderKL

	// SchedulerName is the scheduler used when a Request names none (the
	// folder's, or Options.Scheduler).
	SchedulerName string
	// SchedulerJSON is the folder's scheduler_config.json, from which every
	// scheduler is configured.
	SchedulerJSON []byte

	// Path is the folder the model was loaded from ("" for a model built in
	// memory or loaded by LoadFS); Demo is set for the built-in random demo
	// model.
	Path string
	Demo bool

	// Warn, if set, receives warnings: things that work but may not be what
	// the user meant (a prompt longer than the text encoder reads, an empty
	// prompt, weights repaired while loading). Options.Warn sets it.
	Warn func(msg string)

	// KeepWeightsResident keeps every model's memory-mapped weights in the
	// process's resident set and the tensor pool's buffers between phases.
	// By default a generation drops the text encoder's pages once the prompts
	// are encoded and the U-Net's once the latents are denoised (they stay in
	// the page cache and fault back on next use), and trims the pool and the
	// Go heap before decoding, which lowers the peak resident memory (an SD1.5
	// F16 model at 512x512 by about 2 GB) for a small cost on the next call.
	KeepWeightsResident bool

	// Device is where the models are (the CPU unless ToDevice moved them).
	Device tensor.Device

	hash *hashJob
	// modelName, if set, names a model without a Path in outputs' metadata
	// (LoadFS: EmbeddedName).
	modelName string
	// closers release what the models' weights live in (a single-file
	// checkpoint), after the models are closed.
	closers []io.Closer
}

// requiredFiles are the files a diffusers Stable Diffusion folder must hold
// (weights are checked by the component loaders, which accept variants).
var requiredFiles = []string{
	"model_index.json",
	"tokenizer/vocab.json",
	"tokenizer/merges.txt",
	"text_encoder/config.json",
	"unet/config.json",
	"vae/config.json",
	"scheduler/scheduler_config.json",
}

// modelIndex is the part of model_index.json the loader reads: the class of
// the pipeline and of each component ([library, class] pairs).
type modelIndex struct {
	ClassName  string
	Components map[string][2]string
}

// parseModelIndex decodes model_index.json, data read from path.
func parseModelIndex(data []byte, path string) (*modelIndex, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("pipeline: %s is not a JSON object: %v", path, err)
	}
	mi := &modelIndex{Components: map[string][2]string{}}
	if v, ok := raw["_class_name"]; ok {
		_ = json.Unmarshal(v, &mi.ClassName)
	}
	for k, v := range raw {
		if strings.HasPrefix(k, "_") {
			continue
		}
		var pair []*string
		if json.Unmarshal(v, &pair) != nil || len(pair) != 2 || pair[0] == nil || pair[1] == nil {
			continue
		}
		mi.Components[k] = [2]string{*pair[0], *pair[1]}
	}
	return mi, nil
}

// checkFolder reports what keeps dir, an existing folder, from being a
// diffusers Stable Diffusion folder, or nil. The weight files are looked for
// as the component loaders do (nn.FindWeights: safetensors, PyTorch .bin,
// .fp16 variants, sharded checkpoints).
func checkFolder(dir string, o Options) error {
	return checkModelFolder(diskFolder(dir), o)
}

// checkModelFolder reports what keeps f from being a diffusers Stable
// Diffusion folder, or nil.
func checkModelFolder(f modelFolder, o Options) error {
	var missing []string
	for _, rel := range requiredFiles {
		if o.Tokenizer != "" && strings.HasPrefix(rel, "tokenizer/") {
			continue
		}
		if !f.exists(rel) {
			missing = append(missing, rel)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pipeline: %s is not a diffusers Stable Diffusion folder: missing %s", f, strings.Join(missing, ", "))
	}
	var noWeights []string
	for _, comp := range []string{"text_encoder", "unet", "vae"} {
		if err := f.findWeights(comp); err != nil {
			noWeights = append(noWeights, err.Error())
		}
	}
	if len(noWeights) > 0 {
		return fmt.Errorf("pipeline: %s: weights missing: %s", f, strings.Join(noWeights, "; "))
	}
	data, where, err := f.readFile("model_index.json")
	if err != nil {
		return errctx.Wrap("pipeline", err)
	}
	mi, err := parseModelIndex(data, where)
	if err != nil {
		return err
	}
	// StableDiffusionInpaintPipeline folders (sd-v1-5-inpainting) hold the
	// same components with a 9-channel U-Net (Inpaint runs them).
	if strings.Contains(mi.ClassName, "XL") || strings.Contains(mi.ClassName, "Upscale") || (strings.Contains(mi.ClassName, "Inpaint") && mi.ClassName != "StableDiffusionInpaintPipeline") {
		return fmt.Errorf("pipeline: %s holds a %s; expected a StableDiffusionPipeline (SD 1.x / 2.x text-to-image) or a StableDiffusionInpaintPipeline", f, mi.ClassName)
	}
	want := map[string]string{"tokenizer": "CLIPTokenizer", "text_encoder": "CLIPTextModel", "unet": "UNet2DConditionModel", "vae": "AutoencoderKL"}
	var bad []string
	for comp, class := range want {
		if c, ok := mi.Components[comp]; ok && c[1] != class && !(comp == "tokenizer" && c[1] == "CLIPTokenizerFast") {
			bad = append(bad, fmt.Sprintf("%s is %s (want %s)", comp, c[1], class))
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("pipeline: %s: unsupported components: %s", where, strings.Join(bad, "; "))
	}
	return nil
}

// Load opens the Stable Diffusion model at path, which is either
//
//   - a diffusers folder (model_index.json, tokenizer/, text_encoder/,
//     unet/, vae/, scheduler/) whose components hold safetensors or PyTorch
//     .bin weights, .fp16 variants or sharded checkpoints (nn.FindWeights);
//     a folder that is not one gets an error listing what is missing; or
//   - a single-file checkpoint in the original CompVis/Stability layout
//     (.safetensors, or a PyTorch zip .ckpt), told by being a regular file:
//     see Options.Tokenizer, Options.ConfigDir and Options.Prediction, and
//     loadSingleFile for the defaults.
//
// Close the pipeline to unmap its weights.
func Load(path string, o Options) (*Pipeline, error) {
	if path == "" {
		return nil, errors.New("pipeline: no model given; expected a diffusers pipeline folder or a single-file checkpoint (.safetensors or .ckpt)")
	}
	if err := checkOptions(o); err != nil {
		return nil, err
	}
	p, err := load(path, o)
	if err != nil {
		return nil, err
	}
	return place(p, o)
}

// checkOptions checks the options of Load and LoadFS that can be checked
// before anything loads.
func checkOptions(o Options) error {
	if _, err := dtypeOption(o.DType); err != nil {
		return err
	}
	if err := checkPrediction(o.Prediction); err != nil {
		return err
	}
	if _, err := tensor.ParseDevice(orCPU(o.Device)); err != nil {
		return errctx.Wrap("pipeline", err)
	}
	if _, err := computeOption(o.Compute); err != nil {
		return err
	}
	return nil
}

// place applies the adapters of o to p, just loaded on the CPU, and moves it
// to o's device; on error it closes p.
func place(p *Pipeline, o Options) (*Pipeline, error) {
	if err := p.ApplyAdapters(o); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.ToDevice(orCPU(o.Device), o.Compute); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

func orCPU(dev string) string {
	if dev == "" {
		return "cpu"
	}
	return dev
}

// load is Load on the CPU.
func load(path string, o Options) (*Pipeline, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("pipeline: model %s does not exist; expected a diffusers pipeline folder (model_index.json with tokenizer/, text_encoder/, unet/, vae/, scheduler/) or a single-file checkpoint (.safetensors or .ckpt)", path)
		}
		return nil, errctx.Wrap("pipeline: model", err)
	}
	if st.Mode().IsRegular() {
		return loadSingleFile(path, o)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("pipeline: model %s is neither a folder nor a regular file; expected a diffusers pipeline folder or a single-file checkpoint", path)
	}
	if o.ConfigDir != "" {
		return nil, fmt.Errorf("pipeline: a config folder (%s) applies only to single-file checkpoints; %s is a diffusers folder with its own configs", o.ConfigDir, path)
	}
	return loadFolder(path, o)
}

// loadFolder loads a diffusers folder.
func loadFolder(dir string, o Options) (*Pipeline, error) {
	p, err := loadModelFolder(diskFolder(dir), o)
	if err != nil {
		return nil, err
	}
	p.Path = dir
	p.hash = startHash(dir)
	return p, nil
}

// loadModelFolder loads the diffusers folder f (checkModelFolder) on the
// CPU; the caller sets the pipeline's Path and hash.
func loadModelFolder(f modelFolder, o Options) (*Pipeline, error) {
	if err := checkModelFolder(f, o); err != nil {
		return nil, err
	}
	p := &Pipeline{Warn: o.Warn}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	schedJSON, schedPath, err := f.readFile("scheduler/scheduler_config.json")
	if err != nil {
		return nil, errctx.Wrap("pipeline", err)
	}
	if err := p.setScheduler(schedJSON, schedPath, o); err != nil {
		return nil, err
	}
	fixed, _ := dtypeOption(o.DType)
	dtypeFor := func(comp string) tensor.DType {
		if fixed != nil {
			return *fixed
		}
		return f.storedDType(comp)
	}
	if o.Tokenizer != "" {
		p.Tokenizer, err = clip.Load(o.Tokenizer)
	} else {
		p.Tokenizer, err = f.tokenizer()
	}
	if err != nil {
		return nil, errctx.Wrap("pipeline: tokenizer", err)
	}
	if p.TextEncoder, err = f.textModel(dtypeFor("text_encoder")); err != nil {
		return nil, errctx.Wrap("pipeline: text encoder", err)
	}
	for _, w := range p.TextEncoder.Warnings {
		p.warn(strings.TrimPrefix(w, "clip: "))
	}
	if p.UNet, err = f.unetModel(dtypeFor("unet")); err != nil {
		return nil, errctx.Wrap("pipeline: unet", err)
	}
	if p.VAE, err = f.vaeModel(dtypeFor("vae")); err != nil {
		return nil, errctx.Wrap("pipeline: vae", err)
	}
	if err := p.checkCompatible(); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// modelFolder is the diffusers folder Load (diskFolder) or LoadFS (fsFolder)
// reads: its files, named by slash-separated paths relative to it, and how
// its components load.
type modelFolder interface {
	// String names the folder in errors.
	String() string
	// exists reports whether the file rel exists.
	exists(rel string) bool
	// readFile returns the content of rel and its name for errors.
	readFile(rel string) (data []byte, where string, err error)
	// findWeights returns an error saying what is missing when the
	// component folder comp holds no weights.
	findWeights(comp string) error
	// storedDType returns the dtype of the floating-point weights of the
	// component folder comp (see storedDType).
	storedDType(comp string) tensor.DType
	tokenizer() (*clip.CLIPTokenizer, error)
	textModel(dt tensor.DType) (*clip.TextModel, error)
	unetModel(dt tensor.DType) (*unet.Model, error)
	vaeModel(dt tensor.DType) (*vae.AutoencoderKL, error)
}

// diskFolder is a diffusers folder on disk, whose components load with
// the component packages' Load functions.
type diskFolder string

func (d diskFolder) String() string { return string(d) }

func (d diskFolder) path(rel string) string { return filepath.Join(string(d), filepath.FromSlash(rel)) }

func (d diskFolder) exists(rel string) bool {
	_, err := os.Stat(d.path(rel))
	return err == nil
}

func (d diskFolder) readFile(rel string) ([]byte, string, error) {
	data, err := os.ReadFile(d.path(rel))
	return data, d.path(rel), err
}

func (d diskFolder) findWeights(comp string) error {
	_, err := nn.FindWeights(d.path(comp), false)
	return err
}

func (d diskFolder) storedDType(comp string) tensor.DType { return storedDType(d.path(comp)) }

func (d diskFolder) tokenizer() (*clip.CLIPTokenizer, error) { return clip.Load(d.path("tokenizer")) }

func (d diskFolder) textModel(dt tensor.DType) (*clip.TextModel, error) {
	return clip.LoadTextModel(d.path("text_encoder"), dt)
}

func (d diskFolder) unetModel(dt tensor.DType) (*unet.Model, error) {
	return unet.Load(d.path("unet"), dt)
}

func (d diskFolder) vaeModel(dt tensor.DType) (*vae.AutoencoderKL, error) {
	return vae.Load(d.path("vae"), dt)
}

// dtypeOption parses Options.DType: nil for "" or "auto" (the stored dtype).
func dtypeOption(s string) (*tensor.DType, error) {
	if s == "" || strings.EqualFold(s, "auto") {
		return nil, nil
	}
	dt, err := tensor.ParseDType(strings.ToUpper(s))
	if err != nil || (dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16) {
		return nil, fmt.Errorf("pipeline: dtype %q is not known; expected f32, f16, bf16 or auto", s)
	}
	return &dt, nil
}

// predictions are the values of Options.Prediction.
var predictions = []string{"epsilon", "v_prediction", "sample"}

func checkPrediction(s string) error {
	if s == "" {
		return nil
	}
	for _, p := range predictions {
		if s == p {
			return nil
		}
	}
	return fmt.Errorf("pipeline: prediction type %q is not known; expected %s", s, strings.Join(predictions, ", "))
}

// setScheduler sets SchedulerJSON (with Options.Prediction applied) and
// SchedulerName (the config's class, or Options.Scheduler) from the
// scheduler config data read from where, and checks that the scheduler can be
// built, so that a bad name or config fails before the weights load.
func (p *Pipeline) setScheduler(data []byte, where string, o Options) error {
	if o.Prediction != "" {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			return fmt.Errorf("pipeline: %s: scheduler config is not a JSON object: %v", where, err)
		}
		raw["prediction_type"], _ = json.Marshal(o.Prediction)
		var err error
		if data, err = json.MarshalIndent(raw, "", "  "); err != nil {
			return fmt.Errorf("pipeline: %s: %v", where, err)
		}
	}
	p.SchedulerJSON = data
	var err error
	if p.SchedulerName, err = SchedulerNameOf(data); err != nil {
		return fmt.Errorf("pipeline: %s: %w", where, err)
	}
	if o.Scheduler != "" {
		p.SchedulerName = o.Scheduler
		if c, ok := diffusion.CanonicalSchedulerName(o.Scheduler); ok {
			p.SchedulerName = c
		}
	}
	if _, err := p.NewScheduler(p.SchedulerName, 0); err != nil {
		return err
	}
	return nil
}

// checkCompatible checks that the components fit together.
func (p *Pipeline) checkCompatible() error {
	tc := p.TextEncoder.Config
	uc := p.UNet.Config
	if cd := uc.CrossAttentionDim[0]; cd != tc.HiddenSize {
		return fmt.Errorf("pipeline: the U-Net's cross_attention_dim %d differs from the text encoder's hidden_size %d", cd, tc.HiddenSize)
	}
	if p.Tokenizer.VocabSize() > tc.VocabSize {
		return fmt.Errorf("pipeline: the tokenizer has %d ids but the text encoder's vocab_size is %d", p.Tokenizer.VocabSize(), tc.VocabSize)
	}
	if p.Tokenizer.MaxLength() > tc.MaxPositionEmbeddings {
		return fmt.Errorf("pipeline: the tokenizer's length %d exceeds the text encoder's max_position_embeddings %d", p.Tokenizer.MaxLength(), tc.MaxPositionEmbeddings)
	}
	// An inpainting U-Net takes the latents, a mask and the masked image's
	// latents (2l + 1 channels).
	if l := p.VAE.Config.LatentChannels; (l != uc.InChannels && 2*l+1 != uc.InChannels) || l != uc.OutChannels {
		return fmt.Errorf("pipeline: the VAE has %d latent channels but the U-Net takes %d and gives %d; expected it to take %d (or %d, an inpainting U-Net) and give %d", l, uc.InChannels, uc.OutChannels, l, 2*l+1, l)
	}
	return nil
}

// storedDType returns the dtype of the floating-point weights of the
// component folder dir, in the files a full-precision load picks
// (nn.FindWeights: the full variant, else the .fp16 one); F32 when it cannot
// tell (the component loader then reports the problem).
func storedDType(dir string) tensor.DType {
	w, err := nn.FindWeights(dir, false)
	if err != nil {
		return tensor.F32
	}
	src, c, err := w.Open()
	if err != nil {
		if w.Variant == "fp16" {
			return tensor.F16
		}
		return tensor.F32
	}
	defer c.Close()
	return sourceDType(src)
}

// sourceDType returns the dtype of the first floating-point tensor of src
// in name order (F32 when there is none).
func sourceDType(src nn.Source) tensor.DType {
	keys := slices.Sorted(slices.Values(src.Keys()))
	for _, k := range keys {
		dt, _, _ := src.Info(k)
		switch dt {
		case "F16":
			return tensor.F16
		case "BF16":
			return tensor.BF16
		case "F32":
			return tensor.F32
		}
	}
	return tensor.F32
}

// VAEScaleFactor is the VAE's downsampling factor f = 2^(levels-1): images
// are f times the latents' size (8 for Stable Diffusion).
func (p *Pipeline) VAEScaleFactor() int {
	return 1 << (len(p.VAE.Config.BlockOutChannels) - 1)
}

// DefaultSize is the image size diffusers uses when none is given: the
// U-Net's sample_size times VAEScaleFactor.
func (p *Pipeline) DefaultSize() (height, width int) {
	s := 64
	if len(p.UNet.Config.SampleSize) > 0 && p.UNet.Config.SampleSize[0] > 0 {
		s = p.UNet.Config.SampleSize[0]
	}
	f := p.VAEScaleFactor()
	return s * f, s * f
}

// Close releases the weights of every component. The pipeline must not be
// used afterwards.
func (p *Pipeline) Close() error {
	if p.Device != tensor.CPU {
		// Give the device memory of the weights back now rather than at the
		// next garbage collection.
		for _, m := range []any{p.TextEncoder, p.UNet, p.VAE} {
			if m != nil && !reflect.ValueOf(m).IsNil() {
				for _, t := range nn.Tensors(m) {
					if t.Device() == p.Device {
						t.Release()
					}
				}
			}
		}
		p.Device = tensor.CPU // nothing left to release on a second Close
	}
	var errs []error
	if p.TextEncoder != nil {
		errs = append(errs, p.TextEncoder.Close())
	}
	if p.UNet != nil {
		errs = append(errs, p.UNet.Close())
	}
	if p.VAE != nil {
		errs = append(errs, p.VAE.Close())
	}
	for _, c := range p.closers {
		errs = append(errs, c.Close())
	}
	p.closers = nil
	return errors.Join(errs...)
}

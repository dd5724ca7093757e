package pipeline

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/roentgo/roentgo/clip"
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
	// memory); Demo is set for the built-in random demo model.
	Path string
	Demo bool

	hash *hashJob
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

func readModelIndex(path string) (*modelIndex, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
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

// checkFolder reports what keeps dir from being a diffusers Stable Diffusion
// folder, or nil.
func checkFolder(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pipeline: model folder %s does not exist; expected a diffusers pipeline folder (model_index.json with tokenizer/, text_encoder/, unet/, vae/, scheduler/)", dir)
		}
		return fmt.Errorf("pipeline: model: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("pipeline: model %s is a file; expected a diffusers pipeline folder (model_index.json with tokenizer/, text_encoder/, unet/, vae/, scheduler/)", dir)
	}
	var missing []string
	for _, f := range requiredFiles {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(f))); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("pipeline: %s is not a diffusers Stable Diffusion folder: missing %s", dir, strings.Join(missing, ", "))
	}
	mi, err := readModelIndex(filepath.Join(dir, "model_index.json"))
	if err != nil {
		return err
	}
	if strings.Contains(mi.ClassName, "XL") || strings.Contains(mi.ClassName, "Upscale") || strings.Contains(mi.ClassName, "Inpaint") {
		return fmt.Errorf("pipeline: %s holds a %s; expected a StableDiffusionPipeline (SD 1.x / 2.x text-to-image)", dir, mi.ClassName)
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
		return fmt.Errorf("pipeline: %s/model_index.json: unsupported components: %s", dir, strings.Join(bad, "; "))
	}
	return nil
}

// Load opens the Stable Diffusion pipeline in dir, a diffusers folder
// (model_index.json, tokenizer/, text_encoder/, unet/, vae/, scheduler/;
// safetensors weights, with .fp16 variants). A folder that is not one gets
// an error listing what is missing. Close the pipeline to unmap its weights.
func Load(dir string, o Options) (*Pipeline, error) {
	if dir == "" {
		return nil, errors.New("pipeline: no model folder given; expected a diffusers pipeline folder")
	}
	if err := checkFolder(dir); err != nil {
		return nil, err
	}
	p := &Pipeline{Path: dir}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	var err error
	schedPath := filepath.Join(dir, "scheduler", "scheduler_config.json")
	if p.SchedulerJSON, err = os.ReadFile(schedPath); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if p.SchedulerName, err = SchedulerNameOf(p.SchedulerJSON); err != nil {
		return nil, fmt.Errorf("pipeline: %s: %w", schedPath, err)
	}
	if o.Scheduler != "" {
		p.SchedulerName = o.Scheduler
	}
	// Check the scheduler now, so that a bad name or config fails before the
	// weights load.
	if _, err := p.NewScheduler(p.SchedulerName, 0); err != nil {
		return nil, err
	}
	dtypeFor := func(comp, file string) (tensor.DType, error) {
		if o.DType != "" && !strings.EqualFold(o.DType, "auto") {
			dt, err := tensor.ParseDType(strings.ToUpper(o.DType))
			if err != nil {
				return 0, fmt.Errorf("pipeline: dtype %q is not known; expected f32, f16, bf16 or auto", o.DType)
			}
			return dt, nil
		}
		return storedDType(filepath.Join(dir, comp), file), nil
	}
	if p.Tokenizer, err = clip.Load(filepath.Join(dir, "tokenizer")); err != nil {
		return nil, fmt.Errorf("pipeline: tokenizer: %w", err)
	}
	dt, err := dtypeFor("text_encoder", "model")
	if err != nil {
		return nil, err
	}
	if p.TextEncoder, err = clip.LoadTextModel(filepath.Join(dir, "text_encoder"), dt); err != nil {
		return nil, fmt.Errorf("pipeline: text encoder: %w", err)
	}
	if dt, err = dtypeFor("unet", "diffusion_pytorch_model"); err != nil {
		return nil, err
	}
	if p.UNet, err = unet.Load(filepath.Join(dir, "unet"), dt); err != nil {
		return nil, fmt.Errorf("pipeline: unet: %w", err)
	}
	if dt, err = dtypeFor("vae", "diffusion_pytorch_model"); err != nil {
		return nil, err
	}
	if p.VAE, err = vae.Load(filepath.Join(dir, "vae"), dt); err != nil {
		return nil, fmt.Errorf("pipeline: vae: %w", err)
	}
	if err := p.checkCompatible(); err != nil {
		return nil, err
	}
	p.hash = startHash(dir)
	ok = true
	return p, nil
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
	if l := p.VAE.Config.LatentChannels; l != uc.InChannels || l != uc.OutChannels {
		return fmt.Errorf("pipeline: the VAE has %d latent channels but the U-Net takes %d and gives %d", l, uc.InChannels, uc.OutChannels)
	}
	return nil
}

// storedDType returns the dtype of the floating-point weights stored in
// dir/<base>.safetensors (or F16 when only the .fp16 variant exists); F32
// when it cannot tell (the component loader then reports the problem).
func storedDType(dir, base string) tensor.DType {
	full := filepath.Join(dir, base+".safetensors")
	if _, err := os.Stat(full); err != nil {
		if _, err := os.Stat(filepath.Join(dir, base+".fp16.safetensors")); err == nil {
			return tensor.F16
		}
		return tensor.F32
	}
	f, err := os.Open(full)
	if err != nil {
		return tensor.F32
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil || n > 100<<20 {
		return tensor.F32
	}
	hdr := make([]byte, n)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return tensor.F32
	}
	var entries map[string]json.RawMessage
	if json.Unmarshal(hdr, &entries) != nil {
		return tensor.F32
	}
	names := make([]string, 0, len(entries))
	for k := range entries {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		var e struct {
			DType string `json:"dtype"`
		}
		if json.Unmarshal(entries[k], &e) != nil {
			continue
		}
		switch e.DType {
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
	return errors.Join(errs...)
}

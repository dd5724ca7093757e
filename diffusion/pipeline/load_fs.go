package pipeline

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/roentgo/roentgo/vae"
)

// EmbeddedName is the model name that outputs' metadata give a pipeline
// from LoadFS (which has no Path); its ModelHash tells such models apart.
const EmbeddedName = "embedded"

// LoadFS loads the diffusers Stable Diffusion folder held by fsys, whose root
// is the folder (model_index.json, scheduler/, tokenizer/, text_encoder/,
// unet/, vae/), without writing it to disk: for a model embedded in the
// program with go:embed (pass fs.Sub of the embed.FS when the folder is not
// its root), or any other fs.FS (os.DirFS, fstest.MapFS, a zip.Reader).
//
// It reads what Load reads from a folder, with the same checks and results:
// each component's config.json and the weights file nn.FindWeights would
// pick (the .fp16 variant first for 16-bit dtypes, the full one for F32).
// Only single safetensors files are read from an fs.FS: a component whose
// chosen weights are a PyTorch .bin file or a sharded checkpoint is an error
// naming the file. The weights are read into memory (fs.ReadFile) and used
// in place, without a further copy; Close releases nothing but device
// memory, and the garbage collector frees the weights once the pipeline is
// unreachable.
//
// Options apply as for Load: DType, Scheduler, Prediction, Tokenizer (a
// folder on disk replacing fsys's tokenizer/), Embeddings and LoRAs (files
// on disk), Device, Compute and Warn. ConfigDir, which only applies to
// single-file checkpoints, is an error.
//
// The pipeline has no Path: outputs' metadata name the model EmbeddedName,
// and its ModelHash is HashFS of fsys, which equals HashFolder of the folder
// fsys was made from. The hash is computed in the background after LoadFS
// returns, so fsys must stay unchanged and safe for concurrent reads until
// ModelHash has been called once (embed.FS and os.DirFS are).
func LoadFS(fsys fs.FS, o Options) (*Pipeline, error) {
	if fsys == nil {
		return nil, errors.New("pipeline: LoadFS: no file system given; expected an fs.FS whose root is a diffusers pipeline folder")
	}
	if err := checkOptions(o); err != nil {
		return nil, err
	}
	if o.ConfigDir != "" {
		return nil, fmt.Errorf("pipeline: a config folder (%s) applies only to single-file checkpoints; LoadFS reads a diffusers folder with its own configs", o.ConfigDir)
	}
	f := &fsFolder{fsys: fsys, cache: map[string][]byte{}}
	p, err := loadModelFolder(f, o)
	f.cache = nil // weights read for their dtype but not used
	if err != nil {
		return nil, err
	}
	p.modelName = EmbeddedName
	if o.Name != "" {
		p.modelName = o.Name
	}
	p.hash = startHashFS(fsys)
	return place(p, o)
}

// fsFolder is a diffusers folder held by an fs.FS (the root of fsys).
type fsFolder struct {
	fsys fs.FS
	// cache holds the weights files storedDType read, by path, for the
	// component loader that picks the same file.
	cache map[string][]byte
}

func (f *fsFolder) String() string { return "the fs.FS" }

func (f *fsFolder) exists(rel string) bool {
	_, err := fs.Stat(f.fsys, rel)
	return err == nil
}

func (f *fsFolder) readFile(rel string) ([]byte, string, error) {
	data, err := fs.ReadFile(f.fsys, rel)
	return data, rel, err
}

func (f *fsFolder) findWeights(comp string) error {
	_, err := nn.FindWeightsFS(f.fsys, comp, false)
	return err
}

// weights reads the weights file of the component folder comp that
// nn.FindWeightsFS picks, which must be a single safetensors file, and
// returns it as a Source with its path.
func (f *fsFolder) weights(comp string, preferFP16 bool) (*nn.SafetensorsSource, string, error) {
	w, err := nn.FindWeightsFS(f.fsys, comp, preferFP16)
	if err != nil {
		return nil, "", err
	}
	if w.Index != "" || w.Format != "safetensors" {
		name, kind := w.Index, "the index of a sharded checkpoint"
		if w.Index == "" {
			name, kind = w.Files[0], "a PyTorch .bin file"
		}
		return nil, "", fmt.Errorf("pipeline: %s is %s, but only single safetensors files are read from an fs.FS; expected %s/diffusion_pytorch_model.safetensors or %s/model.safetensors (or their .fp16 variants)", name, kind, comp, comp)
	}
	name := w.Files[0]
	buf, ok := f.cache[name]
	if ok {
		delete(f.cache, name)
	} else if buf, err = fs.ReadFile(f.fsys, name); err != nil {
		return nil, "", errctx.Wrap("pipeline", err)
	}
	src, err := nn.ParseSafetensors(name, buf)
	if err != nil {
		return nil, "", err
	}
	return src, name, nil
}

// storedDType is storedDType (of a folder on disk) for the component folder
// comp of fsys: the dtype of the file a full-precision load picks, which is
// kept for the loader.
func (f *fsFolder) storedDType(comp string) tensor.DType {
	w, err := nn.FindWeightsFS(f.fsys, comp, false)
	if err != nil {
		return tensor.F32
	}
	fallback := tensor.F32
	if w.Variant == "fp16" {
		fallback = tensor.F16
	}
	if w.Index != "" || w.Format != "safetensors" {
		return fallback // the loader reports it
	}
	name := w.Files[0]
	buf, err := fs.ReadFile(f.fsys, name)
	if err != nil {
		return fallback
	}
	src, err := nn.ParseSafetensors(name, buf)
	if err != nil {
		return fallback
	}
	if f.cache != nil {
		f.cache[name] = buf
	}
	return sourceDType(src)
}

func (f *fsFolder) tokenizer() (*clip.CLIPTokenizer, error) { return clip.LoadFS(f.fsys, "tokenizer") }

// config reads the config.json of the component folder comp, decoded by
// parse; errors name the file, after ctx (the loader's error context).
func fsConfig[C any](f *fsFolder, comp, ctx string, parse func([]byte) (C, error)) (C, error) {
	data, where, err := f.readFile(comp + "/config.json")
	if err != nil {
		var zero C
		return zero, errctx.Wrap("pipeline", err)
	}
	c, err := parse(data)
	if err != nil {
		return c, errctx.Wrap(ctx+": "+where, err)
	}
	return c, nil
}

// fsModel builds the component comp with build from its config (parse) and
// its weights kept as dt; ctx is the error context the caller adds
// ("pipeline: unet"), which errors here repeat so that errctx drops the
// component packages' own prefixes after the file's name.
func fsModel[M, C any](f *fsFolder, comp, ctx string, dt tensor.DType, parse func([]byte) (C, error), build func(nn.Source, C, tensor.DType) (M, error)) (M, error) {
	var zero M
	c, err := fsConfig(f, comp, ctx, parse)
	if err != nil {
		return zero, err
	}
	src, name, err := f.weights(comp, dt != tensor.F32)
	if err != nil {
		return zero, err
	}
	m, err := build(src, c, dt)
	if err != nil {
		return zero, errctx.Wrap(ctx+": "+name, err)
	}
	return m, nil
}

func (f *fsFolder) textModel(dt tensor.DType) (*clip.TextModel, error) {
	return fsModel(f, "text_encoder", "pipeline: text encoder", dt, clip.ParseTextConfig, clip.TextModelFromSource)
}

func (f *fsFolder) unetModel(dt tensor.DType) (*unet.Model, error) {
	return fsModel(f, "unet", "pipeline: unet", dt, unet.ParseConfig, unet.FromSource)
}

func (f *fsFolder) vaeModel(dt tensor.DType) (*vae.AutoencoderKL, error) {
	return fsModel(f, "vae", "pipeline: vae", dt, vae.ParseConfig, vae.FromSource)
}

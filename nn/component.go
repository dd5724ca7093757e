package nn

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
)

// ComponentDir resolves the folder of one component (name: "unet", "vae",
// "text_encoder", ...) of a diffusers pipeline: dir itself when it has no
// subfolder name (then it must be the component folder and hold config.json),
// else dir/name. The error says what is missing.
func ComponentDir(dir, name string) (string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return "", errctx.Wrap("nn", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("nn: %s is a file, want a diffusers pipeline folder or its %s folder", dir, name)
	}
	if isDir(filepath.Join(dir, name)) {
		dir = filepath.Join(dir, name)
	}
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		what := "config.json"
		if _, werr := FindWeights(dir, false); werr != nil {
			what = "config.json and no weight files"
		}
		return "", fmt.Errorf("nn: %s is not a diffusers %s folder: no %s (and no %s/ subfolder)", dir, name, what, name)
	}
	return dir, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// weightBases are the file stems of diffusers (diffusion_pytorch_model) and
// transformers (model / pytorch_model) weights, per format.
var weightBases = map[string][]string{
	"safetensors": {"diffusion_pytorch_model", "model"},
	"bin":         {"diffusion_pytorch_model", "pytorch_model"},
}

// weightCandidates lists, for one format and variant ("" or "fp16"), the file
// names that hold a component's weights: the single file, then the sharded
// index (diffusers spells a variant index name.safetensors.index.fp16.json;
// name.fp16.safetensors.index.json is accepted too).
func weightCandidates(format, variant string) []string {
	v := ""
	if variant != "" {
		v = "." + variant
	}
	var out []string
	for _, base := range weightBases[format] {
		out = append(out, base+v+"."+format)
		out = append(out, base+"."+format+".index"+v+".json")
		if v != "" {
			out = append(out, base+v+"."+format+".index.json")
		}
	}
	return out
}

// weightOrder is the order in which FindWeights tries the candidates: the
// preferred variant first (precision matters more than the format: an F32
// model should not come from an .fp16 file when a full one exists), and for
// each variant safetensors before PyTorch .bin.
func weightOrder(preferFP16 bool) [][2]string {
	vs := []string{"", "fp16"}
	if preferFP16 {
		vs = []string{"fp16", ""}
	}
	var out [][2]string
	for _, v := range vs {
		for _, f := range []string{"safetensors", "bin"} {
			out = append(out, [2]string{f, v})
		}
	}
	return out
}

// Weights names the weight files of a component folder, as FindWeights found
// them.
type Weights struct {
	// Format is "safetensors" or "bin" (PyTorch zip checkpoints).
	Format string
	// Variant is "" or "fp16".
	Variant string
	// Index is the sharded checkpoint's index file ("" for a single file).
	Index string
	// Files are the weight files (one, or the shards of Index in order).
	Files []string
	// WeightMap is the index's tensor name -> file map (nil for a single file).
	WeightMap map[string]string
}

// FindWeights finds the weight files of the diffusers or transformers
// component folder dir: diffusion_pytorch_model.safetensors or
// model.safetensors, diffusion_pytorch_model.bin or pytorch_model.bin, their
// .fp16 variants, and sharded checkpoints (an index file
// *.safetensors.index.json / *.bin.index.json whose weight_map names the
// shards). The .fp16 variant comes first when preferFP16, the
// full-precision files otherwise (like diffusers, which loads a variant only
// when asked); the other variant is the fallback. For each variant,
// safetensors are preferred over .bin files. The error names the folder and
// the files looked for.
func FindWeights(dir string, preferFP16 bool) (*Weights, error) {
	w := findWeights(preferFP16, func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	})
	if w == nil {
		return nil, fmt.Errorf("nn: %s holds no weight files: looked for %s", dir, weightsLookedFor)
	}
	if w.Index != "" {
		w.Index = filepath.Join(dir, w.Index)
		if err := w.readIndex(dir); err != nil {
			return nil, err
		}
		return w, nil
	}
	w.Files = []string{filepath.Join(dir, w.Files[0])}
	return w, nil
}

// weightsLookedFor lists, for errors, the files FindWeights looks for.
const weightsLookedFor = "diffusion_pytorch_model.safetensors, model.safetensors, diffusion_pytorch_model.bin, pytorch_model.bin, their .fp16 variants (name.fp16.ext) and sharded checkpoints (name.ext.index.json)"

// findWeights returns the first weight file name, in FindWeights' order of
// preference, for which exists is true, as Weights whose Index or single
// Files entry is that bare name (nothing read); nil when there is none.
func findWeights(preferFP16 bool, exists func(name string) bool) *Weights {
	for _, fv := range weightOrder(preferFP16) {
		for _, name := range weightCandidates(fv[0], fv[1]) {
			if !exists(name) {
				continue
			}
			w := &Weights{Format: fv[0], Variant: fv[1]}
			if strings.HasSuffix(name, ".json") {
				w.Index = name
			} else {
				w.Files = []string{name}
			}
			return w
		}
	}
	return nil
}

// FindWeightsFS is FindWeights for the component folder dir of fsys (a
// slash-separated path as fs.FS takes them, "." for its root): it looks for
// the same files in the same order of preference and returns the one found,
// its path in fsys in Index (a sharded checkpoint, whose index is not read)
// or as the single entry of Files. The error names dir and the files looked
// for.
func FindWeightsFS(fsys fs.FS, dir string, preferFP16 bool) (*Weights, error) {
	w := findWeights(preferFP16, func(name string) bool {
		st, err := fs.Stat(fsys, path.Join(dir, name))
		return err == nil && !st.IsDir()
	})
	if w == nil {
		return nil, fmt.Errorf("nn: %s holds no weight files: looked for %s", dir, weightsLookedFor)
	}
	if w.Index != "" {
		w.Index = path.Join(dir, w.Index)
	} else {
		w.Files[0] = path.Join(dir, w.Files[0])
	}
	return w, nil
}

// readIndex reads the weight_map of w.Index and lists its shards.
func (w *Weights) readIndex(dir string) error {
	data, err := os.ReadFile(w.Index)
	if err != nil {
		return errctx.Wrap("nn", err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("nn: %s: %v (want a JSON object with a weight_map of tensor name -> file)", w.Index, err)
	}
	if len(idx.WeightMap) == 0 {
		return fmt.Errorf("nn: %s: no weight_map (want tensor name -> shard file)", w.Index)
	}
	seen := map[string]bool{}
	for _, f := range idx.WeightMap {
		if f == "" || filepath.IsAbs(f) || f != filepath.Base(f) {
			return fmt.Errorf("nn: %s: shard %q, want a file name in the same folder", w.Index, f)
		}
		if !seen[f] {
			seen[f] = true
			w.Files = append(w.Files, filepath.Join(dir, f))
		}
	}
	slices.Sort(w.Files)
	for _, f := range w.Files {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("nn: %s names shard %s: %w", w.Index, filepath.Base(f), err)
		}
	}
	w.WeightMap = idx.WeightMap
	return nil
}

// Open opens the files as one Source: a SafetensorsSource or a TorchSource.
// For a sharded checkpoint, every tensor of the weight_map must be in one of
// the shards. Close the returned Closer when done (for safetensors, after the
// model is no longer used).
func (w *Weights) Open() (Source, io.Closer, error) {
	var (
		src Source
		c   io.Closer
	)
	switch w.Format {
	case "safetensors":
		s, err := OpenSafetensors(w.Files...)
		if err != nil {
			return nil, nil, err
		}
		src, c = s, s
	case "bin":
		s, err := OpenTorch(w.Files...)
		if err != nil {
			return nil, nil, err
		}
		src, c = s, s
	default:
		return nil, nil, fmt.Errorf("nn: unknown weight format %q", w.Format)
	}
	var missing []string
	for k := range w.WeightMap {
		if _, _, ok := src.Info(k); !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		c.Close()
		slices.Sort(missing)
		more := ""
		if len(missing) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(missing)-5)
			missing = missing[:5]
		}
		return nil, nil, fmt.Errorf("nn: %s lists tensors its shards lack: %s%s", w.Index, strings.Join(missing, ", "), more)
	}
	return src, c, nil
}

// Mapped reports whether the tensors of the opened Source alias the files
// (safetensors, memory-mapped), so that the files must stay open while the
// model is used. PyTorch .bin tensors are read into memory of their own: close
// the Source right after building the model to drop its cache of them.
func (w *Weights) Mapped() bool { return w.Format == "safetensors" }

// String names the weights: the index file or the single file.
func (w *Weights) String() string {
	if w.Index != "" {
		return w.Index
	}
	return strings.Join(w.Files, ", ")
}

// OpenComponent opens the weights of the component folder dir (see
// FindWeights for the files and the order of preference) as one Source.
// Close the returned Closer when the model built from it is no longer used.
func OpenComponent(dir string, preferFP16 bool) (Source, io.Closer, error) {
	w, err := FindWeights(dir, preferFP16)
	if err != nil {
		return nil, nil, err
	}
	src, c, err := w.Open()
	if err != nil {
		return nil, nil, err
	}
	return src, c, nil
}

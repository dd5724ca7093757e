package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/metrics"
	"github.com/roentgo/roentgo/metrics/features"
	"github.com/roentgo/roentgo/phantom/classify"
)

// extractor computes one feature space (and, for a classifier, its scores)
// for a batch of images.
type extractor struct {
	// name is the feature space's name in the output: inception, xrv, clip
	// or pixels.
	name string
	// id identifies the extractor and its weights for the cache.
	id string
	// weights is the weight file (empty for pixels).
	weights string
	// classes names the classifier's scores (xrv); nil for a pure feature
	// extractor.
	classes []string
	// run returns the features [N, D] (row-major) and, for a classifier, the
	// scores [N][len(classes)].
	run func(ims []*features.Image) (feats []float32, dim int, scores [][]float32, err error)
	// close releases the model.
	close func()
}

// Model loaders; tests replace them to use the reduced random-weight models
// of metrics/features/testdata.
var (
	loadInception = func(path string) (*features.Inception, error) {
		return features.LoadInception(path, features.InceptionConfig{})
	}
	loadXRV  = features.LoadDenseNet
	loadCLIP = func(path string) (*features.CLIPVision, error) {
		return features.LoadCLIPVision(path, features.DefaultCLIPVisionConfig())
	}
)

// fileID identifies a file by its absolute path, size and modification time.
func fileID(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	st, err := os.Stat(path)
	if err != nil {
		return abs
	}
	return fmt.Sprintf("%s|%d|%d", abs, st.Size(), st.ModTime().UnixNano())
}

func newInceptionExtractor(path string) (*extractor, error) {
	m, err := loadInception(path)
	if err != nil {
		return nil, err
	}
	return &extractor{name: "inception", id: "inception|" + fileID(path), weights: path,
		run: func(ims []*features.Image) ([]float32, int, [][]float32, error) {
			x := features.PreprocessInception(ims)
			f := m.Features(x)
			x.Release()
			out := append([]float32(nil), f.Float32s()...)
			d := f.Dim(1)
			f.Release()
			return out, d, nil, nil
		}, close: func() {}}, nil
}

func newXRVExtractor(path string) (*extractor, error) {
	m, err := loadXRV(path)
	if err != nil {
		return nil, err
	}
	classes := features.XRVPathologies
	if m.Config.NumClasses != len(classes) {
		classes = nil
	}
	return &extractor{name: "xrv", id: "xrv|" + fileID(path), weights: path, classes: classes,
		run: func(ims []*features.Image) ([]float32, int, [][]float32, error) {
			x := features.PreprocessXRV(ims)
			f := m.Features(x)
			x.Release()
			var scores [][]float32
			if classes != nil {
				lg := m.Logits(f)
				scores = m.Calibrated(lg)
				lg.Release()
			}
			out := append([]float32(nil), f.Float32s()...)
			d := f.Dim(1)
			f.Release()
			return out, d, scores, nil
		}, close: func() {}}, nil
}

func newCLIPExtractor(path string) (*extractor, error) {
	m, err := loadCLIP(path)
	if err != nil {
		return nil, err
	}
	size := m.Config.ImageSize
	return &extractor{name: "clip", id: "clip|" + fileID(path), weights: path,
		run: func(ims []*features.Image) ([]float32, int, [][]float32, error) {
			x := features.PreprocessCLIP(ims, size)
			f := m.Features(x)
			x.Release()
			out := append([]float32(nil), f.Float32s()...)
			d := f.Dim(1)
			f.Release()
			return out, d, nil, nil
		}, close: func() {}}, nil
}

// newPixelsExtractor is the weight-free sanity mode: the BT.601 luma of each
// image, area-averaged to side x side, in [0, 1], as the feature vector.
func newPixelsExtractor(side int) *extractor {
	return &extractor{name: "pixels", id: "pixels|" + strconv.Itoa(side),
		run: func(ims []*features.Image) ([]float32, int, [][]float32, error) {
			out := make([]float32, 0, len(ims)*side*side)
			for _, im := range ims {
				for _, v := range thumbnail(im, side) {
					out = append(out, float32(v))
				}
			}
			return out, side * side, nil, nil
		}, close: func() {}}
}

// luma returns the BT.601 luma of a 3-plane 0..255 image in [0, 1].
func luma(im *features.Image) []float64 {
	hw := im.H * im.W
	g := make([]float64, hw)
	if im.C == 1 {
		for i, v := range im.Pix {
			g[i] = float64(v) / 255
		}
		return g
	}
	for i := range g {
		g[i] = (0.299*float64(im.Pix[i]) + 0.587*float64(im.Pix[hw+i]) + 0.114*float64(im.Pix[2*hw+i])) / 255
	}
	return g
}

// thumbnail returns the luma of im area-averaged to side x side.
func thumbnail(im *features.Image, side int) []float64 {
	return areaResize(luma(im), im.W, im.H, side, side)
}

// cacheEntry is what the cache keeps for one set and one extractor (or for
// the thumbnails, or the diversity scores).
type cacheEntry struct {
	feats  []float32   // [N, dim]
	dim    int         // feature dimension
	scores [][]float32 // classifier scores [N][K], or nil
	stats  *metrics.Stats
	// raw holds values that are float64 at the source (the diversity
	// scores): written instead of feats, and read back exactly.
	raw []float64
}

// cachePath returns the cache file of set (its items, in order) under the
// extractor (or computation) id, or "" without a cache folder.
func cachePath(dir, set, name, id string, items []item, extra string) string {
	if dir == "" {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "roentgo evaluate cache v1\n%s\n%s\n", id, extra)
	for _, it := range items {
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", it.rel, it.group, fileID(it.path))
	}
	sum := hex.EncodeToString(h.Sum(nil))
	return filepath.Join(dir, fmt.Sprintf("%s-%s-%s.npz", set, name, sum[:16]))
}

// readCache reads a cache file with n rows; a missing or unusable file is a
// miss (nil).
func readCache(path string, n int) *cacheEntry {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	arrs, err := metrics.ParseNPZ(b)
	if err != nil {
		return nil
	}
	f := arrs["features"]
	if f == nil || len(f.Shape) != 2 || f.Shape[0] != n {
		return nil
	}
	e := &cacheEntry{dim: f.Shape[1], feats: make([]float32, len(f.Data)), raw: f.Data}
	for i, v := range f.Data {
		e.feats[i] = float32(v)
	}
	if s := arrs["scores"]; s != nil {
		if len(s.Shape) != 2 || s.Shape[0] != n {
			return nil
		}
		k := s.Shape[1]
		e.scores = make([][]float32, n)
		for i := range e.scores {
			e.scores[i] = make([]float32, k)
			for j := range e.scores[i] {
				e.scores[i][j] = float32(s.Data[i*k+j])
			}
		}
	}
	if arrs["mu"] != nil {
		if st, err := metrics.StatsFromNPZ(b); err == nil {
			e.stats = st
			e.stats.N = int64(n)
		}
	}
	return e
}

// writeCache writes e to path as a .npz: features, scores (when present) and,
// when e.stats is set, mu and sigma as clean-fid and pytorch-fid store
// reference statistics, atomically.
func writeCache(path string, e *cacheEntry) error {
	if path == "" {
		return nil
	}
	vals := e.raw
	if vals == nil {
		vals = f64(e.feats)
	}
	n := len(vals) / max(e.dim, 1)
	names := []string{"features"}
	shapes := [][]int{{n, e.dim}}
	data := [][]float64{vals}
	if e.stats != nil {
		d := e.stats.Dim()
		sig := make([]float64, 0, d*d)
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				sig = append(sig, e.stats.Sigma.At(i, j))
			}
		}
		names = append([]string{"mu", "sigma"}, names...)
		shapes = append([][]int{{d}, {d, d}}, shapes...)
		data = append([][]float64{e.stats.Mu, sig}, data...)
	}
	if e.scores != nil {
		k := 0
		if n > 0 {
			k = len(e.scores[0])
		}
		s := make([]float64, 0, n*k)
		for _, row := range e.scores {
			for _, v := range row {
				s = append(s, float64(v))
			}
		}
		names = append(names, "scores")
		shapes = append(shapes, []int{n, k})
		data = append(data, s)
	}
	b, err := metrics.EncodeNPZ(names, shapes, data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}

func f64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// readStatsFile returns the dimension of the mu/sigma statistics in a cache
// file (for tests and tools).
func readStatsFile(path string) (int, error) {
	st, err := metrics.ReadStats(path)
	if err != nil {
		return 0, err
	}
	return st.Dim(), nil
}

// classifierBuiltinPrefix starts the -classifier values that would name a
// classifier embedded in the program; roentgo embeds none (phantom/demo
// holds only the diffusion model).
const classifierBuiltinPrefix = "builtin:"

// classifierClasses returns the score names of a phantom/classify model:
// its findings (classify.Names, in order), then, for each finding the
// classifier reports per side ("effusion right", "effusion left"), the
// finding on either side ("effusion": the larger of the two sides'
// probabilities), so that unsided label columns such as CheXpert's
// "Pleural Effusion" and "Pneumothorax" have a score. sides[k] lists the
// indices of the per-side outputs of the k-th derived name.
func classifierClasses(names []string) (classes []string, sides [][]int) {
	classes = append([]string(nil), names...)
	byBase := map[string][]int{}
	var bases []string
	for i, n := range names {
		for _, suf := range []string{" right", " left"} {
			if b, ok := strings.CutSuffix(n, suf); ok {
				if byBase[b] == nil {
					bases = append(bases, b)
				}
				byBase[b] = append(byBase[b], i)
			}
		}
	}
	have := map[string]bool{}
	for _, n := range names {
		have[normLabel(n)] = true
	}
	for _, b := range bases {
		if len(byBase[b]) == 2 && !have[normLabel(b)] {
			classes = append(classes, b)
			sides = append(sides, byBase[b])
		}
	}
	return classes, sides
}

// newClassifierExtractor loads a findings classifier written by
// phantom/classify's Save (examples/demomodel's classifier stage writes
// one): its features (the hidden layer) are a feature space, its
// probabilities the prompt-adherence scores. Each image is given to it as
// the 16-bit gray of its luma at -size, which classify.Preprocess reduces
// to the network's input.
func newClassifierExtractor(path string) (*extractor, error) {
	if strings.HasPrefix(path, classifierBuiltinPrefix) {
		return nil, usageError{fmt.Errorf("-classifier %q: roentgo embeds no trained findings classifier (phantom/demo holds only the diffusion model); pass a file written by phantom/classify's Save, such as examples/demomodel's OUT/classifier/classifier.safetensors", path)}
	}
	m, err := classify.Load(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("-classifier: %w (expected a findings classifier written by phantom/classify's Save, such as examples/demomodel's OUT/classifier/classifier.safetensors)", err)
		}
		return nil, fmt.Errorf("-classifier: %w", err)
	}
	classes, sides := classifierClasses(classify.Names())
	if len(classify.Names()) != m.Config.Outputs {
		return nil, fmt.Errorf("-classifier %s: %d outputs, expected %d (classify.Findings)", path, m.Config.Outputs, len(classify.Names()))
	}
	return &extractor{name: "classifier", id: "classifier|" + fileID(path), weights: path, classes: classes,
		run: func(ims []*features.Image) ([]float32, int, [][]float32, error) {
			imgs := make([]image.Image, len(ims))
			for i, im := range ims {
				imgs[i] = gray16(im)
			}
			probs, feats, err := m.PredictImages(imgs)
			if err != nil {
				return nil, 0, nil, err
			}
			dim := m.Config.Hidden
			out := make([]float32, 0, len(ims)*dim)
			scores := make([][]float32, len(ims))
			for i := range ims {
				out = append(out, feats[i]...)
				s := append(make([]float32, 0, len(classes)), probs[i]...)
				for _, sd := range sides {
					s = append(s, max(probs[i][sd[0]], probs[i][sd[1]]))
				}
				scores[i] = s
			}
			return out, dim, scores, nil
		}, close: func() {}}, nil
}

// gray16 returns the BT.601 luma of im as a 16-bit gray image.
func gray16(im *features.Image) *image.Gray16 {
	g := image.NewGray16(image.Rect(0, 0, im.W, im.H))
	for i, v := range luma(im) {
		y := uint16(math.Round(min(max(v, 0), 1) * 65535))
		g.Pix[2*i], g.Pix[2*i+1] = uint8(y>>8), uint8(y)
	}
	return g
}

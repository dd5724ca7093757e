package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/metrics"
	"github.com/roentgo/roentgo/metrics/features"
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
	run func(ims []*features.Image) (feats []float32, dim int, scores [][]float32)
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
		run: func(ims []*features.Image) ([]float32, int, [][]float32) {
			x := features.PreprocessInception(ims)
			f := m.Features(x)
			x.Release()
			out := append([]float32(nil), f.Float32s()...)
			d := f.Dim(1)
			f.Release()
			return out, d, nil
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
		run: func(ims []*features.Image) ([]float32, int, [][]float32) {
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
			return out, d, scores
		}, close: func() {}}, nil
}

func newCLIPExtractor(path string) (*extractor, error) {
	m, err := loadCLIP(path)
	if err != nil {
		return nil, err
	}
	size := m.Config.ImageSize
	return &extractor{name: "clip", id: "clip|" + fileID(path), weights: path,
		run: func(ims []*features.Image) ([]float32, int, [][]float32) {
			x := features.PreprocessCLIP(ims, size)
			f := m.Features(x)
			x.Release()
			out := append([]float32(nil), f.Float32s()...)
			d := f.Dim(1)
			f.Release()
			return out, d, nil
		}, close: func() {}}, nil
}

// newPixelsExtractor is the weight-free sanity mode: the BT.601 luma of each
// image, area-averaged to side x side, in [0, 1], as the feature vector.
func newPixelsExtractor(side int) *extractor {
	return &extractor{name: "pixels", id: "pixels|" + strconv.Itoa(side),
		run: func(ims []*features.Image) ([]float32, int, [][]float32) {
			out := make([]float32, 0, len(ims)*side*side)
			for _, im := range ims {
				for _, v := range thumbnail(im, side) {
					out = append(out, float32(v))
				}
			}
			return out, side * side, nil
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

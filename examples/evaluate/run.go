package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/gonum/mat"

	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/metrics"
	"github.com/roentgo/roentgo/metrics/features"
	"github.com/roentgo/roentgo/phantom/classify"
)

// options are the command line's settings.
type options struct {
	real, gen, manifest, format, out, cache string
	inception, xrv, clip                    string
	classifier                              string
	features                                string
	size, batch, workers                    int
	pixelsSize, memoSize, neighbors         int
	pairs, tile, groupSize                  int
	reportGroups                            int
	kidSubsets, kidSubsetSize               int
	seed                                    uint64
	memoThreshold, memoPixelThreshold       float64
	adherenceThreshold                      float64
	diversity, quiet, fidSqrtm              bool

	// Generation first (-prompts).
	model     cli.ModelFlags
	prompts   string
	perPrompt int
	steps     int
	guidance  float64
	scheduler string
	genSeed   uint64
	genBatch  int
}

// usageError is a command-line mistake (exit status 2).
type usageError struct{ error }

func newFlags(o *options, getenv func(string) (string, bool), stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	env := func(k string) string { v, _ := getenv(k); return v }
	fs.StringVar(&o.real, "real", "", "folder of real images (PNG, JPEG, DICOM; searched recursively): the reference for FID/KID and the training set for memorisation")
	fs.StringVar(&o.gen, "gen", "", "folder of generated images: an examples/generate output folder (its manifest.jsonl gives prompts, groups and labels) or any image folder (groups from file names ID_K.png); with -prompts, the folder generated into")
	fs.StringVar(&o.manifest, "manifest", "", "generate manifest to read instead of GEN/manifest.jsonl (paths relative to -gen)")
	fs.StringVar(&o.format, "format", "", "with a manifest: the file format to evaluate (png, gray, png16, dcm8, dcm16); empty: each row's first file")
	fs.StringVar(&o.out, "out", "", "output folder (created): evaluation.json, summary.txt, memorization_*.png, report.html with its charts and grids")
	fs.StringVar(&o.cache, "cache", "", "feature cache folder: features and clean-fid-compatible mu/sigma .npz per set and extractor; a second run on the same files is instant")
	fs.StringVar(&o.inception, "inception", env("ROENTGO_INCEPTION"), "FID Inception weights (pytorch-fid pt_inception-2015-12-05 as safetensors or zip .pth; default $ROENTGO_INCEPTION)")
	fs.StringVar(&o.xrv, "xrv", env("ROENTGO_XRV_DENSENET"), "torchxrayvision densenet121-res224-all weights as safetensors (default $ROENTGO_XRV_DENSENET): XRV FID and the prompt-adherence classifier")
	fs.StringVar(&o.clip, "clip", env("ROENTGO_CLIP_VIT"), "CLIP ViT-B/32 weights (transformers or open_clip; default $ROENTGO_CLIP_VIT)")
	fs.StringVar(&o.classifier, "classifier", "", "findings classifier for prompt adherence: a file written by phantom/classify's Save (examples/demomodel's OUT/classifier/classifier.safetensors); roentgo embeds no trained classifier, so only a file path is accepted. When given, adherence uses it instead of XRV, and its features are one more feature space (classifier)")
	fs.StringVar(&o.features, "features", "auto", "feature spaces: auto (every one whose weights are given) or a comma-separated list of inception, xrv, clip, pixels (pixels: downsampled grayscale, a weight-free sanity mode); -classifier adds the classifier space to either")
	fs.IntVar(&o.size, "size", 512, "every image is resized (shorter side, antialiased bilinear) and centre-cropped to SIZE x SIZE first, as training does; a multiple of 8")
	fs.IntVar(&o.batch, "batch", 16, "images per feature-extraction batch")
	fs.IntVar(&o.workers, "workers", runtime.GOMAXPROCS(0), "image decoding goroutines")
	fs.IntVar(&o.pixelsSize, "pixels-size", 16, "side of the pixels feature space (SIDE² features)")
	fs.IntVar(&o.memoSize, "memo-size", 64, "side of the grayscale thumbnails compared by pixel correlation")
	fs.IntVar(&o.neighbors, "neighbors", 3, "nearest real images listed per generated image and space")
	fs.IntVar(&o.pairs, "pairs", 8, "closest pairs reported and drawn per space")
	fs.IntVar(&o.tile, "tile", 128, "side of each image in the memorisation sheets and the report's prompt grids")
	fs.IntVar(&o.reportGroups, "report-groups", 50, "prompt groups drawn as image grids in report.html (the first REPORT-GROUPS, up to 8 images each; 0: none)")
	fs.IntVar(&o.groupSize, "group-size", 4, "images per prompt compared by MS-SSIM (RoentGen: 4, all 6 pairs); larger groups use their first GROUP-SIZE images; 0: all")
	fs.IntVar(&o.kidSubsets, "kid-subsets", 100, "KID subsets")
	fs.IntVar(&o.kidSubsetSize, "kid-subset-size", 1000, "KID subset size (capped at the smaller set)")
	fs.Uint64Var(&o.seed, "seed", 0, "seed of the KID subsets")
	fs.Float64Var(&o.memoThreshold, "memo-threshold", 0.98, "feature cosine similarity at or above which a generated image counts as a near copy")
	fs.Float64Var(&o.memoPixelThreshold, "memo-pixel-threshold", 0.98, "pixel correlation at or above which a generated image counts as a near copy")
	fs.Float64Var(&o.adherenceThreshold, "adherence-threshold", 0.5, "classifier score at or above which a finding counts as detected (0.5: XRV's calibrated operating point)")
	fs.BoolVar(&o.fidSqrtm, "fid-sqrtm", false, "compute FID with scipy's sqrtm (Schur) as pytorch-fid does, step by step (minutes for 2048-d features) instead of the symmetric eigenvalue method (same distance to rounding, seconds)")
	fs.BoolVar(&o.diversity, "diversity", true, "compute the within-prompt MS-SSIM")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress lines")
	o.model.Register(fs)
	fs.StringVar(&o.prompts, "prompts", "", "prompt file (CSV with a header or JSONL: prompt, optional id, other columns are labels): generate -per-prompt images per prompt into -gen first")
	fs.IntVar(&o.perPrompt, "per-prompt", 4, "with -prompts: images per prompt")
	fs.IntVar(&o.steps, "steps", 75, "with -prompts: denoising steps (RoentGen: 75)")
	fs.Float64Var(&o.guidance, "guidance", 4, "with -prompts: guidance scale (RoentGen: 4)")
	fs.StringVar(&o.scheduler, "scheduler", "pndm", "with -prompts: sampler (RoentGen: PNDM)")
	fs.Uint64Var(&o.genSeed, "gen-seed", 0, "with -prompts: image i (counted over the whole file) is generated with seed GEN-SEED + i")
	fs.IntVar(&o.genBatch, "gen-batch", 4, "with -prompts: images denoised together")
	return fs
}

// Main runs the program with args and returns its exit status.
func Main(ctx context.Context, args []string, getenv func(string) (string, bool), stdout, stderr io.Writer) int {
	var o options
	fs := newFlags(&o, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "evaluate: unexpected arguments %q\n", fs.Args())
		return 2
	}
	r, err := evaluate(ctx, &o, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "evaluate: %v\n", err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	writeSummary(stdout, r)
	fmt.Fprintf(stdout, "wrote %s and %s\n", filepath.Join(o.out, "evaluation.json"), filepath.Join(o.out, reportHTML))
	return 0
}

// check validates the options before anything is read.
func (o *options) check() error {
	switch {
	case o.real == "":
		return usageError{errors.New("-real is required: a folder of real (training) images")}
	case o.gen == "":
		return usageError{errors.New("-gen is required: a folder of generated images (or, with -prompts, the folder to generate into)")}
	case o.out == "":
		return usageError{errors.New("-out is required: the folder for evaluation.json and the report")}
	case o.size < 8 || o.size%8 != 0 || o.size > 8192:
		return usageError{fmt.Errorf("-size %d; expected a positive multiple of 8, at most 8192", o.size)}
	case o.batch < 1 || o.workers < 1 || o.pixelsSize < 1 || o.memoSize < 2 || o.neighbors < 1 || o.pairs < 0 || o.tile < 8 || o.groupSize < 0 || o.groupSize == 1:
		return usageError{errors.New("-batch, -workers, -pixels-size and -neighbors must be >= 1, -memo-size >= 2, -pairs >= 0, -tile >= 8, -group-size 0 or >= 2")}
	case o.reportGroups < 0:
		return usageError{fmt.Errorf("-report-groups %d; expected 0 or more", o.reportGroups)}
	case o.classifier != "" && o.size < classify.MinImageSize:
		return usageError{fmt.Errorf("-size %d is too small for -classifier; expected at least %d", o.size, classify.MinImageSize)}
	case o.kidSubsets < 1 || o.kidSubsetSize < 2:
		return usageError{errors.New("-kid-subsets must be >= 1 and -kid-subset-size >= 2")}
	case o.prompts != "" && (o.perPrompt < 1 || o.steps < 1 || o.genBatch < 1):
		return usageError{errors.New("-per-prompt, -steps and -gen-batch must be >= 1")}
	case o.prompts == "" && o.model.Model != "":
		return usageError{errors.New("-model goes with -prompts (generate first); to evaluate existing images give -gen only")}
	}
	if o.prompts != "" {
		if err := o.model.Check(); err != nil {
			return usageError{err}
		}
	}
	return nil
}

// makeExtractors loads the feature extractors -features asks for and
// appends clf (the -classifier, loaded already; nil without one).
func (o *options) makeExtractors(stderr io.Writer, clf *extractor) ([]*extractor, []string, error) {
	var names []string
	var notes []string
	if o.features == "auto" || o.features == "" {
		for _, c := range []struct{ name, path string }{{"inception", o.inception}, {"xrv", o.xrv}, {"clip", o.clip}} {
			if c.path != "" {
				names = append(names, c.name)
			}
		}
		if len(names) == 0 && clf == nil {
			notes = append(notes, "no feature extractor weights given (-inception, -xrv, -clip or ROENTGO_INCEPTION, ROENTGO_XRV_DENSENET, ROENTGO_CLIP_VIT; docs/EVALUATION.md says where to get them): FID, KID, feature memorisation and adherence skipped; -features pixels runs them on downsampled pixels as a sanity check")
		}
	} else {
		seen := map[string]bool{}
		for _, n := range strings.Split(o.features, ",") {
			n = strings.ToLower(strings.TrimSpace(n))
			switch n {
			case "inception", "xrv", "clip", "pixels":
			default:
				return nil, nil, usageError{fmt.Errorf("-features %q: unknown feature space %q; expected auto or a list of inception, xrv, clip, pixels", o.features, n)}
			}
			if seen[n] {
				return nil, nil, usageError{fmt.Errorf("-features %q names %s twice", o.features, n)}
			}
			seen[n] = true
			names = append(names, n)
		}
	}
	var exts []*extractor
	fail := func(err error) ([]*extractor, []string, error) {
		for _, e := range exts {
			e.close()
		}
		return nil, nil, err
	}
	for _, n := range names {
		var e *extractor
		var err error
		need := func(path, flag, env string) error {
			if path == "" {
				return usageError{fmt.Errorf("-features names %s but no weights are given: pass %s FILE or set %s (docs/EVALUATION.md says where to get them)", n, flag, env)}
			}
			return nil
		}
		switch n {
		case "inception":
			if err = need(o.inception, "-inception", "ROENTGO_INCEPTION"); err == nil {
				e, err = newInceptionExtractor(o.inception)
			}
		case "xrv":
			if err = need(o.xrv, "-xrv", "ROENTGO_XRV_DENSENET"); err == nil {
				e, err = newXRVExtractor(o.xrv)
			}
		case "clip":
			if err = need(o.clip, "-clip", "ROENTGO_CLIP_VIT"); err == nil {
				e, err = newCLIPExtractor(o.clip)
			}
		case "pixels":
			e = newPixelsExtractor(o.pixelsSize)
		}
		if err != nil {
			return fail(err)
		}
		exts = append(exts, e)
	}
	if clf != nil {
		exts = append(exts, clf)
	}
	return exts, notes, nil
}

// group is a run of generated items with the same group key.
type group struct {
	key, prompt string
	start, n    int
}

func groupsOf(items []item) []group {
	var gs []group
	for i, it := range items {
		if len(gs) > 0 && gs[len(gs)-1].key == it.group {
			gs[len(gs)-1].n++
			continue
		}
		gs = append(gs, group{key: it.group, prompt: it.prompt, start: i, n: 1})
	}
	return gs
}

// setResult is what was computed for one set of images.
type setResult struct {
	feats     map[string]*cacheEntry // by extractor name
	thumbs    *cacheEntry            // memo-size² luma thumbnails
	diversity []float64              // per group (generated set), NaN where skipped
}

// progress prints extraction progress to w.
type progress struct {
	w        io.Writer
	what     string
	total    int
	start    time.Time
	last     time.Time
	terminal bool
	quiet    bool
}

func (p *progress) update(done int) {
	if p.quiet {
		return
	}
	now := time.Now()
	if done < p.total && now.Sub(p.last) < 2*time.Second && !(p.terminal && now.Sub(p.last) > 200*time.Millisecond) {
		return
	}
	p.last = now
	rate := float64(done) / max(now.Sub(p.start).Seconds(), 1e-9)
	end := "\n"
	if p.terminal && done < p.total {
		end = ""
	}
	prefix := ""
	if p.terminal {
		prefix = "\r"
	}
	fmt.Fprintf(p.w, "%sevaluate: %s %d/%d images (%.1f images/s)%s", prefix, p.what, done, p.total, rate, end)
}

// computeSet extracts (or reads from the cache) everything one set needs.
func computeSet(ctx context.Context, o *options, name string, items []item, exts []*extractor, groups []group, rep *report, stderr io.Writer) (*setResult, error) {
	res := &setResult{feats: map[string]*cacheEntry{}}
	n := len(items)
	extra := fmt.Sprintf("size %d", o.size)
	note := func(what, path string, hit bool) {
		if path == "" {
			return
		}
		if rep.Cache[name] == nil {
			rep.Cache[name] = map[string]cache{}
		}
		rep.Cache[name][what] = cache{File: path, Hit: hit}
	}
	var missing []*extractor
	paths := map[string]string{}
	for _, e := range exts {
		p := cachePath(o.cache, name, e.name, e.id, items, extra)
		paths[e.name] = p
		if c := readCache(p, n); c != nil && (e.classes == nil || scoresFit(c.scores, n, len(e.classes))) {
			res.feats[e.name] = c
			note(e.name, p, true)
		} else {
			missing = append(missing, e)
		}
	}
	thumbPath := cachePath(o.cache, name, "thumbs", fmt.Sprintf("thumbs|%d", o.memoSize), items, extra)
	res.thumbs = readCache(thumbPath, n)
	note("thumbs", thumbPath, res.thumbs != nil)
	divPath := ""
	if groups != nil {
		divPath = cachePath(o.cache, name, "msssim", fmt.Sprintf("msssim|%d", o.groupSize), items, extra)
		if c := readCache(divPath, len(groups)); c != nil && c.dim == 1 {
			res.diversity = c.raw
			for i, v := range res.diversity {
				if v < -1 { // stored as -2: skipped
					res.diversity[i] = math.NaN()
				}
			}
		}
		note("msssim", divPath, res.diversity != nil)
	}
	needThumbs := res.thumbs == nil
	needDiv := groups != nil && res.diversity == nil
	if len(missing) == 0 && !needThumbs && !needDiv {
		return res, nil
	}

	out := map[string]*cacheEntry{}
	for _, e := range missing {
		out[e.name] = &cacheEntry{}
	}
	var thumbs []float32
	var divVals []float64
	var kept []metrics.Gray
	gi := 0
	if needDiv {
		divVals = make([]float64, len(groups))
	}
	pr := &progress{w: stderr, what: name, total: n, start: time.Now(), terminal: cli.IsTerminal(stderr), quiet: o.quiet}
	type chunk struct {
		ims []*decoded
		err error
	}
	launch := func(lo int) chan chunk {
		ch := make(chan chunk, 1)
		hi := min(lo+o.batch, n)
		go func() {
			ims, err := decodeAll(items[lo:hi], o.size, o.workers)
			ch <- chunk{ims, err}
		}()
		return ch
	}
	next := launch(0)
	for lo := 0; lo < n; lo += o.batch {
		c := <-next
		if c.err != nil {
			return nil, fmt.Errorf("%s images: %w", name, c.err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if lo+o.batch < n {
			next = launch(lo + o.batch)
		}
		ims := make([]*features.Image, len(c.ims))
		for i, d := range c.ims {
			ims[i] = d.im
		}
		for _, e := range missing {
			f, dim, scores, err := e.run(ims)
			if err != nil {
				return nil, fmt.Errorf("%s images, %s: %w", name, e.name, err)
			}
			ce := out[e.name]
			ce.feats = append(ce.feats, f...)
			ce.dim = dim
			if e.classes != nil {
				ce.scores = append(ce.scores, scores...)
			}
		}
		for i, d := range c.ims {
			if needThumbs {
				for _, v := range areaResize(d.gray.Pix, d.gray.W, d.gray.H, o.memoSize, o.memoSize) {
					thumbs = append(thumbs, float32(v))
				}
			}
			if needDiv {
				idx := lo + i
				for gi < len(groups) && idx >= groups[gi].start+groups[gi].n {
					gi++
				}
				g := groups[gi]
				if o.groupSize == 0 || idx-g.start < o.groupSize {
					kept = append(kept, d.gray)
				}
				if idx == g.start+g.n-1 {
					divVals[gi] = math.NaN()
					if len(kept) >= 2 {
						v, err := metrics.PromptDiversity(kept)
						if err != nil {
							return nil, fmt.Errorf("MS-SSIM of group %s: %w", g.key, err)
						}
						divVals[gi] = v
					}
					kept = kept[:0]
				}
			}
		}
		pr.update(min(lo+o.batch, n))
	}
	for _, e := range missing {
		ce := out[e.name]
		if n >= 2 {
			acc := metrics.NewAccumulator(ce.dim)
			acc.AddBatch32(ce.feats)
			st, err := acc.Stats()
			if err != nil {
				return nil, err
			}
			ce.stats = st
		}
		if err := writeCache(paths[e.name], ce); err != nil {
			return nil, fmt.Errorf("writing the feature cache: %w", err)
		}
		note(e.name, paths[e.name], false)
		res.feats[e.name] = ce
	}
	if needThumbs {
		res.thumbs = &cacheEntry{feats: thumbs, dim: o.memoSize * o.memoSize}
		if err := writeCache(thumbPath, res.thumbs); err != nil {
			return nil, fmt.Errorf("writing the feature cache: %w", err)
		}
	}
	if needDiv {
		res.diversity = divVals
		st := make([]float64, len(divVals))
		for i, v := range divVals {
			st[i] = v
			if math.IsNaN(v) {
				st[i] = -2
			}
		}
		if err := writeCache(divPath, &cacheEntry{raw: st, dim: 1}); err != nil {
			return nil, fmt.Errorf("writing the feature cache: %w", err)
		}
	}
	return res, nil
}

// scoresFit reports whether cached scores have n rows of k values.
func scoresFit(scores [][]float32, n, k int) bool {
	if len(scores) != n {
		return false
	}
	for _, r := range scores {
		if len(r) != k {
			return false
		}
	}
	return true
}

// dense returns features [N, dim] as a gonum matrix.
func dense(feats []float32, dim int) *mat.Dense {
	return mat.NewDense(len(feats)/dim, dim, f64(feats))
}

// evaluate runs the whole evaluation and writes the outputs.
func evaluate(ctx context.Context, o *options, stderr io.Writer) (*report, error) {
	t0 := time.Now()
	if err := o.check(); err != nil {
		return nil, err
	}
	rep := &report{Version: 1, FID: map[string]*fidResult{}, KID: map[string]*kidResult{},
		Memorization: map[string]*memoResult{}, Cache: map[string]map[string]cache{}, Notes: []string{}}
	rep.Settings = settings{Real: o.real, Generated: o.gen, Size: o.size, Extractors: map[string]string{},
		PixelsSize: o.pixelsSize, KIDSubsets: o.kidSubsets, KIDSubsetSize: o.kidSubsetSize, Seed: o.seed,
		GroupSize: o.groupSize, MemoSize: o.memoSize, MemoThreshold: o.memoThreshold,
		MemoPixelThreshold: o.memoPixelThreshold, Neighbors: o.neighbors, AdherenceThreshold: o.adherenceThreshold}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, fmt.Errorf("output folder: %w", err)
	}
	// The classifier is small: load it first, so that a bad file stops the
	// program before any generation.
	var clf *extractor
	if o.classifier != "" {
		var err error
		if clf, err = newClassifierExtractor(o.classifier); err != nil {
			return nil, err
		}
		if o.prompts != "" {
			rows, err := readPrompts(o.prompts)
			if err != nil {
				return nil, err
			}
			labelled := make([]item, len(rows))
			for i, r := range rows {
				labelled[i].labels = r.labels
			}
			if err := checkClassifierLabels(labelled, clf.classes); err != nil {
				return nil, err
			}
		}
	}
	if o.prompts != "" {
		tg := time.Now()
		gs, err := generateFirst(ctx, o, stderr)
		if err != nil {
			return nil, err
		}
		rep.Settings.Generation = gs
		rep.Timings.GenerateS = time.Since(tg).Seconds()
	}

	realItems, err := listImages(o.real, o.cache)
	if err != nil {
		return nil, fmt.Errorf("real images: %w", err)
	}
	var genItems []item
	manifests := findManifests(o.gen)
	if o.manifest != "" {
		manifests = []string{o.manifest}
	}
	if len(manifests) > 0 {
		if genItems, err = readManifests(manifests, o.gen, o.format); err != nil {
			return nil, err
		}
		rep.Settings.Manifest = manifests
		rep.Settings.Grouping = "manifest id"
	} else {
		if genItems, err = listImages(o.gen, o.cache); err != nil {
			return nil, fmt.Errorf("generated images: %w", err)
		}
		groupByName(genItems)
		rep.Settings.Grouping = "file name (ID_K)"
	}
	orderByGroup(genItems)
	groups := groupsOf(genItems)
	rep.Counts = counts{Real: len(realItems), Generated: len(genItems), Groups: len(groups)}

	exts, notes, err := o.makeExtractors(stderr, clf)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, e := range exts {
			e.close()
		}
	}()
	rep.Notes = append(rep.Notes, notes...)
	for _, e := range exts {
		rep.Settings.Extractors[e.name] = e.weights
	}
	if e := adherenceExtractor(exts); e != nil && e.name == "classifier" {
		if err := checkClassifierLabels(genItems, e.classes); err != nil {
			return nil, err
		}
	}
	var divGroups []group
	if o.diversity {
		if o.size <= 160 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("MS-SSIM diversity skipped: its 5 scales need images larger than 160 pixels (-size %d)", o.size))
		} else {
			divGroups = groups
		}
	}

	tr := time.Now()
	realRes, err := computeSet(ctx, o, "real", realItems, exts, nil, rep, stderr)
	if err != nil {
		return nil, err
	}
	rep.Timings.RealS = time.Since(tr).Seconds()
	tg := time.Now()
	genRes, err := computeSet(ctx, o, "generated", genItems, exts, divGroups, rep, stderr)
	if err != nil {
		return nil, err
	}
	rep.Timings.GeneratedS = time.Since(tg).Seconds()

	tm := time.Now()
	if err := computeMetrics(o, rep, exts, realItems, genItems, groups, realRes, genRes); err != nil {
		return nil, err
	}
	rep.Timings.MetricsS = time.Since(tm).Seconds()
	rep.Timings.TotalS = time.Since(t0).Seconds()
	rep.Timings.ImagesPerSecond = float64(len(realItems)+len(genItems)) / (rep.Timings.TotalS - rep.Timings.GenerateS)

	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(o.out, "evaluation.json"), append(js, '\n')); err != nil {
		return nil, err
	}
	var sb strings.Builder
	writeSummary(&sb, rep)
	if err := atomicfile.WriteFile(filepath.Join(o.out, "summary.txt"), []byte(sb.String())); err != nil {
		return nil, err
	}
	if err := writeHTMLReport(&htmlContext{o: o, rep: rep, items: genItems, groups: groups, exts: exts}); err != nil {
		return nil, err
	}
	return rep, nil
}

// computeMetrics fills rep from the two sets' features.
func computeMetrics(o *options, rep *report, exts []*extractor, realItems, genItems []item, groups []group, realRes, genRes *setResult) error {
	// FID and KID per feature space.
	for _, e := range exts {
		rf, gf := realRes.feats[e.name], genRes.feats[e.name]
		if rf.stats == nil || gf.stats == nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: FID and KID need at least 2 images in each set", e.name))
		} else {
			fr := &fidResult{Dim: rf.dim, Method: "symmetric"}
			var r metrics.FrechetResult
			var err error
			if o.fidSqrtm {
				fr.Method = "sqrtm"
				r, err = metrics.Frechet(rf.stats, gf.stats, metrics.DefaultFrechetEps)
				if err != nil {
					// pytorch-fid would stop here (an imaginary component);
					// the symmetric method gives the real part's trace.
					fr.Method = "symmetric"
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s FID: %v; computed with the symmetric eigenvalue method instead", e.name, err))
				}
			}
			if fr.Method == "symmetric" {
				if r, err = metrics.FrechetSymmetric(rf.stats, gf.stats); err != nil {
					return fmt.Errorf("%s FID: %w", e.name, err)
				}
			}
			fr.FID, fr.MeanTerm, fr.TraceSqrt, fr.EpsAdded = num(r.Distance), num(r.MeanTerm), num(r.TraceSqrt), r.EpsAdded
			rep.FID[e.name] = fr
			k, err := metrics.KID(dense(rf.feats, rf.dim), dense(gf.feats, gf.dim),
				metrics.KIDOptions{NumSubsets: o.kidSubsets, SubsetSize: o.kidSubsetSize, Seed: o.seed})
			if err != nil {
				return fmt.Errorf("%s KID: %w", e.name, err)
			}
			rep.KID[e.name] = &kidResult{KID: num(k.Mean), Std: num(k.Std), SubsetSize: k.SubsetSize, Subsets: o.kidSubsets}
		}
	}

	// Diversity.
	if genRes.diversity != nil {
		d := &diversityResult{GroupSize: o.groupSize}
		var vals []float64
		for i, g := range groups {
			v := genRes.diversity[i]
			n := g.n
			if o.groupSize > 0 {
				n = min(n, o.groupSize)
			}
			d.PerGroup = append(d.PerGroup, groupResult{Group: g.key, Prompt: g.prompt, Images: n, MSSSIM: num(v)})
			if math.IsNaN(v) {
				d.Skipped++
			} else {
				vals = append(vals, v)
			}
		}
		d.Groups = len(vals)
		d.MSSSIM, d.Std = num(math.NaN()), num(math.NaN())
		if len(vals) > 0 {
			m, s := meanStd(vals)
			d.MSSSIM, d.Std = num(m), num(s)
		} else {
			rep.Notes = append(rep.Notes, "MS-SSIM diversity: no prompt group has 2 or more images (groups come from the manifest's id, or file names ID_K)")
		}
		rep.Diversity = d
	}

	// Memorisation.
	rep.Images = make([]imageResult, len(genItems))
	for i, it := range genItems {
		rep.Images[i] = imageResult{File: it.rel, Group: it.group, Prompt: it.prompt, Nearest: map[string][]neighborJSON{}}
	}
	type space struct {
		name, sim  string
		threshold  float64
		query, ref *mat.Dense
		corr       bool
	}
	spaces := []space{{"pixel_correlation", "pearson", o.memoPixelThreshold,
		dense(genRes.thumbs.feats, genRes.thumbs.dim), dense(realRes.thumbs.feats, realRes.thumbs.dim), true}}
	for _, e := range exts {
		rf, gf := realRes.feats[e.name], genRes.feats[e.name]
		spaces = append(spaces, space{e.name, "cosine", o.memoThreshold, dense(gf.feats, gf.dim), dense(rf.feats, rf.dim), false})
	}
	for _, s := range spaces {
		var nn [][]metrics.Neighbor
		var err error
		if s.corr {
			nn, err = metrics.CorrelationNeighbors(s.query, s.ref, o.neighbors)
		} else {
			nn, err = metrics.CosineNeighbors(s.query, s.ref, o.neighbors)
		}
		if err != nil {
			return fmt.Errorf("memorisation (%s): %w", s.name, err)
		}
		sum := metrics.SummarizeMemorization(nn, s.threshold)
		m := &memoResult{Similarity: s.sim, Threshold: s.threshold, Above: sum.Above, Fraction: num(sum.Fraction),
			Mean: num(sum.Mean), Median: num(sum.Median), Max: num(sum.Max)}
		if rows, _ := s.ref.Dims(); rows >= 2 {
			var self [][]metrics.Neighbor
			if s.corr {
				self, err = metrics.CorrelationNeighbors(s.ref, s.ref, 2)
			} else {
				self, err = metrics.CosineNeighbors(s.ref, s.ref, 2)
			}
			if err != nil {
				return fmt.Errorf("memorisation baseline (%s): %w", s.name, err)
			}
			b := metrics.SummarizeMemorization(metrics.ExcludeSelf(self), s.threshold)
			m.RealBaseline = &baseline{Above: b.Above, Fraction: num(b.Fraction), Mean: num(b.Mean), Median: num(b.Median), Max: num(b.Max)}
		}
		for i, l := range nn {
			for _, nb := range l {
				rep.Images[i].Nearest[s.name] = append(rep.Images[i].Nearest[s.name], neighborJSON{Real: realItems[nb.Index].rel, Similarity: num(nb.Similarity)})
			}
		}
		pairs := metrics.ClosestPairs(nn, o.pairs)
		var sheet [][2][]float64
		for _, p := range pairs {
			m.Closest = append(m.Closest, pairJSON{Generated: genItems[p.Query].rel, Real: realItems[p.Ref].rel, Similarity: num(p.Similarity)})
			g, err := decodeFile(genItems[p.Query].path, o.size)
			if err != nil {
				return err
			}
			r, err := decodeFile(realItems[p.Ref].path, o.size)
			if err != nil {
				return err
			}
			sheet = append(sheet, [2][]float64{
				areaResize(g.gray.Pix, o.size, o.size, o.tile, o.tile),
				areaResize(r.gray.Pix, o.size, o.size, o.tile, o.tile)})
		}
		if len(sheet) > 0 {
			m.Sheet = "memorization_" + s.name + ".png"
			if err := writeSheet(filepath.Join(o.out, m.Sheet), sheet, o.tile); err != nil {
				return fmt.Errorf("writing %s: %w", m.Sheet, err)
			}
		}
		rep.Memorization[s.name] = m
	}

	// Prompt adherence: the classifier's scores against the labels.
	if e := adherenceExtractor(exts); e != nil {
		for _, x := range exts {
			if x != e && x.classes != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("prompt adherence uses -classifier; %s's pathology scores are not used for it", x.name))
			}
		}
		a, err := adherence(genItems, genRes.feats[e.name].scores, e.classes, o.adherenceThreshold)
		if err != nil {
			return err
		}
		for i := range rep.Images {
			rep.Images[i].Scores = map[string]num{}
			for j, c := range e.classes {
				rep.Images[i].Scores[c] = num(genRes.feats[e.name].scores[i][j])
			}
		}
		if a == nil {
			rep.Notes = append(rep.Notes, "prompt adherence skipped: the generated images have no labels naming "+e.name+" pathologies (labels come from the generate manifest's label columns)")
		} else {
			a.Classifier = e.name
			rep.Adherence = a
		}
	}
	return nil
}

// adherenceExtractor returns the extractor whose scores judge prompt
// adherence: the -classifier when given, else the first classifier among
// exts (XRV); nil when none has scores.
func adherenceExtractor(exts []*extractor) *extractor {
	var first *extractor
	for _, e := range exts {
		if e.classes == nil {
			continue
		}
		if e.name == "classifier" {
			return e
		}
		if first == nil {
			first = e
		}
	}
	return first
}

// labelColumns returns the label column names of items, sorted.
func labelColumns(items []item) []string {
	cols := map[string]bool{}
	for _, it := range items {
		for k := range it.labels {
			cols[k] = true
		}
	}
	names := make([]string, 0, len(cols))
	for k := range cols {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// checkClassifierLabels returns an error listing both sides when no label
// column of items names one of the classifier's classes: the user asked for
// adherence with -classifier, and there would be none.
func checkClassifierLabels(items []item, classes []string) error {
	cols := labelColumns(items)
	byNorm := classIndex(classes)
	for _, c := range cols {
		if _, ok := matchLabel(c, byNorm); ok {
			return nil
		}
	}
	have := "none (no generate manifest with label columns)"
	if len(cols) > 0 {
		have = fmt.Sprintf("%q", cols)
	}
	return fmt.Errorf("-classifier: no label column of the generated images names one of the classifier's findings, so there is no prompt adherence to measure; label columns: %s; classifier findings: %q (compared ignoring case, spaces and _; CheXpert's \"Pleural Effusion\" is \"effusion\")", have, classes)
}

func meanStd(v []float64) (float64, float64) {
	var m, ss float64
	for _, x := range v {
		m += x
	}
	m /= float64(len(v))
	for _, x := range v {
		ss += (x - m) * (x - m)
	}
	return m, math.Sqrt(ss / float64(len(v)))
}

// labelAliases maps normalised label column names (CheXpert's) to the
// classifier's class names where they differ.
var labelAliases = map[string]string{
	"pleural effusion":   "Effusion",
	"pleural thickening": "Pleural_Thickening",
}

func normLabel(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(strings.ReplaceAll(s, "_", " ")), " "))
}

// classIndex maps the normalised class names to their indices.
func classIndex(classes []string) map[string]int {
	byNorm := map[string]int{}
	for j, c := range classes {
		byNorm[normLabel(c)] = j
	}
	return byNorm
}

// matchLabel returns the index of the class that the label column col
// names (directly or through labelAliases).
func matchLabel(col string, byNorm map[string]int) (int, bool) {
	j, ok := byNorm[normLabel(col)]
	if alias, isAlias := labelAliases[normLabel(col)]; !ok && isAlias {
		j, ok = byNorm[normLabel(alias)]
	}
	return j, ok
}

// adherence matches the items' label columns to the classifier's classes
// and summarises each matched finding; nil when none matches.
func adherence(items []item, scores [][]float32, classes []string, threshold float64) (*adherenceResult, error) {
	byNorm := classIndex(classes)
	names := labelColumns(items)
	res := &adherenceResult{Threshold: threshold, Findings: map[string]*findingResult{}}
	var aucs []float64
	for _, col := range names {
		j, ok := matchLabel(col, byNorm)
		if !ok {
			res.Unmatched = append(res.Unmatched, col)
			continue
		}
		sc := make([]float64, len(items))
		st := make([]metrics.LabelState, len(items))
		for i, it := range items {
			s, err := metrics.ParseLabel(it.labels[col])
			if err != nil {
				return nil, fmt.Errorf("generated image %s, label %q: %v", it.rel, col, err)
			}
			st[i] = s
			sc[i] = float64(scores[i][j])
		}
		a, err := metrics.Adherence(sc, st, threshold)
		if err != nil {
			return nil, err
		}
		if _, dup := res.Findings[classes[j]]; dup {
			return nil, fmt.Errorf("label columns %q and another both name the finding %s", col, classes[j])
		}
		res.Findings[classes[j]] = &findingResult{Label: col, Stated: a.Stated, Negated: a.Negated, Omitted: a.Omitted,
			Uncertain: a.Uncertain, RateStated: num(a.RateStated), RateNegated: num(a.RateNegated), RateOmitted: num(a.RateOmitted),
			AUROC: num(a.AUROC), AUROCNegated: num(a.AUROCNegated), MeanStated: num(a.MeanStated), MeanNotStated: num(a.MeanNotStated)}
		if !math.IsNaN(a.AUROC) {
			aucs = append(aucs, a.AUROC)
		}
	}
	if len(res.Findings) == 0 {
		return nil, nil
	}
	res.MeanAUROC = num(math.NaN())
	if len(aucs) > 0 {
		m, _ := meanStd(aucs)
		res.MeanAUROC = num(m)
	}
	return res, nil
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
	"github.com/roentgo/roentgo/internal/atomicfile"
)

// usageError is a bad flag or value: exit status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// errInterrupted is returned when a signal stopped the run (the finished
// images are kept; running the command again resumes).
var errInterrupted = errors.New("interrupted")

type options struct {
	model                                cli.ModelFlags
	prompts, out, formats, labels        string
	negative, scheduler, longPrompt      string
	shard, uidSalt, bodyPart             string
	n, steps, width, height, batch       int
	shards, textCache                    int
	seed                                 uint64
	guidance, rescale, strength          float64
	quiet, merge, verify, allowNonFinite bool

	env            func(string) (string, bool)
	now            func() time.Time
	stdout, stderr io.Writer
	// afterImage, if set, is called after each image's manifest row is
	// synced, with the shard's rows so far (tests).
	afterImage func(done int)
}

func newFlags(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	o.model.Register(fs)
	fs.StringVar(&o.prompts, "prompts", "", "prompt file: CSV with a header row, or JSONL (one object a line); columns/keys id, prompt, negative, n, seed, steps, guidance, scheduler, width, height, size (WxH), init (an init image: the row is img2img), mask (with init: the row is inpainting, white = repaint), strength (with init; default -strength), and labels (every other column, or those -labels names; in JSONL also a \"labels\" object); only prompt is required, the others default to the flags below")
	fs.StringVar(&o.out, "out", "", "output folder (created): images under FORMAT/ID_K.EXT, manifest.jsonl, job.json, labels.csv (with a -SSSSS-of-NNNNN suffix per shard)")
	fs.StringVar(&o.formats, "format", "png", "output formats, comma-separated: png (8-bit RGB), gray (8-bit grayscale PNG), png16 (16-bit grayscale PNG from the decoder's floats), dcm8, dcm16 (DICOM Secondary Capture, 8 or 16 bits)")
	fs.StringVar(&o.labels, "labels", "", "comma-separated label columns; empty: every column that is not a parameter is a label; with -labels, any other unknown column is an error")
	fs.StringVar(&o.negative, "negative", "", "default negative prompt")
	fs.IntVar(&o.n, "n", 1, "default number of images a row")
	fs.Uint64Var(&o.seed, "seed", 42, "base seed: image k of a row with a seed column gets seed+k; without one, the image with index i (counting every image of the file in order) gets this seed + i")
	fs.IntVar(&o.steps, "steps", 50, "default number of denoising steps (the built-in demo model: 20 unless given)")
	fs.Float64Var(&o.guidance, "guidance", 7.5, "default classifier-free guidance scale (the built-in demo model: 4 unless given)")
	fs.Float64Var(&o.strength, "strength", 0.8, "default strength in [0, 1] of rows with an init image (img2img, and inpainting with an ordinary model; an inpainting model ignores it and starts from noise)")
	fs.Float64Var(&o.rescale, "guidance-rescale", 0, "guidance rescale phi in [0, 1] for every image (0: off)")
	fs.StringVar(&o.scheduler, "scheduler", "", "default sampler ("+strings.Join(diffusion.SchedulerNames, ", ")+"); empty: the model's")
	fs.IntVar(&o.width, "width", 0, "default image width (multiple of 8); 0: the model's default")
	fs.IntVar(&o.height, "height", 0, "default image height (multiple of 8); 0: the model's default")
	fs.StringVar(&o.longPrompt, "long-prompt", "truncate", "prompts longer than 75 tokens: truncate or chunk")
	fs.IntVar(&o.batch, "batch", 1, "images denoised together (of the same size, steps, guidance and scheduler)")
	fs.IntVar(&o.textCache, "text-cache", 256, "distinct prompts whose text embeddings are kept")
	fs.StringVar(&o.shard, "shard", "", "this process's shard i/n (images whose index modulo n is i); empty: from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job, count from -shards or $"+ShardsEnv+") or $SLURM_ARRAY_TASK_ID (Slurm array), else unsharded")
	fs.IntVar(&o.shards, "shards", 0, "shard count with an index from the environment (Kubernetes: the Job's completions)")
	fs.StringVar(&o.uidSalt, "uid-salt", "", "mixed into the DICOM UIDs (which are derived from the job and the image key): pass the same fresh value (e.g. $(uuidgen)) to every shard to mint UIDs no earlier run of the same job used")
	fs.StringVar(&o.bodyPart, "body-part", "CHEST", "DICOM Body Part Examined (empty: omitted)")
	fs.BoolVar(&o.allowNonFinite, "allow-nonfinite", false, "keep going when values become NaN or infinite")
	fs.BoolVar(&o.quiet, "q", false, "no progress lines")
	fs.BoolVar(&o.merge, "merge", false, "merge mode: generate -merge [-out DIR] SRC... joins the shards' manifests found in the SRC folders into DIR (default: the first SRC) as manifest.jsonl, job.json and labels.csv, checking that no image is missing or duplicated")
	fs.BoolVar(&o.verify, "verify", true, "with -merge: check every file's SHA-256 against its manifest row")
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: generate -prompts FILE -out DIR [flags]\n       generate -merge [-out DIR] SRC...\n\nGenerates a synthetic dataset from a prompt file: batched, resumable, shardable (docs/GENERATE.md).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// Main runs the program with args (without the program name); it returns
// the exit status: 0 done, 1 failure, 2 bad usage, 130 interrupted.
func Main(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) int {
	err := run(ctx, args, env, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errInterrupted):
		fmt.Fprintf(stderr, "generate: %v\n", err)
		return 130
	}
	msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "pipeline: "), "\n", "; ")
	fmt.Fprintf(stderr, "generate: %s\n", msg)
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	o := &options{env: env, stdout: stdout, stderr: stderr, now: time.Now}
	fs := newFlags(o, stderr)
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			usage()
			return err
		}
		return usageError{fmt.Errorf("%v (run with -h for the flags)", err)}
	}
	if o.merge {
		return runMerge(o, fs.Args())
	}
	cli.ApplyBuiltinDefaults(fs, o.model.Model, &o.steps, &o.guidance)
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q (the prompts go in -prompts FILE; -merge takes folders)", fs.Arg(0))}
	}
	return generate(ctx, o)
}

// checkFlags validates the flags that need neither the model nor the disk.
func (o *options) checkFlags() (settings, []formatInfo, shard, error) {
	var s settings
	fail := func(format string, args ...any) (settings, []formatInfo, shard, error) {
		return s, nil, shard{}, usageError{fmt.Errorf(format, args...)}
	}
	if o.prompts == "" {
		return fail("-prompts is empty; expected a CSV or JSONL prompt file")
	}
	if o.out == "" {
		return fail("-out is empty; expected an output folder")
	}
	fmts, err := parseFormats(o.formats)
	if err != nil {
		return fail("%v", err)
	}
	if o.n < 1 || o.n > maxRowImages {
		return fail("-n %d; expected 1 to %d", o.n, maxRowImages)
	}
	if o.steps < 1 {
		return fail("-steps %d; expected at least 1", o.steps)
	}
	if o.batch < 1 || o.batch > pipeline.MaxImages {
		return fail("-batch %d; expected 1 to %d", o.batch, pipeline.MaxImages)
	}
	if o.textCache < 1 {
		return fail("-text-cache %d; expected at least 1", o.textCache)
	}
	if math.IsNaN(o.guidance) || math.IsInf(o.guidance, 0) {
		return fail("-guidance %v; expected a finite number", o.guidance)
	}
	if !(o.rescale >= 0 && o.rescale <= 1) {
		return fail("-guidance-rescale %v; expected a value in [0, 1]", o.rescale)
	}
	if !(o.strength >= 0 && o.strength <= 1) {
		return fail("-strength %v; expected a value in [0, 1]", o.strength)
	}
	if o.width < 0 || o.height < 0 || o.width > pipeline.MaxSize || o.height > pipeline.MaxSize {
		return fail("%v", pipeline.SizeError(o.width, o.height, 0))
	}
	if o.longPrompt != pipeline.LongPromptTruncate && o.longPrompt != pipeline.LongPromptChunk {
		return fail("-long-prompt %q; expected truncate or chunk", o.longPrompt)
	}
	sched := ""
	if o.scheduler != "" {
		name, ok := diffusion.CanonicalSchedulerName(o.scheduler)
		if !ok {
			return fail("unknown scheduler %q; expected one of %s", o.scheduler, strings.Join(diffusion.SchedulerNames, ", "))
		}
		sched = name
	}
	if err := o.model.Check(); err != nil {
		return fail("%v", err)
	}
	sh, err := resolveShard(o.shard, o.shards, o.env)
	if err != nil {
		return fail("%v", err)
	}
	var labels []string
	if o.labels != "" {
		for _, l := range strings.Split(o.labels, ",") {
			if l = strings.TrimSpace(l); l == "" {
				return fail("-labels %q has an empty name", o.labels)
			}
			labels = append(labels, l)
		}
	}
	var names []string
	for _, f := range fmts {
		names = append(names, f.name)
	}
	s = settings{Negative: o.negative, N: o.n, Seed: o.seed, Steps: o.steps, Guidance: o.guidance,
		GuidanceRescale: o.rescale, Scheduler: sched, Width: o.width, Height: o.height,
		LongPrompt: o.longPrompt, Formats: names, Labels: labels, UIDSalt: o.uidSalt, BodyPart: o.bodyPart}
	return s, fmts, sh, nil
}

func generate(ctx context.Context, o *options) error {
	s, fmts, sh, err := o.checkFlags()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(o.prompts)
	if err != nil {
		return usageError{fmt.Errorf("-prompts: %v", err)}
	}
	pf, err := parsePrompts(filepath.Base(o.prompts), data, s.Labels)
	if err != nil {
		return usageError{err}
	}
	promptDir := filepath.Dir(o.prompts)
	if s.Inputs, err = checkInputs(pf, promptDir); err != nil {
		return usageError{err}
	}
	if s.Inputs != nil {
		s.Strength = o.strength
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return fmt.Errorf("cannot create the output folder: %w", err)
	}
	for _, f := range fmts {
		if err := os.MkdirAll(filepath.Join(o.out, f.name), 0o755); err != nil {
			return fmt.Errorf("cannot create the output folder: %w", err)
		}
	}
	files := shardFiles(o.out, sh)
	if err := atomicfile.CheckWritable(files.job); err != nil {
		return err
	}
	unlock, err := lockFile(files.lock)
	if err != nil {
		return err
	}
	defer unlock()

	// The model, then the job's identity.
	warned := map[string]bool{}
	warn := func(msg string) {
		if !warned[msg] {
			warned[msg] = true
			fmt.Fprintf(o.stderr, "generate: warning: %s\n", msg)
		}
	}
	p, err := o.model.Load("generate", o.stderr, warn)
	if err != nil {
		return err
	}
	defer p.Close()
	if s.Scheduler == "" {
		s.Scheduler = p.SchedulerName
		if name, ok := diffusion.CanonicalSchedulerName(s.Scheduler); ok {
			s.Scheduler = name
		}
	}
	dh, dw := p.DefaultSize()
	if s.Width == 0 {
		s.Width = dw
	}
	if s.Height == 0 {
		s.Height = dh
	}
	images, err := buildJob(pf, s, promptDir, p.IsInpaintModel())
	if err != nil {
		return usageError{err}
	}
	modelHash := p.ModelHash()
	promptSHA := sha256Hex(data)
	j := &job{images: images, formats: fmts, modelFlag: o.model.Model, rescale: s.GuidanceRescale,
		longPrompt: s.LongPrompt, bodyPart: s.BodyPart}
	j.hash = jobHash(promptSHA, modelHash, s)
	j.uidBase = "roentgo-generate/" + j.hash + "/" + s.UIDSalt
	var mine []*genImage
	for _, im := range images {
		if im.index%sh.count == sh.index {
			mine = append(mine, im)
		}
	}
	modelName := cli.BuiltinName(o.model.Model)
	if !cli.IsBuiltin(o.model.Model) {
		abs, err := filepath.Abs(o.model.Model)
		if err != nil {
			abs = o.model.Model
		}
		modelName = filepath.Base(abs)
	}
	j.file = jobFile{Version: 1, Job: j.hash, Shard: sh.index, Shards: sh.count, Images: len(mine), Total: len(images),
		PromptFile: filepath.Base(o.prompts), PromptSHA256: promptSHA, Model: modelName, ModelHash: modelHash,
		Settings: s, LabelColumns: pf.labelCols}
	if err := checkJobFile(files.job, &j.file); err != nil {
		return err
	}

	// Check every batch shape before spending any time.
	cache := pipeline.NewTextCache(o.textCache)
	defer cache.Close()
	checked := map[config]bool{}
	inputs := &inputCache{}
	for _, im := range mine {
		c := im.config()
		if checked[c] {
			continue
		}
		checked[c] = true
		req := pipeline.Request{Prompt: im.prompt, Height: c.height, Width: c.width, Steps: c.steps, Guidance: c.guidance,
			Scheduler: c.scheduler, NumImages: o.batch, BatchSize: o.batch, LongPrompt: s.LongPrompt}
		if err := inputs.set(&req, im); err != nil {
			return usageError{fmt.Errorf("prompt file row %s: %w", im.id, err)}
		}
		if err := p.Validate(&req); err != nil {
			what := ""
			if im.init != "" {
				what = ", " + im.mode() + " from " + im.init
			}
			return usageError{fmt.Errorf("prompt file row %s (and every image of size %dx%d, %d steps, %s%s): %w", im.id, c.width, c.height, c.steps, c.scheduler, what, err)}
		}
	}

	// Resume: remove what a killed run of this shard left half-written,
	// then keep the manifest rows whose files are intact.
	if err := removeStale(o.out, files, fmts, mine); err != nil {
		return err
	}
	rows, torn, err := readManifest(files.manifest)
	if err != nil {
		return err
	}
	byIndex := map[int]*genImage{}
	for _, im := range mine {
		byIndex[im.index] = im
	}
	done := map[int]bool{}
	var keep []manifestLine
	redo := 0
	for _, r := range rows {
		im := byIndex[r.rec.Index]
		ok := im != nil && r.rec.Job == j.hash && r.rec.Key == im.key && !done[im.index] && len(r.rec.Files) == len(fmts)
		if ok {
			for k, f := range r.rec.Files {
				if f.Format != fmts[k].name || f.Path != filePath(fmts[k], im.key) {
					ok = false
				}
			}
		}
		if ok && verifyFiles(o.out, &r.rec) != nil {
			ok = false
		}
		if !ok {
			redo++
			continue
		}
		done[im.index] = true
		keep = append(keep, r)
	}
	if torn || redo > 0 {
		if err := writeManifest(files.manifest, keep); err != nil {
			return fmt.Errorf("rewriting the manifest: %w", err)
		}
	}
	var todo []*genImage
	for _, im := range mine {
		if !done[im.index] {
			todo = append(todo, im)
		}
	}
	if len(keep) > 0 || torn || redo > 0 {
		fmt.Fprintf(o.stderr, "generate: resuming shard %s: %d of %d images already done", sh, len(keep), len(mine))
		if redo > 0 || torn {
			fmt.Fprintf(o.stderr, " (%d manifest row(s) dropped: files missing or changed, or a torn last line)", redo)
		}
		fmt.Fprintln(o.stderr)
	}

	app, err := openAppender(files.manifest)
	if err != nil {
		return fmt.Errorf("cannot open the manifest: %w", err)
	}
	defer app.close()

	// Batches: images of one configuration, in index order, configurations
	// in order of first appearance.
	groups := map[config][]*genImage{}
	var order []config
	for _, im := range todo {
		c := im.config()
		if _, ok := groups[c]; !ok {
			order = append(order, c)
		}
		groups[c] = append(groups[c], im)
	}
	start := time.Now()
	lastReport := start
	generated := 0
	device := p.Device.String()
	for _, c := range order {
		g := groups[c]
		for lo := 0; lo < len(g); lo += o.batch {
			batch := g[lo:min(lo+o.batch, len(g))]
			if err := ctx.Err(); err != nil {
				return o.interrupted(generated, len(todo), err)
			}
			if err := runBatch(ctx, p, j, o, batch, cache, inputs, app, &keep, device); err != nil {
				generated += countDone(batch, keep)
				if ctx.Err() != nil || errors.Is(err, pipeline.ErrCancelled) {
					return o.interrupted(generated, len(todo), err)
				}
				return fmt.Errorf("%w (the %d image(s) finished are kept; run the same command again to resume)", err, generated)
			}
			generated += len(batch)
			if !o.quiet && (time.Since(lastReport) >= 10*time.Second || generated == len(todo)) {
				lastReport = time.Now()
				el := time.Since(start)
				rate := float64(generated) / el.Minutes()
				eta := time.Duration(float64(len(todo)-generated) / rate * float64(time.Minute)).Round(time.Second)
				fmt.Fprintf(o.stderr, "generate: shard %s: %d/%d images, %.1f images/min, ETA %s\n", sh, generated+len(mine)-len(todo), len(mine), rate, eta)
			}
		}
	}
	el := time.Since(start)
	if len(pf.labelCols) > 0 {
		if err := writeLabels(files.labels, pf.labelCols, keep); err != nil {
			return fmt.Errorf("writing the labels CSV: %w", err)
		}
	}
	rate := 0.0
	if el > 0 {
		rate = float64(generated) / el.Minutes()
	}
	fmt.Fprintf(o.stderr, "generate: shard %s (%s): %d image(s) generated, %d already done, %d in the shard, %d in the job; %.1f images/min (%s, batch %d, text cache %d hits / %d encoded); manifest %s\n",
		sh, sh.source, generated, len(mine)-len(todo), len(mine), len(images), rate, el.Round(time.Millisecond), o.batch, cache.Hits, cache.Misses, files.manifest)
	return nil
}

// countDone counts the images of batch that have a manifest row in rows.
func countDone(batch []*genImage, rows []manifestLine) int {
	in := map[int]bool{}
	for _, r := range rows {
		in[r.rec.Index] = true
	}
	n := 0
	for _, im := range batch {
		if in[im.index] {
			n++
		}
	}
	return n
}

func (o *options) interrupted(generated, todo int, cause error) error {
	return fmt.Errorf("%w after %d of %d image(s) (all are in the manifest); run the same command again to resume: %v", errInterrupted, generated, todo, cause)
}

// checkJobFile writes the shard's job file, or checks that the one there
// describes the same job.
func checkJobFile(path string, jf *jobFile) error {
	want, err := json.MarshalIndent(jf, "", "  ")
	if err != nil {
		return err
	}
	want = append(want, '\n')
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return atomicfile.WriteFile(path, want)
	}
	if err != nil {
		return err
	}
	var old jobFile
	if err := json.Unmarshal(data, &old); err != nil {
		return fmt.Errorf("%s: %v; expected a generate job file (move it away to start over)", path, err)
	}
	if old.Job != jf.Job || old.Shard != jf.Shard || old.Shards != jf.Shards {
		return usageError{fmt.Errorf("%s belongs to another job (%s, shard %d/%d; this one is %s, shard %d/%d: the prompt file, the model or a setting differs); use another -out folder, or move the old one away", path, old.Job, old.Shard, old.Shards, jf.Job, jf.Shard, jf.Shards)}
	}
	return nil
}

// runBatch denoises one batch and writes each image as soon as it is
// decoded: its files atomically, then its manifest row, synced.
func runBatch(ctx context.Context, p *pipeline.Pipeline, j *job, o *options, batch []*genImage, cache *pipeline.TextCache, inputs *inputCache, app *appender, keep *[]manifestLine, device string) error {
	c := batch[0].config()
	req := pipeline.Request{Height: c.height, Width: c.width, Steps: c.steps, Guidance: c.guidance,
		GuidanceRescale: j.rescale, Scheduler: c.scheduler, NumImages: 1, BatchSize: len(batch),
		LongPrompt: j.longPrompt, TextCache: cache, AllowNonFinite: o.allowNonFinite}
	if err := inputs.set(&req, batch[0]); err != nil {
		return err
	}
	for _, im := range batch {
		req.Prompts = append(req.Prompts, im.prompt)
		req.Negatives = append(req.Negatives, im.negative)
		req.Seeds = append(req.Seeds, im.seed)
	}
	for _, f := range j.formats {
		if f.full {
			req.KeepDecoded = true
		}
	}
	req.Done = func(res *pipeline.Result, i int) error {
		t0 := time.Now()
		im := batch[res.Indices[i]]
		rec := record{Key: im.key, Index: im.index, ID: im.id, Row: im.row, K: im.k, Prompt: im.prompt,
			Negative: im.negative, Seed: im.seed, Steps: im.steps, Guidance: im.guidance, GuidanceRescale: j.rescale,
			Scheduler: res.Scheduler, Width: res.Width, Height: res.Height, LongPrompt: j.longPrompt,
			Model: res.ModelName, ModelHash: res.ModelHash, Device: device, Job: j.hash, Labels: im.labels,
			Regenerate: j.regenerate(im)}
		if im.init != "" {
			st := im.strength
			rec.Mode, rec.Init, rec.Mask, rec.Strength, rec.Inpaint = im.mode(), im.init, im.mask, &st, res.Inpaint
		}
		for _, f := range j.formats {
			data, err := encodeImage(f, res, i, im, j)
			if err != nil {
				return fmt.Errorf("image %s (%s): %w", im.key, f.name, err)
			}
			path := filePath(f, im.key)
			if err := atomicfile.WriteFile(filepath.Join(o.out, filepath.FromSlash(path)), data); err != nil {
				return err
			}
			rec.Files = append(rec.Files, fileRecord{Format: f.name, Path: path, SHA256: sha256Hex(data), Bytes: int64(len(data))})
		}
		tm := res.Timings
		rec.Timings = timings{Batch: len(batch), TextS: tm.TextEncoding.Seconds(), DenoiseS: tm.Denoising.Seconds(),
			DecodeS: tm.Decoding.Seconds(), WriteS: time.Since(t0).Seconds(), Finished: o.now().UTC().Format(time.RFC3339Nano)}
		line, err := app.append(&rec)
		if err != nil {
			return err
		}
		*keep = append(*keep, manifestLine{rec, line})
		if o.afterImage != nil {
			o.afterImage(len(*keep))
		}
		return nil
	}
	var err error
	switch batch[0].mode() {
	case "inpaint":
		_, err = p.Inpaint(ctx, req)
	case "img2img":
		_, err = p.Img2Img(ctx, req)
	default:
		_, err = p.Txt2Img(ctx, req)
	}
	return err
}

// checkInputs reads every init and mask image the prompt file names
// (resolved against dir unless absolute), checking that each decodes, and
// returns their SHA-256 by the path as written (nil when there are none).
func checkInputs(pf *promptFile, dir string) (map[string]string, error) {
	var out map[string]string
	for _, r := range pf.rows {
		for _, in := range []struct {
			path string
			load func(string) (image.Image, error)
		}{{r.init, pipeline.LoadImage}, {r.mask, pipeline.LoadMask}} {
			if in.path == "" {
				continue
			}
			if _, done := out[in.path]; done {
				continue
			}
			full := in.path
			if !filepath.IsAbs(full) {
				full = filepath.Join(dir, filepath.FromSlash(full))
			}
			_, err := in.load(full)
			var data []byte
			if err == nil {
				data, err = os.ReadFile(full)
			}
			if err != nil {
				return nil, fmt.Errorf("prompt file line %d: %v", r.line, strings.TrimPrefix(err.Error(), "pipeline: "))
			}
			if out == nil {
				out = map[string]string{}
			}
			out[in.path] = sha256Hex(data)
		}
	}
	return out, nil
}

// inputCache holds the init and mask images of the last batch, so that a
// job with many images of one init image reads it once, and a job with many
// init images keeps only one in memory.
type inputCache struct {
	initPath, maskPath string
	init, mask         image.Image
}

// set puts im's init image, mask and strength into req.
func (c *inputCache) set(req *pipeline.Request, im *genImage) error {
	var err error
	if im.initPath != "" && im.initPath != c.initPath {
		if c.init, err = pipeline.LoadImage(im.initPath); err != nil {
			return err
		}
		c.initPath = im.initPath
	}
	if im.maskPath != "" && im.maskPath != c.maskPath {
		if c.mask, err = pipeline.LoadMask(im.maskPath); err != nil {
			return err
		}
		c.maskPath = im.maskPath
	}
	if im.initPath != "" {
		req.InitImage, req.Strength = c.init, im.strength
	}
	if im.maskPath != "" {
		req.MaskImage = c.mask
	}
	return nil
}

// sortRows sorts manifest rows by image index.
func sortRows(rows []manifestLine) {
	sort.Slice(rows, func(a, b int) bool { return rows[a].rec.Index < rows[b].rec.Index })
}

// removeStale removes the temporary files (".NAME.tmp-*", package
// atomicfile) that a killed run of this shard left beside its images and
// its manifest, job and labels files. Only names of this shard are touched:
// other shards may be writing into the same folders.
func removeStale(root string, files outFiles, fmts []formatInfo, mine []*genImage) error {
	stale := func(dir string, ours func(base string) bool) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := e.Name()
			base, _, ok := strings.Cut(strings.TrimPrefix(name, "."), ".tmp-")
			if !strings.HasPrefix(name, ".") || !ok || !e.Type().IsRegular() || !ours(base) {
				continue
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		return nil
	}
	own := map[string]bool{}
	for _, f := range []string{files.manifest, files.job, files.labels} {
		own[filepath.Base(f)] = true
	}
	if err := stale(root, func(b string) bool { return own[b] }); err != nil {
		return err
	}
	keys := make(map[string]bool, len(mine))
	for _, im := range mine {
		keys[im.key] = true
	}
	for _, f := range fmts {
		if err := stale(filepath.Join(root, f.name), func(b string) bool { return keys[strings.TrimSuffix(b, f.ext)] }); err != nil {
			return err
		}
	}
	return nil
}

package dataset

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/roentgo/roentgo/tensor"
)

// Layout is how a dataset's images and captions are arranged on disk.
type Layout int

// Layouts. Auto detects the layout (see Open).
const (
	Auto     Layout = iota
	Folder          // images with sidecar .txt (or .caption) captions
	Table           // a CSV or JSONL file of image path, text[, split]
	MIMICCXR        // MIMIC-CXR-JPG as published, with the MIMIC-CXR reports
	CheXpert        // CheXpert's train.csv / valid.csv
)

var layoutNames = []string{"auto", "folder", "table", "mimic-cxr", "chexpert"}

// String returns the layout's name as ParseLayout accepts it.
func (l Layout) String() string {
	if l >= 0 && int(l) < len(layoutNames) {
		return layoutNames[l]
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// ParseLayout parses a layout name: auto, folder, table (also csv, jsonl),
// mimic-cxr (also mimic), chexpert.
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "auto":
		return Auto, nil
	case "folder", "dir", "imagefolder":
		return Folder, nil
	case "table", "csv", "jsonl":
		return Table, nil
	case "mimic-cxr", "mimic", "mimic-cxr-jpg", "mimiccxr":
		return MIMICCXR, nil
	case "chexpert":
		return CheXpert, nil
	}
	return Auto, fmt.Errorf("dataset: unknown layout %q, expected one of %s", s, strings.Join(layoutNames, ", "))
}

// UncertainPolicy says how CheXpert's uncertain labels (-1) enter captions.
type UncertainPolicy int

// Uncertain label policies.
const (
	// UncertainPossible writes "possible <finding>" (the default).
	UncertainPossible UncertainPolicy = iota
	// UncertainIgnore treats uncertain like blank (U-Ignore).
	UncertainIgnore
	// UncertainPositive treats uncertain as positive (U-Ones).
	UncertainPositive
	// UncertainNegative treats uncertain as negative (U-Zeros).
	UncertainNegative
)

// LoadFunc produces a sample's data for a record in place of the default
// decode + preprocess. decode runs the default and returns the [3,R,R]
// image in [-1,1] (flipped when flip is set). It is the extension point for
// a latent cache: look the record up (by rec.Image, flip, the resolution
// and the VAE), return the cached latent and its shape ([4,R/8,R/8]) on a
// hit, else call decode, encode and store. It runs on the loader's worker
// goroutines, so it must be safe for concurrent use. An error it returns is
// treated like a decode error: the record is skipped and counted as
// Corrupt, or returned with Options.Strict.
type LoadFunc func(rec Record, flip bool, decode func() ([]float32, error)) (data []float32, shape []int, err error)

// Options configure Open and the iterator. The zero value (plus a
// Resolution) gives an auto-detected layout in file order, no flips, all
// splits, frontal views, corrupt images skipped.
type Options struct {
	// Layout is the dataset's layout; Auto detects it.
	Layout Layout
	// Resolution is the side of the square training images; a positive
	// multiple of 8.
	Resolution int
	// Split keeps only records of this split ("train", "validate", "test";
	// "val", "valid", "validation", "dev" mean "validate"); "" keeps all.
	Split string

	// ImageColumn, TextColumn and SplitColumn name a Table's columns (JSONL
	// keys); empty means the first present of: image, file_name, path,
	// filename, image_path / text, caption, prompt, report, impression /
	// split. Matching ignores letter case.
	ImageColumn, TextColumn, SplitColumn string

	// Views are the ViewPosition (MIMIC-CXR) or AP/PA (CheXpert) values kept;
	// nil means PA and AP. CheXpert also keeps only Frontal images.
	Views []string
	// ReportsDir is the MIMIC-CXR reports tree (the folder holding
	// files/pNN/...); "" looks in ROOT/mimic-cxr-reports, then ROOT itself.
	ReportsDir string
	// Uncertain is the CheXpert uncertain-label policy.
	Uncertain UncertainPolicy

	// Lowercase lowercases captions (CLIP's tokenizer lowercases anyway).
	Lowercase bool

	// Shuffle permutes the records each epoch, from Seed and the epoch.
	Shuffle bool
	// Seed seeds shuffling and flips.
	Seed uint64
	// FlipProbability is the probability that a sample is flipped left-right
	// (0: never, the default). A flipped sample's caption has its sides
	// swapped (SwapLaterality); when that is refused the sample is not
	// flipped (counted in Stats.FlipRefused).
	FlipProbability float64

	// Epochs is the number of epochs the iterator runs; 0 runs forever.
	Epochs int
	// Workers is the number of decoding goroutines; 0 means GOMAXPROCS
	// (at most 8).
	Workers int
	// Prefetch is the number of samples decoded ahead of the consumer;
	// 0 means 2*Workers.
	Prefetch int
	// Strict turns skipped records (no caption, missing or corrupt images)
	// into errors.
	Strict bool
	// MaxImageBytes bounds an image file's size; 0 means 512 MiB.
	MaxImageBytes int64
	// MaxPixels bounds an image's width x height; 0 means MaxPixels.
	MaxPixels int64
	// Load replaces the default decode + preprocess (see LoadFunc); nil
	// decodes.
	Load LoadFunc
}

// Record is one image of a dataset and where its caption comes from.
type Record struct {
	// Image is the image's path relative to the dataset root, with forward
	// slashes.
	Image string
	// Caption is the caption when it is known at open time (tables,
	// CheXpert labels), already cleaned.
	Caption string
	// CaptionFile is a caption file read at load time (a sidecar .txt or a
	// MIMIC-CXR report), relative to the caption root; "" when Caption is set.
	CaptionFile string
	// Report says CaptionFile is a radiology report whose impression
	// (fallback findings) is the caption.
	Report bool
	// ID identifies the record: the dicom_id for MIMIC-CXR, the path else.
	ID string
	// Split is the record's split, normalised ("train", "validate", "test"
	// or as written), "" when the layout has none.
	Split string
}

// Sample is one preprocessed training example.
type Sample struct {
	// Pixels holds the image as [3, R, R] float32 values in [-1, 1]
	// (channel-major, rows top to bottom), or what Options.Load returned.
	Pixels []float32
	// Shape is Pixels' shape: [3, R, R] by default.
	Shape []int
	// Caption is the cleaned caption (sides swapped when Flipped).
	Caption string
	// Path is the image's path relative to the dataset root.
	Path string
	// ID identifies the record (see Record.ID).
	ID string
	// Split is the record's split.
	Split string
	// Flipped says the image was flipped left-right.
	Flipped bool
	// Index is the record's index in the dataset (Dataset.Record).
	Index int
	// Pos is the sample's place in the iteration order.
	Pos Position
}

// Tensor returns the pixels as an F32 tensor of shape Shape that shares
// Pixels' memory.
func (s *Sample) Tensor() *tensor.Tensor { return tensor.FromFloat32(s.Pixels, s.Shape...) }

// Stats counts what was kept and skipped.
type Stats struct {
	Records       int // records in the dataset after filtering
	Loaded        int // samples returned by the iterator
	NoCaption     int // images without a caption (no sidecar, empty text, no impression/findings)
	MissingImage  int // caption/table rows whose image file is absent
	Corrupt       int // images that could not be read or decoded
	FilteredView  int // images dropped for their view (MIMIC-CXR, CheXpert)
	FilteredSplit int // records dropped for their split
	Flipped       int // samples flipped left-right
	FlipRefused   int // flips refused because the caption could not be swapped
	// Skipped lists the first few skipped records with their reasons.
	Skipped []string
}

const maxSkipNotes = 20

func (s *Stats) note(msg string) {
	if len(s.Skipped) < maxSkipNotes {
		s.Skipped = append(s.Skipped, msg)
	}
}

// ItemError is an error about one file of a dataset.
type ItemError struct {
	Path string // the file, relative to the dataset root
	Err  error
}

// Error returns "dataset: PATH: problem".
func (e *ItemError) Error() string { return fmt.Sprintf("dataset: %s: %v", e.Path, e.Err) }

// Unwrap returns the underlying error.
func (e *ItemError) Unwrap() error { return e.Err }

// ErrNoCaption is wrapped by errors about images without a caption.
var ErrNoCaption = errors.New("no caption")

// Dataset is an opened dataset: its records (paths and captions, not
// images) and how to load them.
type Dataset struct {
	dir      string // dataset root directory
	layout   Layout
	opts     Options
	records  []Record
	stats    Stats
	imgRoot  *os.Root // non-nil: images are opened through it (tables)
	capDir   string   // caption root (ReportsDir for MIMIC-CXR)
	maxBytes int64
	maxPix   int64
}

// Open scans a dataset and returns its records; images are read later, by
// the iterator. path is a directory, or (Table layout) a .csv/.jsonl file.
//
// Layout detection (Options.Layout == Auto), in order: a file is a Table; a
// directory with mimic-cxr-2.0.0-metadata.csv(.gz) is MIMIC-CXR; one with
// train.csv or valid.csv whose header has "Path" and "Frontal/Lateral" is
// CheXpert; one with metadata.jsonl or metadata.csv (Hugging Face
// imagefolder) is a Table; anything else is a Folder.
func Open(path string, opts Options) (*Dataset, error) {
	if err := CheckResolution(opts.Resolution); err != nil {
		return nil, fmt.Errorf("dataset: %v", err)
	}
	if opts.FlipProbability < 0 || opts.FlipProbability > 1 || opts.FlipProbability != opts.FlipProbability {
		return nil, fmt.Errorf("dataset: flip probability %v, expected a value in [0, 1]", opts.FlipProbability)
	}
	if opts.Workers < 0 || opts.Prefetch < 0 || opts.Epochs < 0 {
		return nil, fmt.Errorf("dataset: workers %d, prefetch %d, epochs %d: expected values >= 0", opts.Workers, opts.Prefetch, opts.Epochs)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("dataset: %v", err)
	}
	layout := opts.Layout
	if layout == Auto {
		layout, err = detect(path, fi)
		if err != nil {
			return nil, err
		}
	}
	d := &Dataset{layout: layout, opts: opts, maxBytes: opts.MaxImageBytes, maxPix: opts.MaxPixels}
	if d.maxBytes <= 0 {
		d.maxBytes = 512 << 20
	}
	if d.maxPix <= 0 {
		d.maxPix = MaxPixels
	}
	switch layout {
	case Folder:
		if !fi.IsDir() {
			return nil, fmt.Errorf("dataset: %s is not a directory, expected a folder of images and captions", path)
		}
		d.dir, d.capDir = path, path
		err = d.scanFolder()
	case Table:
		err = d.scanTable(path, fi)
	case MIMICCXR:
		if !fi.IsDir() {
			return nil, fmt.Errorf("dataset: %s is not a directory, expected the MIMIC-CXR-JPG root", path)
		}
		d.dir = path
		err = d.scanMIMIC()
	case CheXpert:
		if !fi.IsDir() {
			return nil, fmt.Errorf("dataset: %s is not a directory, expected the CheXpert root (with train.csv)", path)
		}
		d.dir, d.capDir = path, path
		err = d.scanCheXpert()
	default:
		return nil, fmt.Errorf("dataset: unknown layout %v", layout)
	}
	if err != nil {
		d.Close()
		return nil, err
	}
	d.stats.Records = len(d.records)
	if len(d.records) == 0 {
		d.Close()
		return nil, fmt.Errorf("dataset: %s (%v layout) has no usable images%s", path, layout, d.stats.summary())
	}
	return d, nil
}

// summary describes why records were dropped, for the empty-dataset error.
func (s Stats) summary() string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(s.NoCaption, "without a caption")
	add(s.MissingImage, "with a missing image")
	add(s.FilteredView, "of other views")
	add(s.FilteredSplit, "of other splits")
	if len(parts) == 0 {
		return ""
	}
	msg := " (dropped: " + strings.Join(parts, ", ") + ")"
	if len(s.Skipped) > 0 {
		msg += "; first: " + s.Skipped[0]
	}
	return msg
}

// detect chooses a layout for path.
func detect(p string, fi os.FileInfo) (Layout, error) {
	if !fi.IsDir() {
		return Table, nil
	}
	if findFile(p, "mimic-cxr-2.0.0-metadata.csv") != "" {
		return MIMICCXR, nil
	}
	for _, name := range []string{"train.csv", "valid.csv"} {
		if f := filepath.Join(p, name); fileExists(f) {
			if hdr, err := csvHeader(f); err == nil && hasColumn(hdr, "Path") && hasColumn(hdr, "Frontal/Lateral") {
				return CheXpert, nil
			}
		}
	}
	for _, name := range []string{"metadata.jsonl", "metadata.csv"} {
		if fileExists(filepath.Join(p, name)) {
			return Table, nil
		}
	}
	return Folder, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// findFile returns dir/name or dir/name.gz, whichever exists, else "".
func findFile(dir, name string) string {
	for _, n := range []string{name, name + ".gz"} {
		if f := filepath.Join(dir, n); fileExists(f) {
			return f
		}
	}
	return ""
}

// Close releases the dataset's open directory handles.
func (d *Dataset) Close() error {
	if d.imgRoot != nil {
		err := d.imgRoot.Close()
		d.imgRoot = nil
		return err
	}
	return nil
}

// Len returns the number of records.
func (d *Dataset) Len() int { return len(d.records) }

// Record returns record i.
func (d *Dataset) Record(i int) Record { return d.records[i] }

// Layout returns the dataset's layout (the detected one for Auto).
func (d *Dataset) Layout() Layout { return d.layout }

// Dir returns the dataset's root directory.
func (d *Dataset) Dir() string { return d.dir }

// Stats returns what Open kept and dropped.
func (d *Dataset) Stats() Stats {
	s := d.stats
	s.Skipped = append([]string(nil), s.Skipped...)
	return s
}

// Options returns the options the dataset was opened with.
func (d *Dataset) Options() Options { return d.opts }

// normSplit normalises a split name.
func normSplit(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	switch s {
	case "val", "valid", "validate", "validation", "dev":
		return "validate"
	}
	return s
}

// keepSplit reports whether a record of split s passes Options.Split.
func (d *Dataset) keepSplit(s string) bool {
	return d.opts.Split == "" || normSplit(d.opts.Split) == normSplit(s)
}

// localPath checks that p (slash- or OS-separated, relative to the root)
// stays inside the root and returns it cleaned with forward slashes.
func localPath(p string) (string, error) {
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.IndexByte(p, 0) >= 0 {
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	}
	q := filepath.ToSlash(p)
	if path.IsAbs(q) || filepath.IsAbs(p) || filepath.VolumeName(p) != "" {
		return "", fmt.Errorf("path %q is absolute, expected a path relative to the dataset root", p)
	}
	q = path.Clean(q)
	if q == ".." || strings.HasPrefix(q, "../") || !filepath.IsLocal(filepath.FromSlash(q)) {
		return "", fmt.Errorf("path %q leaves the dataset root", p)
	}
	return q, nil
}

// readImageFile reads an image file whole, bounded by MaxImageBytes.
func (d *Dataset) readImageFile(rel string) ([]byte, error) {
	var f *os.File
	var err error
	if d.imgRoot != nil {
		f, err = d.imgRoot.Open(filepath.FromSlash(rel))
	} else {
		f, err = os.Open(filepath.Join(d.dir, filepath.FromSlash(rel)))
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f, d.maxBytes)
}

func readBounded(f *os.File, max int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("file is %d bytes, more than the limit of %d", fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("file grew beyond the limit of %d bytes", max)
	}
	return b, nil
}

// maxCaptionBytes bounds a caption or report file.
const maxCaptionBytes = 1 << 20

// caption returns record r's cleaned caption ("" when it has none).
func (d *Dataset) caption(r *Record) (string, error) {
	text := r.Caption
	if r.CaptionFile != "" {
		f, err := os.Open(filepath.Join(d.capDir, filepath.FromSlash(r.CaptionFile)))
		if err != nil {
			return "", err
		}
		b, err := readBounded(f, maxCaptionBytes)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %v", r.CaptionFile, err)
		}
		text = string(b)
		if r.Report {
			text = Impression(text)
		}
	}
	return CleanCaption(text, d.opts.Lowercase), nil
}

// Decode reads, decodes and preprocesses one image file (PNG, JPEG or
// uncompressed DICOM, detected from its content) to [3, res, res] values in
// [-1, 1], as the iterator does. It is meant for tools and tests.
func Decode(b []byte, res int, flip bool) ([]float32, error) {
	if err := CheckResolution(res); err != nil {
		return nil, fmt.Errorf("dataset: %v", err)
	}
	img, err := decodeImage(b, MaxPixels)
	if err != nil {
		return nil, fmt.Errorf("dataset: %v", err)
	}
	out := make([]float32, 3*res*res)
	preprocess(img, res, flip, out)
	return out, nil
}

// defaultWorkers is the number of decoding goroutines when Options.Workers
// is 0.
func defaultWorkers() int { return min(runtime.GOMAXPROCS(0), 8) }

// readDir lists a folder (os.ReadDir, sorted by name).
func readDir(p string) ([]os.DirEntry, error) { return os.ReadDir(p) }

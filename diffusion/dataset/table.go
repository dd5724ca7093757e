package dataset

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Default column names of a Table, tried in order (letter case ignored).
var (
	imageColumns = []string{"image", "file_name", "path", "filename", "image_path", "file"}
	textColumns  = []string{"text", "caption", "prompt", "report", "impression"}
	splitColumns = []string{"split"}
)

// scanTable reads a CSV (or TSV) or JSONL table of image path, text and
// optional split. p is the table file, or a folder holding metadata.jsonl
// or metadata.csv. Image paths are relative to the table's folder (the
// dataset root) and must stay inside it: absolute paths, ".." components
// and symbolic links that leave the root are refused with an error (not
// skipped, whatever Options.Strict says). Rows with an empty caption or a
// missing image are skipped and counted (errors with Strict).
func (d *Dataset) scanTable(p string, fi os.FileInfo) error {
	file := p
	if fi.IsDir() {
		file = ""
		for _, n := range []string{"metadata.jsonl", "metadata.csv"} {
			if f := filepath.Join(p, n); fileExists(f) {
				file = f
				break
			}
		}
		if file == "" {
			return fmt.Errorf("dataset: %s has no metadata.jsonl or metadata.csv, expected a table of image paths and captions", p)
		}
	}
	d.dir = filepath.Dir(file)
	d.capDir = d.dir
	root, err := os.OpenRoot(d.dir)
	if err != nil {
		return fmt.Errorf("dataset: %v", err)
	}
	d.imgRoot = root
	lower := strings.ToLower(file)
	switch {
	case strings.HasSuffix(lower, ".jsonl") || strings.HasSuffix(lower, ".ndjson"):
		return d.readJSONL(file)
	case strings.HasSuffix(lower, ".csv"):
		return d.readCSV(file, ',')
	case strings.HasSuffix(lower, ".tsv"):
		return d.readCSV(file, '\t')
	}
	return fmt.Errorf("dataset: %s: unknown table format, expected a .csv, .tsv or .jsonl file", file)
}

// pickColumn returns the index of the column named want (or the first of
// defaults when want is ""), -1 when absent.
func pickColumn(header []string, want string, defaults []string) int {
	names := defaults
	if want != "" {
		names = []string{want}
	}
	for _, n := range names {
		for i, h := range header {
			if strings.EqualFold(strings.TrimSpace(h), n) {
				return i
			}
		}
	}
	return -1
}

func hasColumn(header []string, name string) bool { return pickColumn(header, name, nil) >= 0 }

// columnError says which column is missing and which exist.
func columnError(file, what, want string, defaults, header []string) error {
	exp := want
	if exp == "" {
		exp = "one of " + strings.Join(defaults, ", ")
	}
	return fmt.Errorf("dataset: %s: no %s column (expected %s; the table has %s)", file, what, exp, strings.Join(header, ", "))
}

// addTableRow checks one row and appends its record.
func (d *Dataset) addTableRow(file string, line int, img, text, split string) error {
	rel, err := localPath(strings.TrimSpace(img))
	if err != nil {
		return fmt.Errorf("dataset: %s:%d: image %v", file, line, err)
	}
	split = normSplit(split)
	if !d.keepSplit(split) {
		d.stats.FilteredSplit++
		return nil
	}
	if strings.TrimSpace(text) == "" {
		if d.opts.Strict {
			return fmt.Errorf("dataset: %s:%d: %w for image %s", file, line, ErrNoCaption, rel)
		}
		d.stats.NoCaption++
		d.stats.note(fmt.Sprintf("%s:%d: empty caption", filepath.Base(file), line))
		return nil
	}
	if _, err := d.imgRoot.Stat(filepath.FromSlash(rel)); err != nil {
		if strings.Contains(err.Error(), "escapes") || strings.Contains(err.Error(), "outside") {
			return fmt.Errorf("dataset: %s:%d: image %s leaves the dataset root (through a symbolic link)", file, line, rel)
		}
		if d.opts.Strict {
			return fmt.Errorf("dataset: %s:%d: image %s: %v", file, line, rel, err)
		}
		d.stats.MissingImage++
		d.stats.note(fmt.Sprintf("%s:%d: image %s: %v", filepath.Base(file), line, rel, err))
		return nil
	}
	d.records = append(d.records, Record{Image: rel, Caption: CleanCaption(text, d.opts.Lowercase), ID: rel, Split: split})
	return nil
}

// openMaybeGzip opens a file, decompressing it when its name ends in .gz.
func openMaybeGzip(file string) (io.ReadCloser, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(strings.ToLower(file), ".gz") {
		return f, nil
	}
	z, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{z, f}, nil
}

// csvReader returns a CSV reader over r that strips a UTF-8 byte order mark.
func csvReader(r io.Reader, comma rune) *csv.Reader {
	br := bufio.NewReader(r)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xEF\xBB\xBF")) {
		br.Discard(3)
	}
	c := csv.NewReader(br)
	c.Comma = comma
	c.ReuseRecord = true
	return c
}

// csvHeader returns a CSV file's header row.
func csvHeader(file string) ([]string, error) {
	f, err := openMaybeGzip(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := csvReader(f, ',').Read()
	if err != nil {
		return nil, err
	}
	return append([]string(nil), h...), nil
}

func (d *Dataset) readCSV(file string, comma rune) error {
	f, err := openMaybeGzip(file)
	if err != nil {
		return fmt.Errorf("dataset: %v", err)
	}
	defer f.Close()
	r := csvReader(f, comma)
	header, err := r.Read()
	if err != nil {
		if err == io.EOF {
			return fmt.Errorf("dataset: %s is empty, expected a header row and one row per image", file)
		}
		return fmt.Errorf("dataset: %s: %v", file, err)
	}
	header = append([]string(nil), header...)
	ci := pickColumn(header, d.opts.ImageColumn, imageColumns)
	if ci < 0 {
		return columnError(file, "image", d.opts.ImageColumn, imageColumns, header)
	}
	ct := pickColumn(header, d.opts.TextColumn, textColumns)
	if ct < 0 {
		return columnError(file, "text", d.opts.TextColumn, textColumns, header)
	}
	cs := pickColumn(header, d.opts.SplitColumn, splitColumns)
	if cs < 0 && d.opts.SplitColumn != "" {
		return columnError(file, "split", d.opts.SplitColumn, splitColumns, header)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			return fmt.Errorf("dataset: %s: %v", file, err)
		}
		split := ""
		if cs >= 0 {
			split = rec[cs]
		}
		if err := d.addTableRow(file, line, rec[ci], rec[ct], split); err != nil {
			return err
		}
	}
}

func (d *Dataset) readJSONL(file string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("dataset: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if line == 1 {
			b = bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF"))
		}
		if len(b) == 0 {
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			return fmt.Errorf("dataset: %s:%d: %v, expected one JSON object per line", file, line, err)
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		get := func(what, want string, defaults []string, required bool) (string, error) {
			i := pickColumn(keys, want, defaults)
			if i < 0 {
				if required || want != "" {
					exp := want
					if exp == "" {
						exp = "one of " + strings.Join(defaults, ", ")
					}
					return "", fmt.Errorf("dataset: %s:%d: no %s key (expected %s)", file, line, what, exp)
				}
				return "", nil
			}
			switch v := obj[keys[i]].(type) {
			case string:
				return v, nil
			case nil:
				return "", nil
			}
			return "", fmt.Errorf("dataset: %s:%d: %q is a %T, expected a string", file, line, keys[i], obj[keys[i]])
		}
		img, err := get("image", d.opts.ImageColumn, imageColumns, true)
		if err != nil {
			return err
		}
		text, err := get("text", d.opts.TextColumn, textColumns, true)
		if err != nil {
			return err
		}
		split, err := get("split", d.opts.SplitColumn, splitColumns, false)
		if err != nil {
			return err
		}
		if err := d.addTableRow(file, line, img, text, split); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("dataset: %s:%d: line longer than 16 MiB", file, line+1)
		}
		return fmt.Errorf("dataset: %s: %v", file, err)
	}
	return nil
}

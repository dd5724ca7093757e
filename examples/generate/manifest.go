package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/roentgo/roentgo/internal/atomicfile"
)

// record is one manifest row: one image, everything that made it, its
// files, and (in Timings, the only part that differs between two runs of a
// job) how long it took.
type record struct {
	Key             string            `json:"key"`
	Index           int               `json:"index"`
	ID              string            `json:"id"`
	Row             int               `json:"row"`
	K               int               `json:"k"`
	Files           []fileRecord      `json:"files"`
	Prompt          string            `json:"prompt"`
	Negative        string            `json:"negative"`
	Seed            uint64            `json:"seed"`
	Steps           int               `json:"steps"`
	Guidance        float64           `json:"guidance"`
	GuidanceRescale float64           `json:"guidance_rescale,omitempty"`
	Scheduler       string            `json:"scheduler"`
	Width           int               `json:"width"`
	Height          int               `json:"height"`
	LongPrompt      string            `json:"long_prompt"`
	Model           string            `json:"model"`
	ModelHash       string            `json:"model_hash"`
	Device          string            `json:"device"`
	Job             string            `json:"job"`
	Labels          map[string]string `json:"labels,omitempty"`
	// Mode is img2img or inpaint for rows with an init image (absent for
	// txt2img); Init and Mask are the images as the prompt file names them,
	// Strength the img2img strength, Inpaint the pipeline's kind of
	// inpainting ("model" or "legacy").
	Mode       string   `json:"mode,omitempty"`
	Init       string   `json:"init,omitempty"`
	Mask       string   `json:"mask,omitempty"`
	Strength   *float64 `json:"strength,omitempty"`
	Inpaint    string   `json:"inpaint,omitempty"`
	Regenerate string   `json:"regenerate"`
	Timings    timings  `json:"timings"`
}

// timings are an image's costs. The batch's phases are shared by its
// images; Write is this image's encoding and writing.
type timings struct {
	Batch    int     `json:"batch"`
	TextS    float64 `json:"text_s"`
	DenoiseS float64 `json:"denoise_s"`
	DecodeS  float64 `json:"decode_s"`
	WriteS   float64 `json:"write_s"`
	Finished string  `json:"finished"`
}

// manifestLine is a record and its line's bytes (without the newline).
type manifestLine struct {
	rec  record
	line []byte
}

// readManifest reads a manifest's complete rows. A last line without its
// newline, and invalid lines after the last valid one (what a crash or a
// full disk can leave), are returned as torn (true) and not as rows; an
// invalid line before a valid one is an error. A missing file has no rows.
func readManifest(path string) (rows []manifestLine, torn bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	lines := bytes.Split(data, []byte("\n"))
	if last := lines[len(lines)-1]; len(last) > 0 {
		torn = true // no newline after it
	}
	lines = lines[:len(lines)-1]
	bad := -1
	for i, l := range lines {
		var r record
		if err := json.Unmarshal(l, &r); err != nil || r.Key == "" {
			if bad < 0 {
				bad = i
			}
			continue
		}
		if bad >= 0 {
			return nil, false, fmt.Errorf("manifest %s: line %d is not a valid row but later ones are; the file is damaged (restore it, or move it away to regenerate everything)", path, bad+1)
		}
		rows = append(rows, manifestLine{r, l})
	}
	if bad >= 0 {
		torn = true
	}
	return rows, torn, nil
}

// verifyFiles checks that every file of rec exists under root with its
// size and SHA-256.
func verifyFiles(root string, rec *record) error {
	if len(rec.Files) == 0 {
		return errors.New("no files")
	}
	for _, f := range rec.Files {
		data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.Path)))
		if err != nil {
			return err
		}
		if int64(len(data)) != f.Bytes || sha256Hex(data) != f.SHA256 {
			return fmt.Errorf("%s does not match the manifest (size or SHA-256)", f.Path)
		}
	}
	return nil
}

// writeManifest writes rows (their original bytes) as a whole new manifest,
// atomically.
func writeManifest(path string, rows []manifestLine) error {
	var buf bytes.Buffer
	for _, r := range rows {
		buf.Write(r.line)
		buf.WriteByte('\n')
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// appender appends rows to a manifest, each synced to disk before the
// next image is reported done. A row that cannot be written whole or synced
// (a full disk) is cut off again, so that the manifest keeps only whole
// rows.
type appender struct {
	f    *os.File
	size int64 // the bytes of the rows written so far
}

// manifestFault, when set (tests), is asked before each write and sync of
// a manifest row, like an atomicfile.Fault, to simulate a full disk.
var manifestFault atomicfile.Fault

func openAppender(path string) (*appender, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &appender{f: f, size: st.Size()}, nil
}

func (a *appender) append(rec *record) ([]byte, error) {
	line, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	if err := a.write(append(line, '\n')); err != nil {
		a.cut()
		return nil, fmt.Errorf("appending to the manifest %s: %w", a.f.Name(), pathless(err))
	}
	if err := a.sync(); err != nil {
		a.cut()
		return nil, fmt.Errorf("syncing the manifest %s: %w", a.f.Name(), pathless(err))
	}
	a.size += int64(len(line)) + 1
	return line, nil
}

// write writes b at the end of the manifest.
func (a *appender) write(b []byte) error {
	if manifestFault != nil {
		if short, err := manifestFault(atomicfile.OpWrite, a.f.Name(), len(b)); err != nil {
			a.f.Write(b[:max(0, min(short, len(b)))])
			return err
		}
	}
	_, err := a.f.Write(b)
	return err
}

// sync syncs the manifest to the disk.
func (a *appender) sync() error {
	if manifestFault != nil {
		if _, err := manifestFault(atomicfile.OpSync, a.f.Name(), 0); err != nil {
			return err
		}
	}
	return a.f.Sync()
}

// cut removes what a failed append wrote (shrinking a file needs no
// space). Should that fail too, the next run drops the torn last line.
func (a *appender) cut() {
	if a.f.Truncate(a.size) == nil {
		a.f.Sync()
	}
}

func (a *appender) close() error { return a.f.Close() }

// pathless strips the path from an *fs.PathError (the caller names the
// file).
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// writeLabels writes a CheXpert-style CSV (Path, then the label columns)
// of rows sorted by index, atomically; Path is the first file's path
// relative to the output root.
func writeLabels(path string, cols []string, rows []manifestLine) error {
	sorted := append([]manifestLine(nil), rows...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].rec.Index < sorted[j].rec.Index })
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(append([]string{"Path"}, cols...)); err != nil {
		return err
	}
	for _, r := range sorted {
		rec := []string{r.rec.Files[0].Path}
		for _, c := range cols {
			rec = append(rec, r.rec.Labels[c])
		}
		if err := w.Write(rec); err != nil {
			return err
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/metrics"
	"github.com/roentgo/roentgo/metrics/features"
)

// item is one image of a set.
type item struct {
	path string // the file
	rel  string // its path relative to the set's folder (slash-separated), as reported
	// group identifies the images of one prompt (generated set only): the
	// manifest's id, or the file name without its _K suffix.
	group  string
	prompt string
	labels map[string]string
}

// imageExts are the file name extensions taken as images.
var imageExts = map[string]bool{".png": true, ".jpg": true, ".jpeg": true, ".dcm": true, ".dicom": true}

// listImages returns the image files under dir (recursively, sorted by
// path), skipping hidden entries and skip (the cache folder).
func listImages(dir, skip string) ([]item, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	var items []item
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if skip != "" && sameFile(p, skip) {
				return filepath.SkipDir
			}
			return nil
		}
		if !imageExts[strings.ToLower(filepath.Ext(p))] {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		items = append(items, item{path: p, rel: filepath.ToSlash(rel)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("no images (.png, .jpg, .jpeg, .dcm) under %s", dir)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].rel < items[j].rel })
	return items, nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// groupSuffix is the _K suffix of generate's file names (KEY = ID_K).
var groupSuffix = regexp.MustCompile(`^(.+)_(\d+)$`)

// groupByName sets each item's group from its file name: the name without
// extension and without a trailing _K, in its folder ("p001_3.png" is in
// group "p001"); a name without the suffix is a group of its own.
func groupByName(items []item) {
	for i := range items {
		rel := items[i].rel
		dir, base := "", rel
		if k := strings.LastIndexByte(rel, '/'); k >= 0 {
			dir, base = rel[:k+1], rel[k+1:]
		}
		base = strings.TrimSuffix(base, filepath.Ext(base))
		if m := groupSuffix.FindStringSubmatch(base); m != nil {
			base = m[1]
		}
		items[i].group = dir + base
	}
}

// manifestRow is the part of examples/generate's manifest row that the
// evaluation reads.
type manifestRow struct {
	Key   string `json:"key"`
	Index int    `json:"index"`
	ID    string `json:"id"`
	K     int    `json:"k"`
	Files []struct {
		Format string `json:"format"`
		Path   string `json:"path"`
	} `json:"files"`
	Prompt string            `json:"prompt"`
	Labels map[string]string `json:"labels"`
}

// findManifests returns the manifest of a generate output folder:
// manifest.jsonl, or else the shards' manifest-*-of-*.jsonl; none is nil.
func findManifests(dir string) []string {
	p := filepath.Join(dir, "manifest.jsonl")
	if _, err := os.Stat(p); err == nil {
		return []string{p}
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "manifest-*-of-*.jsonl"))
	sort.Strings(shards)
	return shards
}

// readManifests reads generate manifests: one image per row, its file the
// one of format (or the row's first file when format is ""), relative to
// root; group = the row's id, prompt and labels from the row. Rows are
// ordered by index.
func readManifests(paths []string, root, format string) ([]item, error) {
	var rows []manifestRow
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<24)
		line := 0
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			var r manifestRow
			if err := json.Unmarshal(b, &r); err != nil || r.Key == "" {
				return nil, fmt.Errorf("manifest %s line %d: not a manifest row of examples/generate (want JSON with key, id, files, prompt)", p, line)
			}
			rows = append(rows, r)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("manifest %s: %v", p, err)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("manifest %s has no rows", strings.Join(paths, ", "))
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Index < rows[j].Index })
	items := make([]item, 0, len(rows))
	seen := map[string]bool{}
	for _, r := range rows {
		file := ""
		for _, f := range r.Files {
			if format == "" || f.Format == format {
				file = f.Path
				break
			}
		}
		if file == "" {
			if format != "" {
				return nil, fmt.Errorf("manifest row %s has no file of format %q", r.Key, format)
			}
			return nil, fmt.Errorf("manifest row %s lists no files", r.Key)
		}
		if seen[r.Key] {
			return nil, fmt.Errorf("manifest lists image %s twice", r.Key)
		}
		seen[r.Key] = true
		group := r.ID
		if group == "" {
			group = r.Prompt
		}
		items = append(items, item{path: filepath.Join(root, filepath.FromSlash(file)), rel: file,
			group: group, prompt: r.Prompt, labels: r.Labels})
	}
	return items, nil
}

// orderByGroup sorts items so that each group's images are contiguous, groups
// in order of first appearance, images in their order within it.
func orderByGroup(items []item) {
	first := map[string]int{}
	for i, it := range items {
		if _, ok := first[it.group]; !ok {
			first[it.group] = i
		}
	}
	sort.SliceStable(items, func(i, j int) bool { return first[items[i].group] < first[items[j].group] })
}

// decoded is one image, decoded and resized to size x size.
type decoded struct {
	im   *features.Image // 3 planes of 0..255 values
	gray metrics.Gray    // BT.601 luma in [0, 1]
}

// decodeFile reads an image file (PNG, JPEG or uncompressed DICOM, through
// diffusion/dataset) and resizes it as training does: shorter side to size
// (PIL-style antialiased bilinear), centre crop to size x size.
func decodeFile(path string, size int) (*decoded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	px, err := dataset.Decode(b, size, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, strings.TrimPrefix(err.Error(), "dataset: "))
	}
	hw := size * size
	d := &decoded{im: features.NewImage(3, size, size), gray: metrics.NewGray(size, size)}
	for i, v := range px {
		d.im.Pix[i] = min(max((v+1)*127.5, 0), 255)
	}
	for i := 0; i < hw; i++ {
		r, g, b := float64(d.im.Pix[i]), float64(d.im.Pix[hw+i]), float64(d.im.Pix[2*hw+i])
		d.gray.Pix[i] = (0.299*r + 0.587*g + 0.114*b) / 255
	}
	return d, nil
}

// decodeAll decodes items with up to workers goroutines.
func decodeAll(items []item, size, workers int) ([]*decoded, error) {
	out := make([]*decoded, len(items))
	errs := make([]error, len(items))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < max(workers, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = decodeFile(items[i].path, size)
			}
		}()
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}

// areaResize resizes a w x h plane to ow x oh by area averaging (each output
// pixel the mean of the input area it covers, fractional pixels weighted).
func areaResize(src []float64, w, h, ow, oh int) []float64 {
	wx, wy := areaTaps(w, ow), areaTaps(h, oh)
	tmp := make([]float64, h*ow)
	for y := 0; y < h; y++ {
		row := src[y*w : (y+1)*w]
		for x, t := range wx {
			var s float64
			for k, wt := range t.w {
				s += wt * row[t.start+k]
			}
			tmp[y*ow+x] = s
		}
	}
	out := make([]float64, oh*ow)
	for y, t := range wy {
		for x := 0; x < ow; x++ {
			var s float64
			for k, wt := range t.w {
				s += wt * tmp[(t.start+k)*ow+x]
			}
			out[y*ow+x] = s
		}
	}
	return out
}

// tap lists the input weights of one output sample.
type tap struct {
	start int
	w     []float64
}

// areaTaps returns box-filter weights from in samples to out: output i
// covers [i·in/out, (i+1)·in/out).
func areaTaps(in, out int) []tap {
	ts := make([]tap, out)
	scale := float64(in) / float64(out)
	for i := range ts {
		lo, hi := float64(i)*scale, float64(i+1)*scale
		a := int(lo)
		b := min(int(hi+1-1e-9), in) // last input index + 1
		if b <= a {
			b = a + 1
		}
		t := tap{start: a, w: make([]float64, b-a)}
		for k := a; k < b; k++ {
			cover := min(hi, float64(k+1)) - max(lo, float64(k))
			t.w[k-a] = max(cover, 0) / scale
		}
		ts[i] = t
	}
	return ts
}

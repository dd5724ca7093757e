package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// knownColumns are the prompt file's columns that are not labels.
var knownColumns = []string{"id", "prompt", "negative", "n", "seed", "steps", "guidance", "scheduler", "width", "height", "size", "init", "mask", "strength"}

func isKnown(col string) bool {
	for _, k := range knownColumns {
		if col == k {
			return true
		}
	}
	return false
}

// maxRowImages bounds a row's n.
const maxRowImages = 100000

// row is one line of the prompt file. Optional values not given are zero
// with their has* flag false; defaults fills them from the flags.
type row struct {
	line      int    // 1-based line of the file (errors)
	id        string // the id column, or the row number (6 digits)
	prompt    string
	negative  *string
	n         int
	seed      *uint64
	steps     int
	guidance  *float64
	scheduler string
	width     int
	height    int
	// init and mask are image paths as written (relative to the prompt
	// file's folder unless absolute): init alone makes the row img2img,
	// both inpainting; strength is img2img's (and legacy inpainting's).
	init, mask string
	strength   *float64
	labels     map[string]string
}

// promptFile is a parsed prompt file.
type promptFile struct {
	rows []*row
	// labelCols are the label columns in the file's order (CSV header, or
	// first appearance in JSONL).
	labelCols []string
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// parsePrompts reads a CSV (with a header row) or JSONL prompt file; name
// (for the format: .jsonl/.ndjson/.json is JSONL, .csv CSV, else the content
// decides) and labels (the -labels list; nil: every unknown column is a
// label).
func parsePrompts(name string, data []byte, labels []string) (*promptFile, error) {
	lower := strings.ToLower(name)
	jsonl := strings.HasSuffix(lower, ".jsonl") || strings.HasSuffix(lower, ".ndjson") || strings.HasSuffix(lower, ".json")
	if !jsonl && !strings.HasSuffix(lower, ".csv") {
		jsonl = bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n\ufeff"), []byte("{"))
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var pf *promptFile
	var err error
	if jsonl {
		pf, err = parseJSONL(data, labels)
	} else {
		pf, err = parseCSV(data, labels)
	}
	if err != nil {
		return nil, fmt.Errorf("prompt file %s: %w", name, err)
	}
	if len(pf.rows) == 0 {
		return nil, fmt.Errorf("prompt file %s has no rows; expected one prompt a line (CSV with a header, or JSONL)", name)
	}
	seen := map[string]int{}
	for i, r := range pf.rows {
		if r.id == "" {
			r.id = fmt.Sprintf("%06d", i)
		}
		if !idPattern.MatchString(r.id) {
			return nil, fmt.Errorf("prompt file %s line %d: id %q; expected 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name, r.line, r.id)
		}
		if l, dup := seen[r.id]; dup {
			return nil, fmt.Errorf("prompt file %s line %d: id %q is also on line %d; expected unique ids", name, r.line, r.id, l)
		}
		seen[r.id] = r.line
	}
	return pf, nil
}

// labelSet checks the -labels columns against the file's columns and
// returns the label columns of cols (in order).
func labelSet(cols []string, labels []string) ([]string, error) {
	if labels == nil {
		var out []string
		for _, c := range cols {
			if !isKnown(c) {
				out = append(out, c)
			}
		}
		return out, nil
	}
	want := map[string]bool{}
	for _, l := range labels {
		if isKnown(l) {
			return nil, fmt.Errorf("-labels names %q, which is a parameter column, not a label", l)
		}
		want[l] = true
	}
	for _, c := range cols {
		if !isKnown(c) && !want[c] {
			return nil, fmt.Errorf("unknown column %q; expected %s, or a label column listed in -labels", c, strings.Join(knownColumns, ", "))
		}
	}
	return labels, nil
}

func parseCSV(data []byte, labels []string) (*promptFile, error) {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = 0 // every record as long as the header
	header, err := r.Read()
	if err == io.EOF {
		return &promptFile{}, nil
	}
	if err != nil {
		return nil, csvError(err)
	}
	cols := make([]string, len(header))
	idx := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(h)
		if h == "" {
			return nil, fmt.Errorf("header column %d is empty; expected a column name", i+1)
		}
		if _, dup := idx[h]; dup {
			return nil, fmt.Errorf("header names column %q twice", h)
		}
		idx[h] = i
		cols[i] = h
	}
	if _, ok := idx["prompt"]; !ok {
		return nil, fmt.Errorf("no \"prompt\" column in the header %q; expected at least prompt (and optionally %s, labels)", strings.Join(cols, ","), strings.Join(knownColumns[2:], ", "))
	}
	labelCols, err := labelSet(cols, labels)
	if err != nil {
		return nil, err
	}
	for _, l := range labelCols {
		if _, ok := idx[l]; !ok {
			return nil, fmt.Errorf("-labels names column %q, which the header does not have", l)
		}
	}
	pf := &promptFile{labelCols: labelCols}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" && len(cols) > 1 {
			continue // blank line
		}
		rw := &row{line: line}
		for i, v := range rec {
			c := cols[i]
			if !isKnown(c) {
				continue
			}
			if err := rw.set(c, strings.TrimSpace(v), v); err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
		}
		if len(labelCols) > 0 {
			rw.labels = map[string]string{}
			for _, l := range labelCols {
				rw.labels[l] = strings.TrimSpace(rec[idx[l]])
			}
		}
		if err := rw.check(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		pf.rows = append(pf.rows, rw)
	}
	return pf, nil
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) && errors.Is(pe.Err, csv.ErrFieldCount) {
		return fmt.Errorf("line %d: a different number of fields than the header; expected one value per column (empty for the default)", pe.StartLine)
	}
	return err
}

// set parses one known column's text value ("" leaves the default); raw is
// the untrimmed text (the prompt keeps its spaces).
func (r *row) set(col, v, raw string) error {
	if v == "" && col != "prompt" {
		return nil
	}
	bad := func(what string) error { return fmt.Errorf("column %s: %q; expected %s", col, v, what) }
	switch col {
	case "id":
		r.id = v
	case "prompt":
		r.prompt = raw
	case "negative":
		s := raw
		r.negative = &s
	case "scheduler":
		r.scheduler = v
	case "init":
		r.init = v
	case "mask":
		r.mask = v
	case "strength":
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return bad("a number in [0, 1]")
		}
		r.strength = &f
	case "n", "steps", "width", "height":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return bad("a positive integer")
		}
		switch col {
		case "n":
			r.n = n
		case "steps":
			r.steps = n
		case "width":
			r.width = n
		case "height":
			r.height = n
		}
	case "seed":
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return bad("an integer from 0 to 2^64-1")
		}
		r.seed = &s
	case "guidance":
		g, err := strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(g) || math.IsInf(g, 0) {
			return bad("a finite number")
		}
		r.guidance = &g
	case "size":
		w, h, err := parseSize(v)
		if err != nil {
			return bad("WIDTHxHEIGHT (e.g. 512x512) or one number for a square")
		}
		if (r.width != 0 && r.width != w) || (r.height != 0 && r.height != h) {
			return fmt.Errorf("size %s disagrees with width %d / height %d", v, r.width, r.height)
		}
		r.width, r.height = w, h
	}
	return nil
}

// parseSize reads "WxH" or "N" (square).
func parseSize(s string) (w, h int, err error) {
	a, b, ok := strings.Cut(strings.ToLower(s), "x")
	if !ok {
		b = a
	}
	w, err1 := strconv.Atoi(strings.TrimSpace(a))
	h, err2 := strconv.Atoi(strings.TrimSpace(b))
	if err1 != nil || err2 != nil || w < 1 || h < 1 {
		return 0, 0, errors.New("bad size")
	}
	return w, h, nil
}

// check validates what a row must have.
func (r *row) check() error {
	if r.n > maxRowImages {
		return fmt.Errorf("column n: %d; expected at most %d images a row", r.n, maxRowImages)
	}
	if r.mask != "" && r.init == "" {
		return fmt.Errorf("column mask %q without an init image; expected init (the image to inpaint) beside mask", r.mask)
	}
	if r.strength != nil && r.init == "" {
		return errors.New("column strength without an init image; strength goes with init (img2img) or init and mask (inpainting)")
	}
	texts := []string{r.id, r.prompt, r.scheduler, r.init, r.mask}
	if r.negative != nil {
		texts = append(texts, *r.negative)
	}
	for k, v := range r.labels {
		texts = append(texts, k, v)
	}
	for _, t := range texts {
		if !utf8.ValidString(t) {
			return fmt.Errorf("text %q is not valid UTF-8; expected a UTF-8 file", t)
		}
	}
	return nil
}

func parseJSONL(data []byte, labels []string) (*promptFile, error) {
	pf := &promptFile{}
	var want map[string]bool
	if labels != nil {
		want = map[string]bool{}
		for _, l := range labels {
			if isKnown(l) {
				return nil, fmt.Errorf("-labels names %q, which is a parameter column, not a label", l)
			}
			want[l] = true
		}
		pf.labelCols = labels
	}
	seenLabel := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<26)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil || obj == nil {
			return nil, fmt.Errorf("line %d: not a JSON object: %v", line, errOr(err, "null"))
		}
		if dec.More() {
			return nil, fmt.Errorf("line %d: more than one JSON value; expected one object a line", line)
		}
		if _, ok := obj["prompt"]; !ok {
			return nil, fmt.Errorf("line %d: no \"prompt\" key; expected at least prompt", line)
		}
		rw := &row{line: line}
		addLabel := func(k string, v any) error {
			if want != nil && !want[k] {
				return fmt.Errorf("line %d: unknown key %q; expected %s, labels, or a label listed in -labels", line, k, strings.Join(knownColumns, ", "))
			}
			s, err := labelText(v)
			if err != nil {
				return fmt.Errorf("line %d: label %q: %v", line, k, err)
			}
			if rw.labels == nil {
				rw.labels = map[string]string{}
			}
			if _, dup := rw.labels[k]; dup {
				return fmt.Errorf("line %d: label %q given twice", line, k)
			}
			rw.labels[k] = s
			if want == nil && !seenLabel[k] {
				seenLabel[k] = true
				pf.labelCols = append(pf.labelCols, k)
			}
			return nil
		}
		// Keys in a fixed order, so that errors do not depend on map order.
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := obj[k]
			switch {
			case k == "labels":
				m, ok := v.(map[string]any)
				if !ok {
					return nil, fmt.Errorf("line %d: labels: expected an object of label values", line)
				}
				lk := make([]string, 0, len(m))
				for l := range m {
					lk = append(lk, l)
				}
				sort.Strings(lk)
				for _, l := range lk {
					if isKnown(l) {
						return nil, fmt.Errorf("line %d: label %q is a parameter name", line, l)
					}
					if err := addLabel(l, m[l]); err != nil {
						return nil, err
					}
				}
			case isKnown(k):
				if v == nil {
					continue
				}
				if err := rw.setJSON(k, v); err != nil {
					return nil, fmt.Errorf("line %d: %w", line, err)
				}
			default:
				if err := addLabel(k, v); err != nil {
					return nil, err
				}
			}
		}
		if err := rw.check(); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		pf.rows = append(pf.rows, rw)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %v", line+1, err)
	}
	if want == nil {
		sort.Strings(pf.labelCols) // JSON objects have no column order
	}
	for _, r := range pf.rows {
		if len(pf.labelCols) > 0 && r.labels == nil {
			r.labels = map[string]string{}
		}
		for _, l := range pf.labelCols {
			if _, ok := r.labels[l]; !ok {
				r.labels[l] = ""
			}
		}
	}
	return pf, nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// setJSON sets a known key from a JSON value: strings for text columns,
// numbers for numeric ones (size: a "WxH" string or a number).
func (r *row) setJSON(k string, v any) error {
	switch k {
	case "id", "prompt", "negative", "scheduler", "init", "mask":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: %v; expected a string", k, v)
		}
		return r.set(k, strings.TrimSpace(s), s)
	case "size":
		switch x := v.(type) {
		case string:
			return r.set(k, x, x)
		case json.Number:
			return r.set(k, x.String(), x.String())
		}
		return fmt.Errorf("size: %v; expected \"WIDTHxHEIGHT\" or a number", v)
	}
	num, ok := v.(json.Number)
	if !ok {
		return fmt.Errorf("%s: %v; expected a number", k, v)
	}
	return r.set(k, num.String(), num.String())
}

// labelText is a JSON label value as text: strings as they are, numbers in
// their JSON form, booleans as true/false, null as "".
func labelText(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", errors.New("expected a string, number, boolean or null")
}

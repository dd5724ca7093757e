package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/diffusion/pipeline/cli"
	"github.com/roentgo/roentgo/internal/atomicfile"
)

// promptRow is one prompt of a -prompts file.
type promptRow struct {
	id, prompt string
	labels     map[string]string
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// readPrompts reads a prompt file: CSV with a header row (a prompt column,
// optionally id; every other column is a label) or JSONL (objects with
// prompt, optional id, labels as other keys or a "labels" object).
func readPrompts(path string) ([]promptRow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	var rows []promptRow
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		for i, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				return nil, fmt.Errorf("prompt file %s line %d: %v", path, i+1, err)
			}
			r := promptRow{labels: map[string]string{}}
			for k, v := range m {
				switch k {
				case "prompt":
					r.prompt, _ = v.(string)
				case "id":
					r.id = fmt.Sprint(v)
				case "labels":
					lm, ok := v.(map[string]any)
					if !ok {
						return nil, fmt.Errorf("prompt file %s line %d: labels must be an object", path, i+1)
					}
					for lk, lv := range lm {
						r.labels[lk] = jsonLabel(lv)
					}
				default:
					r.labels[k] = jsonLabel(v)
				}
			}
			if r.prompt == "" {
				return nil, fmt.Errorf("prompt file %s line %d: no prompt", path, i+1)
			}
			rows = append(rows, r)
		}
	} else {
		cr := csv.NewReader(bytes.NewReader(data))
		head, err := cr.Read()
		if err != nil {
			return nil, fmt.Errorf("prompt file %s: %v (expected CSV with a header row, or JSONL)", path, err)
		}
		pi, ii := -1, -1
		for j, h := range head {
			switch strings.TrimSpace(h) {
			case "prompt":
				pi = j
			case "id":
				ii = j
			}
		}
		if pi < 0 {
			return nil, fmt.Errorf("prompt file %s: no prompt column in the header %q", path, head)
		}
		for {
			rec, err := cr.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("prompt file %s: %v", path, err)
			}
			r := promptRow{prompt: rec[pi], labels: map[string]string{}}
			for j, v := range rec {
				switch j {
				case pi:
				case ii:
					r.id = v
				default:
					r.labels[strings.TrimSpace(head[j])] = v
				}
			}
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("prompt file %s has no prompts", path)
	}
	seen := map[string]bool{}
	for i := range rows {
		if rows[i].id == "" {
			rows[i].id = fmt.Sprintf("%06d", i)
		}
		if !safeID.MatchString(rows[i].id) || seen[rows[i].id] {
			return nil, fmt.Errorf("prompt file %s row %d: id %q; expected unique ids of 1 to 64 letters, digits, '.', '_' or '-'", path, i+1, rows[i].id)
		}
		seen[rows[i].id] = true
	}
	return rows, nil
}

func jsonLabel(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// genRow is the manifest row evaluate writes: the fields of
// examples/generate's rows that the evaluation reads, and the parameters.
type genRow struct {
	Key       string            `json:"key"`
	Index     int               `json:"index"`
	ID        string            `json:"id"`
	Row       int               `json:"row"`
	K         int               `json:"k"`
	Files     []genFile         `json:"files"`
	Prompt    string            `json:"prompt"`
	Seed      uint64            `json:"seed"`
	Steps     int               `json:"steps"`
	Guidance  float64           `json:"guidance"`
	Scheduler string            `json:"scheduler"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Model     string            `json:"model"`
	ModelHash string            `json:"model_hash"`
	Labels    map[string]string `json:"labels,omitempty"`
}

type genFile struct {
	Format string `json:"format"`
	Path   string `json:"path"`
}

// generateFirst generates -per-prompt images for each prompt of -prompts
// into -gen (gray/ID_K.png and manifest.jsonl in examples/generate's layout;
// image i of the file has seed -gen-seed + i). The folder must not hold a
// manifest already.
func generateFirst(ctx context.Context, o *options, stderr io.Writer) (*genSettings, error) {
	rows, err := readPrompts(o.prompts)
	if err != nil {
		return nil, err
	}
	if len(findManifests(o.gen)) > 0 {
		return nil, fmt.Errorf("-gen %s already holds a manifest; leave out -prompts and -model to evaluate those images, or give a new folder", o.gen)
	}
	if err := os.MkdirAll(filepath.Join(o.gen, "gray"), 0o755); err != nil {
		return nil, err
	}
	p, err := o.model.Load("evaluate", stderr, func(msg string) { fmt.Fprintf(stderr, "evaluate: %s\n", msg) })
	if err != nil {
		return nil, err
	}
	defer p.Close()
	var manifest bytes.Buffer
	index := 0
	pr := &progress{w: stderr, what: "generating", total: len(rows) * o.perPrompt, start: time.Now(), terminal: false, quiet: o.quiet}
	for ri, r := range rows {
		for k0 := 0; k0 < o.perPrompt; k0 += o.genBatch {
			n := min(o.genBatch, o.perPrompt-k0)
			seeds := make([]uint64, n)
			for k := range seeds {
				seeds[k] = o.genSeed + uint64(index+k)
			}
			res, err := p.Txt2Img(ctx, pipeline.Request{Prompt: r.prompt, NumImages: n, Seeds: seeds, Steps: o.steps,
				Guidance: o.guidance, Scheduler: o.scheduler, Width: o.size, Height: o.size, BatchSize: o.genBatch})
			if err != nil {
				return nil, fmt.Errorf("generating for prompt %s: %w", r.id, err)
			}
			for i, im := range res.Images {
				k := k0 + i
				key := fmt.Sprintf("%s_%d", r.id, k)
				rel := "gray/" + key + ".png"
				b, err := pipeline.EncodePNG(pipeline.Gray(im), res.Text(i))
				if err != nil {
					return nil, err
				}
				if err := atomicfile.WriteFile(filepath.Join(o.gen, filepath.FromSlash(rel)), b); err != nil {
					return nil, err
				}
				line, err := json.Marshal(genRow{Key: key, Index: index + i, ID: r.id, Row: ri, K: k,
					Files: []genFile{{"gray", rel}}, Prompt: r.prompt, Seed: seeds[i], Steps: res.Steps,
					Guidance: res.Guidance, Scheduler: res.Scheduler, Width: res.Width, Height: res.Height,
					Model: res.ModelName, ModelHash: res.ModelHash, Labels: r.labels})
				if err != nil {
					return nil, err
				}
				manifest.Write(append(line, '\n'))
			}
			index += n
			pr.update(index)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(o.gen, "manifest.jsonl"), manifest.Bytes()); err != nil {
		return nil, err
	}
	model := o.model.Model
	if cli.IsBuiltin(model) {
		model = cli.BuiltinName(model)
	}
	return &genSettings{Model: model, Prompts: o.prompts, PerPrompt: o.perPrompt, Steps: o.steps,
		Guidance: o.guidance, Scheduler: o.scheduler, Seed: o.genSeed}, nil
}

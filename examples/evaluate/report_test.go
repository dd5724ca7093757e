package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"html"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/phantom/classify"
	"github.com/roentgo/roentgo/tensor"
)

// scriptPrompt is a prompt that must come out escaped.
const scriptPrompt = `<script>alert("x")</script> & 'effusion'`

// setPrompt rewrites the prompt of the manifest rows of group id.
func setPrompt(t *testing.T, dir, id, prompt string) {
	t.Helper()
	path := filepath.Join(dir, "manifest.jsonl")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		if row["id"] == id {
			row["prompt"] = prompt
		}
		line, _ := json.Marshal(row)
		out.Write(append(line, '\n'))
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tagBalance lists the tags that must open and close as often.
var tagBalance = []string{"html", "head", "body", "section", "table", "thead", "tbody", "tr", "figure", "details", "nav", "ul", "pre", "style"}

var (
	keyAttr = regexp.MustCompile(`data-key="([^"]*)" title="([^"]*)"`)
	srcAttr = regexp.MustCompile(`<img src="([^"]*)" alt="[^"]*" width="(\d+)" height="(\d+)"`)
)

// checkReport checks OUT/report.html against OUT/evaluation.json: its
// structure, that every image it shows is a PNG of the folder with the
// stated size, and that every number of the JSON appears with its exact
// value. It returns the HTML and the referenced files.
func checkReport(t *testing.T, out string) (string, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, reportHTML))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, "<!DOCTYPE html>\n<html lang=\"en\">") || !strings.HasSuffix(strings.TrimSpace(doc), "</html>") {
		t.Errorf("report.html does not start with a doctype and <html> and end with </html>:\n%.300s", doc)
	}
	for _, tag := range tagBalance {
		open := len(regexp.MustCompile(`<`+tag+`[ >]`).FindAllString(doc, -1))
		if cl := strings.Count(doc, "</"+tag+">"); open != cl || open == 0 && (tag == "html" || tag == "body" || tag == "table") {
			t.Errorf("<%s>: %d opened, %d closed", tag, open, cl)
		}
	}
	lower := strings.ToLower(doc)
	for _, bad := range []string{"<script", "http://", "https://", "javascript:", "<link", "@import"} {
		if strings.Contains(lower, bad) {
			t.Errorf("report.html contains %q: it must be self-contained and script-free", bad)
		}
	}
	// Every image is a PNG file of the folder, of the size stated.
	var files []string
	for _, m := range srcAttr.FindAllStringSubmatch(doc, -1) {
		src := html.UnescapeString(m[1])
		if filepath.IsAbs(src) || strings.Contains(src, "..") || strings.Contains(src, ":") {
			t.Errorf("image %q is not a relative path inside the report folder", src)
			continue
		}
		f, err := os.Open(filepath.Join(out, filepath.FromSlash(src)))
		if err != nil {
			t.Error(err)
			continue
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		w, _ := strconv.Atoi(m[2])
		h, _ := strconv.Atoi(m[3])
		if sz := img.Bounds().Size(); sz.X != w || sz.Y != h || w == 0 || h == 0 {
			t.Errorf("%s: %dx%d, the report says %dx%d", src, sz.X, sz.Y, w, h)
		}
		files = append(files, src)
	}
	if n := strings.Count(doc, "<img "); n != len(files) {
		t.Errorf("%d <img> elements, %d checked", n, len(files))
	}

	// Every number of evaluation.json is in the report, with its value.
	shown := map[string]string{}
	for _, m := range keyAttr.FindAllStringSubmatch(doc, -1) {
		k, v := html.UnescapeString(m[1]), html.UnescapeString(m[2])
		if old, dup := shown[k]; dup && old != v {
			t.Errorf("%s shown as %s and as %s", k, old, v)
		}
		shown[k] = v
	}
	js, err := os.ReadFile(filepath.Join(out, "evaluation.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		t.Fatal(err)
	}
	checked := 0
	var walk func(p string, v any)
	walk = func(p string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(p+"/"+strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1"), e)
			}
		case []any:
			for i, e := range x {
				walk(p+"/"+strconv.Itoa(i), e)
			}
		case json.Number:
			got, ok := shown[p]
			if !ok {
				t.Errorf("%s (%s) is not in the report", p, x)
				return
			}
			want, _ := strconv.ParseFloat(string(x), 64)
			if g, err := strconv.ParseFloat(got, 64); err != nil || g != want {
				t.Errorf("%s: report %q, evaluation.json %s", p, got, x)
			}
			checked++
		case nil:
			if got, ok := shown[p]; ok && got != "null" {
				t.Errorf("%s: report %q, evaluation.json null", p, got)
			}
		case bool:
			if got, ok := shown[p]; ok && got != strconv.FormatBool(x) {
				t.Errorf("%s: report %q, evaluation.json %v", p, got, x)
			}
		}
	}
	walk("", root)
	t.Logf("%s: %d numbers of evaluation.json checked in report.html", out, checked)
	if checked < 50 {
		t.Errorf("only %d numbers checked", checked)
	}
	return doc, files
}

func hasAll(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	set := map[string]bool{}
	for _, g := range got {
		set[g] = true
	}
	for _, w := range want {
		if !set[w] {
			t.Errorf("%s: %q missing from %q", what, w, got)
		}
	}
}

// TestHTMLReport: the weight-free mode's report, with a prompt that must be
// escaped and a cache.
func TestHTMLReport(t *testing.T) {
	dir := t.TempDir()
	ims, _ := phantomSet(t, 1, 12, testSize)
	gen, greps := phantomSet(t, 2, 12, testSize)
	realDir, genDir, out := filepath.Join(dir, "real"), filepath.Join(dir, "gen"), filepath.Join(dir, "out")
	writeFolder(t, realDir, ims)
	writeGenerated(t, genDir, gen, greps, 4)
	setPrompt(t, genDir, "p000", scriptPrompt)
	r, stdout := runEval(t, "-real", realDir, "-gen", genDir, "-out", out, "-features", "pixels", "-size", "256",
		"-kid-subsets", "5", "-tile", "60", "-report-groups", "2", "-cache", filepath.Join(dir, "cache"))
	if !strings.Contains(stdout, reportHTML) {
		t.Errorf("stdout does not name the report:\n%s", stdout)
	}
	if r.Images[0].Prompt != scriptPrompt {
		t.Fatalf("prompt %q", r.Images[0].Prompt)
	}
	doc, files := checkReport(t, out)
	hasAll(t, "images", files, "chart_msssim.png", "chart_nearest_pixel_correlation.png", "chart_nearest_pixels.png",
		"memorization_pixel_correlation.png", "memorization_pixels.png", "grids/group_0001.png", "grids/group_0002.png")
	if _, err := os.Stat(filepath.Join(out, "grids", "group_0003.png")); err == nil {
		t.Error("-report-groups 2 drew a third group")
	}
	// A grid: 4 images of 60 pixels in a row, 4 pixels apart.
	f, _ := os.Open(filepath.Join(out, "grids", "group_0001.png"))
	cfg, err := png.DecodeConfig(f)
	f.Close()
	if err != nil || cfg.Width != 4*64+4 || cfg.Height != 68 {
		t.Errorf("grid %dx%d (%v), want 260x68", cfg.Width, cfg.Height, err)
	}
	// The prompt is escaped wherever it appears (caption, alt, tables).
	esc := `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;effusion&#39;`
	if n := strings.Count(doc, esc); n < 3 {
		t.Errorf("the escaped prompt appears %d times, want at least 3 (grid caption and alt, per-group table)", n)
	}
	// Sections without data say why.
	for _, want := range []string{`<section id="adherence">`, "No classifier ran", `<section id="fid">`, `<section id="diversity">`, `<section id="cache">`} {
		if !strings.Contains(doc, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
	// The charts are PNGs of some size.
	for _, c := range []string{"chart_msssim.png", "chart_nearest_pixels.png"} {
		st, err := os.Stat(filepath.Join(out, c))
		if err != nil || st.Size() < 1000 {
			t.Errorf("%s: %v", c, err)
		}
	}

	// Without diversity (too small) and without grids, those sections say why.
	out2 := filepath.Join(dir, "out2")
	runEval(t, "-real", realDir, "-gen", genDir, "-out", out2, "-features", "pixels", "-size", "128",
		"-kid-subsets", "5", "-report-groups", "0", "-pairs", "0")
	doc2, files2 := checkReport(t, out2)
	for _, want := range []string{"larger than 160 pixels (-size 128)", "-report-groups 0", "No closest pairs listed"} {
		if !strings.Contains(doc2, want) {
			t.Errorf("report without diversity and grids lacks %q", want)
		}
	}
	if len(files2) != 2 { // the two nearest-neighbour histograms
		t.Errorf("images %q, want the two nearest-neighbour charts only", files2)
	}
}

// tinyClassifier saves a phantom/classify model with random weights and a
// small network.
func tinyClassifier(t *testing.T, path string) {
	t.Helper()
	c := classify.Config{Stem: 4, Channels: []int{4}, Groups: 2, Grid: 4, Hidden: 8, Outputs: len(classify.Findings), Mean: 0.5, Std: 0.25}
	m, err := classify.New(nn.NewRandomBuilder(7, tensor.F32), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := classify.Save(path, m); err != nil {
		t.Fatal(err)
	}
}

// TestClassifierAdherence: -classifier judges adherence (CheXpert columns
// matched to the classifier's findings, sides combined for Pleural
// Effusion and Pneumothorax), adds its feature space, and the report shows
// it all.
func TestClassifierAdherence(t *testing.T) {
	dir := t.TempDir()
	ims, _ := phantomSet(t, 5, 8, 128)
	gen, greps := phantomSet(t, 6, 8, 128)
	realDir, genDir, out := filepath.Join(dir, "real"), filepath.Join(dir, "gen"), filepath.Join(dir, "out")
	writeFolder(t, realDir, ims)
	writeGenerated(t, genDir, gen, greps, 4)
	clf := filepath.Join(dir, "classifier.safetensors")
	tinyClassifier(t, clf)
	r, summary := runEval(t, "-real", realDir, "-gen", genDir, "-out", out, "-size", "128", "-kid-subsets", "5",
		"-tile", "32", "-classifier", clf)
	a := r.Adherence
	if a == nil || a.Classifier != "classifier" || r.Settings.Extractors["classifier"] != clf {
		t.Fatalf("adherence %+v, extractors %v", a, r.Settings.Extractors)
	}
	for name, label := range map[string]string{"effusion": "Pleural Effusion", "pneumothorax": "Pneumothorax", "cardiomegaly": "Cardiomegaly",
		"consolidation": "Consolidation", "lung lesion": "Lung Lesion", "atelectasis": "Atelectasis", "support devices": "Support Devices"} {
		f := a.Findings[name]
		if f == nil || f.Label != label || f.Stated+f.Negated+f.Omitted+f.Uncertain != 8 {
			t.Errorf("finding %s: %+v", name, f)
		}
	}
	hasAll(t, "unmatched labels", a.Unmatched, "No Finding", "Edema", "Fracture")
	s := r.Images[0].Scores
	if len(s) != len(classify.Findings)+2 || s["effusion"] != max(s["effusion right"], s["effusion left"]) {
		t.Errorf("scores %v", s)
	}
	if f := r.FID["classifier"]; f == nil || f.Dim != 8 || r.Memorization["classifier"] == nil {
		t.Errorf("classifier feature space: FID %+v", f)
	}
	if !strings.Contains(summary, "Adherence:  classifier") {
		t.Errorf("summary:\n%s", summary)
	}
	doc, files := checkReport(t, out)
	hasAll(t, "images", files, "chart_adherence.png", "chart_nearest_classifier.png")
	for _, want := range []string{"AUROC (stated vs rest)", "detected: negated", "Label columns without a matching finding: ", "scores of all 8 generated images"} {
		if !strings.Contains(doc, want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

func TestClassifierErrors(t *testing.T) {
	dir := t.TempDir()
	ims, reps := phantomSet(t, 1, 4, 64)
	realDir, genDir, plain := filepath.Join(dir, "real"), filepath.Join(dir, "gen"), filepath.Join(dir, "plain")
	writeFolder(t, realDir, ims)
	writeGenerated(t, genDir, ims, reps, 2)
	writeFolder(t, plain, ims)
	out := filepath.Join(dir, "out")
	corrupt := filepath.Join(dir, "corrupt.safetensors")
	os.WriteFile(corrupt, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json at all"), 0o644)
	good := filepath.Join(dir, "tiny.safetensors")
	tinyClassifier(t, good)
	missing := filepath.Join(dir, "nope.safetensors")
	for _, c := range []struct {
		gen, classifier string
		want            []string
	}{
		{genDir, missing, []string{missing, "no such file", "classify"}},
		{genDir, corrupt, []string{corrupt}},
		{genDir, "builtin:phantom", []string{"builtin:phantom", "embeds no trained findings classifier"}},
		// No label columns at all, and none that matches: both sides listed.
		{plain, good, []string{"label columns: none", `"effusion right"`, `"support devices"`}},
	} {
		got := runFail(t, "-real", realDir, "-gen", c.gen, "-out", out, "-size", "64", "-classifier", c.classifier)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("-classifier %s: error %q, want it to mention %q", c.classifier, got, w)
			}
		}
	}
	man, _ := os.ReadFile(filepath.Join(genDir, "manifest.jsonl"))
	var other bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(man))
	for sc.Scan() {
		var row map[string]any
		json.Unmarshal(sc.Bytes(), &row)
		row["labels"] = map[string]string{"Sex": "F", "Edema": "1"}
		line, _ := json.Marshal(row)
		other.Write(append(line, '\n'))
	}
	os.WriteFile(filepath.Join(genDir, "manifest.jsonl"), other.Bytes(), 0o644)
	got := runFail(t, "-real", realDir, "-gen", genDir, "-out", out, "-size", "64", "-classifier", good)
	for _, w := range []string{`label columns: ["Edema" "Sex"]`, `"cardiomegaly"`} {
		if !strings.Contains(got, w) {
			t.Errorf("unmatched labels: error %q, want it to mention %q", got, w)
		}
	}
	// With -prompts the labels are checked before anything is generated.
	prompts := filepath.Join(dir, "prompts.csv")
	os.WriteFile(prompts, []byte("id,prompt,Sex\na,left pleural effusion,F\n"), 0o644)
	newGen := filepath.Join(dir, "newgen")
	got = runFail(t, "-real", realDir, "-gen", newGen, "-out", out, "-size", "64", "-classifier", good,
		"-prompts", prompts, "-model", "builtin:tiny-random", "-steps", "1", "-per-prompt", "1")
	if !strings.Contains(got, `label columns: ["Sex"]`) {
		t.Errorf("-prompts with unmatched labels: error %q", got)
	}
	if _, err := os.Stat(newGen); err == nil {
		t.Errorf("%s was created before the labels were checked", newGen)
	}
}

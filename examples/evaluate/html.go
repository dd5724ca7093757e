package main

import (
	"bytes"
	"fmt"
	"html/template"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/internal/chart"
)

// reportHTML is the HTML report's file name in -out.
const reportHTML = "report.html"

// gridMax is the most images of one prompt group drawn in its grid.
const gridMax = 8

// maxImageRows is the most generated images listed one per row in the
// report's per-image tables (evaluation.json lists them all).
const maxImageRows = 1000

// value is one value shown in the report. A number carries where it is in
// evaluation.json (Key, a JSON pointer such as "/fid/inception/fid") and
// the value as stored there (Exact: the shortest decimal that reads back
// as the same float64, or "null"), shown on hover; Text is how it reads.
type value struct {
	// Text is the value as shown; Key its JSON pointer into
	// evaluation.json ("" for text); Exact its value there.
	Text, Key, Exact string
}

// cell is one table cell: a value, or a list of them (Items).
type cell struct {
	value
	// Num right-aligns the cell.
	Num bool
	// Items, when set, are shown one per line instead of the value.
	Items []value
}

// table is a table of cells under a header row.
type table struct {
	// Head are the column titles; Rows the cells, row by row.
	Head []string
	Rows [][]cell
}

// figure is an image file of the report folder.
type figure struct {
	// Src is the file, relative to the report; Alt its text alternative;
	// Caption the text under it.
	Src, Alt, Caption string
	// W and H are its size in pixels.
	W, H int
}

// block is one element of a section, drawn in this order: a heading, a
// paragraph, a figure, a table (folded under a <details> element whose
// summary is Details, when set).
type block struct {
	// Heading is an <h3> title; Para a paragraph.
	Heading, Para string
	// Figure is an image with its caption.
	Figure *figure
	// Table is a table; Details, when set, folds it under that summary.
	Table   *table
	Details string
}

// section is one part of the report.
type section struct {
	// ID is the anchor; Title the <h2> title; Absent, when set, says why
	// the section's data is missing (shown before Blocks, usually none).
	ID, Title, Absent string
	// Blocks are the section's content, in order.
	Blocks []block
}

// page is the whole report.
type page struct {
	// Title is the page's title; Summary the text of summary.txt.
	Title   string
	Summary string
	// Sections are the report's parts, in order.
	Sections []section
}

// pageTemplate is the report's HTML. It needs no script, no style sheet
// and no image outside the report's folder.
var pageTemplate = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="roentgo evaluate">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; } h3 { margin-top: 1.5em; }
pre { background: #f5f5f5; padding: .8em; overflow-x: auto; font-size: .9em; }
nav ul { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4em 1.2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #d0d0d0; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #eef2f6; }
td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; image-rendering: auto; }
figcaption { font-size: .9em; color: #444; max-width: 60em; }
.absent { color: #555; font-style: italic; }
footer { margin-top: 3em; font-size: .85em; color: #666; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<pre>{{.Summary}}</pre>
<nav><ul>{{range .Sections}}<li><a href="#{{.ID}}">{{.Title}}</a></li>{{end}}</ul></nav>
{{range .Sections}}
<section id="{{.ID}}">
<h2>{{.Title}}</h2>
{{if .Absent}}<p class="absent">{{.Absent}}</p>
{{end}}{{range .Blocks}}{{template "block" .}}{{end}}</section>
{{end}}
<footer>Written by roentgo evaluate beside evaluation.json, which holds every number at full precision (hover over a number to see it). The figures are files of this folder.</footer>
</body>
</html>
{{define "block"}}{{with .Heading}}<h3>{{.}}</h3>
{{end}}{{with .Para}}<p>{{.}}</p>
{{end}}{{with .Figure}}<figure><img src="{{.Src}}" alt="{{.Alt}}" width="{{.W}}" height="{{.H}}"><figcaption>{{.Caption}}</figcaption></figure>
{{end}}{{with .Table}}{{if $.Details}}<details><summary>{{$.Details}}</summary>
{{end}}<div class="scroll"><table>
<thead><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .}}{{template "cell" .}}{{end}}</tr>
{{end}}</tbody>
</table></div>
{{if $.Details}}</details>
{{end}}{{end}}{{end}}
{{define "cell"}}{{if .Items}}<td>{{range $i, $v := .Items}}{{if $i}}<br>{{end}}{{if $v.Key}}<span data-key="{{$v.Key}}" title="{{$v.Exact}}">{{$v.Text}}</span>{{else}}{{$v.Text}}{{end}}{{end}}</td>{{else if .Key}}<td class="n" data-key="{{.Key}}" title="{{.Exact}}">{{.Text}}</td>{{else if .Num}}<td class="n">{{.Text}}</td>{{else}}<td>{{.Text}}</td>{{end}}{{end}}
`))

// ptr returns the JSON pointer (RFC 6901) of the path parts.
func ptr(parts ...any) string {
	var b strings.Builder
	for _, p := range parts {
		s := fmt.Sprint(p)
		s = strings.ReplaceAll(s, "~", "~0")
		s = strings.ReplaceAll(s, "/", "~1")
		b.WriteString("/" + s)
	}
	return b.String()
}

func exactFloat(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "null"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// text is a cell of text.
func text(s string) cell { return cell{value: value{Text: s}} }

// numCell is a number shown with 4 significant digits ("–" when undefined).
func numCell(key string, v float64) cell {
	t := "–"
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		t = strconv.FormatFloat(v, 'g', 4, 64)
		if a := math.Abs(v); a >= 1e4 && a < 1e9 {
			t = strconv.FormatFloat(v, 'f', 0, 64)
		}
	}
	return cell{value: value{Text: t, Key: key, Exact: exactFloat(v)}, Num: true}
}

// fixedCell is a number shown with 4 decimals (similarities, AUROCs).
func fixedCell(key string, v float64) cell {
	c := numCell(key, v)
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		c.Text = strconv.FormatFloat(v, 'f', 4, 64)
	}
	return c
}

// pctCell is a fraction shown as a percentage.
func pctCell(key string, v float64) cell {
	c := numCell(key, v)
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		c.Text = strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
	}
	return c
}

// intCell is an integer.
func intCell(key string, v int) cell {
	s := strconv.Itoa(v)
	return cell{value: value{Text: s, Key: key, Exact: s}, Num: true}
}

// boolCell is true or false.
func boolCell(key string, v bool) cell {
	s := strconv.FormatBool(v)
	return cell{value: value{Text: map[bool]string{true: "yes", false: "no"}[v], Key: key, Exact: s}}
}

// reportFiles are the images written for the report.
type reportFiles struct {
	grids     []string
	gridSizes []image.Point
	charts    map[string]*figure // by name: msssim, adherence, nearest_SPACE
}

// htmlContext is what the report needs beyond evaluation.json: the options
// and the generated set's groups.
type htmlContext struct {
	o      *options
	rep    *report
	items  []item
	groups []group
	exts   []*extractor
}

// writeHTMLReport writes report.html with its charts and image grids into
// the output folder.
func writeHTMLReport(c *htmlContext) error {
	out := c.o.out
	files := &reportFiles{charts: map[string]*figure{}}
	drawn := c.groups[:min(len(c.groups), c.o.reportGroups)]
	var err error
	if files.grids, files.gridSizes, err = writeGrids(out, c.items, drawn, c.o.tile, c.o.workers); err != nil {
		return fmt.Errorf("writing the report's image grids: %w", err)
	}
	if err := c.writeCharts(files); err != nil {
		return fmt.Errorf("writing the report's charts: %w", err)
	}
	p, err := c.page(files)
	if err != nil {
		return fmt.Errorf("writing %s: %w", reportHTML, err)
	}
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		return fmt.Errorf("writing %s: %w", reportHTML, err)
	}
	return atomicfile.WriteFile(filepath.Join(out, reportHTML), buf.Bytes())
}

// nearestValues returns each generated image's nearest similarity in space.
func nearestValues(r *report, space string) []float64 {
	var vals []float64
	for _, im := range r.Images {
		if nb := im.Nearest[space]; len(nb) > 0 && !math.IsNaN(float64(nb[0].Similarity)) {
			vals = append(vals, float64(nb[0].Similarity))
		}
	}
	return vals
}

// findingNames returns the adherence findings, sorted.
func findingNames(a *adherenceResult) []string {
	var names []string
	for k := range a.Findings {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// writeCharts draws the charts the data allows.
func (c *htmlContext) writeCharts(files *reportFiles) error {
	r := c.rep
	save := func(name string, w, h float64, caption, alt string, mk func() (*plot.Plot, error)) error {
		pl, err := mk()
		if err != nil {
			return err
		}
		file := "chart_" + name + ".png"
		sz, err := chart.WritePNG(pl, w, h, filepath.Join(c.o.out, file))
		if err != nil {
			return err
		}
		files.charts[name] = &figure{Src: file, Alt: alt, Caption: caption, W: sz.X, H: sz.Y}
		return nil
	}
	if d := r.Diversity; d != nil {
		var vals []float64
		for _, g := range d.PerGroup {
			if v := float64(g.MSSSIM); !math.IsNaN(v) {
				vals = append(vals, v)
			}
		}
		if len(vals) > 0 {
			err := save("msssim", 6, 3.5, fmt.Sprintf("Within-prompt MS-SSIM of %d prompt groups (mean over each group's image pairs; lower is more diverse); the line is the mean.", len(vals)),
				"histogram of the within-prompt MS-SSIM values", func() (*plot.Plot, error) {
					return histogramPlot("Within-prompt MS-SSIM", "MS-SSIM", vals, []marker{{float64(d.MSSSIM), "mean", colLine, false}})
				})
			if err != nil {
				return err
			}
		}
	}
	for _, s := range sortedSpaces(r.Memorization) {
		m := r.Memorization[s]
		vals := nearestValues(r, s)
		if len(vals) == 0 {
			continue
		}
		marks := []marker{{m.Threshold, fmt.Sprintf("threshold %.3g", m.Threshold), colLine, false}}
		if b := m.RealBaseline; b != nil {
			marks = append(marks, marker{float64(b.Median), "real vs real median", colLine2, true})
		}
		err := save("nearest_"+s, 6, 3.5, fmt.Sprintf("Similarity (%s) of each of %d generated images to its nearest real image in %s; the red line is the near-copy threshold, the dashed one the median of each real image's nearest other real image.", m.Similarity, len(vals), s),
			"histogram of the nearest-neighbour similarity in "+s, func() (*plot.Plot, error) {
				return histogramPlot("Nearest real image: "+s, m.Similarity, vals, marks)
			})
		if err != nil {
			return err
		}
	}
	if a := r.Adherence; a != nil && len(a.Findings) > 0 {
		names := findingNames(a)
		h := 1.6 + 0.32*float64(len(names))
		err := save("adherence", 7, h, "Fraction of generated images on which the classifier detects each finding, among those whose prompt states it, negates it or omits it (an undefined rate, without such images, is drawn as 0; see the table).",
			"bar chart of the detection rates per finding", func() (*plot.Plot, error) { return adherencePlot(a, names) })
		if err != nil {
			return err
		}
	}
	return nil
}

// pngSize returns the size of a PNG file.
func pngSize(path string) (image.Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return image.Point{}, err
	}
	defer f.Close()
	cfg, err := png.DecodeConfig(f)
	if err != nil {
		return image.Point{}, fmt.Errorf("%s: %w", path, err)
	}
	return image.Pt(cfg.Width, cfg.Height), nil
}

// page builds the report's content.
func (c *htmlContext) page(files *reportFiles) (*page, error) {
	var sb strings.Builder
	writeSummary(&sb, c.rep)
	p := &page{Title: "roentgo evaluation: " + c.rep.Settings.Generated + " against " + c.rep.Settings.Real, Summary: sb.String()}
	mem, err := c.memoSection(files)
	if err != nil {
		return nil, err
	}
	p.Sections = []section{c.settingsSection(), c.fidSection(), c.diversitySection(files), c.gridsSection(files),
		c.adherenceSection(files), mem, c.timingsSection(), c.notesSection(), c.cacheSection()}
	return p, nil
}

// row is a table row of a label and a value.
func row(label string, v cell) []cell { return []cell{text(label), v} }

func (c *htmlContext) settingsSection() section {
	r, s := c.rep, c.rep.Settings
	k := func(name string) string { return ptr("settings", name) }
	rows := [][]cell{
		row("real images (-real)", text(s.Real)),
		row("generated images (-gen)", text(s.Generated)),
	}
	if len(s.Manifest) > 0 {
		rows = append(rows, row("manifest", text(strings.Join(s.Manifest, ", "))))
	}
	rows = append(rows, row("prompt groups from", text(s.Grouping)),
		row("image size (-size), pixels", intCell(k("size"), s.Size)))
	for _, e := range sortedSpaces(s.Extractors) {
		w := s.Extractors[e]
		if w == "" {
			w = "(no weights)"
		}
		rows = append(rows, row("feature space "+e, text(w)))
	}
	seed := strconv.FormatUint(s.Seed, 10)
	rows = append(rows,
		row("pixels feature side (-pixels-size)", intCell(k("pixels_size"), s.PixelsSize)),
		row("KID subsets (-kid-subsets)", intCell(k("kid_subsets"), s.KIDSubsets)),
		row("KID subset size (-kid-subset-size)", intCell(k("kid_subset_size"), s.KIDSubsetSize)),
		row("KID seed (-seed)", cell{value: value{Text: seed, Key: k("seed"), Exact: seed}, Num: true}),
		row("images per group for MS-SSIM (-group-size; 0: all)", intCell(k("group_size"), s.GroupSize)),
		row("thumbnail side for pixel correlation (-memo-size)", intCell(k("memo_size"), s.MemoSize)),
		row("near-copy threshold, features (-memo-threshold)", numCell(k("memo_threshold"), s.MemoThreshold)),
		row("near-copy threshold, pixel correlation (-memo-pixel-threshold)", numCell(k("memo_pixel_threshold"), s.MemoPixelThreshold)),
		row("nearest real images listed (-neighbors)", intCell(k("neighbors"), s.Neighbors)),
		row("detection threshold (-adherence-threshold)", numCell(k("adherence_threshold"), s.AdherenceThreshold)))
	if g := s.Generation; g != nil {
		gk := func(name string) string { return ptr("settings", "generation", name) }
		gseed := strconv.FormatUint(g.Seed, 10)
		rows = append(rows,
			row("generated by: model", text(g.Model)),
			row("generated by: prompt file", text(g.Prompts)),
			row("generated by: images per prompt", intCell(gk("per_prompt"), g.PerPrompt)),
			row("generated by: steps", intCell(gk("steps"), g.Steps)),
			row("generated by: guidance", numCell(gk("guidance"), g.Guidance)),
			row("generated by: scheduler", text(g.Scheduler)),
			row("generated by: first seed", cell{value: value{Text: gseed, Key: gk("seed"), Exact: gseed}, Num: true}))
	}
	rows = append(rows, row("report image grids (-report-groups, -tile)",
		text(fmt.Sprintf("first %d prompt groups, up to %d images each, %d pixels a side", c.o.reportGroups, gridMax, c.o.tile))),
		row("evaluation.json version", intCell("/version", r.Version)))
	counts := [][]cell{
		row("real images", intCell("/counts/real", r.Counts.Real)),
		row("generated images", intCell("/counts/generated", r.Counts.Generated)),
		row("prompt groups", intCell("/counts/groups", r.Counts.Groups)),
	}
	return section{ID: "settings", Title: "Settings", Blocks: []block{
		{Table: &table{Head: []string{"setting", "value"}, Rows: rows}},
		{Heading: "Counts", Table: &table{Head: []string{"", "images"}, Rows: counts}},
	}}
}

func (c *htmlContext) fidSection() section {
	r := c.rep
	sec := section{ID: "fid", Title: "FID and KID"}
	spaces := map[string]bool{}
	for k := range r.FID {
		spaces[k] = true
	}
	for k := range r.KID {
		spaces[k] = true
	}
	if len(spaces) == 0 {
		if len(c.exts) == 0 {
			sec.Absent = "No feature extractor ran, so there is no FID or KID: give -inception, -xrv, -clip or -classifier weights, or -features pixels for the weight-free sanity check (docs/EVALUATION.md says where to get the weights)."
		} else {
			sec.Absent = "FID and KID need at least 2 images in each set."
		}
		return sec
	}
	var rows [][]cell
	for _, s := range sortedSpaces(spaces) {
		cells := []cell{text(s)}
		if f := r.FID[s]; f != nil {
			k := func(n string) string { return ptr("fid", s, n) }
			cells = append(cells, intCell(k("dim"), f.Dim), numCell(k("fid"), float64(f.FID)), numCell(k("mean_term"), float64(f.MeanTerm)),
				numCell(k("trace_sqrt"), float64(f.TraceSqrt)), text(f.Method), boolCell(k("eps_added"), f.EpsAdded))
		} else {
			cells = append(cells, text("–"), text("–"), text("–"), text("–"), text("–"), text("–"))
		}
		if q := r.KID[s]; q != nil {
			k := func(n string) string { return ptr("kid", s, n) }
			cells = append(cells, numCell(k("kid"), float64(q.KID)), numCell(k("std"), float64(q.Std)),
				intCell(k("subset_size"), q.SubsetSize), intCell(k("subsets"), q.Subsets))
		} else {
			cells = append(cells, text("–"), text("–"), text("–"), text("–"))
		}
		rows = append(rows, cells)
	}
	sec.Blocks = []block{
		{Para: "Fréchet distance (FID) between the Gaussians fitted to the real and the generated images' features, and the kernel inception distance (KID: unbiased MMD² with the cubic polynomial kernel, mean and standard deviation over random subsets), per feature space. Lower is closer to the real images. FID = mean term + trace term (tr Σr + tr Σg − 2 tr √(Σr Σg))."},
		{Table: &table{Head: []string{"space", "dim", "FID", "mean term", "trace term", "method", "ε added", "KID", "KID std", "KID subset size", "KID subsets"}, Rows: rows}},
	}
	return sec
}

func (c *htmlContext) diversitySection(files *reportFiles) section {
	sec := section{ID: "diversity", Title: "Diversity (within-prompt MS-SSIM)"}
	d := c.rep.Diversity
	if d == nil {
		switch {
		case !c.o.diversity:
			sec.Absent = "Not computed: -diversity=false."
		default:
			sec.Absent = fmt.Sprintf("Not computed: MS-SSIM's 5 scales need images larger than 160 pixels (-size %d).", c.o.size)
		}
		return sec
	}
	k := func(n string) string { return ptr("diversity", n) }
	sec.Blocks = append(sec.Blocks,
		block{Para: "MS-SSIM (data range 1) over all pairs of each prompt group's first images, as RoentGen measures diversity: the mean over groups with at least 2 images. Lower is more diverse; 1 means identical images."},
		block{Table: &table{Head: []string{"MS-SSIM (mean over groups)", "std", "groups", "skipped (fewer than 2 images)", "images per group (0: all)"},
			Rows: [][]cell{{numCell(k("ms_ssim"), float64(d.MSSSIM)), numCell(k("std"), float64(d.Std)), intCell(k("groups"), d.Groups),
				intCell(k("skipped"), d.Skipped), intCell(k("group_size"), d.GroupSize)}}}})
	if f := files.charts["msssim"]; f != nil {
		sec.Blocks = append(sec.Blocks, block{Figure: f})
	} else {
		sec.Blocks = append(sec.Blocks, block{Para: "No prompt group has 2 or more images, so there is no MS-SSIM histogram (groups come from the manifest's id, or from file names ID_K)."})
	}
	var rows [][]cell
	for i, g := range d.PerGroup {
		pk := func(n string) string { return ptr("diversity", "per_group", i, n) }
		rows = append(rows, []cell{text(g.Group), text(g.Prompt), intCell(pk("images"), g.Images), fixedCell(pk("ms_ssim"), float64(g.MSSSIM))})
	}
	b := block{Heading: "Per prompt group", Table: &table{Head: []string{"group", "prompt", "images", "MS-SSIM"}, Rows: rows}}
	if len(rows) > 30 {
		b.Details = fmt.Sprintf("MS-SSIM of each of the %d prompt groups", len(rows))
	}
	sec.Blocks = append(sec.Blocks, b)
	return sec
}

func (c *htmlContext) gridsSection(files *reportFiles) section {
	sec := section{ID: "grids", Title: "Generated images by prompt"}
	if c.o.reportGroups == 0 {
		sec.Absent = "No image grids: -report-groups 0."
		return sec
	}
	sec.Blocks = append(sec.Blocks, block{Para: fmt.Sprintf("The first %d of %d prompt groups, up to %d images each (files grids/group_NNNN.png).",
		len(files.grids), len(c.groups), gridMax)})
	for i, f := range files.grids {
		g := c.groups[i]
		capt := fmt.Sprintf("%s, %d images", g.key, g.n)
		if g.n > gridMax {
			capt = fmt.Sprintf("%s, the first %d of %d images", g.key, gridMax, g.n)
		}
		if d := c.rep.Diversity; d != nil && i < len(d.PerGroup) && !math.IsNaN(float64(d.PerGroup[i].MSSSIM)) {
			capt += fmt.Sprintf(", MS-SSIM %.4f", float64(d.PerGroup[i].MSSSIM))
		}
		if g.prompt != "" {
			capt += ": " + g.prompt
		}
		alt := "generated images of prompt group " + g.key
		if g.prompt != "" {
			alt += ": " + g.prompt
		}
		sec.Blocks = append(sec.Blocks, block{Figure: &figure{Src: f, Alt: alt, Caption: capt, W: files.gridSizes[i].X, H: files.gridSizes[i].Y}})
	}
	return sec
}

func (c *htmlContext) adherenceSection(files *reportFiles) section {
	r := c.rep
	sec := section{ID: "adherence", Title: "Prompt adherence"}
	e := adherenceExtractor(c.exts)
	a := r.Adherence
	switch {
	case e == nil:
		sec.Absent = "No classifier ran, so prompt adherence is not measured: give -xrv (XRV DenseNet-121, for chest radiographs) or -classifier (a phantom/classify model, for phantoms)."
		return sec
	case a == nil:
		sec.Absent = fmt.Sprintf("The generated images have no label columns naming the %s's findings (labels come from the generate manifest's label columns), so there is nothing to compare its scores with.", describeClassifier(e.name))
	default:
		k := func(n string) string { return ptr("adherence", n) }
		sec.Blocks = append(sec.Blocks,
			block{Para: fmt.Sprintf("The %s's score on every generated image against its prompt's labels (CheXpert values: 1 stated, 0 negated, empty omitted, -1 uncertain and left out). A finding is detected at a score at or above the threshold. AUROC separates images whose prompt states the finding from the others (and from those that negate it) by the score.", describeClassifier(a.Classifier))},
			block{Table: &table{Head: []string{"classifier", "threshold", "mean AUROC"},
				Rows: [][]cell{{text(a.Classifier), numCell(k("threshold"), a.Threshold), fixedCell(k("mean_auroc"), float64(a.MeanAUROC))}}}})
		if len(a.Unmatched) > 0 {
			sec.Blocks = append(sec.Blocks, block{Para: "Label columns without a matching finding: " + strings.Join(a.Unmatched, ", ") + "."})
		}
		if f := files.charts["adherence"]; f != nil {
			sec.Blocks = append(sec.Blocks, block{Figure: f})
		}
		var rows [][]cell
		for _, n := range findingNames(a) {
			f := a.Findings[n]
			fk := func(x string) string { return ptr("adherence", "findings", n, x) }
			rows = append(rows, []cell{text(n), text(f.Label), intCell(fk("stated"), f.Stated), intCell(fk("negated"), f.Negated),
				intCell(fk("omitted"), f.Omitted), intCell(fk("uncertain"), f.Uncertain),
				pctCell(fk("rate_stated"), float64(f.RateStated)), pctCell(fk("rate_negated"), float64(f.RateNegated)), pctCell(fk("rate_omitted"), float64(f.RateOmitted)),
				fixedCell(fk("auroc"), float64(f.AUROC)), fixedCell(fk("auroc_vs_negated"), float64(f.AUROCNegated)),
				fixedCell(fk("mean_score_stated"), float64(f.MeanStated)), fixedCell(fk("mean_score_not_stated"), float64(f.MeanNotStated))})
		}
		sec.Blocks = append(sec.Blocks, block{Heading: "Per finding", Table: &table{Head: []string{"finding", "label column",
			"stated", "negated", "omitted", "uncertain", "detected: stated", "detected: negated", "detected: omitted",
			"AUROC (stated vs rest)", "AUROC (stated vs negated)", "mean score: stated", "mean score: not stated"}, Rows: rows}})
	}
	// Every image's scores.
	head := append([]string{"image", "group"}, e.classes...)
	var rows [][]cell
	for i, im := range r.Images {
		if i == maxImageRows || im.Scores == nil {
			break
		}
		cells := []cell{text(im.File), text(im.Group)}
		for _, cl := range e.classes {
			cells = append(cells, fixedCell(ptr("images", i, "scores", cl), float64(im.Scores[cl])))
		}
		rows = append(rows, cells)
	}
	if len(rows) > 0 {
		sec.Blocks = append(sec.Blocks, block{Table: &table{Head: head, Rows: rows},
			Details: fmt.Sprintf("The %s's scores of %s generated images", describeClassifier(e.name), firstOf(len(rows), len(r.Images)))})
	}
	return sec
}

// describeClassifier names the classifier of an extractor.
func describeClassifier(name string) string {
	switch name {
	case "xrv":
		return "XRV DenseNet-121 (-xrv)"
	case "classifier":
		return "phantom/classify findings classifier (-classifier)"
	}
	return name + " classifier"
}

// firstOf says "all N" or "the first n of N".
func firstOf(n, total int) string {
	if n == total {
		return fmt.Sprintf("all %d", total)
	}
	return fmt.Sprintf("the first %d of %d", n, total)
}

func (c *htmlContext) memoSection(files *reportFiles) (section, error) {
	r := c.rep
	sec := section{ID: "memorization", Title: "Memorisation"}
	spaces := sortedSpaces(r.Memorization)
	if len(spaces) == 0 {
		sec.Absent = "No nearest-neighbour analysis was made."
		return sec, nil
	}
	var rows [][]cell
	for _, s := range spaces {
		m := r.Memorization[s]
		k := func(n string) string { return ptr("memorization", s, n) }
		cells := []cell{text(s), text(m.Similarity), numCell(k("threshold"), m.Threshold), intCell(k("above"), m.Above),
			pctCell(k("fraction"), float64(m.Fraction)), fixedCell(k("mean"), float64(m.Mean)), fixedCell(k("median"), float64(m.Median)), fixedCell(k("max"), float64(m.Max))}
		if b := m.RealBaseline; b != nil {
			bk := func(n string) string { return ptr("memorization", s, "real_baseline", n) }
			cells = append(cells, intCell(bk("above"), b.Above), pctCell(bk("fraction"), float64(b.Fraction)),
				fixedCell(bk("mean"), float64(b.Mean)), fixedCell(bk("median"), float64(b.Median)), fixedCell(bk("max"), float64(b.Max)))
		} else {
			cells = append(cells, text("–"), text("–"), text("–"), text("–"), text("–"))
		}
		rows = append(rows, cells)
	}
	sec.Blocks = append(sec.Blocks,
		block{Para: "Each generated image's nearest real image, by Pearson correlation of small grayscale thumbnails (pixel_correlation) and by cosine similarity in each feature space. A near copy is a generated image whose nearest real image is at or above the threshold. The real-vs-real columns are the same summary for each real image's nearest other real image: what \"close\" means between distinct training images."},
		block{Table: &table{Head: []string{"space", "similarity", "threshold", "near copies", "fraction", "mean", "median", "max",
			"real vs real: near copies", "fraction", "mean", "median", "max"}, Rows: rows}})
	for _, s := range spaces {
		m := r.Memorization[s]
		sec.Blocks = append(sec.Blocks, block{Heading: s})
		if f := files.charts["nearest_"+s]; f != nil {
			sec.Blocks = append(sec.Blocks, block{Figure: f})
		}
		if len(m.Closest) == 0 {
			sec.Blocks = append(sec.Blocks, block{Para: "No closest pairs listed (-pairs 0)."})
			continue
		}
		var pr [][]cell
		for i, p := range m.Closest {
			pr = append(pr, []cell{intCell("", i+1), text(p.Generated), text(p.Real), fixedCell(ptr("memorization", s, "closest", i, "similarity"), float64(p.Similarity))})
		}
		sec.Blocks = append(sec.Blocks, block{Table: &table{Head: []string{"rank", "generated", "nearest real", m.Similarity}, Rows: pr}})
		if m.Sheet != "" {
			sz, err := pngSize(filepath.Join(c.o.out, m.Sheet))
			if err != nil {
				return sec, err
			}
			sec.Blocks = append(sec.Blocks, block{Figure: &figure{Src: m.Sheet, Alt: "closest generated and real pairs in " + s, W: sz.X, H: sz.Y,
				Caption: fmt.Sprintf("The %d closest pairs in %s: generated image left, its nearest real image right, most similar first (%s).", len(m.Closest), s, m.Sheet)}})
		}
	}
	// Every image's nearest real images.
	var ir [][]cell
	for i, im := range r.Images {
		if i == maxImageRows {
			break
		}
		cells := []cell{text(im.File), text(im.Group)}
		for _, s := range spaces {
			var items []value
			for j, nb := range im.Nearest[s] {
				v := fixedCell(ptr("images", i, "nearest", s, j, "similarity"), float64(nb.Similarity)).value
				v.Text += " " + nb.Real
				items = append(items, v)
			}
			if len(items) == 0 {
				items = []value{{Text: "–"}}
			}
			cells = append(cells, cell{Items: items})
		}
		ir = append(ir, cells)
	}
	if len(ir) > 0 {
		sec.Blocks = append(sec.Blocks, block{Heading: "Per generated image",
			Table:   &table{Head: append([]string{"image", "group"}, spaces...), Rows: ir},
			Details: fmt.Sprintf("Nearest real images of %s generated images", firstOf(len(ir), len(r.Images)))})
	}
	return sec, nil
}

func (c *htmlContext) timingsSection() section {
	t := c.rep.Timings
	k := func(n string) string { return ptr("timings", n) }
	rows := [][]cell{row("total, s", numCell(k("total_s"), t.TotalS))}
	if t.GenerateS != 0 {
		rows = append(rows, row("generating, s", numCell(k("generate_s"), t.GenerateS)))
	}
	rows = append(rows, row("real images, s", numCell(k("real_s"), t.RealS)),
		row("generated images, s", numCell(k("generated_s"), t.GeneratedS)),
		row("metrics, s", numCell(k("metrics_s"), t.MetricsS)),
		row("images per second (both sets, without generating)", numCell(k("images_per_s"), t.ImagesPerSecond)))
	return section{ID: "timings", Title: "Timings", Blocks: []block{{Table: &table{Head: []string{"", "value"}, Rows: rows}}}}
}

func (c *htmlContext) notesSection() section {
	sec := section{ID: "notes", Title: "Notes"}
	if len(c.rep.Notes) == 0 {
		sec.Absent = "No notes: nothing was skipped or replaced."
		return sec
	}
	for _, n := range c.rep.Notes {
		sec.Blocks = append(sec.Blocks, block{Para: n})
	}
	return sec
}

func (c *htmlContext) cacheSection() section {
	sec := section{ID: "cache", Title: "Cache"}
	if len(c.rep.Cache) == 0 {
		sec.Absent = "No -cache folder: every feature was computed."
		return sec
	}
	var rows [][]cell
	for _, set := range []string{"real", "generated"} {
		m := c.rep.Cache[set]
		var whats []string
		for w := range m {
			whats = append(whats, w)
		}
		sort.Strings(whats)
		for _, w := range whats {
			rows = append(rows, []cell{text(set), text(w), text(m[w].File), boolCell(ptr("cache", set, w, "hit"), m[w].Hit)})
		}
	}
	sec.Blocks = []block{{Table: &table{Head: []string{"set", "computation", "file", "hit"}, Rows: rows}}}
	return sec
}

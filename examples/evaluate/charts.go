package main

import (
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/internal/atomicfile"
)

// Chart colours.
var (
	colStated  = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colNegated = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colOmitted = color.RGBA{R: 0xa0, G: 0xa0, B: 0xa0, A: 0xff}
	colHist    = color.RGBA{R: 0x9e, G: 0xc5, B: 0xe6, A: 0xff}
	colLine    = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colLine2   = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
)

// marker is a vertical line drawn over a histogram, with its legend entry.
type marker struct {
	x      float64
	label  string
	col    color.Color
	dashed bool
}

// histogramPlot returns a histogram of vals (finite values only; at least
// one) with vertical markers. The bins span the values' range (widened
// around a single value), about 2·sqrt(n) of them, between 10 and 50.
func histogramPlot(title, xlabel string, vals []float64, marks []marker) (*plot.Plot, error) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
	}
	if !(hi-lo > 1e-6) {
		lo, hi = lo-0.005, hi+0.005
	}
	n := min(max(int(math.Ceil(2*math.Sqrt(float64(len(vals))))), 10), 50)
	w := (hi - lo) / float64(n)
	bins := make([]plotter.HistogramBin, n)
	for i := range bins {
		bins[i].Min, bins[i].Max = lo+float64(i)*w, lo+float64(i+1)*w
	}
	top := 0.0
	for _, v := range vals {
		b := min(max(int((v-lo)/w), 0), n-1)
		bins[b].Weight++
		top = max(top, bins[b].Weight)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "count"
	p.Add(plotter.NewGrid())
	h := &plotter.Histogram{Bins: bins, Width: w, FillColor: colHist, LineStyle: plotter.DefaultLineStyle}
	h.LineStyle.Width = vg.Points(0.5)
	p.Add(h)
	for _, m := range marks {
		if math.IsNaN(m.x) || math.IsInf(m.x, 0) {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: m.x, Y: 0}, {X: m.x, Y: top * 1.05}})
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color = m.col
		l.LineStyle.Width = vg.Points(1.5)
		if m.dashed {
			l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(m.label, l)
	}
	p.Legend.Top = true
	// Room above the bars for the legend, a margin beside them, and
	// whole counts on the y axis.
	p.Y.Min, p.Y.Max = 0, top*1.35
	pad := 0.03 * (hi - lo)
	p.X.Min, p.X.Max = lo-pad, hi+pad
	for _, m := range marks {
		if !math.IsNaN(m.x) && !math.IsInf(m.x, 0) {
			p.X.Min, p.X.Max = min(p.X.Min, m.x-pad), max(p.X.Max, m.x+pad)
		}
	}
	p.Y.Tick.Marker = wholeTicks{}
	return p, nil
}

// wholeTicks label whole numbers only (for counts): steps of 1, 2 or 5
// times a power of ten, about five of them.
type wholeTicks struct{}

// Ticks returns labelled ticks at the multiples of the step in [lo, hi].
func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 1.0
	for _, m := range []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000} {
		step = m
		if (hi-lo)/m <= 6 {
			break
		}
	}
	for (hi-lo)/step > 6 {
		step *= 10
	}
	var out []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', 0, 64)})
	}
	return out
}

// adherencePlot returns horizontal bars of the detection rates of each
// finding among images whose prompt states, negates or omits it (an
// undefined rate, without such images, is drawn as 0).
func adherencePlot(a *adherenceResult, names []string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Detected (score >= %.3g) by what the prompt says", a.Threshold)
	p.X.Label.Text = "fraction of images"
	p.Add(plotter.NewGrid())
	// NominalY puts the first name at the bottom: reverse, so that the
	// findings read top to bottom in the table's order.
	rev := make([]string, len(names))
	for i, n := range names {
		rev[len(names)-1-i] = n
	}
	const barW = 7
	series := []struct {
		label string
		col   color.Color
		get   func(*findingResult) num
	}{
		{"stated", colStated, func(f *findingResult) num { return f.RateStated }},
		{"negated", colNegated, func(f *findingResult) num { return f.RateNegated }},
		{"omitted", colOmitted, func(f *findingResult) num { return f.RateOmitted }},
	}
	for s, se := range series {
		vals := make(plotter.Values, len(rev))
		for i, n := range rev {
			if v := float64(se.get(a.Findings[n])); !math.IsNaN(v) {
				vals[i] = v
			}
		}
		b, err := plotter.NewBarChart(vals, vg.Points(barW))
		if err != nil {
			return nil, err
		}
		b.Horizontal = true
		b.Color = se.col
		b.LineStyle.Width = 0
		// stated on top of each finding's group, omitted at the bottom.
		b.Offset = vg.Points(float64(1-s) * barW)
		p.Add(b)
		p.Legend.Add(se.label, b)
	}
	p.NominalY(rev...)
	// The findings sit at y = 0 .. n-1; the band above the last one holds
	// the legend.
	p.Y.Min, p.Y.Max = -0.6, float64(len(rev))-0.4+1.2
	p.X.Min, p.X.Max = 0, 1
	p.Legend.Top = true
	return p, nil
}

// gridGap is the white space between and around the tiles of a sheet.
const gridGap = 4

// tileSheet draws rows of tile x tile gray images (values in [0, 1]) on
// white, gridGap pixels apart; the sheet is as wide as its longest row.
func tileSheet(rows [][][]float64, tile int) *image.Gray {
	cols := 0
	for _, r := range rows {
		cols = max(cols, len(r))
	}
	img := image.NewGray(image.Rect(0, 0, cols*(tile+gridGap)+gridGap, len(rows)*(tile+gridGap)+gridGap))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	for r, row := range rows {
		for c, px := range row {
			x0, y0 := gridGap+c*(tile+gridGap), gridGap+r*(tile+gridGap)
			for y := 0; y < tile; y++ {
				for x := 0; x < tile; x++ {
					v := math.Round(min(max(px[y*tile+x], 0), 1) * 255)
					img.Pix[img.PixOffset(x0+x, y0+y)] = uint8(v)
				}
			}
		}
	}
	return img
}

// gridFile is the image grid of the i-th prompt group, relative to -out.
func gridFile(i int) string { return fmt.Sprintf("grids/group_%04d.png", i+1) }

// writeGrids draws the first images (up to gridMax) of each of groups as a
// one-row contact sheet, tile x tile pixels each, into OUT/grids, and
// returns each sheet's file (relative to out) and size.
func writeGrids(out string, items []item, groups []group, tile, workers int) ([]string, []image.Point, error) {
	if len(groups) == 0 {
		return nil, nil, nil
	}
	var sel []item
	for _, g := range groups {
		sel = append(sel, items[g.start:g.start+min(g.n, gridMax)]...)
	}
	// Decode at the next multiple of 8 (the decoder's resolutions), then
	// area-average to the tile.
	res := (tile + 7) / 8 * 8
	ds, err := decodeAll(sel, res, workers)
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Join(out, "grids"), 0o755); err != nil {
		return nil, nil, err
	}
	files := make([]string, len(groups))
	sizes := make([]image.Point, len(groups))
	k := 0
	for i, g := range groups {
		var row [][]float64
		for range min(g.n, gridMax) {
			px := ds[k].gray.Pix
			if res != tile {
				px = areaResize(px, res, res, tile, tile)
			}
			row = append(row, px)
			k++
		}
		img := tileSheet([][][]float64{row}, tile)
		b, err := pipeline.EncodePNG(img, []pipeline.TextChunk{{Key: "software", Value: "roentgo evaluate"},
			{Key: "description", Value: "generated images of prompt group " + strings.ToValidUTF8(g.key, "?")}})
		if err != nil {
			return nil, nil, err
		}
		files[i] = gridFile(i)
		if err := atomicfile.WriteFile(filepath.Join(out, filepath.FromSlash(files[i])), b); err != nil {
			return nil, nil, err
		}
		sizes[i] = img.Bounds().Size()
	}
	return files, sizes, nil
}

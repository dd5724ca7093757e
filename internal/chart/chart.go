// Package chart writes gonum.org/v1/plot charts as PNG files, the one way
// the programs (evaluate's report, train's loss curve) save their plots.
package chart

import (
	"bytes"
	"image"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// WritePNG renders p as a PNG of w x h inches to path, atomically, and
// returns the image's size in pixels.
func WritePNG(p *plot.Plot, w, h float64, path string) (image.Point, error) {
	wt, err := p.WriterTo(vg.Length(w)*vg.Inch, vg.Length(h)*vg.Inch, "png")
	if err != nil {
		return image.Point{}, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return image.Point{}, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(buf.Bytes()))
	if err != nil {
		return image.Point{}, err
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return image.Point{}, err
	}
	return image.Pt(cfg.Width, cfg.Height), nil
}

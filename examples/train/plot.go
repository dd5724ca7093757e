package main

import (
	"image/color"
	"math"

	"github.com/roentgo/roentgo/internal/chart"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// writeLossPNG plots the loss per step (light blue) and its moving average
// over 5% of the steps (dark blue) against the step, on a logarithmic loss
// axis with labelled ticks, a title and a legend (gonum.org/v1/plot), and
// writes the PNG atomically. Steps whose loss is not positive and finite
// are left out (the numbers are all in loss.csv). Nothing is written for
// fewer than 2 such steps.
func writeLossPNG(path string, losses []float64) error {
	var pts plotter.XYs
	for i, l := range losses {
		if l > 0 && !math.IsInf(l, 0) && !math.IsNaN(l) {
			pts = append(pts, plotter.XY{X: float64(i + 1), Y: l})
		}
	}
	if len(pts) < 2 {
		return nil
	}
	k := max(1, len(pts)/20)
	avg := make(plotter.XYs, len(pts))
	sum := 0.0
	for i, p := range pts {
		sum += p.Y
		if i >= k {
			sum -= pts[i-k].Y
		}
		avg[i] = plotter.XY{X: p.X, Y: sum / float64(min(i+1, k))}
	}
	p := plot.New()
	p.Title.Text = "training loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (log scale)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	raw, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	raw.LineStyle.Color = color.RGBA{160, 190, 240, 255}
	raw.LineStyle.Width = vg.Points(0.7)
	smooth, err := plotter.NewLine(avg)
	if err != nil {
		return err
	}
	smooth.LineStyle.Color = color.RGBA{20, 60, 160, 255}
	smooth.LineStyle.Width = vg.Points(1.5)
	p.Add(raw, smooth)
	p.Legend.Add("loss per step", raw)
	p.Legend.Add("moving average", smooth)
	p.Legend.Top = true
	_, err = chart.WritePNG(p, 8, 4, path)
	return err
}

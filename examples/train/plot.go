package main

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"

	"github.com/roentgo/roentgo/diffusion/pipeline"
)

// writeLossPNG draws the loss per step (light blue) and its moving average
// over 5% of the steps (dark blue) on a logarithmic loss axis, with a grid
// line per power of ten, and writes the PNG atomically. It draws no text
// (the numbers are in loss.csv). Nothing is written for fewer than 2 steps.
func writeLossPNG(path string, losses []float64) error {
	var v []float64
	for _, l := range losses {
		if l > 0 && !math.IsInf(l, 0) && !math.IsNaN(l) {
			v = append(v, l)
		}
	}
	if len(v) < 2 {
		return nil
	}
	const W, H, M = 800, 400, 20
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range v {
		lo, hi = min(lo, math.Log10(l)), max(hi, math.Log10(l))
	}
	if hi-lo < 1e-6 {
		lo, hi = lo-0.5, hi+0.5
	}
	x := func(i int) int { return M + int(float64(i)/float64(len(v)-1)*float64(W-2*M)) }
	y := func(l float64) int { return H - M - int((math.Log10(l)-lo)/(hi-lo)*float64(H-2*M)) }
	grid := color.RGBA{220, 220, 220, 255}
	for p := math.Floor(lo); p <= math.Ceil(hi); p++ {
		if p < lo || p > hi {
			continue
		}
		yy := y(math.Pow(10, p))
		for xx := M; xx < W-M; xx++ {
			img.Set(xx, yy, grid)
		}
	}
	axis := color.RGBA{80, 80, 80, 255}
	for xx := M; xx < W-M; xx++ {
		img.Set(xx, H-M, axis)
	}
	for yy := M; yy <= H-M; yy++ {
		img.Set(M, yy, axis)
	}
	line := func(vals []float64, c color.RGBA) {
		for i := 1; i < len(vals); i++ {
			drawLine(img, x(i-1), y(vals[i-1]), x(i), y(vals[i]), c)
		}
	}
	line(v, color.RGBA{160, 190, 240, 255})
	k := max(1, len(v)/20)
	avg := make([]float64, len(v))
	sum := 0.0
	for i, l := range v {
		sum += l
		if i >= k {
			sum -= v[i-k]
		}
		avg[i] = sum / float64(min(i+1, k))
	}
	line(avg, color.RGBA{20, 60, 160, 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(path, buf.Bytes())
}

// drawLine draws a line from (x0, y0) to (x1, y1) (Bresenham).
func drawLine(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

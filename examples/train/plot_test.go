package main

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// writeLossPNG draws a decodable, non-blank PNG from a falling loss with
// unplottable values mixed in, and writes nothing for fewer than 2 plottable
// steps.
func TestWriteLossPNG(t *testing.T) {
	dir := t.TempDir()
	var losses []float64
	for i := 0; i < 200; i++ {
		losses = append(losses, 1/float64(i+1)+0.01*math.Sin(float64(i)))
	}
	losses[5], losses[9], losses[13] = math.NaN(), math.Inf(1), 0
	path := filepath.Join(dir, "loss.png")
	require.NoError(t, writeLossPNG(path, losses))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	b := img.Bounds()
	require.Greater(t, b.Dx(), 400)
	require.Greater(t, b.Dy(), 200)
	// Some pixels are neither white nor transparent: lines, ticks and labels.
	inked := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, a := img.At(x, y).RGBA()
			if a > 0 && (r < 0xf000 || g < 0xf000 || bl < 0xf000) {
				inked++
			}
		}
	}
	require.Greater(t, inked, 500)

	none := filepath.Join(dir, "none.png")
	require.NoError(t, writeLossPNG(none, []float64{0.5, math.NaN(), -1}))
	require.NoFileExists(t, none)
}

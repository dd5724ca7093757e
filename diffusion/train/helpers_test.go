package train

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/stretchr/testify/require"
)

// tinyModel returns the golden tiny SD1 diffusers folder (64x64 images,
// VAE factor 2, a real CLIP tokenizer).
func tinyModel(t testing.TB) string {
	return filepath.Join(testutil.GoldenDir(t), "model", "diffusers")
}

// writeData writes n synthetic 64x64 grayscale "radiographs" with sidecar
// captions into a new folder: even images are bright on the left ("left
// opacity"), odd ones on the right ("right opacity"), with seeded noise.
func writeData(t testing.TB, n int) string {
	return writeDataCaptions(t, n, "left opacity", "right opacity")
}

// writeDataCaptions is writeData with the captions of the two classes.
func writeDataCaptions(t testing.TB, n int, leftCaption, rightCaption string) string {
	dir := t.TempDir()
	r := rand.New(rand.NewSource(1))
	for i := 0; i < n; i++ {
		img := image.NewGray(image.Rect(0, 0, 64, 64))
		left := i%2 == 0
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				v := 40.0
				if (x < 32) == left {
					v = 200
				}
				v += 20 * r.NormFloat64()
				img.SetGray(x, y, color.Gray{Y: uint8(max(0, min(255, v)))})
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img%02d.png", i)))
		require.NoError(t, err)
		require.NoError(t, png.Encode(f, img))
		require.NoError(t, f.Close())
		caption := rightCaption
		if left {
			caption = leftCaption
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("img%02d.txt", i)), []byte(caption), 0o644))
	}
	return dir
}

// testConfig returns a small configuration on the tiny model.
func testConfig(t testing.TB, data string) Config {
	c := DefaultConfig()
	c.Model = tinyModel(t)
	c.Data = data
	c.Out = t.TempDir()
	c.Resolution = 64
	c.Batch = 2
	c.Steps = 4
	c.LR = 1e-3
	c.Workers = 1
	c.Seed = 7
	return c
}

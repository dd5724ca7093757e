package pipeline

import (
	"context"
	"image"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMaskPixels: the mask follows the init image's crop and is sampled at
// pixel centres; luma is PIL's convert("L").
func TestMaskPixels(t *testing.T) {
	m := image.NewGray(image.Rect(0, 0, 8, 4)) // 2:1, cropped to 4x4 for a square output
	for x := 0; x < 8; x++ {
		for y := 0; y < 4; y++ {
			m.Pix[y*8+x] = uint8(x * 30)
		}
	}
	got := maskPixels(m, 2, 2)
	// crop x 2..5, centres of 2 output pixels at source 2+1, 2+3.
	require.Equal(t, []uint8{90, 150, 90, 150}, got)
	rgb := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	copy(rgb.Pix, []uint8{255, 0, 0, 7}) // alpha ignored
	require.Equal(t, []uint8{76}, maskPixels(rgb, 1, 1))
	require.True(t, isBinaryMask([]uint8{0, 255}))
	require.False(t, isBinaryMask([]uint8{0, 128}))
}

// TestInpaintBadRequests: what inpainting refuses, before any work.
func TestInpaintBadRequests(t *testing.T) {
	p := loadGolden(t)
	img := image.NewGray(image.Rect(0, 0, 64, 64))
	ctx := context.Background()
	_, err := p.Inpaint(ctx, Request{Prompt: "x", Steps: 2, InitImage: img})
	require.ErrorContains(t, err, "needs a mask image")
	_, err = p.Inpaint(ctx, Request{Prompt: "x", Steps: 2, MaskImage: img})
	require.ErrorContains(t, err, "inpainting needs an init image")
	_, err = p.Inpaint(ctx, Request{Prompt: "x", Steps: 2, InitImage: img, MaskImage: image.NewGray(image.Rect(0, 0, 0, 3))})
	require.ErrorContains(t, err, "the mask image is empty")
	_, err = p.Inpaint(ctx, Request{Prompt: "x", Steps: 2, InitImage: img, MaskImage: img, Strength: 1.5})
	require.ErrorContains(t, err, "strength 1.5")
	_, err = p.Txt2Img(ctx, Request{Prompt: "x", Steps: 2, MaskImage: img})
	require.ErrorContains(t, err, "use Inpaint")
	_, err = p.Img2Img(ctx, Request{Prompt: "x", Steps: 2, InitImage: img, MaskImage: img})
	require.ErrorContains(t, err, "use Inpaint")
	require.False(t, p.IsInpaintModel())
}

// TestInpaintBatches: with per-image seeds, images are the same whatever
// the batch size, and image i is seed+i's image alone (the extra channels
// and the blending take each batch's own rows).
func TestInpaintBatches(t *testing.T) {
	dir := inpaintDir(t)
	img, err := LoadImage(filepath.Join(dir, "images", "inp0.png"))
	require.NoError(t, err)
	mask, err := LoadMask(filepath.Join(dir, "masks", "mask0.png"))
	require.NoError(t, err)
	for name, p := range map[string]*Pipeline{"model": loadInpaintModel(t), "legacy": loadGolden(t)} {
		t.Run(name, func(t *testing.T) {
			req := Request{Prompt: "a", Negative: "b", Guidance: 5, Steps: 3, Height: 32, Width: 32, Seed: 9,
				Scheduler: "ddim", InitImage: img, MaskImage: mask, Strength: 0.7, NumImages: 3, PerImageSeeds: true}
			all, err := p.Inpaint(context.Background(), req)
			require.NoError(t, err)
			req.BatchSize = 2
			split, err := p.Inpaint(context.Background(), req)
			require.NoError(t, err)
			for i := range all.Images {
				require.Equal(t, all.Images[i].Pix, split.Images[i].Pix, "image %d", i)
			}
			one := req
			one.NumImages, one.BatchSize, one.PerImageSeeds, one.Seed = 1, 0, false, 11
			alone, err := p.Inpaint(context.Background(), one)
			require.NoError(t, err)
			require.Equal(t, all.Images[2].Pix, alone.Images[0].Pix)
			require.NotEqual(t, all.Images[0].Pix, all.Images[1].Pix)
		})
	}
}

package pipeline

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSeedsCacheAndDecoded: per-image Seeds batch unrelated images together
// and each equals the image its seed gives alone; the text cache changes no
// pixel; KeepDecoded keeps the decoder's floats, from which Gray16 is the
// 16-bit version of the 8-bit grayscale image.
func TestSeedsCacheAndDecoded(t *testing.T) {
	p, err := Demo()
	require.NoError(t, err)
	ctx := context.Background()
	base := Request{Guidance: 7.5, Steps: 3, Height: 32, Width: 48}
	prompts := []string{"left effusion", "cardiomegaly", "left effusion"}
	negs := []string{"blurry", "", "blurry"}
	seeds := []uint64{5, 1000, 77}

	cache := NewTextCache(2)
	batch := base
	batch.Prompts, batch.Negatives, batch.Seeds = prompts, negs, seeds
	batch.TextCache, batch.KeepDecoded = cache, true
	res, err := p.Txt2Img(ctx, batch)
	require.NoError(t, err)
	require.Len(t, res.Images, 3)
	require.Len(t, res.Decoded, 3)
	// Texts [negatives; prompts]: 4 distinct of 6.
	require.Equal(t, 4, cache.Misses)
	require.Equal(t, 2, cache.Hits)
	require.LessOrEqual(t, cache.Len(), 2)

	for i := range prompts {
		one := base
		one.Prompt, one.Negative, one.Seed = prompts[i], negs[i], seeds[i]
		r, err := p.Txt2Img(ctx, one)
		require.NoError(t, err)
		require.Equal(t, r.Images[0].Pix, res.Images[i].Pix, "image %d", i)
		require.Equal(t, seeds[i], res.ImageSeed(i))
		require.Equal(t, "-seed "+itoa(seeds[i]), res.Regenerate(i))
	}

	_, err = p.Txt2Img(ctx, Request{Prompts: prompts, Seeds: seeds[:2], Steps: 1, Height: 32, Width: 32})
	require.ErrorContains(t, err, "2 seeds for 3 images")

	g16 := Gray16(res.Decoded[0], 48, 32)
	g8 := Gray(res.Images[0])
	for i := 0; i < 48*32; i++ {
		v := float64(uint16(g16.Pix[2*i])<<8|uint16(g16.Pix[2*i+1])) / 257
		require.InDelta(t, float64(g8.Pix[i]), v, 1.5)
	}
	data, err := EncodePNG(g16, []TextChunk{{"prompt", "x"}})
	require.NoError(t, err)
	back, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err)
	require.IsType(t, &image.Gray16{}, back)
	require.Equal(t, g16.Pix, back.(*image.Gray16).Pix)

	cache.Close()
	require.Zero(t, cache.Len())
	q, err := Demo()
	require.NoError(t, err)
	other := base
	other.Prompt, other.TextCache = "x", cache
	_, err = q.Txt2Img(ctx, other)
	require.ErrorContains(t, err, "another pipeline")
}

func itoa(u uint64) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + u%10)}, b...)
		u /= 10
		if u == 0 {
			return string(b)
		}
	}
}

package vae

import (
	"math"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

// refTiledDecode is diffusers' tiled_decode written out with plain loops: every
// tile decoded on its own (decodeOne), kept in a grid, blended in place with
// its upper then its left neighbour, and its top-left part copied out.
func refTiledDecode(m *AutoencoderKL, z *tensor.Tensor) []float32 {
	f, ts := m.Config.downFactor(), m.TileSampleSize
	tl := ts / f
	stride := int(float64(tl) * (1 - m.TileOverlap))
	blend := int(float64(ts) * m.TileOverlap)
	limit := ts - blend
	type tile struct {
		d       []float32
		n, h, w int // images, rows, columns; channels c
	}
	c := m.Config.OutChannels
	var rows [][]*tile
	for i := 0; i < z.Dim(2); i += stride {
		var row []*tile
		for j := 0; j < z.Dim(3); j += stride {
			zt := z.Narrow(2, i, min(tl, z.Dim(2)-i)).Narrow(3, j, min(tl, z.Dim(3)-j)).Contiguous()
			y := m.decodeOne(zt)
			row = append(row, &tile{d: y.Float32s(), n: y.Dim(0), h: y.Dim(2), w: y.Dim(3)})
		}
		rows = append(rows, row)
	}
	at := func(t *tile, n, ch, y, x int) *float32 { return &t.d[((n*c+ch)*t.h+y)*t.w+x] }
	H, W := z.Dim(2)*f, z.Dim(3)*f
	out := make([]float32, z.Dim(0)*c*H*W)
	y0 := 0
	for i, row := range rows {
		x0, th := 0, 0
		for j, b := range row {
			if i > 0 { // blend_v
				a := rows[i-1][j]
				e := min(a.h, b.h, blend)
				for n := 0; n < b.n; n++ {
					for ch := 0; ch < c; ch++ {
						for y := 0; y < e; y++ {
							for x := 0; x < b.w; x++ {
								p := at(b, n, ch, y, x)
								*p = *at(a, n, ch, a.h-e+y, x)*float32(1-float64(y)/float64(e)) + *p*float32(float64(y)/float64(e))
							}
						}
					}
				}
			}
			if j > 0 { // blend_h
				a := row[j-1]
				e := min(a.w, b.w, blend)
				for n := 0; n < b.n; n++ {
					for ch := 0; ch < c; ch++ {
						for y := 0; y < b.h; y++ {
							for x := 0; x < e; x++ {
								p := at(b, n, ch, y, x)
								*p = *at(a, n, ch, y, a.w-e+x)*float32(1-float64(x)/float64(e)) + *p*float32(float64(x)/float64(e))
							}
						}
					}
				}
			}
			th = min(limit, b.h)
			tw := min(limit, b.w)
			for n := 0; n < b.n; n++ {
				for ch := 0; ch < c; ch++ {
					for y := 0; y < th; y++ {
						for x := 0; x < tw; x++ {
							out[((n*c+ch)*H+y0+y)*W+x0+x] = *at(b, n, ch, y, x)
						}
					}
				}
			}
			x0 += tw
		}
		y0 += th
	}
	return out
}

// TestTiledDecodeReference checks TiledDecode (streaming, tensor ops) against
// the loop version of diffusers' algorithm on a batch of two non-square latents
// whose last tiles are partial. Both compute the same float32 operations in
// the same order, so the tolerance is a few ulps.
func TestTiledDecodeReference(t *testing.T) {
	m := loadTiny(t, tensor.F32) // tiles of 64 pixels = 32 latents, stride 24
	z := tensor.Randn(rng.New(5), 2, 4, 60, 52)
	got := m.TiledDecode(z)
	require.Equal(t, tensor.Shape{2, 3, 120, 104}, got.Shape())
	want := tensor.FromFloat32(refTiledDecode(m, z), 2, 3, 120, 104)
	requireClose(t, got, want, 1e-6, 1e-6, "TiledDecode vs reference loops")

	m.Tiling = TileAlways
	requireClose(t, m.Decode(z), want, 1e-6, 1e-6, "Decode with TileAlways")
	m.TileOverlap = 0.3 // 32*0.7 = 22.4 latents: not whole pixels of the 64-pixel tile
	require.Panics(t, func() { m.TiledDecode(z) })
}

func TestTilingDecision(t *testing.T) {
	m := &AutoencoderKL{Config: SD15Config(), TileSampleSize: 512, TileOverlap: 0.25}
	for _, c := range []struct {
		mode TilingMode
		h, w int
		want bool
	}{
		{TileAuto, 64, 64, false},  // 512x512
		{TileAuto, 96, 128, false}, // 768x1024: under 1024x1024 pixels
		{TileAuto, 128, 128, true}, // 1024x1024
		{TileAuto, 64, 256, true},  // 512x2048: as many pixels, wider than a tile
		{TileAlways, 64, 64, false},
		{TileAlways, 65, 64, true},
		{TileNever, 256, 256, false},
	} {
		m.Tiling = c.mode
		require.Equal(t, c.want, m.tiled(c.h, c.w), "mode %d, %dx%d latents", c.mode, c.h, c.w)
	}
}

// TestTiledDecodeSeams compares tiled and plain decodes of a 112x112 latent
// (224x224 pixels) with the tiny VAE and 128-pixel tiles (64 latents, as SD's
// 512-pixel tiles), on i.i.d. N(0, 1) latents (stationary, like real latents
// locally).
//
// Away from the seams (pixels that come from one tile, outside the blends)
// the tiled decode is not the same function as the plain one: each tile's
// GroupNorm statistics and attention keys are the tile's. For stationary
// latents these are sampling estimates of the whole image's, off by ~1/sqrt(n)
// (n = 2 channels x 64x64 positions per group: ~1%) per GroupNorm, a few
// percent after the decoder's ~10 norms; zero padding at the tile's edges does
// not reach these pixels (the decoder's receptive field is ~24 pixels, the
// blend 32). So the RMS difference must stay within 10% of the image's RMS
// (measured: ~5%). A misplaced or mis-blended tile gives ~140% on these
// white-noise-like images.
//
// Seams: the difference tiled - plain, averaged over each column (and row),
// must not step between neighbouring columns by more than 0.03 (~9% of the
// image RMS; the averages' noise is ~0.001, and blended seams measure ~0.01).
// Tiles decoded without overlap (hard seams) step by ~0.09 at their edges,
// which the same check must catch.
func TestTiledDecodeSeams(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	m.TileSampleSize = 128
	z := tensor.Randn(rng.New(3), 1, 4, 112, 112)
	plain := m.decodeOne(z)
	pd := plain.F32Data()
	const W = 224
	var rms float64
	for _, v := range pd {
		rms += float64(v) * float64(v)
	}
	rms = math.Sqrt(rms / float64(len(pd)))

	// maxStep returns the largest step of the row and column averages of
	// tiled - plain.
	maxStep := func(td []float32) float64 {
		colAvg, rowAvg := make([]float64, W), make([]float64, W)
		for ch := 0; ch < 3; ch++ {
			for y := 0; y < W; y++ {
				for x := 0; x < W; x++ {
					i := (ch*W+y)*W + x
					d := float64(td[i]-pd[i]) / (3 * W)
					colAvg[x] += d
					rowAvg[y] += d
				}
			}
		}
		s := 0.0
		for k := 1; k < W; k++ {
			s = max(s, math.Abs(colAvg[k]-colAvg[k-1]), math.Abs(rowAvg[k]-rowAvg[k-1]))
		}
		return s
	}

	tiled := m.TiledDecode(z)
	td := tiled.F32Data()
	// Pure pixels: tiles start at 0, 96 and 192 (stride 48 latents); those after
	// the first are blended over their first 32 pixels (the last is 32 wide).
	pure := func(p int) bool { return p < 96 || (p >= 128 && p < 192) }
	var sum, maxAbs float64
	cnt := 0
	for ch := 0; ch < 3; ch++ {
		for y := 0; y < W; y++ {
			for x := 0; x < W; x++ {
				if !pure(y) || !pure(x) {
					continue
				}
				i := (ch*W+y)*W + x
				d := float64(td[i] - pd[i])
				sum += d * d
				maxAbs = max(maxAbs, math.Abs(d))
				cnt++
			}
		}
	}
	rel := math.Sqrt(sum/float64(cnt)) / rms
	t.Logf("image RMS %.3f; away from seams: RMS diff %.1f%% of it, max |diff| %.3f", rms, 100*rel, maxAbs)
	require.Less(t, rel, 0.10, "tiled decode away from the seams")
	step := maxStep(td)
	t.Logf("largest step of the row/column averages of tiled - plain: %.4f", step)
	require.Less(t, step, 0.03, "blended seams")

	m.TileOverlap = 0 // hard seams: tiles of 64 latents side by side
	hard := m.TiledDecode(z)
	hstep := maxStep(hard.F32Data())
	t.Logf("the same without overlap (hard seams): %.4f", hstep)
	require.Greater(t, hstep, 0.03, "the seam check must see hard seams")
}

package vae

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// tileLatent is the tile size in latents: TileSampleSize / 2^(levels-1).
func (m *AutoencoderKL) tileLatent() int { return m.TileSampleSize / m.Config.downFactor() }

// defaultTileOverlap is diffusers' tile_overlap_factor, New's TileOverlap.
const defaultTileOverlap = 0.25

// tiles is the geometry of tiled decoding (see TiledDecode): tiles start
// every stride latents; a tile blends blend pixels with each neighbour and
// contributes its first limit pixels (= f*stride).
type tiles struct{ stride, blend, limit int }

// tileGeometry returns the geometry of tiles of ts pixels at downsampling
// factor f with the given overlap; ok is false when they do not tile in whole
// latents (ts not a multiple of f, an overlap outside [0, 1), or a stride that
// does not match the pixels each tile contributes).
func tileGeometry(ts, f int, overlap float64) (g tiles, ok bool) {
	if f < 1 || ts < 1 || ts%f != 0 || !(overlap >= 0 && overlap < 1) {
		return tiles{}, false
	}
	g.stride = int(float64(ts/f) * (1 - overlap))
	g.blend = int(float64(ts) * overlap)
	g.limit = ts - g.blend
	return g, g.stride >= 1 && g.limit == f*g.stride
}

// TiledDecode decodes z [N, L, h, w] as diffusers' tiled_decode does: latent
// tiles of T = TileSampleSize/f latents (f = 2^(levels-1)) start every
// floor(T*(1-TileOverlap)) latents; each is decoded on its own (its GroupNorm
// statistics and attention are the tile's), and where a tile overlaps its upper
// and left neighbours (E = floor(TileSampleSize*TileOverlap) pixels) it is
// blended with them linearly in place, row k of the overlap getting weight k/E
// (the neighbour 1-k/E), first vertically, then horizontally. Each tile then
// contributes its top-left TileSampleSize-E pixels. The output is [N, out, f h,
// f w], the size Decode gives. Memory is bounded by one row of tiles.
func (m *AutoencoderKL) TiledDecode(z *tensor.Tensor) *tensor.Tensor {
	m.checkLatents("TiledDecode", z)
	f, ts, tl := m.Config.downFactor(), m.TileSampleSize, m.tileLatent()
	g, ok := tileGeometry(ts, f, m.TileOverlap)
	if !ok {
		panic(fmt.Sprintf("vae: TiledDecode: tile size %d with overlap %g does not tile (want a multiple of %d "+
			"and an overlap in [0, 1) giving whole latents)", ts, m.TileOverlap, f))
	}
	stride, blend, limit := g.stride, g.blend, g.limit
	n, zh, zw := z.Dim(0), z.Dim(2), z.Dim(3)
	dev := z.Device()
	out := tensor.EmptyOn(dev, tensor.ComputeDType(dev), n, m.Config.OutChannels, zh*f, zw*f)
	tensor.Do(func() {
		var prev []*tensor.Tensor // the row of tiles above, blended
		y0 := 0
		for i := 0; i < zh; i += stride {
			th := 0
			// A row's scope consumes the row above: memory holds two rows.
			prev = tensor.ScopeN(func() []*tensor.Tensor {
				var row []*tensor.Tensor
				x0 := 0
				for j := 0; j < zw; j += stride {
					t := m.decodeOne(z.Narrow(2, i, min(tl, zh-i)).Narrow(3, j, min(tl, zw-j)))
					if i > 0 {
						blendInto(prev[len(row)], t, 2, blend)
					}
					if j > 0 {
						blendInto(row[len(row)-1], t, 3, blend)
					}
					row = append(row, t)
					th = min(limit, t.Dim(2))
					tw := min(limit, t.Dim(3))
					out.Narrow(2, y0, th).Narrow(3, x0, tw).CopyFrom(t.Narrow(2, 0, th).Narrow(3, 0, tw))
					x0 += tw
				}
				return row
			}, prev...)
			y0 += th
		}
	})
	return out
}

// blendInto overwrites the first e' = min(e, a's size, b's size) indices of b
// along dim (2: rows, 3: columns) with a's last e' indices times (1 - k/e') plus
// b's times k/e' (diffusers' blend_v and blend_h).
func blendInto(a, b *tensor.Tensor, dim, e int) {
	e = min(e, a.Dim(dim), b.Dim(dim))
	if e == 0 {
		return
	}
	wa, wb := make([]float32, e), make([]float32, e)
	for k := range e {
		wa[k] = float32(1 - float64(k)/float64(e))
		wb[k] = float32(float64(k) / float64(e))
	}
	shape := []int{e, 1} // broadcast over [N, C, e, W]
	if dim == 3 {
		shape = []int{e} // over [N, C, H, e]
	}
	tensor.Do(func() {
		av, bv := a.Narrow(dim, a.Dim(dim)-e, e), b.Narrow(dim, 0, e)
		da := tensor.FromFloat32(wa, shape...).ToDevice(a.Device())
		db := tensor.FromFloat32(wb, shape...).ToDevice(b.Device())
		bv.CopyFrom(av.Mul(da).AddInPlace(bv.Mul(db)))
	})
}

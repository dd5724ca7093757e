package cpu

import (
	"math/rand"
	"testing"
)

// BenchmarkCopyNCHWToNHWC times the permuting copy [2, 320, 64, 64] -> [2, 64, 64, 320]
// with tiles (the default) and with the plain strided loop (naive baseline).
func BenchmarkCopyNCHWToNHWC(b *testing.B) {
	shape := []int{2, 64, 64, 320}
	ds := []int{64 * 64 * 320, 64 * 320, 320, 1}
	ss := []int{320 * 4096, 64, 1, 4096}
	src := randBuf(rand.New(rand.NewSource(1)), 2*320*4096)
	dst := make([]float32, len(src))
	for _, tiles := range []bool{true, false} {
		name := "tiled"
		if !tiles {
			name = "strided"
		}
		b.Run(name, func(b *testing.B) {
			old := useTransTiles
			useTransTiles = tiles
			defer func() { useTransTiles = old }()
			for i := 0; i < b.N; i++ {
				CopyStrided(shape, dst, ds, src, ss)
			}
			b.ReportMetric(float64(8*len(src))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

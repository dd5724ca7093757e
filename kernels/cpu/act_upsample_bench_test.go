package cpu

import "testing"

// BenchmarkUpsample2x: x [2*640, 32, 32] -> y [2*640, 64, 64] (the U-Net's up
// blocks), GB/s of bytes read plus written.
func BenchmarkUpsample2x(b *testing.B) {
	nc, h, w := 2*640, 32, 32
	x := benchNormData(nc * h * w)
	y := make([]float32, 4*len(x))
	for _, c := range []struct {
		name string
		fn   func(x, y []float32, nc, h, w int)
	}{{"fast", Upsample2x}, {"ref", Upsample2xRef}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.fn(x, y, nc, h, w)
			}
			bwReport(b, 4*5*len(x))
		})
	}
}

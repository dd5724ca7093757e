package cpu

import "testing"

// BenchmarkSiLU: SiLU over [2, 320, 64, 64], GB/s of bytes read plus written.
func BenchmarkSiLU(b *testing.B) {
	x := benchNormData(bwElems)
	y := make([]float32, bwElems)
	for _, c := range []struct {
		name string
		f    Activation
		fn   func(Activation, []float32, []float32)
	}{
		{"fast", SiLU, Activate}, {"ref", SiLU, ActivateRef},
		{"gelu-fast", GELU, Activate}, {"gelu-ref", GELU, ActivateRef},
		{"gelutanh-fast", GELUTanh, Activate},
	} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.fn(c.f, x, y)
			}
			bwReport(b, 8*bwElems)
		})
	}
}

// BenchmarkGEGLU: x [4096, 2*1280] -> y [4096, 1280] (the U-Net's first-level
// feed-forward), GB/s of bytes read plus written.
func BenchmarkGEGLU(b *testing.B) {
	rows, d := 4096, 1280
	x := benchNormData(rows * 2 * d)
	y := make([]float32, rows*d)
	for _, c := range []struct {
		name string
		fn   func(x, y []float32, rows, d int)
	}{{"fast", GEGLU}, {"ref", GEGLURef}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.fn(x, y, rows, d)
			}
			bwReport(b, 12*rows*d)
		})
	}
}

package cpu

import "testing"

// Benchmarks of the normalisation/activation backward kernels, each beside the
// forward kernel on the same shape, in GB/s of the bytes each must read and
// write at least (compare with BenchmarkCopyParallel).

// BenchmarkGroupNormBackward: 32 groups over [2, 320, 64, 64] (the U-Net's first
// level). Forward: x read, y written (8 B/element); backward: x and dy read, dx
// written (12 B/element; dgamma, dbeta and the statistics are negligible).
func BenchmarkGroupNormBackward(b *testing.B) {
	const n, c, hw, g = 2, 320, 64 * 64, 32
	x := benchNormData(bwElems)
	dy := benchNormData(bwElems)
	y, dx := make([]float32, bwElems), make([]float32, bwElems)
	gamma, beta := benchAffine(c)
	mean, rstd := make([]float32, n*g), make([]float32, n*g)
	dg, db := make([]float32, c), make([]float32, c)
	GroupNormSave(x, y, n, c, hw, g, 1e-5, gamma, beta, false, mean, rstd)
	for _, bc := range []struct {
		name  string
		bytes int
		fn    func()
	}{
		{"fwd", 8, func() { GroupNorm(x, y, n, c, hw, g, 1e-5, gamma, beta, false) }},
		{"fwd-save", 8, func() { GroupNormSave(x, y, n, c, hw, g, 1e-5, gamma, beta, false, mean, rstd) }},
		{"bwd", 12, func() { GroupNormBackward(x, dy, dx, n, c, hw, g, mean, rstd, gamma, beta, false, dg, db) }},
		{"fwd-silu", 8, func() { GroupNorm(x, y, n, c, hw, g, 1e-5, gamma, beta, true) }},
		{"bwd-silu", 12, func() { GroupNormBackward(x, dy, dx, n, c, hw, g, mean, rstd, gamma, beta, true, dg, db) }},
		{"bwd-silu-inplace", 12, func() { GroupNormBackward(x, dx, dx, n, c, hw, g, mean, rstd, gamma, beta, true, dg, db) }},
		{"bwd-ref", 12, func() { GroupNormBackwardRef(x, dy, dx, n, c, hw, g, mean, rstd, gamma, beta, false, dg, db) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			copy(dx, dy)
			for i := 0; i < b.N; i++ {
				bc.fn()
			}
			bwReport(b, bc.bytes*bwElems)
		})
	}
}

// BenchmarkLayerNormBackward: [2*4096, 320] (the U-Net's first-level tokens at
// batch 2). Forward 8 B/element, backward 12 B/element as above.
func BenchmarkLayerNormBackward(b *testing.B) {
	const rows, cols = 2 * 4096, 320
	x := benchNormData(rows * cols)
	dy := benchNormData(rows * cols)
	y, dx := make([]float32, rows*cols), make([]float32, rows*cols)
	gamma, beta := benchAffine(cols)
	mean, rstd := make([]float32, rows), make([]float32, rows)
	dg, db := make([]float32, cols), make([]float32, cols)
	LayerNormSave(x, y, rows, cols, 1e-5, gamma, beta, mean, rstd)
	for _, bc := range []struct {
		name  string
		bytes int
		fn    func()
	}{
		{"fwd", 8, func() { LayerNorm(x, y, rows, cols, 1e-5, gamma, beta) }},
		{"fwd-save", 8, func() { LayerNormSave(x, y, rows, cols, 1e-5, gamma, beta, mean, rstd) }},
		{"bwd", 12, func() { LayerNormBackward(x, dy, dx, rows, cols, mean, rstd, gamma, dg, db) }},
		{"bwd-ref", 12, func() { LayerNormBackwardRef(x, dy, dx, rows, cols, mean, rstd, gamma, dg, db) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				bc.fn()
			}
			bwReport(b, bc.bytes*rows*cols)
		})
	}
}

// BenchmarkGEGLUBackward: x [2*4096, 2560] -> y [2*4096, 1280] (the U-Net's
// first-level feed-forward at batch 2). Forward: 2d read, d written per row
// (12d bytes); backward: x (2d) and dy (d) read, dx (2d) written (20d bytes).
func BenchmarkGEGLUBackward(b *testing.B) {
	const rows, d = 2 * 4096, 1280
	x := benchNormData(rows * 2 * d)
	dy := benchNormData(rows * d)
	y, dx := make([]float32, rows*d), make([]float32, rows*2*d)
	for _, bc := range []struct {
		name  string
		bytes int
		fn    func()
	}{
		{"fwd", 12, func() { GEGLU(x, y, rows, d) }},
		{"bwd", 20, func() { GEGLUBackward(x, dy, dx, rows, d) }},
		{"bwd-ref", 20, func() { GEGLUBackwardRef(x, dy, dx, rows, d) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				bc.fn()
			}
			bwReport(b, bc.bytes*rows*d)
		})
	}
}

// BenchmarkActivateBackward: over [2, 320, 64, 64]; forward 8 B/element,
// backward (x, dy read, dx written) 12 B/element.
func BenchmarkActivateBackward(b *testing.B) {
	x := benchNormData(bwElems)
	dy := benchNormData(bwElems)
	y, dx := make([]float32, bwElems), make([]float32, bwElems)
	for _, bc := range []struct {
		name string
		f    Activation
	}{{"silu", SiLU}, {"gelu", GELU}, {"gelutanh", GELUTanh}} {
		b.Run(bc.name+"-fwd", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Activate(bc.f, x, y)
			}
			bwReport(b, 8*bwElems)
		})
		b.Run(bc.name+"-bwd", func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				ActivateBackward(bc.f, x, dy, dx)
			}
			bwReport(b, 12*bwElems)
		})
	}
}

// BenchmarkSoftmaxBackward: [1024, 4096] rows; forward 8 B/element, backward
// (y, dy read, dx written) 12 B/element.
func BenchmarkSoftmaxBackward(b *testing.B) {
	const rows, cols = 1024, 4096
	x := benchNormData(rows * cols)
	dy := benchNormData(rows * cols)
	y, dx := make([]float32, rows*cols), make([]float32, rows*cols)
	Softmax(x, y, rows, cols)
	b.Run("fwd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Softmax(x, dx, rows, cols)
		}
		bwReport(b, 8*rows*cols)
	})
	b.Run("bwd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			SoftmaxBackward(y, dy, dx, rows, cols)
		}
		bwReport(b, 12*rows*cols)
	})
}

// BenchmarkUpsample2xBackward: x [2*320, 32, 32] -> y [2*320, 64, 64] and back;
// 20 B per input element each way (4 read + 16 written, or 16 read + 4 written).
func BenchmarkUpsample2xBackward(b *testing.B) {
	const nc, h, w = 2 * 320, 32, 32
	x := benchNormData(nc * h * w)
	y := make([]float32, 4*nc*h*w)
	b.Run("fwd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Upsample2x(x, y, nc, h, w)
		}
		bwReport(b, 20*nc*h*w)
	})
	b.Run("bwd", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			Upsample2xBackward(y, x, nc, h, w)
		}
		bwReport(b, 20*nc*h*w)
	})
}

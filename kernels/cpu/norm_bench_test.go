package cpu

import (
	"math/rand/v2"
	"testing"
)

func benchNormData(n int) []float32 {
	r := rand.New(rand.NewPCG(11, 12))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64()*2 + 0.5)
	}
	return x
}

func benchAffine(c int) (gamma, beta []float32) {
	gamma, beta = make([]float32, c), make([]float32, c)
	for i := range gamma {
		gamma[i], beta[i] = 1+float32(i%7)*0.01, float32(i%5)*0.1
	}
	return
}

// BenchmarkGroupNorm: 32 groups over [2, 320, 64, 64] (the U-Net's first level), in
// GB/s of bytes read plus written, to compare with BenchmarkCopyParallel.
func BenchmarkGroupNorm(b *testing.B) {
	x := benchNormData(bwElems)
	y := make([]float32, bwElems)
	gamma, beta := benchAffine(320)
	for _, c := range []struct {
		name string
		silu bool
		fn   func(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool)
	}{
		{"fast", false, GroupNorm},
		{"fast-silu", true, GroupNorm},
		{"inplace", false, GroupNorm},
		{"ref", false, GroupNormRef},
	} {
		b.Run(c.name, func(b *testing.B) {
			out := y
			if c.name == "inplace" {
				out = x
			}
			c.fn(x, out, 2, 320, 64*64, 32, 1e-5, gamma, beta, c.silu)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c.fn(x, out, 2, 320, 64*64, 32, 1e-5, gamma, beta, c.silu)
			}
			bwReport(b, 8*bwElems)
		})
	}
}

// BenchmarkLayerNorm: [4096, 320] and [4096, 1280] rows (transformer tokens).
func BenchmarkLayerNorm(b *testing.B) {
	for _, cols := range []int{320, 1280} {
		rows := 4096
		x := benchNormData(rows * cols)
		y := make([]float32, rows*cols)
		gamma, beta := benchAffine(cols)
		for _, c := range []struct {
			name string
			fn   func(x, y []float32, rows, cols int, eps float32, gamma, beta []float32)
		}{{"fast", LayerNorm}, {"ref", LayerNormRef}} {
			b.Run(c.name+"-"+itoa(cols), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					c.fn(x, y, rows, cols, 1e-5, gamma, beta)
				}
				bwReport(b, 8*rows*cols)
			})
		}
	}
}

// BenchmarkSoftmax: attention-score rows, [8*4096, 77] (cross-attention) is left to
// the attention kernel; here [1024, 4096] self-attention rows.
func BenchmarkSoftmax(b *testing.B) {
	rows, cols := 1024, 4096
	x := benchNormData(rows * cols)
	y := make([]float32, rows*cols)
	for _, c := range []struct {
		name string
		fn   func(x, y []float32, rows, cols int)
	}{{"fast", Softmax}, {"ref", SoftmaxRef}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				c.fn(x, y, rows, cols)
			}
			bwReport(b, 8*rows*cols)
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for ; n > 0; n /= 10 {
		i--
		buf[i] = byte('0' + n%10)
	}
	return string(buf[i:])
}

package tensor

import (
	"math/rand"
	"testing"
)

// Elementwise throughput on U-Net-sized activations [2, 320, 64, 64]. The
// metric counts the bytes read and written.

func BenchmarkAddBroadcastBias(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	x := randT(r, 2, 320, 64, 64)
	bias := randT(r, 1, 320, 1, 1)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		y := x.Add(bias)
		y.Release()
	}
	b.ReportMetric(float64(2*x.Numel()*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

func BenchmarkAddInPlace(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	x := randT(r, 2, 320, 64, 64)
	y := randT(r, 2, 320, 64, 64)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x.AddInPlace(y)
	}
	b.ReportMetric(float64(3*x.Numel()*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

func BenchmarkContiguousPermute(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	x := randT(r, 2, 320, 64, 64)
	p := x.Permute(0, 2, 3, 1) // NCHW -> NHWC, as attention blocks do
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		y := p.Contiguous()
		y.Release()
	}
	b.ReportMetric(float64(2*x.Numel()*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

func BenchmarkSumLastDim(b *testing.B) {
	r := rand.New(rand.NewSource(1))
	x := randT(r, 2*4096, 320)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		y := x.Sum(-1, false)
		y.Release()
	}
	b.ReportMetric(float64(x.Numel()*4)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

package cpu

import "testing"

// Copy bandwidth of a buffer the size of the U-Net's largest GroupNorm input,
// [2, 320, 64, 64] float32 (10.5 MB), as the yardstick for the memory-bound kernels:
// they should reach a large fraction of it. GB/s counts bytes read plus written.

// bwElems is the element count of [2, 320, 64, 64].
const bwElems = 2 * 320 * 64 * 64

// bwReport reports the bandwidth of b.N calls that each move bytesPerOp bytes.
func bwReport(b *testing.B, bytesPerOp int) {
	b.ReportMetric(float64(bytesPerOp)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// bwBuffers returns a source filled with a ramp and a destination of n floats.
func bwBuffers(n int) (src, dst []float32) {
	src, dst = make([]float32, n), make([]float32, n)
	for i := range src {
		src[i] = float32(i%1000) * 0.001
	}
	copy(dst, src) // fault the pages in before timing
	return src, dst
}

// BenchmarkCopy is the built-in copy on one goroutine.
func BenchmarkCopy(b *testing.B) {
	src, dst := bwBuffers(bwElems)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(dst, src)
	}
	bwReport(b, 8*bwElems)
}

// BenchmarkCopyParallel is copy split over Threads() goroutines with ParallelFor,
// the same parallelism the kernels use: the reference for their GB/s.
func BenchmarkCopyParallel(b *testing.B) {
	src, dst := bwBuffers(bwElems)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ParallelFor(bwElems, 1<<16, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
	}
	bwReport(b, 8*bwElems)
}

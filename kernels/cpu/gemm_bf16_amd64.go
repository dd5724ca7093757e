//go:build amd64 && !purego

package cpu

import "unsafe"

//go:generate go run ./internal/genbf16

// bf16Kernel14x32 is the AVX512_BF16 pair micro-kernel (generated into
// gemm_bf16_amd64.s): the 14 x 32 tile of microKernel over kp k pairs of
// packed BF16 pair words.
//
//go:noescape
func bf16Kernel14x32(kp int, a, b, c *float32, ldc int, alpha, beta float32)

// kern14x32BF16 is bf16Kernel14x32 as a microKernel (kc counts k values).
func kern14x32BF16(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	kp := (kc + 1) / 2
	_, _, _ = a[kp*14-1], b[kp*32-1], c[13*ldc+31]
	bf16Kernel14x32(kp, unsafe.SliceData(a), unsafe.SliceData(b), &c[0], ldc, alpha, beta)
}

//go:noescape
func packB32PairsF32(dst *float32, src *float32, ldb, kc, mask int)

// packB32Pairs packs one 32-wide pair panel of a non-transposed F32 B of nn
// columns with the assembly loop; other dtypes go through the generic path.
func packB32Pairs(dst []float32, b Mat, off, kc, nn int) bool {
	if b.DType != F32 {
		return false
	}
	if kc == 0 {
		return true
	}
	_ = dst[pairWords(kc, 32)-1]
	_ = b.F32[off+(kc-1)*b.Stride+nn-1]
	packB32PairsF32(&dst[0], &b.F32[off], b.Stride, kc, 1<<nn-1)
	return true
}

// avx512BF16GemmKernel is the BF16 compute kernel: the F32 AVX-512 kernel's
// tile and loop orders, with KC doubled (a pair word holds two k values, so
// the same bytes of L1 hold twice the depth).
var avx512BF16GemmKernel = gemmKernel{name: "avx512bf16-14x32", mr: 14, nr: 32, kc: 768, mc: 14 * 24, nc: 4096,
	fn: kern14x32BF16, pairs: true,
	l1MaxM: 14 * 96, l1MC: 14 * 96, l1NC: 320, l1AllK: 1 << 21,
	packB: packB32Pairs,
}

// bf16Kernel returns the BF16 pair micro-kernel when this CPU has
// AVX512_BF16 and the AVX-512 level is allowed, else nil.
func bf16Kernel() *gemmKernel {
	if !CPU.HasAVX512BF16 || level() < levelAVX512 {
		return nil
	}
	return &avx512BF16GemmKernel
}

//go:build amd64 && !purego && !noasm

package f64

import "unsafe"

const haveAsm = true

// dgemmKernel14x16 is the AVX-512 micro-kernel (see gemmKernel) for a 14×16 tile.
//
//go:noescape
func dgemmKernel14x16(kc int, a, b, c *float64, ldc int)

// dgemmKernel6x8 is the AVX2/FMA micro-kernel for a 6×8 tile.
//
//go:noescape
func dgemmKernel6x8(kc int, a, b, c *float64, ldc int)

// axpyDotAVX512 is axpyDot with AVX-512.
//
//go:noescape
func axpyDotAVX512(n int, alpha float64, a, x, y *float64) float64

// axpyDotAVX2 is axpyDot with AVX2 and FMA.
//
//go:noescape
func axpyDotAVX2(n int, alpha float64, a, x, y *float64) float64

// axpyDot4AVX512 is the vector part of axpyDot4 with AVX-512 (n a multiple of 8).
//
//go:noescape
func axpyDot4AVX512(n int, a *float64, lda int, alpha, x, y, dots *float64)

// axpyDot4AVX2 is the vector part of axpyDot4 with AVX2 and FMA (n a multiple of 4).
//
//go:noescape
func axpyDot4AVX2(n int, a *float64, lda int, alpha, x, y, dots *float64)

// The bounds expressions make a call with short slices panic instead of
// touching memory it does not own.
func kern14x16(kc int, a, b, c []float64, ldc int) {
	if kc == 0 {
		return
	}
	_ = a[kc*14-1]
	_ = b[kc*16-1]
	_ = c[13*ldc+15]
	dgemmKernel14x16(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc)
}

func kern6x8(kc int, a, b, c []float64, ldc int) {
	if kc == 0 {
		return
	}
	_ = a[kc*6-1]
	_ = b[kc*8-1]
	_ = c[5*ldc+7]
	dgemmKernel6x8(kc, unsafe.SliceData(a), unsafe.SliceData(b), unsafe.SliceData(c), ldc)
}

var (
	kernelAVX512 = gemmKernel{name: "avx512-14x16", mr: 14, nr: 16, mc: 14 * 12, kc: 256, nc: 2048, fn: kern14x16}
	kernelAVX2   = gemmKernel{name: "avx2-6x8", mr: 6, nr: 8, mc: 6 * 16, kc: 256, nc: 2048, fn: kern6x8}
)

// activeKernel returns the micro-kernel of the current level.
func activeKernel() *gemmKernel {
	switch level() {
	case levelAVX512:
		return &kernelAVX512
	case levelAVX2:
		return &kernelAVX2
	}
	return &kernelGo
}

// axpyDot does y[j] += alpha*a[j] for j < len(a) and returns Σ_j a[j]*x[j];
// x and y must be at least as long as a.
func axpyDot(alpha float64, a, x, y []float64) float64 {
	n := len(a)
	if n == 0 {
		return 0
	}
	_ = x[n-1]
	_ = y[n-1]
	switch level() {
	case levelAVX512:
		return axpyDotAVX512(n, alpha, unsafe.SliceData(a), unsafe.SliceData(x), unsafe.SliceData(y))
	case levelAVX2:
		return axpyDotAVX2(n, alpha, unsafe.SliceData(a), unsafe.SliceData(x), unsafe.SliceData(y))
	}
	return axpyDotGo(alpha, a, x, y)
}

// axpyDot4 does, for the four rows a_r = a[r*lda : r*lda+n], r < 4,
//
//	y[j] += Σ_r alpha[r]*a_r[j] (j < n),  dots[r] = Σ_{j<n} a_r[j]*x[j].
func axpyDot4(n int, a []float64, lda int, alpha *[4]float64, x, y []float64) (dots [4]float64) {
	if n == 0 {
		return dots
	}
	_ = a[3*lda+n-1]
	_ = x[n-1]
	_ = y[n-1]
	var vec int
	switch level() {
	case levelAVX512:
		vec = n &^ 7
		if vec > 0 {
			axpyDot4AVX512(vec, unsafe.SliceData(a), lda, &alpha[0], unsafe.SliceData(x), unsafe.SliceData(y), &dots[0])
		}
	case levelAVX2:
		vec = n &^ 3
		if vec > 0 {
			axpyDot4AVX2(vec, unsafe.SliceData(a), lda, &alpha[0], unsafe.SliceData(x), unsafe.SliceData(y), &dots[0])
		}
	}
	if vec < n {
		t := axpyDot4Go(vec, n, a, lda, alpha, x, y)
		for r := range dots {
			dots[r] += t[r]
		}
	}
	return dots
}

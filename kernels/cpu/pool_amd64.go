//go:build amd64 && !purego

package cpu

// The AVX2 kernels of pool_amd64.s, called through the wrappers of
// pool_vec.go when vecAsm is set. The pooling kernels take n >= 8 (and
// rows, kw >= 1); poolAffineAVX2 takes a positive multiple of 8.

//go:noescape
func poolAffineAVX2(x, y *float32, n int, a, b, lo float32)

//go:noescape
func poolColMaxAVX2(dst, src *float32, ld, rows, n int)

//go:noescape
func poolColAvgAVX2(dst, src, den *float32, ld, rows, n int)

//go:noescape
func poolRowMaxS1AVX2(dst, src *float32, kw, n int)

//go:noescape
func poolRowSumS1AVX2(dst, src *float32, kw, n int)

//go:noescape
func poolRowMaxS2AVX2(dst, src *float32, kw, n int)

//go:noescape
func poolAvgS2AVX2(dst, src, den *float32, ld, rows, kw, n int)

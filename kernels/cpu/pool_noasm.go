//go:build !amd64 || purego

package cpu

func poolAffineAVX2(x, y *float32, n int, a, b, lo float32)     { panic("cpu: no assembly") }
func poolColMaxAVX2(dst, src *float32, ld, rows, n int)         { panic("cpu: no assembly") }
func poolColAvgAVX2(dst, src, den *float32, ld, rows, n int)    { panic("cpu: no assembly") }
func poolRowMaxS1AVX2(dst, src *float32, kw, n int)             { panic("cpu: no assembly") }
func poolRowSumS1AVX2(dst, src *float32, kw, n int)             { panic("cpu: no assembly") }
func poolRowMaxS2AVX2(dst, src *float32, kw, n int)             { panic("cpu: no assembly") }
func poolAvgS2AVX2(dst, src, den *float32, ld, rows, kw, n int) { panic("cpu: no assembly") }

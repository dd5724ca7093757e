package cpu

import "math"

// Row-level kernels of the pooling and channel-affine ops (pool.go). Each
// runs the AVX2 kernel of pool_amd64.s when vecAsm is set (and, for the
// pooling ones, at least 8 outputs), else the pure-Go loop beside it; both
// reduce in the same order with the same tie and NaN rules, so they agree bit
// for bit. A max takes a later element only when it is larger or NaN (ties
// keep the earlier one, a NaN stays), as MaxPool2dRef does. dst never
// overlaps the sources, except in affineSpan.

// poolNegInf is float32 -inf, the identity of max pooling (the padding's value).
var poolNegInf = float32(math.Inf(-1))

// poolFill sets every element of x to v.
func poolFill(x []float32, v float32) {
	for i := range x {
		x[i] = v
	}
}

// affineSpan sets y[i] = max(float32(x[i]*a) + b, lo) for i < len(x): the
// product rounded before the sum (no fused multiply-add), then, with lo = 0,
// ReLU as ChannelAffineRef applies it (v < 0 becomes 0, so NaN and -0 pass);
// lo = -inf changes nothing. y may alias x.
func affineSpan(x, y []float32, a, b, lo float32) {
	if len(x) == 0 {
		return
	}
	y = y[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			poolAffineAVX2(&x[0], &y[0], n, a, b, lo)
		}
	}
	for i := n; i < len(x); i++ {
		v := float32(x[i]*a) + b
		if v < lo {
			v = lo
		}
		y[i] = v
	}
}

// colMax sets dst[k] = max over r < rows of src[r*ld+k], k < len(dst)
// (-inf when rows is 0).
func colMax(dst, src []float32, ld, rows int) {
	n := len(dst)
	if n == 0 {
		return
	}
	if rows <= 0 {
		poolFill(dst, poolNegInf)
		return
	}
	src = src[:(rows-1)*ld+n]
	if vecAsm && n >= 8 {
		poolColMaxAVX2(&dst[0], &src[0], ld, rows, n)
		return
	}
	copy(dst, src[:n])
	for r := 1; r < rows; r++ {
		for k, v := range src[r*ld : r*ld+n] {
			if v > dst[k] || v != v {
				dst[k] = v
			}
		}
	}
}

// colAvg sets dst[k] = (0 + src[k] + src[ld+k] + ... + src[(rows-1)*ld+k]) /
// den[k], summed in that order, k < len(dst).
func colAvg(dst, src, den []float32, ld, rows int) {
	n := len(dst)
	if n == 0 {
		return
	}
	den = den[:n]
	if rows > 0 {
		src = src[:(rows-1)*ld+n]
		if vecAsm && n >= 8 {
			poolColAvgAVX2(&dst[0], &src[0], &den[0], ld, rows, n)
			return
		}
	}
	clear(dst)
	for r := 0; r < rows; r++ {
		for k, v := range src[r*ld : r*ld+n] {
			dst[k] += v
		}
	}
	for k, d := range den {
		dst[k] /= d
	}
}

// rowMax sets dst[j] = max over b < kw of src[j*s+b], j < len(dst) (kw, s
// >= 1; src holds at least (len(dst)-1)*s + kw elements).
func rowMax(dst, src []float32, kw, s int) {
	n := len(dst)
	if n == 0 {
		return
	}
	src = src[:(n-1)*s+kw]
	if vecAsm && n >= 8 && s <= 2 {
		if s == 1 {
			poolRowMaxS1AVX2(&dst[0], &src[0], kw, n)
		} else {
			poolRowMaxS2AVX2(&dst[0], &src[0], kw, n)
		}
		return
	}
	for j := range dst {
		w := src[j*s : j*s+kw]
		m := w[0]
		for _, v := range w[1:] {
			if v > m || v != v {
				m = v
			}
		}
		dst[j] = m
	}
}

// rowSum1 sets dst[j] = 0 + src[j] + src[j+1] + ... + src[j+kw-1], summed in
// that order, j < len(dst) (kw >= 1).
func rowSum1(dst, src []float32, kw int) {
	n := len(dst)
	if n == 0 {
		return
	}
	src = src[:n-1+kw]
	if vecAsm && n >= 8 {
		poolRowSumS1AVX2(&dst[0], &src[0], kw, n)
		return
	}
	for j := range dst {
		var s float32
		for _, v := range src[j : j+kw] {
			s += v
		}
		dst[j] = s
	}
}

// rowsAvg sets dst[j] = (0 + sum over r < rows, then b < kw, of
// src[r*ld + j*s + b]) / den[j], summed in that order (the window's elements
// row by row), j < len(dst) (kw, s >= 1).
func rowsAvg(dst, src, den []float32, ld, rows, kw, s int) {
	n := len(dst)
	if n == 0 {
		return
	}
	den = den[:n]
	if rows > 0 {
		src = src[:(rows-1)*ld+(n-1)*s+kw]
		if vecAsm && n >= 8 && s == 2 {
			poolAvgS2AVX2(&dst[0], &src[0], &den[0], ld, rows, kw, n)
			return
		}
	}
	for j := range dst {
		var sum float32
		for r := 0; r < rows; r++ {
			for _, v := range src[r*ld+j*s : r*ld+j*s+kw] {
				sum += v
			}
		}
		dst[j] = sum / den[j]
	}
}

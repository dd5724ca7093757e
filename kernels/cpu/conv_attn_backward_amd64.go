//go:build amd64 && !purego

package cpu

// bwdUseAVX2 selects the AVX2 helpers of the backward kernels (tests switch it
// off to run the Go loops on the same machine).
var bwdUseAVX2 = CPU.HasAVX2FMA

// convAddAVX2 sets dst[i] += src[i] for i < n, a positive multiple of 8.
//
//go:noescape
func convAddAVX2(dst, src *float32, n int)

// attnBwdDSAVX2 sets dp[j*ld+c] = pt[j*ld+c] * (dp[j*ld+c] - dv[c]) for
// j < rows (>= 1) and c < ld (a positive multiple of 16).
//
//go:noescape
func attnBwdDSAVX2(pt, dp *float32, rows, ld int, dv *float32)

// convAddAsm adds the longest prefix of src whose length is a multiple of 8 into
// dst with AVX2 and the rest in Go; it reports false when AVX2 is off.
func convAddAsm(dst, src []float32) bool {
	if !bwdUseAVX2 {
		return false
	}
	n := len(dst)
	src = src[:n]
	v := n &^ 7
	if v > 0 {
		convAddAVX2(&dst[0], &src[0], v)
	}
	for i := v; i < n; i++ {
		dst[i] += src[i]
	}
	return true
}

// attnBwdDSAsm is attnBwdDS with AVX2; it reports false when AVX2 is off.
func attnBwdDSAsm(pt, dp []float32, ld int, dv []float32) bool {
	if !bwdUseAVX2 || ld <= 0 || ld%16 != 0 {
		return false
	}
	rows := len(dp) / ld
	if rows == 0 {
		return true
	}
	_, _ = pt[rows*ld-1], dv[ld-1]
	attnBwdDSAVX2(&pt[0], &dp[0], rows, ld, &dv[0])
	return true
}

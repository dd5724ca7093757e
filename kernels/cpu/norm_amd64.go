//go:build amd64 && !purego

package cpu

// The kernels below take n, a multiple of 8 (positive for normMaxAVX2 and
// normGammaBetaAVX2); see norm_amd64.s.

//go:noescape
func normSumDiffAVX2(x *float32, n int, m float32) (s, sq float32)

//go:noescape
func normMaxAVX2(x *float32, n int) float32

//go:noescape
func normAffineAVX2(x, y, pf *float32, n int, m, a, b float32)

//go:noescape
func normGammaBetaAVX2(x, y, gm, bt *float32, n int, m, a, b float32)

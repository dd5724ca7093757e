//go:build amd64 && !purego

package cpu

// AVX2/FMA kernels of the normalisation and activation backward passes
// (normact_backward_amd64.s), used when vecAsm. Every one takes n, a positive
// multiple of 8; the wrappers of normact_backward_vec.go handle tails.

//go:noescape
func bwdSigmulGradAVX2(x, dy, dx *float32, n int, negk, c, k, c3 float32)

//go:noescape
func bwdGELUGradAVX2(x, dy, dx *float32, n int)

//go:noescape
func bwdGEGLUGradAVX2(a, gt, dy, da, dg *float32, n int)

//go:noescape
func bwdSumsAVX2(x, dy *float32, n int, m float32) (s, sd float32)

//go:noescape
func bwdSumsSiLUAVX2(x, dy, dz *float32, n int, m, a, b float32) (s, sd float32)

//go:noescape
func bwdApplyAVX2(dz, x, dx *float32, n int, k1, m, k2, k3 float32)

//go:noescape
func bwdLNSumsAVX2(x, dy, gm, dg, db *float32, n int, m, r float32) (s, sd float32)

//go:noescape
func bwdLNApplyAVX2(x, dy, gm, dx *float32, n int, m, k1, k2, k3 float32)

//go:noescape
func bwdDotAVX2(a, b *float32, n int) float32

//go:noescape
func bwdSoftmaxAVX2(y, dy, dx *float32, n int, s float32)

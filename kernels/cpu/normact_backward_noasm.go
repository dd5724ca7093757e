//go:build !amd64 || purego

package cpu

// Stand-ins for the kernels of normact_backward_amd64.s: never called (vecAsm is false).

func bwdSigmulGradAVX2(x, dy, dx *float32, n int, negk, c, k, c3 float32) { panic("cpu: no assembly") }
func bwdGELUGradAVX2(x, dy, dx *float32, n int)                           { panic("cpu: no assembly") }
func bwdGEGLUGradAVX2(a, gt, dy, da, dg *float32, n int)                  { panic("cpu: no assembly") }
func bwdSumsAVX2(x, dy *float32, n int, m float32) (s, sd float32)        { panic("cpu: no assembly") }
func bwdSumsSiLUAVX2(x, dy, dz *float32, n int, m, a, b float32) (s, sd float32) {
	panic("cpu: no assembly")
}
func bwdApplyAVX2(dz, x, dx *float32, n int, k1, m, k2, k3 float32) { panic("cpu: no assembly") }
func bwdLNSumsAVX2(x, dy, gm, dg, db *float32, n int, m, r float32) (s, sd float32) {
	panic("cpu: no assembly")
}
func bwdLNApplyAVX2(x, dy, gm, dx *float32, n int, m, k1, k2, k3 float32) { panic("cpu: no assembly") }
func bwdDotAVX2(a, b *float32, n int) float32                             { panic("cpu: no assembly") }
func bwdSoftmaxAVX2(y, dy, dx *float32, n int, s float32)                 { panic("cpu: no assembly") }

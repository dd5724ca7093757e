//go:build !amd64 || purego

package cpu

func normSumDiffAVX2(x *float32, n int, m float32) (s, sq float32) { panic("cpu: no assembly") }
func normMaxAVX2(x *float32, n int) float32                        { panic("cpu: no assembly") }
func normAffineAVX2(x, y, pf *float32, n int, m, a, b float32)     { panic("cpu: no assembly") }
func normGammaBetaAVX2(x, y, gm, bt *float32, n int, m, a, b float32) {
	panic("cpu: no assembly")
}

//go:build !amd64 || purego

package cpu

// vecAsmAvail and vecAsm are false: this build has no assembly kernels.
var vecAsmAvail, vecAsm = false, false

func actSigmulAVX2(x, y *float32, n int, m, a, b, negk, c float32) { panic("cpu: no assembly") }
func actExpSumAVX2(x, y *float32, n int, m float32) float32        { panic("cpu: no assembly") }
func actGELUAVX2(x, y *float32, n int)                             { panic("cpu: no assembly") }
func actGEGLUAVX2(a, gate, y *float32, n int)                      { panic("cpu: no assembly") }

//go:build !amd64 || purego

package cpu

// bwdUseAVX2 is always false without assembly: the vector helpers of the
// backward kernels report false and their callers run the Go loops.
var bwdUseAVX2 = false

func convAddAsm(dst, src []float32) bool                       { return false }
func attnBwdDSAsm(pt, dp []float32, ld int, dv []float32) bool { return false }

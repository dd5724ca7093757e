//go:build !amd64

package cpu

// convUseAVX512 is always false off amd64.
var convUseAVX512 = false

func convGather2AVX512(dst, src []float32) { panic("cpu: convGather2AVX512 without amd64") }

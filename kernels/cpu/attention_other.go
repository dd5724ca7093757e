//go:build !amd64

package cpu

// attnUseAVX2 is always false off amd64.
var attnUseAVX2 = false

func attnMaxAVX2(x []float32) float32 { panic("cpu: attnMaxAVX2 without amd64") }

func attnExpSumAVX2(x []float32, sub float32) float32 { panic("cpu: attnExpSumAVX2 without amd64") }

//go:build !amd64

package cpu

// attnUseAVX2 is always false off amd64.
var attnUseAVX2 = false

func attnColMaxAVX2(x []float32, ld int, m []float32) { panic("cpu: attnColMaxAVX2 without amd64") }

func attnExpColsAVX2(x []float32, ld int, m, s []float32) {
	panic("cpu: attnExpColsAVX2 without amd64")
}

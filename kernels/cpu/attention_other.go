//go:build !amd64

package cpu

// attnUseAVX2 is always false off amd64.
var attnUseAVX2 = false

func attnColMaxAVX2(x []float32, ld int, m []float32) { panic("cpu: attnColMaxAVX2 without amd64") }

func attnExpColsAVX2(x []float32, ld int, m, s []float32) {
	panic("cpu: attnExpColsAVX2 without amd64")
}

// attnUseAVX512 is always false off amd64.
var attnUseAVX512 = false

func attnColMaxAVX512(x []float32, ld int, m []float32) { panic("cpu: attnColMaxAVX512 without amd64") }

func attnExpColsAVX512(x []float32, ld int, m, s []float32) {
	panic("cpu: attnExpColsAVX512 without amd64")
}

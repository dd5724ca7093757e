package cpu

import "golang.org/x/sys/cpu"

// convUseAVX512 selects the AVX-512 stride-2 im2col gather.
var convUseAVX512 = cpu.X86.HasAVX512F

// convGather2AVX512 sets dst[i] = src[2*i]; len(dst) is a multiple of 16 and
// len(src) >= 2*len(dst).
//
//go:noescape
func convGather2AVX512(dst, src []float32)

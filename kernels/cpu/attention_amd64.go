package cpu

import "golang.org/x/sys/cpu"

// attnUseAVX2 selects the AVX2/FMA row max and exp of the softmax.
var attnUseAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// attnMaxAVX2 returns max(x); len(x) is a positive multiple of 32.
//
//go:noescape
func attnMaxAVX2(x []float32) float32

// attnExpSumAVX2 sets x[i] = exp(x[i]-sub) and returns the sum; len(x) is a
// positive multiple of 16.
//
//go:noescape
func attnExpSumAVX2(x []float32, sub float32) float32

package cpu

import "golang.org/x/sys/cpu"

// attnUseAVX2 selects the AVX2/FMA column max and exp of the softmax.
var attnUseAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// attnUseAVX512 selects the AVX-512 versions (when attnUseAVX2 is also set).
var attnUseAVX512 = attnUseAVX2 && cpu.X86.HasAVX512F

// attnColMaxAVX512 is attnColMaxAVX2 with AVX-512F.
//
//go:noescape
func attnColMaxAVX512(x []float32, ld int, m []float32)

// attnExpColsAVX512 is attnExpColsAVX2 with AVX-512F.
//
//go:noescape
func attnExpColsAVX512(x []float32, ld int, m, s []float32)

// attnColMaxAVX2 sets m[c] to the maximum of column c of x [rows, ld]; ld is a
// positive multiple of 16 and rows >= 1.
//
//go:noescape
func attnColMaxAVX2(x []float32, ld int, m []float32)

// attnExpColsAVX2 sets x[j*ld+c] = exp(x[j*ld+c]-m[c]) and s[c] to the column sums;
// ld is a positive multiple of 16 and rows >= 1.
//
//go:noescape
func attnExpColsAVX2(x []float32, ld int, m, s []float32)

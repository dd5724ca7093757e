//go:build amd64 && !purego

package cpu

import xcpu "golang.org/x/sys/cpu"

// vecAsmAvail reports whether the machine runs the AVX2/FMA kernels of
// act_amd64.s and norm_amd64.s.
var vecAsmAvail = xcpu.X86.HasAVX && xcpu.X86.HasAVX2 && xcpu.X86.HasFMA && xcpu.X86.HasOSXSAVE

// vecAsm reports whether those kernels run; tests switch it off to check the
// pure-Go path on the same machine.
var vecAsm = vecAsmAvail

// The kernels below take n, a positive multiple of 8 (see act_amd64.s).

//go:noescape
func actSigmulAVX2(x, y *float32, n int, m, a, b, negk, c float32)

//go:noescape
func actExpSumAVX2(x, y *float32, n int, m float32) float32

//go:noescape
func actGELUAVX2(x, y *float32, n int)

//go:noescape
func actGEGLUAVX2(a, gate, y *float32, n int)

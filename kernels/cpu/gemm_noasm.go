//go:build !amd64 || purego

package cpu

const haveAsm = false

// asmKernels lists the assembly micro-kernels: none in this build.
func asmKernels() []*gemmKernel { return nil }

// activeKernel returns the micro-kernel for the current level.
func activeKernel() *gemmKernel { return &goGemmKernel }

// bf16Kernel returns the BF16 pair micro-kernel: none in this build.
func bf16Kernel() *gemmKernel { return nil }

func f16ToF32Asm(dst []float32, src []uint16) bool  { return false }
func f32ToF16Asm(dst []uint16, src []float32) bool  { return false }
func bf16ToF32Asm(dst []float32, src []uint16) bool { return false }
func f32ToBF16Asm(dst []uint16, src []float32) bool { return false }

//go:build amd64 && !purego

#include "textflag.h"

// func adamwAVX2(param, grad, expAvg, expAvgSq *float32, n int, c *adamwCoef) int
//
// Per element, as adamwUpdate (c: decay, b1, a1, b2, a2, bc2Sqrt, eps,
// negStep at offsets 0..28):
//	m = fma(g, a1, m*b1)
//	v = fma(a2*g, g, v*b2)
//	p = p*decay + (negStep*m) / (sqrt(v)/bc2Sqrt + eps)
TEXT ·adamwAVX2(SB), NOSPLIT, $0-56
	MOVQ param+0(FP), AX
	MOVQ grad+8(FP), BX
	MOVQ expAvg+16(FP), CX
	MOVQ expAvgSq+24(FP), DX
	MOVQ n+32(FP), SI
	MOVQ c+40(FP), DI
	VBROADCASTSS 0(DI), Y8   // decay
	VBROADCASTSS 4(DI), Y9   // b1
	VBROADCASTSS 8(DI), Y10  // a1
	VBROADCASTSS 12(DI), Y11 // b2
	VBROADCASTSS 16(DI), Y12 // a2
	VBROADCASTSS 20(DI), Y13 // bc2Sqrt
	VBROADCASTSS 24(DI), Y14 // eps
	VBROADCASTSS 28(DI), Y15 // negStep
	XORQ R8, R8

loop:
	LEAQ 8(R8), R9
	CMPQ R9, SI
	JGT  done
	VMOVUPS      (BX)(R8*4), Y0     // g
	VMULPS       (CX)(R8*4), Y9, Y1 // m*b1
	VFMADD231PS  Y10, Y0, Y1        // m = g*a1 + m*b1
	VMULPS       Y12, Y0, Y2        // a2*g
	VMULPS       (DX)(R8*4), Y11, Y3 // v*b2
	VFMADD231PS  Y0, Y2, Y3         // v = (a2*g)*g + v*b2
	VMOVUPS      Y1, (CX)(R8*4)
	VMOVUPS      Y3, (DX)(R8*4)
	VSQRTPS      Y3, Y4
	VDIVPS       Y13, Y4, Y4        // sqrt(v)/bc2Sqrt
	VADDPS       Y14, Y4, Y4        // + eps
	VMULPS       Y15, Y1, Y5        // negStep*m
	VDIVPS       Y4, Y5, Y5         // / denominator
	VMULPS       (AX)(R8*4), Y8, Y6 // p*decay
	VADDPS       Y5, Y6, Y6
	VMOVUPS      Y6, (AX)(R8*4)
	MOVQ         R9, R8
	JMP          loop

done:
	VZEROUPPER
	MOVQ R8, ret+48(FP)
	RET

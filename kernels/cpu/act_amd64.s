//go:build amd64 && !purego

#include "textflag.h"

// AVX2/FMA elementwise kernels over 8 float32 lanes. Every kernel takes a length n
// that is a positive multiple of 8; the Go wrappers in act_vec.go handle tails.
// The arithmetic mirrors the scalar functions of mathfast.go step by step.

// The constants (mf...) and the EXP/PHI macros are shared with the other
// assembly files of the package.
#include "mathfast_amd64.h"

// func actSigmulAVX2(x, y *float32, n int, m, a, b, negk, c float32)
// v = (x-m)*a + b; y = v / (1 + exp(negk*v*(1 + c*v*v))) (c == 0: no cubic term).
TEXT ·actSigmulAVX2(SB), NOSPLIT, $0-44
	MOVQ         x+0(FP), SI
	MOVQ         y+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Y10
	VBROADCASTSS a+28(FP), Y11
	VBROADCASTSS b+32(FP), Y12
	VBROADCASTSS negk+36(FP), Y13
	VBROADCASTSS c+40(FP), Y14
	VMOVUPS      mfOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9
	MOVL         c+40(FP), AX
	TESTL        $0x7fffffff, AX
	JNZ          cubic

plain:
	VMOVUPS      (SI), Y5
	VSUBPS       Y10, Y5, Y5
	VFMADD213PS  Y12, Y11, Y5
	VMULPS       Y13, Y5, Y0
	MF_EXP(Y0, Y9, Y1, Y2, Y3, Y4)
	VADDPS       Y15, Y0, Y0
	VDIVPS       Y0, Y5, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          plain
	VZEROUPPER
	RET

cubic:
	VMOVUPS      (SI), Y5
	VSUBPS       Y10, Y5, Y5
	VFMADD213PS  Y12, Y11, Y5
	VMULPS       Y5, Y5, Y0
	VFMADD213PS  Y15, Y14, Y0
	VMULPS       Y5, Y0, Y0
	VMULPS       Y13, Y0, Y0
	MF_EXP(Y0, Y9, Y1, Y2, Y3, Y4)
	VADDPS       Y15, Y0, Y0
	VDIVPS       Y0, Y5, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          cubic
	VZEROUPPER
	RET

// func actExpSumAVX2(x, y *float32, n int, m float32) float32
// y = exp(x - m); returns the sum of y.
TEXT ·actExpSumAVX2(SB), NOSPLIT, $0-36
	MOVQ         x+0(FP), SI
	MOVQ         y+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Y10
	VXORPS       Y9, Y9, Y9
	VXORPS       Y8, Y8, Y8
	VXORPS       Y7, Y7, Y7

expsum:
	VMOVUPS      (SI), Y0
	VSUBPS       Y10, Y0, Y0
	MF_EXP(Y0, Y9, Y1, Y2, Y3, Y4)
	VMOVUPS      Y0, (DI)
	VADDPS       Y0, Y8, Y8
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          expsum
	VEXTRACTF128 $1, Y8, X1
	VADDPS       X1, X8, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, ret+32(FP)
	VZEROUPPER
	RET

// func actGELUAVX2(x, y *float32, n int)
// y = x * Phi(x).
TEXT ·actGELUAVX2(SB), NOSPLIT, $0-24
	MOVQ         x+0(FP), SI
	MOVQ         y+8(FP), DI
	MOVQ         n+16(FP), CX
	VMOVUPS      mfOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9

gelu:
	VMOVUPS      (SI), Y10
	MF_PHI(Y10)
	VMULPS       Y10, Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          gelu
	VZEROUPPER
	RET

// func actGEGLUAVX2(a, gate, y *float32, n int)
// y = a * (gate * Phi(gate)).
TEXT ·actGEGLUAVX2(SB), NOSPLIT, $0-32
	MOVQ         a+0(FP), SI
	MOVQ         gate+8(FP), DX
	MOVQ         y+16(FP), DI
	MOVQ         n+24(FP), CX
	VMOVUPS      mfOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9

geglu:
	VMOVUPS      (DX), Y10
	MF_PHI(Y10)
	VMULPS       Y10, Y0, Y0
	VMULPS       (SI), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          geglu
	VZEROUPPER
	RET

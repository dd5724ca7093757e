#include "textflag.h"

// Constants of the exp approximation (float32 bits; see attention.go).
DATA attnExpC<>+0(SB)/4, $0x3fb8aa3b  // log2(e)
DATA attnExpC<>+4(SB)/4, $0x3f318000  // ln2 high part
DATA attnExpC<>+8(SB)/4, $0xb95e8083  // ln2 low part
DATA attnExpC<>+12(SB)/4, $0xc2ae0000 // lower clamp -87
DATA attnExpC<>+16(SB)/4, $0x42b00000 // upper clamp 88
DATA attnExpC<>+20(SB)/4, $0x39506967 // p0
DATA attnExpC<>+24(SB)/4, $0x3ab743ce // p1
DATA attnExpC<>+28(SB)/4, $0x3c088908 // p2
DATA attnExpC<>+32(SB)/4, $0x3d2aa9c1 // p3
DATA attnExpC<>+36(SB)/4, $0x3e2aaaaa // p4
DATA attnExpC<>+40(SB)/4, $0x3f000000 // p5
DATA attnExpC<>+44(SB)/4, $0x3f800000 // 1
DATA attnExpC<>+48(SB)/4, $0x0000007f // exponent bias 127 (int32)
GLOBL attnExpC<>(SB), RODATA|NOPTR, $52

// func attnMaxAVX2(x []float32) float32
// len(x) is a positive multiple of 32.
TEXT ·attnMaxAVX2(SB), NOSPLIT, $0-28
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VBROADCASTSS (SI), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3

maxloop:
	VMAXPS (SI), Y0, Y0
	VMAXPS 32(SI), Y1, Y1
	VMAXPS 64(SI), Y2, Y2
	VMAXPS 96(SI), Y3, Y3
	ADDQ   $128, SI
	SUBQ   $32, CX
	JNZ    maxloop

	VMAXPS       Y1, Y0, Y0
	VMAXPS       Y3, Y2, Y2
	VMAXPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// func attnExpSumAVX2(x []float32, sub float32) float32
// Replaces x[i] by exp(x[i]-sub) and returns the sum. len(x) is a positive multiple of 16.
TEXT ·attnExpSumAVX2(SB), NOSPLIT, $0-36
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), CX
	VBROADCASTSS sub+24(FP), Y15
	VBROADCASTSS attnExpC<>+0(SB), Y14
	VBROADCASTSS attnExpC<>+12(SB), Y13
	VBROADCASTSS attnExpC<>+16(SB), Y12
	VBROADCASTSS attnExpC<>+4(SB), Y11
	VBROADCASTSS attnExpC<>+8(SB), Y10
	VBROADCASTSS attnExpC<>+44(SB), Y9
	VPBROADCASTD attnExpC<>+48(SB), Y8
	VXORPS       Y7, Y7, Y7

exploop:
	// x - sub, clamped
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y3
	VSUBPS  Y15, Y0, Y0
	VSUBPS  Y15, Y3, Y3
	VMAXPS  Y13, Y0, Y0
	VMAXPS  Y13, Y3, Y3
	VMINPS  Y12, Y0, Y0
	VMINPS  Y12, Y3, Y3

	// n = round(x*log2e); r = x - n*ln2
	VMULPS       Y14, Y0, Y1
	VMULPS       Y14, Y3, Y4
	VROUNDPS     $0, Y1, Y1
	VROUNDPS     $0, Y4, Y4
	VFNMADD231PS Y11, Y1, Y0
	VFNMADD231PS Y11, Y4, Y3
	VFNMADD231PS Y10, Y1, Y0
	VFNMADD231PS Y10, Y4, Y3

	// 2^n as float bits
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y4, Y4
	VPADDD     Y8, Y1, Y1
	VPADDD     Y8, Y4, Y4
	VPSLLD     $23, Y1, Y1
	VPSLLD     $23, Y4, Y4

	// p(r) by Horner
	VBROADCASTSS attnExpC<>+20(SB), Y2
	VMOVAPS      Y2, Y5
	VBROADCASTSS attnExpC<>+24(SB), Y6
	VFMADD213PS  Y6, Y0, Y2
	VFMADD213PS  Y6, Y3, Y5
	VBROADCASTSS attnExpC<>+28(SB), Y6
	VFMADD213PS  Y6, Y0, Y2
	VFMADD213PS  Y6, Y3, Y5
	VBROADCASTSS attnExpC<>+32(SB), Y6
	VFMADD213PS  Y6, Y0, Y2
	VFMADD213PS  Y6, Y3, Y5
	VBROADCASTSS attnExpC<>+36(SB), Y6
	VFMADD213PS  Y6, Y0, Y2
	VFMADD213PS  Y6, Y3, Y5
	VBROADCASTSS attnExpC<>+40(SB), Y6
	VFMADD213PS  Y6, Y0, Y2
	VFMADD213PS  Y6, Y3, Y5

	// y = (p*r*r + r + 1) * 2^n
	VMULPS      Y0, Y0, Y6
	VFMADD213PS Y0, Y6, Y2
	VMULPS      Y3, Y3, Y6
	VFMADD213PS Y3, Y6, Y5
	VADDPS      Y9, Y2, Y2
	VADDPS      Y9, Y5, Y5
	VMULPS      Y1, Y2, Y2
	VMULPS      Y4, Y5, Y5

	VMOVUPS Y2, (SI)
	VMOVUPS Y5, 32(SI)
	VADDPS  Y2, Y7, Y7
	VADDPS  Y5, Y7, Y7
	ADDQ    $64, SI
	SUBQ    $16, CX
	JNZ     exploop

	VEXTRACTF128 $1, Y7, X1
	VADDPS       X1, X7, X0
	VPERMILPS    $0x4e, X0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VADDPS       X1, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+32(FP)
	RET

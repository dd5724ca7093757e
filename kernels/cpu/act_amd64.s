//go:build amd64 && !purego

#include "textflag.h"

// AVX2/FMA elementwise kernels over 8 float32 lanes. Every kernel takes a length n
// that is a positive multiple of 8; the Go wrappers in act_vec.go handle tails.
// The arithmetic mirrors the scalar functions of mathfast.go step by step.

#define BCAST(name, bits) \
	DATA name<>+0(SB)/4, $bits; \
	DATA name<>+4(SB)/4, $bits; \
	DATA name<>+8(SB)/4, $bits; \
	DATA name<>+12(SB)/4, $bits; \
	DATA name<>+16(SB)/4, $bits; \
	DATA name<>+20(SB)/4, $bits; \
	DATA name<>+24(SB)/4, $bits; \
	DATA name<>+28(SB)/4, $bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

BCAST(actOne, 0x3f800000)       // 1
BCAST(actHalf, 0x3f000000)      // 0.5
BCAST(actNegHalf, 0xbf000000)   // -0.5
BCAST(actBias, 0x0000007f)      // 127 (int32)
BCAST(actAbsMask, 0x7fffffff)
BCAST(actExpHi, 0x42b20000)     // 89
BCAST(actExpLo, 0xc2d00000)     // -104
BCAST(actLog2e, 0x3fb8aa3b)     // 1.442695
BCAST(actLn2Hi, 0x3f318000)     // 0.693359375
BCAST(actLn2Lo, 0xb95e8083)     // -2.1219444e-4
BCAST(actExpC2, 0x3efffffe)     // 0.49999994
BCAST(actExpC3, 0x3e2aaa49)     // 0.16666521
BCAST(actExpC4, 0x3d2aac79)     // 0.041668389
BCAST(actExpC5, 0x3c091d10)     // 0.0083687454
BCAST(actExpC6, 0x3ab511e6)     // 0.0013814538
BCAST(actErfcMid, 0x3f147ae1)   // 0.58
BCAST(actR0, 0xbf102b0b)        // -0.56315678
BCAST(actR1, 0x3faf1e85)        // 1.3681189
BCAST(actR2, 0x3dc213a3)        // 0.094764017
BCAST(actR3, 0xbed05587)        // -0.40690252
BCAST(actR4, 0xbd227081)        // -0.039658073
BCAST(actR5, 0x3e97a7ec)        // 0.29620302
BCAST(actR6, 0xbd3d9b9b)        // -0.046290975
BCAST(actR7, 0xbe7eb17b)        // -0.24872391
BCAST(actR8, 0x3e090e6d)        // 0.13384409
BCAST(actR9, 0x3e18fe76)        // 0.14940819
BCAST(actR10, 0xbe08e9cd)       // -0.13370438
BCAST(actGeluClamp, 0x41680000) // 14.5
BCAST(actHalfInvSqrt2, 0x3eb504f3) // 0.35355339 = 1/(2 sqrt 2)

// EXP sets X = exp(X + LO) (see mfExp2f): X is clamped to [-104, 89] keeping NaN,
// n = round((X+LO)*log2e), r = X - n*ln2Hi + LO - n*ln2Lo,
// p = 1 + r + r^2*q(r) with q by Estrin's scheme, result p * 2^(n>>1) * 2^(n - n>>1).
// Clobbers T1..T4.
#define EXP(X, LO, T1, T2, T3, T4) \
	VMOVUPS      actExpHi<>(SB), T1; \
	VMINPS       X, T1, X; \
	VMOVUPS      actExpLo<>(SB), T1; \
	VMAXPS       X, T1, X; \
	VADDPS       LO, X, T1; \
	VMULPS       actLog2e<>(SB), T1, T1; \
	VROUNDPS     $0, T1, T1; \
	VFNMADD231PS actLn2Hi<>(SB), T1, X; \
	VADDPS       LO, X, X; \
	VFNMADD231PS actLn2Lo<>(SB), T1, X; \
	VMULPS       X, X, T3; \
	VMOVUPS      actExpC3<>(SB), T2; \
	VFMADD213PS  actExpC2<>(SB), X, T2; \
	VMOVUPS      actExpC5<>(SB), T4; \
	VFMADD213PS  actExpC4<>(SB), X, T4; \
	VFMADD231PS  actExpC6<>(SB), T3, T4; \
	VFMADD231PS  T4, T3, T2; \
	VFMADD213PS  X, T3, T2; \
	VADDPS       actOne<>(SB), T2, T2; \
	VCVTPS2DQ    T1, T1; \
	VPSRAD       $1, T1, T3; \
	VPSUBD       T3, T1, T1; \
	VPADDD       actBias<>(SB), T3, T3; \
	VPSLLD       $23, T3, T3; \
	VPADDD       actBias<>(SB), T1, T1; \
	VPSLLD       $23, T1, T1; \
	VMULPS       T3, T2, T2; \
	VMULPS       T1, T2, X

// PHI sets Y0 = Phi(G) (see mfPhif) for G in a register other than Y0..Y8, Y11,
// Y12. Needs Y15 = 1 and Y9 = 0. Clobbers Y1..Y8, Y11, Y12. R(u) is evaluated by
// Estrin's scheme (depth 4 instead of Horner's 10).
#define PHI(G) \
	VANDPS       actAbsMask<>(SB), G, Y6; \
	VMOVUPS      actGeluClamp<>(SB), Y1; \
	VMINPS       Y6, Y1, Y6; \
	VMOVUPS      actHalfInvSqrt2<>(SB), Y7; \
	VFMADD213PS  Y15, Y6, Y7; \
	VDIVPS       Y7, Y15, Y8; \
	VSUBPS       actErfcMid<>(SB), Y8, Y1; \
	VMULPS       Y1, Y1, Y2; \
	VMOVUPS      actR1<>(SB), Y3; \
	VFMADD213PS  actR0<>(SB), Y1, Y3; \
	VMOVUPS      actR3<>(SB), Y4; \
	VFMADD213PS  actR2<>(SB), Y1, Y4; \
	VMOVUPS      actR5<>(SB), Y5; \
	VFMADD213PS  actR4<>(SB), Y1, Y5; \
	VMOVUPS      actR7<>(SB), Y7; \
	VFMADD213PS  actR6<>(SB), Y1, Y7; \
	VMOVUPS      actR9<>(SB), Y11; \
	VFMADD213PS  actR8<>(SB), Y1, Y11; \
	VMULPS       Y2, Y2, Y12; \
	VFMADD231PS  Y4, Y2, Y3; \
	VFMADD231PS  Y7, Y2, Y5; \
	VFMADD231PS  actR10<>(SB), Y2, Y11; \
	VFMADD231PS  Y5, Y12, Y3; \
	VMULPS       Y12, Y12, Y12; \
	VMOVAPS      Y3, Y2; \
	VFMADD231PS  Y11, Y12, Y2; \
	VMULPS       Y6, Y6, Y3; \
	VMOVAPS      Y3, Y4; \
	VFMSUB231PS  Y6, Y6, Y4; \
	VMULPS       actNegHalf<>(SB), Y3, Y3; \
	VFMADD231PS  actNegHalf<>(SB), Y4, Y2; \
	EXP(Y3, Y2, Y1, Y4, Y5, Y6); \
	VMULPS       Y8, Y3, Y3; \
	VMULPS       actHalf<>(SB), Y3, Y3; \
	VSUBPS       Y3, Y15, Y4; \
	VCMPPS       $1, G, Y9, Y5; \
	VBLENDVPS    Y5, Y4, Y3, Y0

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
	VMOVUPS      actOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9
	MOVL         c+40(FP), AX
	TESTL        $0x7fffffff, AX
	JNZ          cubic

plain:
	VMOVUPS      (SI), Y5
	VSUBPS       Y10, Y5, Y5
	VFMADD213PS  Y12, Y11, Y5
	VMULPS       Y13, Y5, Y0
	EXP(Y0, Y9, Y1, Y2, Y3, Y4)
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
	EXP(Y0, Y9, Y1, Y2, Y3, Y4)
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
	EXP(Y0, Y9, Y1, Y2, Y3, Y4)
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
	VMOVUPS      actOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9

gelu:
	VMOVUPS      (SI), Y10
	PHI(Y10)
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
	VMOVUPS      actOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9

geglu:
	VMOVUPS      (DX), Y10
	PHI(Y10)
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

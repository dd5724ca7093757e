//go:build amd64 && !purego

#include "textflag.h"

// AVX2/FMA kernels of the normalisations. Lengths n are positive multiples of 8;
// the Go wrappers in norm_vec.go handle tails.

// HSUM sets the low lane of X (the lower half of Y) to the sum of Y's 8 lanes.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS       T, X, X; \
	VHADDPS      X, X, X; \
	VHADDPS      X, X, X

// func normSumDiffAVX2(x *float32, n int, m float32) (s, sq float32)
// s = sum(x - m), sq = sum((x - m)^2), in 32 float32 lanes.
TEXT ·normSumDiffAVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	VXORPS       Y4, Y4, Y4
	VXORPS       Y5, Y5, Y5
	VXORPS       Y6, Y6, Y6
	VXORPS       Y7, Y7, Y7
	CMPQ         CX, $32
	JLT          sd8

sd32:
	VMOVUPS      (SI), Y8
	VMOVUPS      32(SI), Y9
	VMOVUPS      64(SI), Y10
	VMOVUPS      96(SI), Y11
	VSUBPS       Y15, Y8, Y8
	VSUBPS       Y15, Y9, Y9
	VSUBPS       Y15, Y10, Y10
	VSUBPS       Y15, Y11, Y11
	VADDPS       Y8, Y0, Y0
	VADDPS       Y9, Y1, Y1
	VADDPS       Y10, Y2, Y2
	VADDPS       Y11, Y3, Y3
	VFMADD231PS  Y8, Y8, Y4
	VFMADD231PS  Y9, Y9, Y5
	VFMADD231PS  Y10, Y10, Y6
	VFMADD231PS  Y11, Y11, Y7
	ADDQ         $128, SI
	SUBQ         $32, CX
	CMPQ         CX, $32
	JGE          sd32

sd8:
	CMPQ         CX, $8
	JLT          sdreduce
	VMOVUPS      (SI), Y8
	VSUBPS       Y15, Y8, Y8
	VADDPS       Y8, Y0, Y0
	VFMADD231PS  Y8, Y8, Y4
	ADDQ         $32, SI
	SUBQ         $8, CX
	JMP          sd8

sdreduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VADDPS       Y5, Y4, Y4
	VADDPS       Y7, Y6, Y6
	VADDPS       Y6, Y4, Y4
	HSUM(Y0, X0, X1)
	HSUM(Y4, X4, X5)
	MOVSS        X0, s+24(FP)
	MOVSS        X4, sq+28(FP)
	VZEROUPPER
	RET

// func normMaxAVX2(x *float32, n int) float32
TEXT ·normMaxAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VMOVUPS      (SI), Y0
	ADDQ         $32, SI
	SUBQ         $8, CX
	JZ           mxreduce

mx8:
	VMAXPS       (SI), Y0, Y0
	ADDQ         $32, SI
	SUBQ         $8, CX
	JNZ          mx8

mxreduce:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	MOVSS        X0, ret+16(FP)
	VZEROUPPER
	RET

// func normAffineAVX2(x, y, pf *float32, n int, m, a, b float32)
// y = (x - m)*a + b, prefetching the n floats at pf on the way (the data that the
// caller will read next; pf may equal x when there is none).
TEXT ·normAffineAVX2(SB), NOSPLIT, $0-44
	MOVQ         x+0(FP), SI
	MOVQ         y+8(FP), DI
	MOVQ         pf+16(FP), R8
	MOVQ         n+24(FP), CX
	VBROADCASTSS m+32(FP), Y13
	VBROADCASTSS a+36(FP), Y14
	VBROADCASTSS b+40(FP), Y15
	CMPQ         CX, $32
	JLT          af8

af32:
	PREFETCHT0   (R8)
	PREFETCHT0   64(R8)
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y1
	VMOVUPS      64(SI), Y2
	VMOVUPS      96(SI), Y3
	VSUBPS       Y13, Y0, Y0
	VSUBPS       Y13, Y1, Y1
	VSUBPS       Y13, Y2, Y2
	VSUBPS       Y13, Y3, Y3
	VFMADD213PS  Y15, Y14, Y0
	VFMADD213PS  Y15, Y14, Y1
	VFMADD213PS  Y15, Y14, Y2
	VFMADD213PS  Y15, Y14, Y3
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y1, 32(DI)
	VMOVUPS      Y2, 64(DI)
	VMOVUPS      Y3, 96(DI)
	ADDQ         $128, SI
	ADDQ         $128, DI
	ADDQ         $128, R8
	SUBQ         $32, CX
	CMPQ         CX, $32
	JGE          af32

af8:
	CMPQ         CX, $8
	JLT          afdone
	VMOVUPS      (SI), Y0
	VSUBPS       Y13, Y0, Y0
	VFMADD213PS  Y15, Y14, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JMP          af8

afdone:
	VZEROUPPER
	RET

// func normGammaBetaAVX2(x, y, gm, bt *float32, n int, m, a, b float32)
// y = ((x - m)*a + b)*gm + bt.
TEXT ·normGammaBetaAVX2(SB), NOSPLIT, $0-52
	MOVQ         x+0(FP), SI
	MOVQ         y+8(FP), DI
	MOVQ         gm+16(FP), R8
	MOVQ         bt+24(FP), R9
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Y13
	VBROADCASTSS a+44(FP), Y14
	VBROADCASTSS b+48(FP), Y15

gb8:
	VMOVUPS      (SI), Y0
	VMOVUPS      (R8), Y1
	VSUBPS       Y13, Y0, Y0
	VFMADD213PS  Y15, Y14, Y0
	VFMADD213PS  (R9), Y1, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DI
	ADDQ         $32, R8
	ADDQ         $32, R9
	SUBQ         $8, CX
	JNZ          gb8
	VZEROUPPER
	RET

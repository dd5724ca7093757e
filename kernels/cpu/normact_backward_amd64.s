//go:build amd64 && !purego

#include "textflag.h"
#include "mathfast_amd64.h"

// AVX2/FMA kernels of the backward passes. Every kernel takes a length n that is
// a positive multiple of 8; the Go wrappers in normact_backward_vec.go handle tails. The
// arithmetic follows the scalar Go code there (and mathfast.go) step by step.

// HSUM sets the low lane of X (the lower half of Y) to the sum of Y's 8 lanes.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS       T, X, X; \
	VHADDPS      X, X, X; \
	VHADDPS      X, X, X

// func bwdSigmulGradAVX2(x, dy, dx *float32, n int, negk, c, k, c3 float32)
// dx = dy * d/dv [v*sigmoid(k*v*(1 + c*v*v))] at v = x (c3 = 3c; c == 0: no cubic term).
TEXT ·bwdSigmulGradAVX2(SB), NOSPLIT, $0-48
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         dx+16(FP), DI
	MOVQ         n+24(FP), CX
	VBROADCASTSS negk+32(FP), Y13
	VBROADCASTSS c+36(FP), Y14
	VBROADCASTSS k+40(FP), Y12
	VBROADCASTSS c3+44(FP), Y11
	VMOVUPS      mfOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9
	MOVL         c+36(FP), AX
	TESTL        $0x7fffffff, AX
	JNZ          sgcubic

sgplain:
	VMOVUPS      (SI), Y5
	VMULPS       Y13, Y5, Y6
	MF_SIGMUL_GRAD(Y5, Y12, Y6)
	VMULPS       (DX), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          sgplain
	VZEROUPPER
	RET

sgcubic:
	VMOVUPS      (SI), Y5
	VMULPS       Y5, Y5, Y8
	VMOVAPS      Y8, Y6
	VFMADD213PS  Y15, Y14, Y6
	VMULPS       Y5, Y6, Y6
	VMULPS       Y13, Y6, Y6
	VFMADD213PS  Y15, Y11, Y8
	VMULPS       Y12, Y8, Y8
	MF_SIGMUL_GRAD(Y5, Y8, Y6)
	VMULPS       (DX), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          sgcubic
	VZEROUPPER
	RET

// func bwdGELUGradAVX2(x, dy, dx *float32, n int)
// dx = dy * (Phi(x) + xc*phi(xc)), xc = x clamped to [-14.5, 14.5].
TEXT ·bwdGELUGradAVX2(SB), NOSPLIT, $0-32
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         dx+16(FP), DI
	MOVQ         n+24(FP), CX
	VMOVUPS      mfOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9

gg:
	VMOVUPS      (SI), Y10
	MF_PHI(Y10)
	MF_GAUSS(Y10, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VFMADD231PS  Y2, Y1, Y0
	VMULPS       (DX), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          gg
	VZEROUPPER
	RET

// func bwdGEGLUGradAVX2(a, gt, dy, da, dg *float32, n int)
// da = dy * gt*Phi(gt);  dg = dy * a * (Phi(gt) + gc*phi(gc)), gc = gt clamped to
// [-14.5, 14.5]. da may alias a, dg gt.
TEXT ·bwdGEGLUGradAVX2(SB), NOSPLIT, $0-48
	MOVQ         a+0(FP), SI
	MOVQ         gt+8(FP), DX
	MOVQ         dy+16(FP), R8
	MOVQ         da+24(FP), DI
	MOVQ         dg+32(FP), R9
	MOVQ         n+40(FP), CX
	VMOVUPS      mfOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9

geg:
	VMOVUPS      (DX), Y10
	MF_PHI(Y10)
	MF_GAUSS(Y10, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VMULPS       Y10, Y0, Y13
	VFMADD231PS  Y2, Y1, Y0
	VMOVUPS      (R8), Y14
	VMULPS       Y14, Y13, Y13
	VMULPS       (SI), Y14, Y14
	VMULPS       Y14, Y0, Y0
	VMOVUPS      Y13, (DI)
	VMOVUPS      Y0, (R9)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, R8
	ADDQ         $32, DI
	ADDQ         $32, R9
	SUBQ         $8, CX
	JNZ          geg
	VZEROUPPER
	RET

// func bwdSumsAVX2(x, dy *float32, n int, m float32) (s, sd float32)
// s = sum(dy), sd = sum(dy*(x - m)), in 32 float32 lanes each.
TEXT ·bwdSumsAVX2(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         n+16(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	VXORPS       Y4, Y4, Y4
	VXORPS       Y5, Y5, Y5
	VXORPS       Y6, Y6, Y6
	VXORPS       Y7, Y7, Y7
	CMPQ         CX, $32
	JLT          gs8

gs32:
	VMOVUPS      (SI), Y8
	VMOVUPS      32(SI), Y9
	VMOVUPS      64(SI), Y10
	VMOVUPS      96(SI), Y11
	VMOVUPS      (DX), Y12
	VMOVUPS      32(DX), Y13
	VMOVUPS      64(DX), Y14
	VSUBPS       Y15, Y8, Y8
	VSUBPS       Y15, Y9, Y9
	VSUBPS       Y15, Y10, Y10
	VSUBPS       Y15, Y11, Y11
	VADDPS       Y12, Y0, Y0
	VADDPS       Y13, Y1, Y1
	VADDPS       Y14, Y2, Y2
	VFMADD231PS  Y12, Y8, Y4
	VFMADD231PS  Y13, Y9, Y5
	VFMADD231PS  Y14, Y10, Y6
	VMOVUPS      96(DX), Y12
	VADDPS       Y12, Y3, Y3
	VFMADD231PS  Y12, Y11, Y7
	ADDQ         $128, SI
	ADDQ         $128, DX
	SUBQ         $32, CX
	CMPQ         CX, $32
	JGE          gs32

gs8:
	CMPQ         CX, $8
	JLT          gsreduce
	VMOVUPS      (SI), Y8
	VMOVUPS      (DX), Y12
	VSUBPS       Y15, Y8, Y8
	VADDPS       Y12, Y0, Y0
	VFMADD231PS  Y12, Y8, Y4
	ADDQ         $32, SI
	ADDQ         $32, DX
	SUBQ         $8, CX
	JMP          gs8

gsreduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VADDPS       Y5, Y4, Y4
	VADDPS       Y7, Y6, Y6
	VADDPS       Y6, Y4, Y4
	HSUM(Y0, X0, X1)
	HSUM(Y4, X4, X5)
	MOVSS        X0, s+32(FP)
	MOVSS        X4, sd+36(FP)
	VZEROUPPER
	RET

// func bwdSumsSiLUAVX2(x, dy, dz *float32, n int, m, a, b float32) (s, sd float32)
// d = x - m; v = d*a + b; dz = dy * silu'(v); s = sum(dz), sd = sum(dz*d).
TEXT ·bwdSumsSiLUAVX2(SB), NOSPLIT, $0-56
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         dz+16(FP), DI
	MOVQ         n+24(FP), CX
	VBROADCASTSS m+32(FP), Y10
	VBROADCASTSS a+36(FP), Y11
	VBROADCASTSS b+40(FP), Y12
	VMOVUPS      mfOne<>(SB), Y15
	VXORPS       Y9, Y9, Y9
	VXORPS       Y13, Y13, Y13
	VXORPS       Y14, Y14, Y14

gss:
	VMOVUPS      (SI), Y8
	VSUBPS       Y10, Y8, Y8
	VMOVAPS      Y8, Y5
	VFMADD213PS  Y12, Y11, Y5
	VSUBPS       Y5, Y9, Y6
	MF_SIGMUL_GRAD(Y5, Y15, Y6)
	VMULPS       (DX), Y0, Y0
	VMOVUPS      Y0, (DI)
	VADDPS       Y0, Y13, Y13
	VFMADD231PS  Y0, Y8, Y14
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          gss
	HSUM(Y13, X13, X1)
	HSUM(Y14, X14, X2)
	MOVSS        X13, s+48(FP)
	MOVSS        X14, sd+52(FP)
	VZEROUPPER
	RET

// func bwdApplyAVX2(dz, x, dx *float32, n int, k1, m, k2, k3 float32)
// dx = dz*k1 + ((x - m)*k2 + k3).
TEXT ·bwdApplyAVX2(SB), NOSPLIT, $0-48
	MOVQ         dz+0(FP), SI
	MOVQ         x+8(FP), DX
	MOVQ         dx+16(FP), DI
	MOVQ         n+24(FP), CX
	VBROADCASTSS k1+32(FP), Y12
	VBROADCASTSS m+36(FP), Y13
	VBROADCASTSS k2+40(FP), Y14
	VBROADCASTSS k3+44(FP), Y15
	CMPQ         CX, $32
	JLT          ap8

ap32:
	VMOVUPS      (DX), Y0
	VMOVUPS      32(DX), Y1
	VMOVUPS      64(DX), Y2
	VMOVUPS      96(DX), Y3
	VSUBPS       Y13, Y0, Y0
	VSUBPS       Y13, Y1, Y1
	VSUBPS       Y13, Y2, Y2
	VSUBPS       Y13, Y3, Y3
	VFMADD213PS  Y15, Y14, Y0
	VFMADD213PS  Y15, Y14, Y1
	VFMADD213PS  Y15, Y14, Y2
	VFMADD213PS  Y15, Y14, Y3
	VFMADD231PS  (SI), Y12, Y0
	VFMADD231PS  32(SI), Y12, Y1
	VFMADD231PS  64(SI), Y12, Y2
	VFMADD231PS  96(SI), Y12, Y3
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y1, 32(DI)
	VMOVUPS      Y2, 64(DI)
	VMOVUPS      Y3, 96(DI)
	ADDQ         $128, SI
	ADDQ         $128, DX
	ADDQ         $128, DI
	SUBQ         $32, CX
	CMPQ         CX, $32
	JGE          ap32

ap8:
	CMPQ         CX, $8
	JLT          apdone
	VMOVUPS      (DX), Y0
	VSUBPS       Y13, Y0, Y0
	VFMADD213PS  Y15, Y14, Y0
	VFMADD231PS  (SI), Y12, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JMP          ap8

apdone:
	VZEROUPPER
	RET

// func bwdLNSumsAVX2(x, dy, gm, dg, db *float32, n int, m, r float32) (s, sd float32)
// d = x - m, t = dy*gm: s = sum(t), sd = sum(t*d); dg += (dy*d)*r; db += dy.
TEXT ·bwdLNSumsAVX2(SB), NOSPLIT, $0-64
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         gm+16(FP), R8
	MOVQ         dg+24(FP), R9
	MOVQ         db+32(FP), R10
	MOVQ         n+40(FP), CX
	VBROADCASTSS m+48(FP), Y14
	VBROADCASTSS r+52(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	CMPQ         CX, $16
	JLT          ls8

ls16:
	VMOVUPS      (SI), Y4
	VMOVUPS      32(SI), Y8
	VSUBPS       Y14, Y4, Y4
	VSUBPS       Y14, Y8, Y8
	VMOVUPS      (DX), Y5
	VMOVUPS      32(DX), Y9
	VMULPS       (R8), Y5, Y6
	VMULPS       32(R8), Y9, Y10
	VADDPS       Y6, Y0, Y0
	VADDPS       Y10, Y2, Y2
	VFMADD231PS  Y6, Y4, Y1
	VFMADD231PS  Y10, Y8, Y3
	VMULPS       Y5, Y4, Y7
	VMULPS       Y9, Y8, Y11
	VMOVUPS      (R9), Y12
	VMOVUPS      32(R9), Y13
	VFMADD231PS  Y15, Y7, Y12
	VFMADD231PS  Y15, Y11, Y13
	VMOVUPS      Y12, (R9)
	VMOVUPS      Y13, 32(R9)
	VADDPS       (R10), Y5, Y5
	VADDPS       32(R10), Y9, Y9
	VMOVUPS      Y5, (R10)
	VMOVUPS      Y9, 32(R10)
	ADDQ         $64, SI
	ADDQ         $64, DX
	ADDQ         $64, R8
	ADDQ         $64, R9
	ADDQ         $64, R10
	SUBQ         $16, CX
	CMPQ         CX, $16
	JGE          ls16

ls8:
	CMPQ         CX, $8
	JLT          lsreduce
	VMOVUPS      (SI), Y4
	VSUBPS       Y14, Y4, Y4
	VMOVUPS      (DX), Y5
	VMULPS       (R8), Y5, Y6
	VADDPS       Y6, Y0, Y0
	VFMADD231PS  Y6, Y4, Y1
	VMULPS       Y5, Y4, Y7
	VMOVUPS      (R9), Y12
	VFMADD231PS  Y15, Y7, Y12
	VMOVUPS      Y12, (R9)
	VADDPS       (R10), Y5, Y5
	VMOVUPS      Y5, (R10)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, R8
	ADDQ         $32, R9
	ADDQ         $32, R10
	SUBQ         $8, CX
	JMP          ls8

lsreduce:
	VADDPS       Y2, Y0, Y0
	VADDPS       Y3, Y1, Y1
	HSUM(Y0, X0, X4)
	HSUM(Y1, X1, X5)
	MOVSS        X0, s+56(FP)
	MOVSS        X1, sd+60(FP)
	VZEROUPPER
	RET

// func bwdLNApplyAVX2(x, dy, gm, dx *float32, n int, m, k1, k2, k3 float32)
// dx = (dy*gm)*k1 + ((x - m)*k2 + k3).
TEXT ·bwdLNApplyAVX2(SB), NOSPLIT, $0-56
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         gm+16(FP), R8
	MOVQ         dx+24(FP), DI
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Y12
	VBROADCASTSS k1+44(FP), Y13
	VBROADCASTSS k2+48(FP), Y14
	VBROADCASTSS k3+52(FP), Y15
	CMPQ         CX, $16
	JLT          la8

la16:
	VMOVUPS      (SI), Y0
	VMOVUPS      32(SI), Y2
	VSUBPS       Y12, Y0, Y0
	VSUBPS       Y12, Y2, Y2
	VFMADD213PS  Y15, Y14, Y0
	VFMADD213PS  Y15, Y14, Y2
	VMOVUPS      (DX), Y1
	VMOVUPS      32(DX), Y3
	VMULPS       (R8), Y1, Y1
	VMULPS       32(R8), Y3, Y3
	VFMADD231PS  Y13, Y1, Y0
	VFMADD231PS  Y13, Y3, Y2
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y2, 32(DI)
	ADDQ         $64, SI
	ADDQ         $64, DX
	ADDQ         $64, R8
	ADDQ         $64, DI
	SUBQ         $16, CX
	CMPQ         CX, $16
	JGE          la16

la8:
	CMPQ         CX, $8
	JLT          ladone
	VMOVUPS      (SI), Y0
	VSUBPS       Y12, Y0, Y0
	VFMADD213PS  Y15, Y14, Y0
	VMOVUPS      (DX), Y1
	VMULPS       (R8), Y1, Y1
	VFMADD231PS  Y13, Y1, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, R8
	ADDQ         $32, DI
	SUBQ         $8, CX
	JMP          la8

ladone:
	VZEROUPPER
	RET

// func bwdDotAVX2(a, b *float32, n int) float32
// sum(a*b) in 32 float32 lanes.
TEXT ·bwdDotAVX2(SB), NOSPLIT, $0-28
	MOVQ         a+0(FP), SI
	MOVQ         b+8(FP), DX
	MOVQ         n+16(FP), CX
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	VXORPS       Y2, Y2, Y2
	VXORPS       Y3, Y3, Y3
	CMPQ         CX, $32
	JLT          dt8

dt32:
	VMOVUPS      (SI), Y4
	VMOVUPS      32(SI), Y5
	VMOVUPS      64(SI), Y6
	VMOVUPS      96(SI), Y7
	VFMADD231PS  (DX), Y4, Y0
	VFMADD231PS  32(DX), Y5, Y1
	VFMADD231PS  64(DX), Y6, Y2
	VFMADD231PS  96(DX), Y7, Y3
	ADDQ         $128, SI
	ADDQ         $128, DX
	SUBQ         $32, CX
	CMPQ         CX, $32
	JGE          dt32

dt8:
	CMPQ         CX, $8
	JLT          dtreduce
	VMOVUPS      (SI), Y4
	VFMADD231PS  (DX), Y4, Y0
	ADDQ         $32, SI
	ADDQ         $32, DX
	SUBQ         $8, CX
	JMP          dt8

dtreduce:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	HSUM(Y0, X0, X1)
	MOVSS        X0, ret+24(FP)
	VZEROUPPER
	RET

// func bwdSoftmaxAVX2(y, dy, dx *float32, n int, s float32)
// dx = y*(dy - s).
TEXT ·bwdSoftmaxAVX2(SB), NOSPLIT, $0-36
	MOVQ         y+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         dx+16(FP), DI
	MOVQ         n+24(FP), CX
	VBROADCASTSS s+32(FP), Y15
	CMPQ         CX, $32
	JLT          sm8

sm32:
	VMOVUPS      (DX), Y0
	VMOVUPS      32(DX), Y1
	VMOVUPS      64(DX), Y2
	VMOVUPS      96(DX), Y3
	VSUBPS       Y15, Y0, Y0
	VSUBPS       Y15, Y1, Y1
	VSUBPS       Y15, Y2, Y2
	VSUBPS       Y15, Y3, Y3
	VMULPS       (SI), Y0, Y0
	VMULPS       32(SI), Y1, Y1
	VMULPS       64(SI), Y2, Y2
	VMULPS       96(SI), Y3, Y3
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y1, 32(DI)
	VMOVUPS      Y2, 64(DI)
	VMOVUPS      Y3, 96(DI)
	ADDQ         $128, SI
	ADDQ         $128, DX
	ADDQ         $128, DI
	SUBQ         $32, CX
	CMPQ         CX, $32
	JGE          sm32

sm8:
	CMPQ         CX, $8
	JLT          smdone
	VMOVUPS      (DX), Y0
	VSUBPS       Y15, Y0, Y0
	VMULPS       (SI), Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, DI
	SUBQ         $8, CX
	JMP          sm8

smdone:
	VZEROUPPER
	RET

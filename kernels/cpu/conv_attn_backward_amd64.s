//go:build amd64 && !purego

#include "textflag.h"

// func convAddAVX2(dst, src *float32, n int)
// dst[i] += src[i] for i < n (a positive multiple of 8).
TEXT ·convAddAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	XORQ AX, AX
	CMPQ CX, $16
	JLT  tail8

loop16:
	VMOVUPS (DI)(AX*4), Y0
	VMOVUPS 32(DI)(AX*4), Y1
	VADDPS  (SI)(AX*4), Y0, Y0
	VADDPS  32(SI)(AX*4), Y1, Y1
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	ADDQ    $16, AX
	LEAQ    16(AX), DX
	CMPQ    DX, CX
	JLE     loop16

tail8:
	CMPQ AX, CX
	JGE  done
	VMOVUPS (DI)(AX*4), Y0
	VADDPS  (SI)(AX*4), Y0, Y0
	VMOVUPS Y0, (DI)(AX*4)

done:
	VZEROUPPER
	RET

// func attnBwdDSAVX2(pt, dp *float32, rows, ld int, dv *float32)
// dp[j*ld+c] = pt[j*ld+c] * (dp[j*ld+c] - dv[c]) for j < rows (>= 1), c < ld
// (a positive multiple of 16).
TEXT ·attnBwdDSAVX2(SB), NOSPLIT, $0-40
	MOVQ pt+0(FP), SI
	MOVQ dp+8(FP), DI
	MOVQ rows+16(FP), CX
	MOVQ ld+24(FP), DX
	MOVQ dv+32(FP), R8

row:
	XORQ AX, AX

col:
	VMOVUPS (DI)(AX*4), Y0
	VMOVUPS 32(DI)(AX*4), Y1
	VSUBPS  (R8)(AX*4), Y0, Y0
	VSUBPS  32(R8)(AX*4), Y1, Y1
	VMULPS  (SI)(AX*4), Y0, Y0
	VMULPS  32(SI)(AX*4), Y1, Y1
	VMOVUPS Y0, (DI)(AX*4)
	VMOVUPS Y1, 32(DI)(AX*4)
	ADDQ    $16, AX
	CMPQ    AX, DX
	JLT     col
	LEAQ    (SI)(DX*4), SI
	LEAQ    (DI)(DX*4), DI
	DECQ    CX
	JNZ     row
	VZEROUPPER
	RET

//go:build amd64 && !purego

#include "textflag.h"

// BF16 rounding and pair packing with AVX-512 (see gemm_bf16.go).
//
// ROUND leaves in R the F32 bits of X rounded to nearest even at bit 16 (the
// BF16 value in the top half, garbage below), as F32ToBF16Scalar rounds: add
// 0x7fff plus the lowest kept bit, except that a NaN only gets its quiet bit
// set. T is scratch, K a mask register; ONE holds 1 in every lane, BIAS
// 0x7fff and QUIET 0x00400000. X is left unchanged.
#define ROUND(X, R, T, K, ONE, BIAS, QUIET) \
	VCMPPS $3, X, X, K \
	VPSRLD $16, X, T \
	VPANDD ONE, T, T \
	VPADDD BIAS, T, T \
	VPADDD X, T, R \
	VPORD QUIET, X, K, R

#define ROUND_CONSTS \
	MOVL $1, AX \
	VPBROADCASTD AX, Z29 \
	MOVL $0x7fff, AX \
	VPBROADCASTD AX, Z30 \
	MOVL $0x00400000, AX \
	VPBROADCASTD AX, Z28

// func f32ToBF16AVX512(dst *uint16, src *float32, n int)
//
// dst[i] = F32ToBF16Scalar(src[i]) for i < n, n a multiple of 16.
TEXT ·f32ToBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	ROUND_CONSTS
	SHRQ $4, CX
	JEQ  cbdone
cbloop:
	VMOVUPS (SI), Z0
	ROUND(Z0, Z1, Z2, K1, Z29, Z30, Z28)
	VPSRLD $16, Z1, Z1
	VPMOVDW Z1, Y1
	VMOVDQU Y1, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ CX
	JNE  cbloop
cbdone:
	VZEROUPPER
	RET

// func packB32PairsF32(dst *float32, src *float32, ldb, kc, mask int)
//
// One 32-wide pair panel of a row-major, non-transposed F32 B: for each k
// pair h, dst word h*32+j = bf16(src[2h*ldb+j]) | bf16(src[(2h+1)*ldb+j]) << 16;
// for an odd kc the last word's high half is zero. Columns whose bit is clear
// in mask (bits 0-15: columns 0-15, bits 16-31: columns 16-31) are zero. ldb
// is in elements.
TEXT ·packB32PairsF32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), BX
	MOVQ kc+24(FP), CX
	MOVQ mask+32(FP), AX
	KMOVW AX, K1
	SHRQ $16, AX
	KMOVW AX, K2
	SHLQ $2, BX
	ROUND_CONSTS
	MOVL $0xffff0000, AX
	VPBROADCASTD AX, Z31
	MOVQ CX, R9
	SHRQ $1, R9
	JEQ  pp32tail
pp32loop:
	LEAQ (SI)(BX*1), R10
	PREFETCHT0 (SI)(BX*2)
	PREFETCHT0 64(SI)(BX*2)
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS.Z (R10), K1, Z2
	VMOVUPS.Z 64(R10), K2, Z3
	ROUND(Z0, Z4, Z8, K3, Z29, Z30, Z28)
	ROUND(Z1, Z5, Z9, K4, Z29, Z30, Z28)
	ROUND(Z2, Z6, Z10, K5, Z29, Z30, Z28)
	ROUND(Z3, Z7, Z11, K6, Z29, Z30, Z28)
	VPSRLD $16, Z4, Z4
	VPSRLD $16, Z5, Z5
	VPTERNLOGD $0xf8, Z31, Z6, Z4 // Z4 |= Z6 & Z31
	VPTERNLOGD $0xf8, Z31, Z7, Z5
	VMOVUPS Z4, (DI)
	VMOVUPS Z5, 64(DI)
	LEAQ (SI)(BX*2), SI
	ADDQ $128, DI
	DECQ R9
	JNE  pp32loop
pp32tail:
	ANDQ $1, CX
	JEQ  pp32done
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	ROUND(Z0, Z4, Z8, K3, Z29, Z30, Z28)
	ROUND(Z1, Z5, Z9, K4, Z29, Z30, Z28)
	VPSRLD $16, Z4, Z4
	VPSRLD $16, Z5, Z5
	VMOVUPS Z4, (DI)
	VMOVUPS Z5, 64(DI)
pp32done:
	VZEROUPPER
	RET

// func f16ToBF16AVX512(dst *uint16, src *uint16, n int)
//
// dst[i] = F32ToBF16Scalar(F16ToF32Scalar(src[i])) for i < n, n a multiple
// of 16 (F16 to F32 is exact, so this is one rounding).
TEXT ·f16ToBF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	ROUND_CONSTS
	SHRQ $4, CX
	JEQ  hbdone
hbloop:
	VCVTPH2PS (SI), Z0
	ROUND(Z0, Z1, Z2, K1, Z29, Z30, Z28)
	VPSRLD $16, Z1, Z1
	VPMOVDW Z1, Y1
	VMOVDQU Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNE  hbloop
hbdone:
	VZEROUPPER
	RET

//go:build amd64 && !purego

#include "textflag.h"

// BF16 pair packing of one 32-wide B micro-panel from a row-major,
// non-transposed F32 B (see gemm_bf16.go): for each k pair h,
// dst word h*32+j = bf16(src[2h*ldb+j]) | bf16(src[(2h+1)*ldb+j]) << 16, the
// values rounded to nearest even by adding 0x7fff plus the lowest kept bit
// (NaNs whose payload lies only in the low 16 bits become infinities). For
// an odd kc the last word's high half is zero. Columns whose bit is clear in
// mask (bits 0-15: columns 0-15, bits 16-31: columns 16-31) are zero. ldb is
// in elements.

// ROUND leaves in X the F32 bits of X rounded to nearest even at bit 16 (the
// BF16 value in the top half, garbage below); T is scratch, ONE holds 1 in
// every lane and BIAS 0x7fff.
#define ROUND(X, T, ONE, BIAS) \
	VPSRLD $16, X, T \
	VPANDD ONE, T, T \
	VPADDD BIAS, X, X \
	VPADDD T, X, X

// func packB32PairsF32(dst *float32, src *float32, ldb, kc, mask int)
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
	MOVL $1, AX
	VPBROADCASTD AX, Z29
	MOVL $0x7fff, AX
	VPBROADCASTD AX, Z30
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
	ROUND(Z0, Z4, Z29, Z30)
	ROUND(Z1, Z5, Z29, Z30)
	ROUND(Z2, Z6, Z29, Z30)
	ROUND(Z3, Z7, Z29, Z30)
	VPSRLD $16, Z0, Z0
	VPSRLD $16, Z1, Z1
	VPTERNLOGD $0xf8, Z31, Z2, Z0 // Z0 |= Z2 & Z31
	VPTERNLOGD $0xf8, Z31, Z3, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	LEAQ (SI)(BX*2), SI
	ADDQ $128, DI
	DECQ R9
	JNE  pp32loop
pp32tail:
	ANDQ $1, CX
	JEQ  pp32done
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	ROUND(Z0, Z4, Z29, Z30)
	ROUND(Z1, Z5, Z29, Z30)
	VPSRLD $16, Z0, Z0
	VPSRLD $16, Z1, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
pp32done:
	VZEROUPPER
	RET

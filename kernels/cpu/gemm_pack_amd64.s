//go:build amd64 && !purego

#include "textflag.h"

// Packing of one full B micro-panel from a row-major, non-transposed B: for
// p < kc, dst[p*NR : p*NR+NR] = src[p*ldb : p*ldb+NR] (converted from F16 in the
// F16 forms). ldb is in elements. The same row of the next panel (the bytes just
// after this one's) is prefetched, a whole panel ahead of its use.

// The 32-wide forms load only the columns whose bit is set in mask (bits 0-15:
// columns 0-15, bits 16-31: columns 16-31) and store zeros for the others.

// func packB32F32(dst *float32, src *float32, ldb, kc, mask int)
TEXT ·packB32F32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), BX
	MOVQ kc+24(FP), CX
	MOVQ mask+32(FP), AX
	KMOVW AX, K1
	SHRQ $16, AX
	KMOVW AX, K2
	SHLQ $2, BX
	TESTQ CX, CX
	JEQ  pb32done
pb32loop:
	PREFETCHT0 128(SI)
	PREFETCHT0 192(SI)
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ BX, SI
	ADDQ $128, DI
	DECQ CX
	JNE  pb32loop
pb32done:
	VZEROUPPER
	RET

// func packB32F16(dst *float32, src *uint16, ldb, kc, mask int)
TEXT ·packB32F16(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), BX
	MOVQ kc+24(FP), CX
	MOVQ mask+32(FP), AX
	KMOVW AX, K1
	SHRQ $16, AX
	KMOVW AX, K2
	SHLQ $1, BX
	TESTQ CX, CX
	JEQ  ph32done
ph32loop:
	PREFETCHT0 64(SI)
	VMOVDQU16.Z (SI), K1, Y0
	VMOVDQU16.Z 32(SI), K2, Y1
	VCVTPH2PS Y0, Z0
	VCVTPH2PS Y1, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ BX, SI
	ADDQ $128, DI
	DECQ CX
	JNE  ph32loop
ph32done:
	VZEROUPPER
	RET

// func packB16F32(dst *float32, src *float32, ldb, kc int)
TEXT ·packB16F32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), BX
	MOVQ kc+24(FP), CX
	SHLQ $2, BX
	TESTQ CX, CX
	JEQ  pb16done
pb16loop:
	PREFETCHT0 64(SI)
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ BX, SI
	ADDQ $64, DI
	DECQ CX
	JNE  pb16loop
pb16done:
	VZEROUPPER
	RET

// func packB16F16(dst *float32, src *uint16, ldb, kc int)
TEXT ·packB16F16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), BX
	MOVQ kc+24(FP), CX
	SHLQ $1, BX
	TESTQ CX, CX
	JEQ  ph16done
ph16loop:
	PREFETCHT0 32(SI)
	VCVTPH2PS (SI), Y0
	VCVTPH2PS 16(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ BX, SI
	ADDQ $64, DI
	DECQ CX
	JNE  ph16loop
ph16done:
	VZEROUPPER
	RET

// func packA14TF32(dst *float32, src *float32, lds, kc, rows int)
//
// Packs one 14-row A micro-panel from a transposed A (stored [K, M], the panel's
// rows contiguous in every stored row): for p < kc, dst[p*14 : p*14+14] =
// src[p*lds : p*lds+rows], zero-padded to 14 lanes.
TEXT ·packA14TF32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ lds+16(FP), BX
	MOVQ kc+24(FP), CX
	MOVQ rows+32(FP), R8
	SHLQ $2, BX
	MOVQ $1, AX
	SHLXQ R8, AX, AX
	DECQ AX
	KMOVW AX, K2
	MOVQ $0x3fff, AX
	KMOVW AX, K1
	MOVQ CX, R9
	SHRQ $2, R9
	JEQ  pat_tail
	LEAQ (BX)(BX*2), R10
pat_loop4:
	VMOVUPS.Z (SI), K2, Z0
	VMOVUPS.Z (SI)(BX*1), K2, Z1
	VMOVUPS.Z (SI)(BX*2), K2, Z2
	VMOVUPS.Z (SI)(R10*1), K2, Z3
	VMOVUPS Z0, K1, (DI)
	VMOVUPS Z1, K1, 56(DI)
	VMOVUPS Z2, K1, 112(DI)
	VMOVUPS Z3, K1, 168(DI)
	LEAQ (SI)(BX*4), SI
	ADDQ $224, DI
	DECQ R9
	JNE  pat_loop4
pat_tail:
	ANDQ $3, CX
	JEQ  pat_done
pat_loop1:
	VMOVUPS.Z (SI), K2, Z0
	VMOVUPS Z0, K1, (DI)
	ADDQ BX, SI
	ADDQ $56, DI
	DECQ CX
	JNE  pat_loop1
pat_done:
	VZEROUPPER
	RET

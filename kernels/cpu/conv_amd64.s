#include "textflag.h"

// Indices of the even elements of a 32-float window, for VPERMT2PS.
DATA convEvenIdx<>+0(SB)/4, $0
DATA convEvenIdx<>+4(SB)/4, $2
DATA convEvenIdx<>+8(SB)/4, $4
DATA convEvenIdx<>+12(SB)/4, $6
DATA convEvenIdx<>+16(SB)/4, $8
DATA convEvenIdx<>+20(SB)/4, $10
DATA convEvenIdx<>+24(SB)/4, $12
DATA convEvenIdx<>+28(SB)/4, $14
DATA convEvenIdx<>+32(SB)/4, $16
DATA convEvenIdx<>+36(SB)/4, $18
DATA convEvenIdx<>+40(SB)/4, $20
DATA convEvenIdx<>+44(SB)/4, $22
DATA convEvenIdx<>+48(SB)/4, $24
DATA convEvenIdx<>+52(SB)/4, $26
DATA convEvenIdx<>+56(SB)/4, $28
DATA convEvenIdx<>+60(SB)/4, $30
GLOBL convEvenIdx<>(SB), RODATA|NOPTR, $64

// func convGather2AVX512(dst, src []float32)
// dst[i] = src[2*i] for i < len(dst); len(dst) is a multiple of 16 and
// len(src) >= 2*len(dst).
TEXT ·convGather2AVX512(SB), NOSPLIT, $0-48
	MOVQ    dst_base+0(FP), DI
	MOVQ    dst_len+8(FP), CX
	MOVQ    src_base+24(FP), SI
	VMOVUPS convEvenIdx<>(SB), Z2
	SHRQ    $4, CX
	JZ      done

loop:
	VMOVUPS   (SI), Z0
	VMOVUPS   64(SI), Z1
	VPERMT2PS Z1, Z2, Z0
	VMOVUPS   Z0, (DI)
	ADDQ      $128, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       loop

done:
	VZEROUPPER
	RET

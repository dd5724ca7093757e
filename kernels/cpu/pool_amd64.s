//go:build amd64 && !purego

#include "textflag.h"

// AVX2 kernels of the pooling and channel-affine ops (pool.go, pool_vec.go).
// Lengths n are counts of outputs; the pooling kernels take n >= 8 and
// finish a ragged end by recomputing the last 8 outputs (their dst never
// aliases their sources); the affine kernel takes a positive multiple of 8
// (y may alias x) and leaves the tail to Go. No masked loads or stores.

// MAXN sets ACC to the larger of ACC and V, NaN if either is (T is
// scratch). VMAXPS V-first returns ACC when either is NaN or they are equal,
// so a NaN already in ACC stays and ties keep the earlier value, as the
// reference's "if v > m || v != v" does; the blend then takes a NaN V.
#define MAXN(V, ACC, T) \
	VCMPPS    $3, V, V, T; \
	VMAXPS    ACC, V, ACC; \
	VBLENDVPS T, V, ACC, ACC

// EVENS2 sets D to the elements 0, 2, ..., 14 of the 15 floats at
// (R)(OFF), in the lane order [0 2 8 10 | 4 6 12 14] (undone by one VPERMPD
// $0xd8 after all reductions): the low half from the 8 floats at OFF, the
// high half from the odd lanes of the 8 floats at OFF+7, so nothing past
// element 14 is read.
#define EVENS2(R, D) \
	VMOVUPS (R), D; \
	VSHUFPS $0xd8, 28(R), D, D

// func poolAffineAVX2(x, y *float32, n int, a, b, lo float32)
// y[i] = max(x[i]*a + b, lo) for i < n (a positive multiple of 8), the product rounded before
// the sum (no FMA), the max VMAXPS lo-first: it returns x*a+b when that is
// NaN or equal to lo, so NaN passes and -0 stays -0 with lo = 0 (ReLU);
// lo = -inf leaves every value as it is.
TEXT ·poolAffineAVX2(SB), NOSPLIT, $0-36
	MOVQ         x+0(FP), SI
	MOVQ         y+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS a+24(FP), Y13
	VBROADCASTSS b+28(FP), Y14
	VBROADCASTSS lo+32(FP), Y15
	CMPQ         CX, $32
	JLT          af8

af32:
	VMULPS  (SI), Y13, Y0
	VMULPS  32(SI), Y13, Y1
	VMULPS  64(SI), Y13, Y2
	VMULPS  96(SI), Y13, Y3
	VADDPS  Y14, Y0, Y0
	VADDPS  Y14, Y1, Y1
	VADDPS  Y14, Y2, Y2
	VADDPS  Y14, Y3, Y3
	VMAXPS  Y0, Y15, Y0
	VMAXPS  Y1, Y15, Y1
	VMAXPS  Y2, Y15, Y2
	VMAXPS  Y3, Y15, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, SI
	ADDQ    $128, DI
	SUBQ    $32, CX
	CMPQ    CX, $32
	JGE     af32

af8:
	CMPQ    CX, $8
	JLT     afdone
	VMULPS  (SI), Y13, Y0
	VADDPS  Y14, Y0, Y0
	VMAXPS  Y0, Y15, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     af8

afdone:
	VZEROUPPER
	RET

// func poolColMaxAVX2(dst, src *float32, ld, rows, n int)
// dst[k] = max over r < rows of src[r*ld + k], k < n (n >= 8, rows >= 1,
// NaN-propagating).
TEXT ·poolColMaxAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), R8
	SHLQ $2, R8
	MOVQ rows+24(FP), R9
	MOVQ n+32(FP), CX

cx16:
	CMPQ    CX, $16
	JLT     cx8
	MOVQ    SI, AX
	MOVQ    R9, BX
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	DECQ    BX
	JZ      cx16st

cx16row:
	ADDQ    R8, AX
	VMOVUPS (AX), Y2
	VMOVUPS 32(AX), Y3
	MAXN(Y2, Y0, Y4)
	MAXN(Y3, Y1, Y5)
	DECQ    BX
	JNZ     cx16row

cx16st:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     cx16

cx8:
	CMPQ    CX, $8
	JLT     cxtail
	MOVQ    SI, AX
	MOVQ    R9, BX
	VMOVUPS (AX), Y0
	DECQ    BX
	JZ      cx8st

cx8row:
	ADDQ    R8, AX
	VMOVUPS (AX), Y2
	MAXN(Y2, Y0, Y4)
	DECQ    BX
	JNZ     cx8row

cx8st:
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     cx8

cxtail:
	TESTQ CX, CX
	JZ    cxdone
	MOVQ  $8, AX
	SUBQ  CX, AX
	SHLQ  $2, AX
	SUBQ  AX, SI
	SUBQ  AX, DI
	MOVQ  $8, CX
	JMP   cx8

cxdone:
	VZEROUPPER
	RET

// func poolColAvgAVX2(dst, src, den *float32, ld, rows, n int)
// dst[k] = (0 + src[k] + src[ld+k] + ... + src[(rows-1)*ld+k]) / den[k],
// summed in that order, k < n (n >= 8, rows >= 1).
TEXT ·poolColAvgAVX2(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ den+16(FP), DX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ rows+32(FP), R9
	MOVQ n+40(FP), CX

ca16:
	CMPQ   CX, $16
	JLT    ca8
	MOVQ   SI, AX
	MOVQ   R9, BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1

ca16row:
	VADDPS (AX), Y0, Y0
	VADDPS 32(AX), Y1, Y1
	ADDQ   R8, AX
	DECQ   BX
	JNZ    ca16row
	VDIVPS (DX), Y0, Y0
	VDIVPS 32(DX), Y1, Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ   $64, SI
	ADDQ   $64, DI
	ADDQ   $64, DX
	SUBQ   $16, CX
	JMP    ca16

ca8:
	CMPQ   CX, $8
	JLT    catail
	MOVQ   SI, AX
	MOVQ   R9, BX
	VXORPS Y0, Y0, Y0

ca8row:
	VADDPS (AX), Y0, Y0
	ADDQ   R8, AX
	DECQ   BX
	JNZ    ca8row
	VDIVPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ   $32, SI
	ADDQ   $32, DI
	ADDQ   $32, DX
	SUBQ   $8, CX
	JMP    ca8

catail:
	TESTQ CX, CX
	JZ    cadone
	MOVQ  $8, AX
	SUBQ  CX, AX
	SHLQ  $2, AX
	SUBQ  AX, SI
	SUBQ  AX, DI
	SUBQ  AX, DX
	MOVQ  $8, CX
	JMP   ca8

cadone:
	VZEROUPPER
	RET

// func poolRowMaxS1AVX2(dst, src *float32, kw, n int)
// dst[j] = max over b < kw of src[j+b], j < n (n >= 8, kw >= 1, NaN-propagating).
TEXT ·poolRowMaxS1AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ kw+16(FP), R9
	MOVQ n+24(FP), CX

rx16:
	CMPQ    CX, $16
	JLT     rx8
	MOVQ    SI, AX
	MOVQ    R9, BX
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	DECQ    BX
	JZ      rx16st

rx16b:
	ADDQ    $4, AX
	VMOVUPS (AX), Y2
	VMOVUPS 32(AX), Y3
	MAXN(Y2, Y0, Y4)
	MAXN(Y3, Y1, Y5)
	DECQ    BX
	JNZ     rx16b

rx16st:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	SUBQ    $16, CX
	JMP     rx16

rx8:
	CMPQ    CX, $8
	JLT     rxtail
	MOVQ    SI, AX
	MOVQ    R9, BX
	VMOVUPS (AX), Y0
	DECQ    BX
	JZ      rx8st

rx8b:
	ADDQ    $4, AX
	VMOVUPS (AX), Y2
	MAXN(Y2, Y0, Y4)
	DECQ    BX
	JNZ     rx8b

rx8st:
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     rx8

rxtail:
	TESTQ CX, CX
	JZ    rxdone
	MOVQ  $8, AX
	SUBQ  CX, AX
	SHLQ  $2, AX
	SUBQ  AX, SI
	SUBQ  AX, DI
	MOVQ  $8, CX
	JMP   rx8

rxdone:
	VZEROUPPER
	RET

// func poolRowSumS1AVX2(dst, src *float32, kw, n int)
// dst[j] = 0 + src[j] + src[j+1] + ... + src[j+kw-1], summed in that order,
// j < n (n >= 8, kw >= 1).
TEXT ·poolRowSumS1AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ kw+16(FP), R9
	MOVQ n+24(FP), CX

rs16:
	CMPQ   CX, $16
	JLT    rs8
	MOVQ   SI, AX
	MOVQ   R9, BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1

rs16b:
	VADDPS (AX), Y0, Y0
	VADDPS 32(AX), Y1, Y1
	ADDQ   $4, AX
	DECQ   BX
	JNZ    rs16b
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ   $64, SI
	ADDQ   $64, DI
	SUBQ   $16, CX
	JMP    rs16

rs8:
	CMPQ   CX, $8
	JLT    rstail
	MOVQ   SI, AX
	MOVQ   R9, BX
	VXORPS Y0, Y0, Y0

rs8b:
	VADDPS (AX), Y0, Y0
	ADDQ   $4, AX
	DECQ   BX
	JNZ    rs8b
	VMOVUPS Y0, (DI)
	ADDQ   $32, SI
	ADDQ   $32, DI
	SUBQ   $8, CX
	JMP    rs8

rstail:
	TESTQ CX, CX
	JZ    rsdone
	MOVQ  $8, AX
	SUBQ  CX, AX
	SHLQ  $2, AX
	SUBQ  AX, SI
	SUBQ  AX, DI
	MOVQ  $8, CX
	JMP   rs8

rsdone:
	VZEROUPPER
	RET

// func poolRowMaxS2AVX2(dst, src *float32, kw, n int)
// dst[j] = max over b < kw of src[2j+b], j < n (n >= 8, kw >= 1,
// NaN-propagating); reads src[0 : 2(n-1)+kw] only.
TEXT ·poolRowMaxS2AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ kw+16(FP), R9
	MOVQ n+24(FP), CX

m2loop:
	CMPQ    CX, $8
	JLT     m2tail
	MOVQ    SI, AX
	MOVQ    R9, BX
	EVENS2(AX, Y0)
	DECQ    BX
	JZ      m2st

m2b:
	ADDQ    $4, AX
	EVENS2(AX, Y2)
	MAXN(Y2, Y0, Y4)
	DECQ    BX
	JNZ     m2b

m2st:
	VPERMPD $0xd8, Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $64, SI
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     m2loop

m2tail:
	TESTQ CX, CX
	JZ    m2done
	MOVQ  $8, AX
	SUBQ  CX, AX
	SHLQ  $2, AX
	SUBQ  AX, DI
	SUBQ  AX, SI
	SUBQ  AX, SI
	MOVQ  $8, CX
	JMP   m2loop

m2done:
	VZEROUPPER
	RET

// func poolAvgS2AVX2(dst, src, den *float32, ld, rows, kw, n int)
// dst[j] = (0 + sum over r < rows, then b < kw, of src[r*ld + 2j + b]) /
// den[j], summed in that order (row-major over the window), j < n (n >= 8,
// rows, kw >= 1); reads each row's src[0 : 2(n-1)+kw] only.
TEXT ·poolAvgS2AVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ den+16(FP), DX
	MOVQ ld+24(FP), R8
	SHLQ $2, R8
	MOVQ rows+32(FP), R9
	MOVQ kw+40(FP), R10
	MOVQ n+48(FP), CX

a2loop:
	CMPQ   CX, $8
	JLT    a2tail
	MOVQ   SI, R11
	MOVQ   R9, R12
	VXORPS Y0, Y0, Y0

a2row:
	MOVQ   R11, AX
	MOVQ   R10, BX

a2b:
	EVENS2(AX, Y2)
	VADDPS Y2, Y0, Y0
	ADDQ   $4, AX
	DECQ   BX
	JNZ    a2b
	ADDQ   R8, R11
	DECQ   R12
	JNZ    a2row
	VPERMPD $0xd8, Y0, Y0
	VDIVPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ   $64, SI
	ADDQ   $32, DI
	ADDQ   $32, DX
	SUBQ   $8, CX
	JMP    a2loop

a2tail:
	TESTQ CX, CX
	JZ    a2done
	MOVQ  $8, AX
	SUBQ  CX, AX
	SHLQ  $2, AX
	SUBQ  AX, DI
	SUBQ  AX, DX
	SUBQ  AX, SI
	SUBQ  AX, SI
	MOVQ  $8, CX
	JMP   a2loop

a2done:
	VZEROUPPER
	RET

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

// func attnColMaxAVX2(x []float32, ld int, m []float32)
// m[c] = max over rows j of x[j*ld+c]; ld is a positive multiple of 16, x holds at
// least one row of ld values.
TEXT ·attnColMaxAVX2(SB), NOSPLIT, $0-56
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), R8
	MOVQ ld+24(FP), DX
	MOVQ m_base+32(FP), DI
	SHLQ $2, DX           // row length in bytes
	SHLQ $2, R8           // x length in bytes
	XORQ BX, BX           // column offset in bytes

maxcol:
	LEAQ    (SI)(BX*1), AX // x[0, c]
	LEAQ    (AX)(R8*1), R9 // end of the column
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y1, Y3
	ADDQ    DX, AX
	LEAQ    (AX)(DX*1), CX // the second row of a pair

maxpair:
	CMPQ   CX, R9
	JGE    maxtail
	VMAXPS (AX), Y0, Y0
	VMAXPS 32(AX), Y1, Y1
	VMAXPS (CX), Y2, Y2
	VMAXPS 32(CX), Y3, Y3
	LEAQ   (AX)(DX*2), AX
	LEAQ   (CX)(DX*2), CX
	JMP    maxpair

maxtail:
	CMPQ   AX, R9
	JGE    maxstore
	VMAXPS (AX), Y0, Y0
	VMAXPS 32(AX), Y1, Y1

maxstore:
	VMAXPS  Y2, Y0, Y0
	VMAXPS  Y3, Y1, Y1
	VMOVUPS Y0, (DI)(BX*1)
	VMOVUPS Y1, 32(DI)(BX*1)
	ADDQ    $64, BX
	CMPQ    BX, DX
	JL      maxcol
	VZEROUPPER
	RET

// func attnExpColsAVX2(x []float32, ld int, m, s []float32)
// x[j*ld+c] = exp(x[j*ld+c] - m[c]) and s[c] = sum over rows j of the results;
// ld is a positive multiple of 16, x holds at least one row of ld values.
TEXT ·attnExpColsAVX2(SB), NOSPLIT, $0-80
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), R8
	MOVQ         ld+24(FP), DX
	MOVQ         m_base+32(FP), DI
	MOVQ         s_base+56(FP), R10
	SHLQ         $2, DX
	SHLQ         $2, R8
	VBROADCASTSS attnExpC<>+0(SB), Y15  // log2(e)
	VBROADCASTSS attnExpC<>+12(SB), Y14 // lower clamp
	VBROADCASTSS attnExpC<>+16(SB), Y13 // upper clamp
	VBROADCASTSS attnExpC<>+4(SB), Y12  // ln2 high
	VPBROADCASTD attnExpC<>+48(SB), Y11 // 127
	XORQ         BX, BX

expcol:
	LEAQ    (SI)(BX*1), AX
	LEAQ    (AX)(R8*1), R9
	VMOVUPS (DI)(BX*1), Y8
	VMOVUPS 32(DI)(BX*1), Y7
	VXORPS  Y10, Y10, Y10
	VXORPS  Y9, Y9, Y9

exprow:
	// x - m, clamped
	VMOVUPS (AX), Y0
	VMOVUPS 32(AX), Y3
	VSUBPS  Y8, Y0, Y0
	VSUBPS  Y7, Y3, Y3
	VMAXPS  Y14, Y0, Y0
	VMAXPS  Y14, Y3, Y3
	VMINPS  Y13, Y0, Y0
	VMINPS  Y13, Y3, Y3

	// n = round(x*log2e); r = x - n*ln2
	VMULPS       Y15, Y0, Y1
	VMULPS       Y15, Y3, Y4
	VROUNDPS     $0, Y1, Y1
	VROUNDPS     $0, Y4, Y4
	VFNMADD231PS Y12, Y1, Y0
	VFNMADD231PS Y12, Y4, Y3
	VBROADCASTSS attnExpC<>+8(SB), Y6
	VFNMADD231PS Y6, Y1, Y0
	VFNMADD231PS Y6, Y4, Y3

	// 2^n as float bits
	VCVTTPS2DQ Y1, Y1
	VCVTTPS2DQ Y4, Y4
	VPADDD     Y11, Y1, Y1
	VPADDD     Y11, Y4, Y4
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
	VMULPS       Y0, Y0, Y6
	VFMADD213PS  Y0, Y6, Y2
	VMULPS       Y3, Y3, Y6
	VFMADD213PS  Y3, Y6, Y5
	VBROADCASTSS attnExpC<>+44(SB), Y6
	VADDPS       Y6, Y2, Y2
	VADDPS       Y6, Y5, Y5
	VMULPS       Y1, Y2, Y2
	VMULPS       Y4, Y5, Y5

	VMOVUPS Y2, (AX)
	VMOVUPS Y5, 32(AX)
	VADDPS  Y2, Y10, Y10
	VADDPS  Y5, Y9, Y9
	ADDQ    DX, AX
	CMPQ    AX, R9
	JL      exprow

	VMOVUPS Y10, (R10)(BX*1)
	VMOVUPS Y9, 32(R10)(BX*1)
	ADDQ    $64, BX
	CMPQ    BX, DX
	JL      expcol
	VZEROUPPER
	RET

// EXP16 sets ptr's 16 floats to exp(x - Z8) (x clamped to [-87, 88]) and adds them
// to acc, using r, n, p, t as scratch; the constants live in Z16-Z27.
#define EXP16(ptr, acc, r, n, p, t) \
	VMOVUPS      ptr, r;       \
	VSUBPS       Z8, r, r;     \
	VMAXPS       Z19, r, r;    \
	VMINPS       Z20, r, r;    \
	VMULPS       Z16, r, n;    \
	VRNDSCALEPS  $0, n, n;     \
	VFNMADD231PS Z17, n, r;    \
	VFNMADD231PS Z18, n, r;    \
	VMOVAPS      Z21, p;       \
	VFMADD213PS  Z22, r, p;    \
	VFMADD213PS  Z23, r, p;    \
	VFMADD213PS  Z24, r, p;    \
	VFMADD213PS  Z25, r, p;    \
	VFMADD213PS  Z26, r, p;    \
	VMULPS       r, r, t;      \
	VFMADD213PS  r, t, p;      \
	VADDPS       Z27, p, p;    \
	VSCALEFPS    n, p, p;      \
	VMOVUPS      p, ptr;       \
	VADDPS       p, acc, acc

// func attnExpColsAVX512(x []float32, ld int, m, s []float32)
// As attnExpColsAVX2, 16 columns at a time, two rows in flight.
TEXT ·attnExpColsAVX512(SB), NOSPLIT, $0-80
	MOVQ         x_base+0(FP), SI
	MOVQ         x_len+8(FP), R8
	MOVQ         ld+24(FP), DX
	MOVQ         m_base+32(FP), DI
	MOVQ         s_base+56(FP), R10
	SHLQ         $2, DX
	SHLQ         $2, R8
	VBROADCASTSS attnExpC<>+0(SB), Z16
	VBROADCASTSS attnExpC<>+4(SB), Z17
	VBROADCASTSS attnExpC<>+8(SB), Z18
	VBROADCASTSS attnExpC<>+12(SB), Z19
	VBROADCASTSS attnExpC<>+16(SB), Z20
	VBROADCASTSS attnExpC<>+20(SB), Z21
	VBROADCASTSS attnExpC<>+24(SB), Z22
	VBROADCASTSS attnExpC<>+28(SB), Z23
	VBROADCASTSS attnExpC<>+32(SB), Z24
	VBROADCASTSS attnExpC<>+36(SB), Z25
	VBROADCASTSS attnExpC<>+40(SB), Z26
	VBROADCASTSS attnExpC<>+44(SB), Z27
	XORQ         BX, BX

e5col:
	LEAQ    (SI)(BX*1), AX
	LEAQ    (AX)(R8*1), R9
	LEAQ    (AX)(DX*1), CX
	VMOVUPS (DI)(BX*1), Z8
	VXORPS  Z10, Z10, Z10
	VXORPS  Z11, Z11, Z11

e5pair:
	CMPQ CX, R9
	JGE  e5tail
	EXP16((AX), Z10, Z0, Z1, Z2, Z3)
	EXP16((CX), Z11, Z4, Z5, Z6, Z7)
	LEAQ (AX)(DX*2), AX
	LEAQ (CX)(DX*2), CX
	JMP  e5pair

e5tail:
	CMPQ AX, R9
	JGE  e5store
	EXP16((AX), Z10, Z0, Z1, Z2, Z3)

e5store:
	VADDPS  Z11, Z10, Z10
	VMOVUPS Z10, (R10)(BX*1)
	ADDQ    $64, BX
	CMPQ    BX, DX
	JL      e5col
	VZEROUPPER
	RET

// func attnColMaxAVX512(x []float32, ld int, m []float32)
// As attnColMaxAVX2, 16 columns at a time, two rows in flight.
TEXT ·attnColMaxAVX512(SB), NOSPLIT, $0-56
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), R8
	MOVQ ld+24(FP), DX
	MOVQ m_base+32(FP), DI
	SHLQ $2, DX
	SHLQ $2, R8
	XORQ BX, BX

m5col:
	LEAQ    (SI)(BX*1), AX
	LEAQ    (AX)(R8*1), R9
	VMOVUPS (AX), Z0
	VMOVAPS Z0, Z1
	ADDQ    DX, AX
	LEAQ    (AX)(DX*1), CX

m5pair:
	CMPQ   CX, R9
	JGE    m5tail
	VMAXPS (AX), Z0, Z0
	VMAXPS (CX), Z1, Z1
	LEAQ   (AX)(DX*2), AX
	LEAQ   (CX)(DX*2), CX
	JMP    m5pair

m5tail:
	CMPQ   AX, R9
	JGE    m5store
	VMAXPS (AX), Z0, Z0

m5store:
	VMAXPS  Z1, Z0, Z0
	VMOVUPS Z0, (DI)(BX*1)
	ADDQ    $64, BX
	CMPQ    BX, DX
	JL      m5col
	VZEROUPPER
	RET

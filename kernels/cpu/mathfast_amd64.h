// AVX2/FMA versions of the float32 elementary functions of mathfast.go, for
// #include in the assembly files of this package (act_amd64.s,
// normact_backward_amd64.s). The constants are file-local (<>) to each
// including file.

#define MF_BCAST(name, bits) \
	DATA name<>+0(SB)/4, $bits; \
	DATA name<>+4(SB)/4, $bits; \
	DATA name<>+8(SB)/4, $bits; \
	DATA name<>+12(SB)/4, $bits; \
	DATA name<>+16(SB)/4, $bits; \
	DATA name<>+20(SB)/4, $bits; \
	DATA name<>+24(SB)/4, $bits; \
	DATA name<>+28(SB)/4, $bits; \
	GLOBL name<>(SB), RODATA|NOPTR, $32

MF_BCAST(mfOne, 0x3f800000)          // 1
MF_BCAST(mfHalf, 0x3f000000)         // 0.5
MF_BCAST(mfNegHalf, 0xbf000000)      // -0.5
MF_BCAST(mfBias, 0x0000007f)         // 127 (int32)
MF_BCAST(mfAbsMask, 0x7fffffff)
MF_BCAST(mfExpHi, 0x42b20000)        // 89
MF_BCAST(mfExpLo, 0xc2d00000)        // -104
MF_BCAST(mfLog2e, 0x3fb8aa3b)        // 1.442695
MF_BCAST(mfLn2Hi, 0x3f318000)        // 0.693359375
MF_BCAST(mfLn2Lo, 0xb95e8083)        // -2.1219444e-4
MF_BCAST(mfExpC2, 0x3efffffe)        // 0.49999994
MF_BCAST(mfExpC3, 0x3e2aaa49)        // 0.16666521
MF_BCAST(mfExpC4, 0x3d2aac79)        // 0.041668389
MF_BCAST(mfExpC5, 0x3c091d10)        // 0.0083687454
MF_BCAST(mfExpC6, 0x3ab511e6)        // 0.0013814538
MF_BCAST(mfErfcMid, 0x3f147ae1)      // 0.58
MF_BCAST(mfR0, 0xbf102b0b)           // -0.56315678
MF_BCAST(mfR1, 0x3faf1e85)           // 1.3681189
MF_BCAST(mfR2, 0x3dc213a3)           // 0.094764017
MF_BCAST(mfR3, 0xbed05587)           // -0.40690252
MF_BCAST(mfR4, 0xbd227081)           // -0.039658073
MF_BCAST(mfR5, 0x3e97a7ec)           // 0.29620302
MF_BCAST(mfR6, 0xbd3d9b9b)           // -0.046290975
MF_BCAST(mfR7, 0xbe7eb17b)           // -0.24872391
MF_BCAST(mfR8, 0x3e090e6d)           // 0.13384409
MF_BCAST(mfR9, 0x3e18fe76)           // 0.14940819
MF_BCAST(mfR10, 0xbe08e9cd)          // -0.13370438
MF_BCAST(mfGeluClamp, 0x41680000)    // 14.5
MF_BCAST(mfNegGeluClamp, 0xc1680000) // -14.5
MF_BCAST(mfHalfInvSqrt2, 0x3eb504f3) // 0.35355339 = 1/(2 sqrt 2)
MF_BCAST(mfInvSqrt2Pi, 0x3ecc422a)   // 0.39894228 = 1/sqrt(2 pi)
MF_BCAST(mfSgClamp, 0x42b00000)      // 88
MF_BCAST(mfNegSgClamp, 0xc2b00000)   // -88

// MF_EXP sets X = exp(X + LO) (see mfExp2f): X is clamped to [-104, 89] keeping
// NaN, n = round((X+LO)*log2e), r = X - n*ln2Hi + LO - n*ln2Lo,
// p = 1 + r + r^2*q(r) with q by Estrin's scheme, result p * 2^(n>>1) * 2^(n - n>>1).
// Clobbers T1..T4.
#define MF_EXP(X, LO, T1, T2, T3, T4) \
	VMOVUPS      mfExpHi<>(SB), T1; \
	VMINPS       X, T1, X; \
	VMOVUPS      mfExpLo<>(SB), T1; \
	VMAXPS       X, T1, X; \
	VADDPS       LO, X, T1; \
	VMULPS       mfLog2e<>(SB), T1, T1; \
	VROUNDPS     $0, T1, T1; \
	VFNMADD231PS mfLn2Hi<>(SB), T1, X; \
	VADDPS       LO, X, X; \
	VFNMADD231PS mfLn2Lo<>(SB), T1, X; \
	VMULPS       X, X, T3; \
	VMOVUPS      mfExpC3<>(SB), T2; \
	VFMADD213PS  mfExpC2<>(SB), X, T2; \
	VMOVUPS      mfExpC5<>(SB), T4; \
	VFMADD213PS  mfExpC4<>(SB), X, T4; \
	VFMADD231PS  mfExpC6<>(SB), T3, T4; \
	VFMADD231PS  T4, T3, T2; \
	VFMADD213PS  X, T3, T2; \
	VADDPS       mfOne<>(SB), T2, T2; \
	VCVTPS2DQ    T1, T1; \
	VPSRAD       $1, T1, T3; \
	VPSUBD       T3, T1, T1; \
	VPADDD       mfBias<>(SB), T3, T3; \
	VPSLLD       $23, T3, T3; \
	VPADDD       mfBias<>(SB), T1, T1; \
	VPSLLD       $23, T1, T1; \
	VMULPS       T3, T2, T2; \
	VMULPS       T1, T2, X

// MF_PHI sets Y0 = Phi(G) (see mfPhif) for G in a register other than Y0..Y8,
// Y11, Y12. Needs Y15 = 1 and Y9 = 0. Clobbers Y1..Y8, Y11, Y12. R(u) is
// evaluated by Estrin's scheme.
#define MF_PHI(G) \
	VANDPS       mfAbsMask<>(SB), G, Y6; \
	VMOVUPS      mfGeluClamp<>(SB), Y1; \
	VMINPS       Y6, Y1, Y6; \
	VMOVUPS      mfHalfInvSqrt2<>(SB), Y7; \
	VFMADD213PS  Y15, Y6, Y7; \
	VDIVPS       Y7, Y15, Y8; \
	VSUBPS       mfErfcMid<>(SB), Y8, Y1; \
	VMULPS       Y1, Y1, Y2; \
	VMOVUPS      mfR1<>(SB), Y3; \
	VFMADD213PS  mfR0<>(SB), Y1, Y3; \
	VMOVUPS      mfR3<>(SB), Y4; \
	VFMADD213PS  mfR2<>(SB), Y1, Y4; \
	VMOVUPS      mfR5<>(SB), Y5; \
	VFMADD213PS  mfR4<>(SB), Y1, Y5; \
	VMOVUPS      mfR7<>(SB), Y7; \
	VFMADD213PS  mfR6<>(SB), Y1, Y7; \
	VMOVUPS      mfR9<>(SB), Y11; \
	VFMADD213PS  mfR8<>(SB), Y1, Y11; \
	VMULPS       Y2, Y2, Y12; \
	VFMADD231PS  Y4, Y2, Y3; \
	VFMADD231PS  Y7, Y2, Y5; \
	VFMADD231PS  mfR10<>(SB), Y2, Y11; \
	VFMADD231PS  Y5, Y12, Y3; \
	VMULPS       Y12, Y12, Y12; \
	VMOVAPS      Y3, Y2; \
	VFMADD231PS  Y11, Y12, Y2; \
	VMULPS       Y6, Y6, Y3; \
	VMOVAPS      Y3, Y4; \
	VFMSUB231PS  Y6, Y6, Y4; \
	VMULPS       mfNegHalf<>(SB), Y3, Y3; \
	VFMADD231PS  mfNegHalf<>(SB), Y4, Y2; \
	MF_EXP(Y3, Y2, Y1, Y4, Y5, Y6); \
	VMULPS       Y8, Y3, Y3; \
	VMULPS       mfHalf<>(SB), Y3, Y3; \
	VSUBPS       Y3, Y15, Y4; \
	VCMPPS       $1, G, Y9, Y5; \
	VBLENDVPS    Y5, Y4, Y3, Y0

// MF_SIGMUL_GRAD sets D = s + s*(e*s)*V*KD (see mfSigmulGradf) from V and
// NU = -u (kept), with s = 1/(1+e), e = exp(NU); then 0 where NU > 88 and 1
// where NU < -88. Needs Y15 = 1 and Y9 = 0. D must be Y0; clobbers Y1..Y4, Y7.
#define MF_SIGMUL_GRAD(V, KD, NU) \
	VMOVAPS      NU, Y0; \
	MF_EXP(Y0, Y9, Y1, Y2, Y3, Y4); \
	VADDPS       Y15, Y0, Y1; \
	VDIVPS       Y1, Y15, Y1; \
	VMULPS       Y1, Y0, Y0; \
	VMULPS       V, Y0, Y0; \
	VMULPS       KD, Y0, Y0; \
	VFMADD213PS  Y1, Y1, Y0; \
	VCMPPS       $0x1e, mfSgClamp<>(SB), NU, Y7; \
	VANDNPS      Y0, Y7, Y0; \
	VCMPPS       $0x11, mfNegSgClamp<>(SB), NU, Y7; \
	VBLENDVPS    Y7, Y15, Y0, Y0

// MF_GAUSS sets P = exp(-XC*XC/2)/sqrt(2 pi) where XC is G clamped to [-14.5,
// 14.5] (NaN kept), leaving XC in its register. Clobbers T1..T5.
#define MF_GAUSS(G, XC, P, T1, T2, T3, T4, T5) \
	VMOVUPS      mfGeluClamp<>(SB), XC; \
	VMINPS       G, XC, XC; \
	VMOVUPS      mfNegGeluClamp<>(SB), T1; \
	VMAXPS       XC, T1, XC; \
	VMULPS       XC, XC, P; \
	VMOVAPS      P, T1; \
	VFMSUB231PS  XC, XC, T1; \
	VMULPS       mfNegHalf<>(SB), P, P; \
	VMULPS       mfNegHalf<>(SB), T1, T1; \
	MF_EXP(P, T1, T2, T3, T4, T5); \
	VMULPS       mfInvSqrt2Pi<>(SB), P, P

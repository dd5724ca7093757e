package rng

import "math"

// This file evaluates, in float32, the same operations as the log and sincos
// of avx_mathfun.h (J. Pommier's SSE/AVX port of the Cephes single-precision
// polynomials) that torch's AVX2 normal kernel calls, including the places
// where GCC contracted a multiply and an add into one fused multiply-add when
// it compiled libtorch_cpu 1.13 (established from its disassembly and checked
// against torch's output). Every product written float32(a*b) is rounded on
// its own; fma32 rounds once.

// Cephes logf constants (float32 bit patterns as torch's kernel holds them).
var (
	logP = [9]float32{
		7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1,
		-1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
		2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1,
	}
)

const (
	sqrtHalf float32 = 0.707106781186547524
	logQ1    float32 = -2.12194440e-4
	logQ2    float32 = 0.693359375

	fourOverPi float32 = 1.27323954473516
	dp1        float32 = -0.78515625
	dp2        float32 = -2.4187564849853515625e-4
	dp3        float32 = -3.77489497744594108e-8

	cosP0 float32 = 2.443315711809948e-5
	cosP1 float32 = -1.388731625493765e-3
	cosP2 float32 = 4.166664568298827e-2
	sinP0 float32 = -1.9515295891e-4
	sinP1 float32 = 8.3321608736e-3
	sinP2 float32 = -1.6666654611e-1

	// twoPi32 is float32(2*pi), the factor torch applies to the second uniform.
	twoPi32 float32 = 2 * math.Pi
)

// fma32 returns a*b+c rounded once to float32, as the FMA3 instruction does.
// The product is exact in float64; the sum is formed with round-to-odd so that
// the final rounding to float32 is correct (no double rounding).
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 24+24 bits fit in 53
	q := float64(c)
	s := p + q
	// TwoSum: err is the exact rounding error of s = p + q (NaN if s is not
	// finite, which the exponent test below excludes).
	bb := s - p
	if err := (p - (s - bb)) + (q - bb); err != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 && bits&0x7ff0000000000000 != 0x7ff0000000000000 {
			// make s odd: move one ulp towards the exact sum (round to odd)
			if (err > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// sqrt32 is the correctly rounded float32 square root (vsqrtps): the float64
// root of a float32 rounds correctly to float32.
func sqrt32(x float32) float32 {
	return float32(math.Sqrt(float64(x)))
}

// logNeg2 returns -2*log(x) for 0 < x <= 1 as torch's kernel computes it
// (log256_ps followed by a multiply by -2).
func logNeg2(x float32) float32 {
	bits := math.Float32bits(x)
	if x <= 0 || x != x {
		return float32(math.NaN())
	}
	if bits < 0x00800000 { // below the smallest normal: torch clamps
		bits = 0x00800000
	}
	e := float32(int32(bits>>23)-127) + 1
	m := math.Float32frombits(bits&0x807fffff | 0x3f000000) // mantissa in [0.5, 1)
	var tmp float32
	if m < sqrtHalf {
		tmp = m
		e -= 1
	}
	m = (m - 1) + tmp
	z := float32(m * m)
	y := logP[0]
	for _, p := range logP[1:] {
		y = fma32(y, m, p)
	}
	y = fma32(float32(m*y), z, float32(e*logQ1))
	y = fma32(-z, 0.5, y)
	r := fma32(e, logQ2, m+y)
	return float32(r * -2)
}

// sincos32 returns sin(x) and cos(x) for 0 <= x < 2*pi as sincos256_ps computes
// them in torch's kernel.
func sincos32(x float32) (sin, cos float32) {
	signSin := math.Float32bits(x) & 0x80000000
	x = math.Float32frombits(math.Float32bits(x) &^ 0x80000000)
	j := int32(float32(x * fourOverPi)) // truncation, as cvttps2dq
	j = (j + 1) &^ 1
	y := float32(j)
	swapSin := uint32(j&4) << 29
	polyCos := j&2 == 0 // the cos polynomial gives cos; else it gives sin
	signCos := uint32(^(j-2)&4) << 29
	signSin ^= swapSin

	x = fma32(y, dp1, x)
	x = fma32(y, dp2, x)
	x = fma32(y, dp3, x)
	z := float32(x * x)

	yc := fma32(cosP0, z, cosP1)
	yc = fma32(yc, z, cosP2)
	yc = float32(z * yc)
	yc = fma32(yc, z, -float32(z*0.5))
	yc = yc + 1

	ys := fma32(sinP0, z, sinP1)
	ys = fma32(ys, z, sinP2)
	ys = float32(z * ys)
	ys = fma32(ys, x, x)

	// torch selects with masks and subtractions; the sums below reproduce it.
	var s, c float32
	if polyCos {
		s = ys + 0
		c = (ys - ys) + yc
	} else {
		s = 0 + yc
		c = ys + (yc - yc)
	}
	sin = math.Float32frombits(math.Float32bits(s) ^ signSin)
	cos = math.Float32frombits(math.Float32bits(c) ^ signCos)
	return sin, cos
}

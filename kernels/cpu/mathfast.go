package cpu

import "math"

// Fast float32 elementary functions. Each is branch-light polynomial code that the
// amd64 assembly kernels (act_amd64.s) evaluate in the same way eight lanes at a
// time; these scalar versions serve the pure-Go fallback and the tails of vectors.
// The coefficients come from scripts/fit_mathfast.py (weighted least squares on
// Chebyshev nodes refined towards minimax by Lawson's algorithm). Maximum errors
// against float64 math measured by mathfast_test.go over dense grids:
//
//	mfExpf    1.0 ulp over [-104, 89]; +Inf above, 0 below (gradual underflow), NaN -> NaN
//	mfErff    2.5 ulp everywhere; erf(±Inf) = ±1
//	mfErfcf   6.6 ulp (relative 8e-7) while the result is a normal float32
//	mfTanhf   1.3 ulp everywhere; tanh(±Inf) = ±1
//	mfSigmoidf, SiLU  2.4 ulp
//	mfGeluf   7.4 ulp (exact-erf GELU, including its negative tail); 5.7 ulp (relative
//	          3.4e-7) for x > -8

const (
	mfExpClampHi = 89.0 // exp(89) overflows float32
	mfExpClampLo = -104 // exp(-104) rounds to 0 in float32
	mfLog2E      = 1.44269504088896341
	mfLn2Hi      = 0.693359375 // 9 significant bits: n*mfLn2Hi is exact for |n| < 2^15
	mfLn2Lo      = -2.12194440e-4

	// exp(r) = 1 + r + r^2 * (c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4), |r| <= ln2/2.
	// Fit error 3.1e-9 relative.
	mfExpC2 = 0.4999999403953552
	mfExpC3 = 0.1666652113199234
	mfExpC4 = 0.04166838899254799
	mfExpC5 = 0.00836874544620514
	mfExpC6 = 0.001381453825160861

	// erfc(z) = t * exp(-z^2 + R(t)) with t = 1/(1 + z/2), R a polynomial of degree
	// 10 in u = t - mfErfcMid, for z in [0, mfErfcClamp]. Fit error 6.7e-9 in R.
	mfErfcClamp = 10.5 // erfc(10.5) underflows float32
	mfErfcMid   = 0.58
	mfErfcR0    = -0.56315678358078
	mfErfcR1    = 1.3681188821792603
	mfErfcR2    = 0.09476401656866074
	mfErfcR3    = -0.4069025218486786
	mfErfcR4    = -0.039658073335886
	mfErfcR5    = 0.29620301723480225
	mfErfcR6    = -0.04629097506403923
	mfErfcR7    = -0.24872390925884247
	mfErfcR8    = 0.13384409248828888
	mfErfcR9    = 0.14940819144248962
	mfErfcR10   = -0.13370437920093536

	// erf(z) = z * P(z^2) for |z| < mfErfSmall, P of degree 5. Fit error 1.4e-9 relative.
	mfErfSmall = 0.75
	mfErfP0    = 1.1283791065216064
	mfErfP1    = -0.3761261999607086
	mfErfP2    = 0.11283376812934875
	mfErfP3    = -0.026834633201360703
	mfErfP4    = 0.005114361643791199
	mfErfP5    = -0.0006749616586603224

	// tanh(x) = x * P(x^2) for |x| < mfTanhSmall, P of degree 5. Fit error 3.9e-9 relative.
	mfTanhSmall = 0.625
	mfTanhP1    = -0.3333325982093811
	mfTanhP2    = 0.13331128656864166
	mfTanhP3    = -0.05372113361954689
	mfTanhP4    = 0.020591160282492638
	mfTanhP5    = -0.005660148803144693

	mfHalfInvSqrt2 = 0.35355339059327376 // 1/(2 sqrt2)
	mfGeluClamp    = 14.5                // |x| beyond which Phi(x) is 0 or 1 in float32 (14.5/sqrt2 < mfErfcClamp)
	mfRoundMagic   = 12582912            // 1.5 * 2^23: (v + m) - m rounds v to an integer (|v| < 2^22)
)

// mfExp2f returns exp(hi + lo) where lo is a small correction (|lo| < 2, finite) carried
// separately so that it is not rounded into hi. hi is clamped to
// [mfExpClampLo, mfExpClampHi]; NaN propagates.
func mfExp2f(hi, lo float32) float32 {
	if hi != hi {
		return hi
	}
	hi = min(max(hi, mfExpClampLo), mfExpClampHi)
	n := (hi+lo)*mfLog2E + mfRoundMagic
	n -= mfRoundMagic
	r := hi - n*mfLn2Hi
	r += lo
	r -= n * mfLn2Lo
	r2 := r * r
	q := (mfExpC3*r + mfExpC2) + ((mfExpC5*r+mfExpC4)+mfExpC6*r2)*r2 // Estrin, as the asm
	p := (r2*q + r) + 1
	ni := int32(n)
	n1 := ni >> 1
	n2 := ni - n1
	return p * math.Float32frombits(uint32(n1+127)<<23) * math.Float32frombits(uint32(n2+127)<<23)
}

// mfExpf returns e**x in float32 (within 2 ulp).
func mfExpf(x float32) float32 { return mfExp2f(x, 0) }

// mfErfcPoly evaluates R(t) of the erfc approximation.
func mfErfcPoly(t float32) float32 {
	// Estrin's scheme, as the asm evaluates it
	u := t - mfErfcMid
	u2 := u * u
	u4 := u2 * u2
	q0 := (mfErfcR1*u + mfErfcR0) + (mfErfcR3*u+mfErfcR2)*u2
	q1 := (mfErfcR5*u + mfErfcR4) + (mfErfcR7*u+mfErfcR6)*u2
	q2 := (mfErfcR9*u + mfErfcR8) + mfErfcR10*u2
	return (q0 + q1*u4) + q2*(u4*u4)
}

// mfLowSquare returns the rounding error of x*x, that is x*x - float32(x*x), exactly
// (a float32 square has at most 48 significant bits, which float64 holds).
func mfLowSquare(x, xx float32) float32 { return float32(float64(x)*float64(x) - float64(xx)) }

// mfErfcPos returns erfc(z) for z >= 0 (or NaN).
func mfErfcPos(z float32) float32 {
	z = min(z, mfErfcClamp) // keeps NaN (min propagates it)
	t := 1 / (1 + 0.5*z)
	zz := z * z
	return t * mfExp2f(-zz, mfErfcPoly(t)-mfLowSquare(z, zz))
}

// mfErfcf returns the complementary error function 1 - erf(x) in float32.
func mfErfcf(x float32) float32 {
	if x >= 0 || x != x {
		return mfErfcPos(x)
	}
	return 2 - mfErfcPos(-x)
}

// mfErff returns the error function of x in float32 (within 3 ulp).
func mfErff(x float32) float32 {
	a := mfAbs32(x)
	if a < mfErfSmall {
		z := x * x
		return x * (((((mfErfP5*z+mfErfP4)*z+mfErfP3)*z+mfErfP2)*z+mfErfP1)*z + mfErfP0)
	}
	e := 1 - mfErfcPos(a)
	if x < 0 {
		return -e
	}
	return e
}

// mfTanhf returns the hyperbolic tangent of x in float32 (within 3 ulp).
func mfTanhf(x float32) float32 {
	a := mfAbs32(x)
	if a < mfTanhSmall {
		z := x * x
		return x + x*z*((((mfTanhP5*z+mfTanhP4)*z+mfTanhP3)*z+mfTanhP2)*z+mfTanhP1)
	}
	t := 1 - 2/(mfExpf(2*a)+1)
	if x < 0 {
		return -t
	}
	return t
}

// mfSigmoidf returns 1/(1+exp(-x)).
func mfSigmoidf(x float32) float32 { return 1 / (1 + mfExpf(-x)) }

// mfSigmulf returns v * sigmoid(k*v*(1 + c*v*v)): SiLU (k=1, c=0), QuickGELU
// (k=1.702, c=0) and the tanh form of GELU (k=2*sqrt(2/pi), c=0.044715), since
// (1 + tanh(u))/2 = sigmoid(2u).
func mfSigmulf(v, k, c float32) float32 {
	u := k * v
	if c != 0 { // not folded in when c == 0: 0*Inf would be NaN
		u *= 1 + c*v*v
	}
	return v / (1 + mfExpf(-u))
}

// mfPhif returns the standard normal CDF Phi(x) = erfc(-x/sqrt2)/2 with relative
// accuracy on both tails: x/sqrt2 is never rounded into the exponent, which is
// formed from x*x/2 split into a float32 and its exact rounding error.
func mfPhif(x float32) float32 {
	a := min(mfAbs32(x), mfGeluClamp)
	t := 1 / (a*mfHalfInvSqrt2 + 1) // 1/(1 + z/2) with z = a/sqrt2
	xx := a * a
	e := 0.5 * t * mfExp2f(-0.5*xx, mfErfcPoly(t)-0.5*mfLowSquare(a, xx))
	if x > 0 {
		return 1 - e
	}
	return e
}

// mfGeluf returns the exact (erf) GELU x * Phi(x).
func mfGeluf(x float32) float32 { return x * mfPhif(x) }

func mfAbs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

package rng

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// fmaRef is a*b+c computed exactly with math/big and rounded once to float32.
func fmaRef(a, b, c float32) float32 {
	x := new(big.Float).SetPrec(400).SetFloat64(float64(a))
	x.Mul(x, new(big.Float).SetPrec(400).SetFloat64(float64(b)))
	x.Add(x, new(big.Float).SetPrec(400).SetFloat64(float64(c)))
	f, _ := x.Float32()
	return f
}

func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(a, b, c float32) {
		t.Helper()
		got, want := fma32(a, b, c), fmaRef(a, b, c)
		if math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("fma32(%g, %g, %g) = %g (%#x), want %g (%#x)", a, b, c, got, math.Float32bits(got), want, math.Float32bits(want))
		}
	}
	// Cases where float64 rounding followed by float32 rounding would be
	// wrong: a*b+c lies just beside a float32 half-way point.
	// (1+2^-12)^2 = 1 + 2^-11 + 2^-24 is a float32 half-way point; adding
	// 2^-60 must round up, but rounding to float64 first loses the 2^-60 and
	// the tie then rounds to even (down).
	a := float32(1 + 1.0/(1<<12))
	tiny := float32(math.Ldexp(1, -60))
	if float32(math.FMA(float64(a), float64(a), float64(tiny))) == fmaRef(a, a, tiny) {
		t.Fatal("test case does not exercise double rounding")
	}
	check(a, a, tiny)
	check(-a, a, -tiny)
	check(a, a, -tiny)
	check(1+1.0/(1<<23), 1+1.0/(1<<23), -1)
	for i := 0; i < 200000; i++ {
		a := math.Float32frombits(r.Uint32() & 0xbfffffff) // |a| < 2
		b := math.Float32frombits(r.Uint32() & 0xbfffffff)
		c := float32(r.NormFloat64())
		if i%3 == 0 { // near-cancellation
			c = -float32(float64(a) * float64(b))
		}
		if i%5 == 0 { // c near a half-ulp of a*b
			p := float32(float64(a) * float64(b))
			c = float32(math.Ldexp(float64(p), -25)) * float32(1+r.IntN(3)-1)
		}
		check(a, b, c)
	}
}

// TestLogSinCosAccuracy checks the Cephes polynomials against float64 math over
// the whole input domain of the kernel: every u1 = 1 - k/2^24 and every
// theta = float32(2*pi)*k/2^24 (sampled). They are within a few float32 ulps;
// the bit-exact behaviour is checked against torch in TestAgainstTorch.
func TestLogSinCosAccuracy(t *testing.T) {
	for k := 0; k < 1<<24; k += 97 {
		u := float32(k) / (1 << 24)
		u1 := 1 - u
		l := logNeg2(u1)
		ref := -2 * math.Log(float64(u1))
		if d := math.Abs(float64(l) - ref); d > 4e-7*math.Abs(ref)+1e-12 {
			t.Fatalf("-2log(%v) = %v, want %v", u1, l, ref)
		}
		theta := float32(twoPi32 * u)
		s, c := sincos32(theta)
		ms, mc := math.Sincos(float64(theta))
		if math.Abs(float64(s)-ms) > 3e-7 || math.Abs(float64(c)-mc) > 3e-7 {
			t.Fatalf("sincos(%v) = %v, %v; want %v, %v", theta, s, c, ms, mc)
		}
	}
}

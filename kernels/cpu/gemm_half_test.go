package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/x448/float16"
)

// The half conversions are checked against github.com/x448/float16 (F16) and
// against a rounding derived here from float64 distances (BF16), on every level
// (F16C / AVX2 assembly and pure Go). Lengths are chosen so that both the vector
// body and the scalar tail run.

// sameHalfResult reports whether two F16 results agree: identical bits, or both
// NaN with the same sign.
func sameF16(got, want uint16) bool {
	if got == want {
		return true
	}
	isNaN := func(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }
	return isNaN(got) && isNaN(want) && got&0x8000 == want&0x8000
}

func TestF16ToF32AllPatterns(t *testing.T) {
	src := make([]uint16, 65536+3) // +3: a tail after the vector body
	for i := range src {
		src[i] = uint16(i)
	}
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			dst := make([]float32, len(src))
			F16ToF32(dst, src)
			for i, h := range src {
				want := float16.Frombits(h).Float32()
				got := dst[i]
				if math.Float32bits(got) == math.Float32bits(want) {
					continue
				}
				// NaN: the payload may come back quieted; sign and NaN-ness must hold.
				if want != want && got != got && math.Signbit(float64(got)) == math.Signbit(float64(want)) {
					continue
				}
				t.Fatalf("F16ToF32(%#04x) = %#08x, want %#08x", h, math.Float32bits(got), math.Float32bits(want))
			}
		})
	}
}

func TestBF16ToF32AllPatterns(t *testing.T) {
	src := make([]uint16, 65536+5)
	for i := range src {
		src[i] = uint16(i)
	}
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			dst := make([]float32, len(src))
			BF16ToF32(dst, src)
			for i, h := range src {
				if got, want := math.Float32bits(dst[i]), uint32(h)<<16; got != want {
					t.Fatalf("BF16ToF32(%#04x) = %#08x, want %#08x", h, got, want)
				}
			}
		})
	}
}

// f32Samples returns float32 values that stress rounding: specials, subnormals
// of both formats, exact ties between neighbouring halves, the overflow edge, and
// random bit patterns.
func f32Samples() []float32 {
	inf := float32(math.Inf(1))
	s := []float32{0, float32(math.Copysign(0, -1)), 1, -1, inf, -inf, float32(math.NaN()),
		math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00001), // signalling / negative NaN
		65504, 65519, 65519.996, 65520, 65536, -65520, // largest half and the overflow edge
		0x1p-14, 0x1p-24, 0x1p-25, 0x1.8p-25, 0x1p-26, 3 * 0x1p-26, // half subnormals, ties to 0 and up
		math.Float32frombits(1), math.Float32frombits(0x007fffff), math.Float32frombits(0x80000001), // float32 subnormals
		1 + 0x1p-11, 1 + 3*0x1p-11, 1 + 0x1p-11 + 0x1p-20, 2048 + 1, 2048 + 3, // half ties and near-ties
		1 + 0x1p-8, 1 + 3*0x1p-8, 1 + 0x1p-8 + 0x1p-22, // bfloat16 ties and near-ties
		math.Float32frombits(0x7f7fffff), math.Float32frombits(0x7f7f8000), // bf16 rounding to inf
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < 4000; i++ {
		// The midpoint of two neighbouring finite halves: an exact tie.
		h := uint16(rng.IntN(0x7bff))
		lo, hi := float16.Frombits(h).Float32(), float16.Frombits(h+1).Float32()
		mid := float32((float64(lo) + float64(hi)) / 2)
		if rng.IntN(2) == 0 {
			mid = -mid
		}
		s = append(s, mid)
	}
	for i := 0; i < 100000; i++ {
		s = append(s, math.Float32frombits(rng.Uint32()))
	}
	for i := 0; i < 20000; i++ { // values in the half range, where rounding matters
		s = append(s, float32(rng.NormFloat64()*math.Pow(2, float64(rng.IntN(40)-24))))
	}
	return s
}

func TestF32ToF16Samples(t *testing.T) {
	src := f32Samples()
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			dst := make([]uint16, len(src))
			F32ToF16(dst, src)
			for i, f := range src {
				want := float16.Fromfloat32(f).Bits()
				if !sameF16(dst[i], want) {
					t.Fatalf("F32ToF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), dst[i], want)
				}
			}
		})
	}
}

// bf16Want rounds f to bfloat16 by comparing float64 distances to the two
// neighbouring bfloat16 values (ties to the even one); NaN gives a quiet NaN.
func bf16Want(f float32) (bits uint16, nan bool) {
	b := math.Float32bits(f)
	if f != f {
		return 0, true
	}
	lo := b &^ 0xffff // truncation toward zero in magnitude
	hi := lo + 0x10000
	dlo := math.Abs(float64(f) - float64(math.Float32frombits(lo)))
	var dhi float64
	if hi&0x7f800000 == 0x7f800000 && lo&0x7fffffff == 0x7f7f0000 {
		// The next magnitude is infinity: it counts at 2^128 for rounding.
		dhi = math.Abs(math.Ldexp(1, 128) - math.Abs(float64(f)))
	} else if lo&0x7fffffff == 0x7f800000 {
		return uint16(lo >> 16), false // infinity itself
	} else {
		dhi = math.Abs(float64(f) - float64(math.Float32frombits(hi)))
	}
	switch {
	case dlo < dhi:
		return uint16(lo >> 16), false
	case dhi < dlo:
		return uint16(hi >> 16), false
	}
	if (lo>>16)&1 == 0 {
		return uint16(lo >> 16), false
	}
	return uint16(hi >> 16), false
}

func TestF32ToBF16Samples(t *testing.T) {
	src := f32Samples()
	dst := make([]uint16, len(src))
	F32ToBF16(dst, src)
	for i, f := range src {
		want, nan := bf16Want(f)
		got := dst[i]
		if nan {
			if got&0x7f80 != 0x7f80 || got&0x7f == 0 && got&0x40 == 0 || got&0x8000 != uint16(math.Float32bits(f)>>16)&0x8000 {
				t.Fatalf("F32ToBF16(NaN %#08x) = %#04x, want a NaN of the same sign", math.Float32bits(f), got)
			}
			continue
		}
		if got != want {
			t.Fatalf("F32ToBF16(%g = %#08x) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

func TestHalfEmpty(t *testing.T) {
	F16ToF32(nil, nil)
	BF16ToF32(nil, nil)
	F32ToF16(nil, nil)
	F32ToBF16(nil, nil)
}

package kernels

import (
	"math"
	"testing"
)

func TestDType(t *testing.T) {
	for _, c := range []struct {
		d    DType
		name string
		size int
	}{{F32, "f32", 4}, {F16, "f16", 2}, {BF16, "bf16", 2}} {
		if c.d.String() != c.name || c.d.Size() != c.size {
			t.Errorf("%d: got %q, %d bytes; want %q, %d", c.d, c.d.String(), c.d.Size(), c.name, c.size)
		}
	}
}

func TestScalarConversions(t *testing.T) {
	for _, c := range []struct {
		f        float32
		f16, b16 uint16
	}{
		{0, 0, 0},
		{1, 0x3c00, 0x3f80},
		{-2, 0xc000, 0xc000},
		{65504, 0x7bff, 0x4780}, // bf16: rounds up
		{float32(math.Inf(1)), 0x7c00, 0x7f80},
		{1 + 0x1p-8, 0x3c04, 0x3f80},          // bf16: tie, rounds to even
		{1 + 0x1p-8 + 0x1p-9, 0x3c06, 0x3f81}, // bf16: above the tie, rounds up
	} {
		if got := F32ToF16Scalar(c.f); got != c.f16 {
			t.Errorf("F32ToF16Scalar(%g) = %#04x, want %#04x", c.f, got, c.f16)
		}
		if got := F32ToBF16Scalar(c.f); got != c.b16 {
			t.Errorf("F32ToBF16Scalar(%g) = %#04x, want %#04x", c.f, got, c.b16)
		}
		if got := F16ToF32Scalar(c.f16); got != c.f { // every case is exact in f16
			t.Errorf("F16ToF32Scalar(%#04x) = %g, want %g", c.f16, got, c.f)
		}
		if got := BF16ToF32Scalar(c.b16); got != math.Float32frombits(uint32(c.b16)<<16) {
			t.Errorf("BF16ToF32Scalar(%#04x) = %g", c.b16, got)
		}
	}
	if v := F32ToBF16Scalar(float32(math.NaN())); BF16ToF32Scalar(v) == BF16ToF32Scalar(v) {
		t.Errorf("F32ToBF16Scalar(NaN) = %#04x, not a NaN", v)
	}
}

package kernels

import (
	"math"

	"github.com/x448/float16"
)

// The scalar conversions below define the 16-bit storage types; every device
// rounds as they do (kernels/cpu has the vectorised slice conversions).

// F16ToF32Scalar converts one IEEE binary16 value (raw bits) to float32.
func F16ToF32Scalar(h uint16) float32 { return float16.Float16(h).Float32() }

// F32ToF16Scalar converts one float32 to IEEE binary16 bits, rounding to nearest even.
func F32ToF16Scalar(f float32) uint16 { return float16.Fromfloat32(f).Bits() }

// BF16ToF32Scalar converts one bfloat16 value (raw bits) to float32.
func BF16ToF32Scalar(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16Scalar converts one float32 to bfloat16 bits, rounding to nearest even
// (NaN stays NaN), as PyTorch does.
func F32ToBF16Scalar(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet and non-zero
		return uint16(b>>16) | 0x40
	}
	rounding := uint32(0x7fff) + (b>>16)&1
	return uint16((b + rounding) >> 16)
}

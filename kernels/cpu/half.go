package cpu

import "github.com/roentgo/roentgo/kernels"

// F16ToF32Scalar converts one IEEE binary16 value (raw bits) to float32
// (kernels.F16ToF32Scalar).
func F16ToF32Scalar(h uint16) float32 { return kernels.F16ToF32Scalar(h) }

// F32ToF16Scalar converts one float32 to IEEE binary16 bits, rounding to nearest
// even (kernels.F32ToF16Scalar).
func F32ToF16Scalar(f float32) uint16 { return kernels.F32ToF16Scalar(f) }

// BF16ToF32Scalar converts one bfloat16 value (raw bits) to float32
// (kernels.BF16ToF32Scalar).
func BF16ToF32Scalar(h uint16) float32 { return kernels.BF16ToF32Scalar(h) }

// F32ToBF16Scalar converts one float32 to bfloat16 bits, rounding to nearest even
// (NaN stays NaN), as PyTorch does (kernels.F32ToBF16Scalar).
func F32ToBF16Scalar(f float32) uint16 { return kernels.F32ToBF16Scalar(f) }

// F16ToF32 converts len(src) half-precision values to float32 into dst.
//
//	for i := range src { dst[i] = F16ToF32Scalar(src[i]) }
//
// On amd64 with F16C it uses VCVTPH2PS (exact, like the scalar conversion).
func F16ToF32(dst []float32, src []uint16) {
	if len(src) == 0 {
		return
	}
	_ = dst[len(src)-1]
	if f16ToF32Asm(dst, src) {
		return
	}
	for i, h := range src {
		dst[i] = F16ToF32Scalar(h)
	}
}

// BF16ToF32 converts len(src) bfloat16 values to float32 into dst.
//
//	for i := range src { dst[i] = BF16ToF32Scalar(src[i]) }
func BF16ToF32(dst []float32, src []uint16) {
	if len(src) == 0 {
		return
	}
	_ = dst[len(src)-1]
	if bf16ToF32Asm(dst, src) {
		return
	}
	for i, h := range src {
		dst[i] = fromBits(uint32(h) << 16)
	}
}

// F32ToF16 converts len(src) float32 values to half precision (round to nearest
// even) into dst.
//
//	for i := range src { dst[i] = F32ToF16Scalar(src[i]) }
//
// On amd64 with F16C it uses VCVTPS2PH with round-to-nearest-even, which matches
// the scalar conversion bit for bit except that a NaN keeps its top payload bits
// (both give a quiet NaN).
func F32ToF16(dst []uint16, src []float32) {
	if len(src) == 0 {
		return
	}
	_ = dst[len(src)-1]
	if f32ToF16Asm(dst, src) {
		return
	}
	for i, f := range src {
		dst[i] = F32ToF16Scalar(f)
	}
}

// F32ToBF16 converts len(src) float32 values to bfloat16 (round to nearest even) into dst.
//
//	for i := range src { dst[i] = F32ToBF16Scalar(src[i]) }
//
// On amd64 with AVX-512 it converts 16 values an instruction, bit for bit like
// the scalar conversion (NaNs included).
func F32ToBF16(dst []uint16, src []float32) {
	if len(src) == 0 {
		return
	}
	_ = dst[len(src)-1]
	if f32ToBF16Asm(dst, src) {
		return
	}
	for i, f := range src {
		dst[i] = F32ToBF16Scalar(f)
	}
}

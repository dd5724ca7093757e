package kernels

// DType is the storage type of a kernel operand.
type DType uint8

const (
	// F32 is IEEE-754 binary32, stored in a []float32.
	F32 DType = iota
	// F16 is IEEE-754 binary16, stored as raw bits in a []uint16.
	F16
	// BF16 is bfloat16 (the top half of a binary32), stored as raw bits in a []uint16.
	BF16
)

// String returns the lower-case name of the dtype ("f32", "f16", "bf16").
func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	}
	return "dtype(?)"
}

// Size returns the size of one element in bytes: 4 for F32, 2 for F16 and BF16.
func (d DType) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

// Mat is a read-only matrix operand of a matrix product. The stored matrix is
// row-major with row stride Stride (in elements). If Trans is set, the logical
// operand is the transpose of the stored matrix. The data lives in F32 when DType
// is F32, otherwise in U16 (half or bfloat16 bits); the kernels convert 16-bit
// data to float32 while packing and accumulate in float32.
type Mat struct {
	F32    []float32
	U16    []uint16
	DType  DType
	Stride int
	Trans  bool
}

// F32Mat returns a float32 operand over data with the given row stride.
func F32Mat(data []float32, stride int, trans bool) Mat {
	return Mat{F32: data, DType: F32, Stride: stride, Trans: trans}
}

// HalfMat returns a 16-bit operand (dt is F16 or BF16) over bits with the given row stride.
func HalfMat(bits []uint16, dt DType, stride int, trans bool) Mat {
	return Mat{U16: bits, DType: dt, Stride: stride, Trans: trans}
}

// At returns the element (i, j) of the logical (possibly transposed) matrix as float32.
// It is slow and meant for references and tests.
func (m Mat) At(i, j int) float32 {
	if m.Trans {
		i, j = j, i
	}
	idx := i*m.Stride + j
	switch m.DType {
	case F16:
		return F16ToF32Scalar(m.U16[idx])
	case BF16:
		return BF16ToF32Scalar(m.U16[idx])
	}
	return m.F32[idx]
}

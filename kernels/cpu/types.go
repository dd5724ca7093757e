package cpu

import "github.com/roentgo/roentgo/kernels"

// The kernel vocabulary (dtypes, operands, op parameters and names) is defined in
// package kernels, shared with the other devices; these aliases keep the names
// of this package working for its callers.

// DType is the storage type of a kernel operand (kernels.DType).
type DType = kernels.DType

const (
	// F32 is IEEE-754 binary32, stored in a []float32.
	F32 = kernels.F32
	// F16 is IEEE-754 binary16, stored as raw bits in a []uint16.
	F16 = kernels.F16
	// BF16 is bfloat16 (the top half of a binary32), stored as raw bits in a []uint16.
	BF16 = kernels.BF16
)

// Mat is a read-only matrix operand of a matrix product (kernels.Mat).
type Mat = kernels.Mat

// F32Mat returns a float32 operand over data with the given row stride (kernels.F32Mat).
func F32Mat(data []float32, stride int, trans bool) Mat {
	return kernels.F32Mat(data, stride, trans)
}

// HalfMat returns a 16-bit operand (dt is F16 or BF16) over bits with the given
// row stride (kernels.HalfMat).
func HalfMat(bits []uint16, dt DType, stride int, trans bool) Mat {
	return kernels.HalfMat(bits, dt, stride, trans)
}

// ConvParams describes a 2-D convolution (kernels.ConvParams).
type ConvParams = kernels.ConvParams

// AttnParams describes multi-head scaled-dot-product attention (kernels.AttnParams).
type AttnParams = kernels.AttnParams

// Activation names an elementwise activation function (kernels.Activation).
type Activation = kernels.Activation

const (
	// Identity is f(x) = x.
	Identity = kernels.Identity
	// SiLU is x * sigmoid(x) (also called swish).
	SiLU = kernels.SiLU
	// GELU is the exact x * Phi(x) = x/2 * (1 + erf(x/sqrt 2)).
	GELU = kernels.GELU
	// GELUTanh is the tanh approximation x/2 * (1 + tanh(sqrt(2/pi)*(x + 0.044715 x^3))).
	GELUTanh = kernels.GELUTanh
	// QuickGELU is x * sigmoid(1.702 x), as OpenAI's CLIP uses.
	QuickGELU = kernels.QuickGELU
)

// UnaryOp names an elementwise function of one operand (kernels.UnaryOp).
type UnaryOp = kernels.UnaryOp

const (
	// UCopy is y = x.
	UCopy = kernels.UCopy
	// UAffine is y = alpha*x + beta (scale, add a scalar, negate).
	UAffine = kernels.UAffine
	// UAbs is y = |x|.
	UAbs = kernels.UAbs
	// UExp is y = exp(x).
	UExp = kernels.UExp
	// ULog is y = ln(x).
	ULog = kernels.ULog
	// USqrt is y = sqrt(x).
	USqrt = kernels.USqrt
	// URsqrt is y = 1/sqrt(x).
	URsqrt = kernels.URsqrt
	// USin is y = sin(x).
	USin = kernels.USin
	// UCos is y = cos(x).
	UCos = kernels.UCos
	// UTanh is y = tanh(x).
	UTanh = kernels.UTanh
	// USigmoid is y = 1/(1+exp(-x)).
	USigmoid = kernels.USigmoid
	// USquare is y = x*x.
	USquare = kernels.USquare
	// UClamp is y = min(max(x, alpha), beta).
	UClamp = kernels.UClamp
	// UPow is y = x**alpha.
	UPow = kernels.UPow
	// URecip is y = 1/x.
	URecip = kernels.URecip
)

// BinaryOp names an elementwise function of two operands (kernels.BinaryOp).
type BinaryOp = kernels.BinaryOp

const (
	// BAdd is y = a + b.
	BAdd = kernels.BAdd
	// BSub is y = a - b.
	BSub = kernels.BSub
	// BMul is y = a * b.
	BMul = kernels.BMul
	// BDiv is y = a / b.
	BDiv = kernels.BDiv
	// BMax is y = max(a, b) (NaN if either is NaN).
	BMax = kernels.BMax
	// BMin is y = min(a, b) (NaN if either is NaN).
	BMin = kernels.BMin
)

// ReduceOp names a reduction along one dimension (kernels.ReduceOp).
type ReduceOp = kernels.ReduceOp

const (
	// RSum is the sum (accumulated in float64).
	RSum = kernels.RSum
	// RMean is the arithmetic mean (accumulated in float64).
	RMean = kernels.RMean
	// RMax is the maximum (NaN if any element is NaN).
	RMax = kernels.RMax
	// RMin is the minimum (NaN if any element is NaN).
	RMin = kernels.RMin
	// RVar is the biased (population) variance, two-pass in float64.
	RVar = kernels.RVar
)

// Span returns how many elements a strided operand covers from its first one
// (kernels.Span).
func Span(shape, st []int) int { return kernels.Span(shape, st) }

// MergeDims drops size-1 dimensions and merges contiguous neighbouring
// dimensions of strided operands (kernels.MergeDims).
func MergeDims(shape []int, strides ...[]int) ([]int, [][]int) {
	return kernels.MergeDims(shape, strides...)
}

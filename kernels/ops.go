package kernels

import "math"

// ConvParams describes a 2-D convolution (cross-correlation, as PyTorch computes it)
// of an input x [N, C, H, W] with weights [K, C, R, S] into y [N, K, OutH, OutW].
type ConvParams struct {
	N, C, H, W       int // input batch, channels, height, width
	K, R, S          int // output channels, kernel height, kernel width
	StrideH, StrideW int // strides (>= 1)
	PadH, PadW       int // zero padding on each side
}

// OutH returns the output height (H + 2*PadH - R) / StrideH + 1.
func (p ConvParams) OutH() int { return (p.H+2*p.PadH-p.R)/p.StrideH + 1 }

// OutW returns the output width (W + 2*PadW - S) / StrideW + 1.
func (p ConvParams) OutW() int { return (p.W+2*p.PadW-p.S)/p.StrideW + 1 }

// AttnParams describes multi-head scaled-dot-product attention. Operands are laid
// out as [B, seq, H*D] rows: element (b, s, h, d) of q is at
// q[b*Sq*QStride + s*QStride + h*D + d], likewise k and v (with Sk) and o (with Sq).
// A stride of 0 means H*D (dense rows).
type AttnParams struct {
	B, H   int     // batch, heads
	Sq, Sk int     // query and key/value sequence lengths
	D      int     // head dimension
	Scale  float32 // usually 1/sqrt(D)
	Causal bool    // query i attends only to keys j <= i + (Sk - Sq)

	QStride, KStride, VStride, OStride int
}

// Strides returns the row strides of q, k, v and o, with 0 replaced by H*D.
func (p AttnParams) Strides() (qs, ks, vs, os int) {
	def := p.H * p.D
	qs, ks, vs, os = p.QStride, p.KStride, p.VStride, p.OStride
	if qs == 0 {
		qs = def
	}
	if ks == 0 {
		ks = def
	}
	if vs == 0 {
		vs = def
	}
	if os == 0 {
		os = def
	}
	return
}

// Activation names an elementwise activation function.
type Activation uint8

const (
	// Identity is f(x) = x.
	Identity Activation = iota
	// SiLU is x * sigmoid(x) (also called swish).
	SiLU
	// GELU is the exact x * Phi(x) = x/2 * (1 + erf(x/sqrt 2)).
	GELU
	// GELUTanh is the tanh approximation x/2 * (1 + tanh(sqrt(2/pi)*(x + 0.044715 x^3))).
	GELUTanh
	// QuickGELU is x * sigmoid(1.702 x), as OpenAI's CLIP uses.
	QuickGELU
)

// ActivateScalar evaluates f at x in float64 (the reference definition).
func (f Activation) ActivateScalar(x float64) float64 {
	switch f {
	case SiLU:
		return x / (1 + math.Exp(-x))
	case GELU:
		return 0.5 * x * (1 + math.Erf(x/math.Sqrt2))
	case GELUTanh:
		return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
	case QuickGELU:
		return x / (1 + math.Exp(-1.702*x))
	}
	return x
}

// UnaryOp names an elementwise function of one operand (and up to two scalar
// parameters alpha, beta).
type UnaryOp uint8

const (
	// UCopy is y = x.
	UCopy UnaryOp = iota
	// UAffine is y = alpha*x + beta (scale, add a scalar, negate).
	UAffine
	// UAbs is y = |x|.
	UAbs
	// UExp is y = exp(x).
	UExp
	// ULog is y = ln(x).
	ULog
	// USqrt is y = sqrt(x).
	USqrt
	// URsqrt is y = 1/sqrt(x).
	URsqrt
	// USin is y = sin(x).
	USin
	// UCos is y = cos(x).
	UCos
	// UTanh is y = tanh(x).
	UTanh
	// USigmoid is y = 1/(1+exp(-x)).
	USigmoid
	// USquare is y = x*x.
	USquare
	// UClamp is y = min(max(x, alpha), beta).
	UClamp
	// UPow is y = x**alpha.
	UPow
	// URecip is y = 1/x.
	URecip
)

// BinaryOp names an elementwise function of two operands.
type BinaryOp uint8

const (
	// BAdd is y = a + b.
	BAdd BinaryOp = iota
	// BSub is y = a - b.
	BSub
	// BMul is y = a * b.
	BMul
	// BDiv is y = a / b.
	BDiv
	// BMax is y = max(a, b) (NaN if either is NaN).
	BMax
	// BMin is y = min(a, b) (NaN if either is NaN).
	BMin
)

// ReduceOp names a reduction along one dimension.
type ReduceOp uint8

const (
	// RSum is the sum (accumulated in float64).
	RSum ReduceOp = iota
	// RMean is the arithmetic mean (accumulated in float64).
	RMean
	// RMax is the maximum (NaN if any element is NaN).
	RMax
	// RMin is the minimum (NaN if any element is NaN).
	RMin
	// RVar is the biased (population) variance, two-pass in float64.
	RVar
)

// UnaryScalar evaluates op at x (the reference definition, in float64 where the
// function is transcendental).
func (op UnaryOp) UnaryScalar(alpha, beta, x float32) float32 {
	switch op {
	case UCopy:
		return x
	case UAffine:
		return alpha*x + beta
	case UAbs:
		return float32(math.Abs(float64(x)))
	case UExp:
		return float32(math.Exp(float64(x)))
	case ULog:
		return float32(math.Log(float64(x)))
	case USqrt:
		return float32(math.Sqrt(float64(x)))
	case URsqrt:
		return float32(1 / math.Sqrt(float64(x)))
	case USin:
		return float32(math.Sin(float64(x)))
	case UCos:
		return float32(math.Cos(float64(x)))
	case UTanh:
		return float32(math.Tanh(float64(x)))
	case USigmoid:
		return float32(1 / (1 + math.Exp(-float64(x))))
	case USquare:
		return x * x
	case UClamp:
		if x != x {
			return x
		}
		return min(max(x, alpha), beta)
	case UPow:
		return float32(math.Pow(float64(x), float64(alpha)))
	case URecip:
		return 1 / x
	}
	panic("kernels: unknown UnaryOp")
}

// BinaryScalar evaluates op at (a, b) (the reference definition).
func (op BinaryOp) BinaryScalar(a, b float32) float32 {
	switch op {
	case BAdd:
		return a + b
	case BSub:
		return a - b
	case BMul:
		return a * b
	case BDiv:
		return a / b
	case BMax:
		if a != a || b != b {
			return float32(math.NaN())
		}
		return max(a, b)
	case BMin:
		if a != a || b != b {
			return float32(math.NaN())
		}
		return min(a, b)
	}
	panic("kernels: unknown BinaryOp")
}

package kerneltest

import (
	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// Ops is the set of kernel operations a device implements, with the signatures
// and semantics of kernels/cpu (each documented on its ...Ref function there). A
// device whose buffers live elsewhere wraps them behind these host slices
// (DeviceOps does so for any kernels.Device).
type Ops interface {
	// Name names the implementation in test output.
	Name() string
	// Caps describes what the implementation supports and how precisely.
	Caps() Caps

	Gemm(m, n, k int, alpha float32, a, b kernels.Mat, beta float32, c []float32, ldc int)
	Conv2d(p kernels.ConvParams, x []float32, w kernels.Mat, bias, y []float32)
	Attention(p kernels.AttnParams, q, k, v, o []float32)
	GroupNorm(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool)
	LayerNorm(x, y []float32, rows, cols int, eps float32, gamma, beta []float32)
	Softmax(x, y []float32, rows, cols int)
	Activate(f kernels.Activation, x, y []float32)
	GEGLU(x, y []float32, rows, d int)
	Upsample2x(x, y []float32, nc, h, w int)
	TimestepEmbedding(t []float32, dim int, flipSinToCos bool, shift, scale, maxPeriod float32, out []float32)
}

// Caps describes an implementation's capabilities and precision.
type Caps struct {
	// WeightDTypes lists the storage types of Mat operands (Gemm operands and
	// Conv2d weights) it accepts. F32 is always tested; F16 and BF16 cases run
	// only when listed.
	WeightDTypes []kernels.DType
	// Compute is the precision in which the matrix products (Gemm, Conv2d,
	// Attention) multiply: F32, or F16/BF16 for devices that round operands to 16
	// bits (tensor cores), always accumulating in float32. It scales those
	// tolerances by the unit roundoff of the type. The normalisations and
	// elementwise ops are held to float32 accuracy regardless. The training
	// kernels (BackwardOps) take their tensor operands and outputs in this
	// type, their tolerances scaled by its unit roundoff.
	Compute kernels.DType
	// TolScale multiplies every tolerance (0 means 1); a device with looser
	// transcendental functions may raise it, and says so in its test.
	TolScale float64
	// NoInPlace skips the cases that pass the same slice as input and output.
	NoInPlace bool
}

func (c Caps) supports(dt kernels.DType) bool {
	if dt == kernels.F32 {
		return true
	}
	for _, d := range c.WeightDTypes {
		if d == dt {
			return true
		}
	}
	return false
}

func (c Caps) scale() float64 {
	if c.TolScale > 0 {
		return c.TolScale
	}
	return 1
}

// unitRoundoff returns 2^-p for a type with p significant bits.
func unitRoundoff(dt kernels.DType) float64 {
	switch dt {
	case kernels.F16:
		return 0x1p-11
	case kernels.BF16:
		return 0x1p-8
	}
	return 0x1p-24
}

// RefOps implements Ops with the naive references of kernels/cpu. A device that
// implements only some ops can embed it and override those (the suite then also
// checks the rest, trivially); Run(t, RefOps{}, ...) checks the suite itself.
type RefOps struct{}

// Name returns "ref".
func (RefOps) Name() string { return "ref" }

// Caps returns F32 compute with all weight types.
func (RefOps) Caps() Caps {
	return Caps{WeightDTypes: []kernels.DType{kernels.F32, kernels.F16, kernels.BF16}, Compute: kernels.F32}
}

// Gemm calls cpu.GemmRef.
func (RefOps) Gemm(m, n, k int, alpha float32, a, b kernels.Mat, beta float32, c []float32, ldc int) {
	cpu.GemmRef(m, n, k, alpha, a, b, beta, c, ldc)
}

// Conv2d calls cpu.Conv2dRef.
func (RefOps) Conv2d(p kernels.ConvParams, x []float32, w kernels.Mat, bias, y []float32) {
	cpu.Conv2dRef(p, x, w, bias, y)
}

// Attention calls cpu.AttentionRef.
func (RefOps) Attention(p kernels.AttnParams, q, k, v, o []float32) { cpu.AttentionRef(p, q, k, v, o) }

// GroupNorm calls cpu.GroupNormRef.
func (RefOps) GroupNorm(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool) {
	cpu.GroupNormRef(x, y, n, c, hw, groups, eps, gamma, beta, silu)
}

// LayerNorm calls cpu.LayerNormRef.
func (RefOps) LayerNorm(x, y []float32, rows, cols int, eps float32, gamma, beta []float32) {
	cpu.LayerNormRef(x, y, rows, cols, eps, gamma, beta)
}

// Softmax calls cpu.SoftmaxRef.
func (RefOps) Softmax(x, y []float32, rows, cols int) { cpu.SoftmaxRef(x, y, rows, cols) }

// Activate calls cpu.ActivateRef.
func (RefOps) Activate(f kernels.Activation, x, y []float32) { cpu.ActivateRef(f, x, y) }

// GEGLU calls cpu.GEGLURef.
func (RefOps) GEGLU(x, y []float32, rows, d int) { cpu.GEGLURef(x, y, rows, d) }

// Upsample2x calls cpu.Upsample2xRef.
func (RefOps) Upsample2x(x, y []float32, nc, h, w int) { cpu.Upsample2xRef(x, y, nc, h, w) }

// TimestepEmbedding calls cpu.TimestepEmbeddingRef.
func (RefOps) TimestepEmbedding(t []float32, dim int, flipSinToCos bool, shift, scale, maxPeriod float32, out []float32) {
	cpu.TimestepEmbeddingRef(t, dim, flipSinToCos, shift, scale, maxPeriod, out)
}

package cpu_test

import (
	"testing"

	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/kernels/kerneltest"
)

// fastOps adapts the fast paths of package cpu to kerneltest.Ops.
type fastOps struct{ name string }

func (o fastOps) Name() string { return o.name }

func (fastOps) Caps() kerneltest.Caps {
	return kerneltest.Caps{WeightDTypes: []cpu.DType{cpu.F32, cpu.F16, cpu.BF16}, Compute: cpu.F32}
}

func (fastOps) Gemm(m, n, k int, alpha float32, a, b cpu.Mat, beta float32, c []float32, ldc int) {
	cpu.Gemm(m, n, k, alpha, a, b, beta, c, ldc)
}

func (fastOps) Conv2d(p cpu.ConvParams, x []float32, w cpu.Mat, bias, y []float32) {
	cpu.Conv2d(p, x, w, bias, y)
}

func (fastOps) Attention(p cpu.AttnParams, q, k, v, o []float32) { cpu.Attention(p, q, k, v, o) }

func (fastOps) GroupNorm(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool) {
	cpu.GroupNorm(x, y, n, c, hw, groups, eps, gamma, beta, silu)
}

func (fastOps) LayerNorm(x, y []float32, rows, cols int, eps float32, gamma, beta []float32) {
	cpu.LayerNorm(x, y, rows, cols, eps, gamma, beta)
}

func (fastOps) Softmax(x, y []float32, rows, cols int) { cpu.Softmax(x, y, rows, cols) }

func (fastOps) Activate(f cpu.Activation, x, y []float32) { cpu.Activate(f, x, y) }

func (fastOps) GEGLU(x, y []float32, rows, d int) { cpu.GEGLU(x, y, rows, d) }

func (fastOps) Upsample2x(x, y []float32, nc, h, w int) { cpu.Upsample2x(x, y, nc, h, w) }

func (fastOps) TimestepEmbedding(t []float32, dim int, flipSinToCos bool, shift, scale, maxPeriod float32, out []float32) {
	cpu.TimestepEmbedding(t, dim, flipSinToCos, shift, scale, maxPeriod, out)
}

// The training kernels (kerneltest.BackwardOps).

func (fastOps) Conv2dBackwardData(p cpu.ConvParams, dy []float32, w cpu.Mat, dx []float32) {
	cpu.Conv2dBackwardData(p, dy, w, dx)
}

func (fastOps) Conv2dBackwardWeight(p cpu.ConvParams, x, dy, dw []float32) {
	cpu.Conv2dBackwardWeight(p, x, dy, dw)
}

func (fastOps) Conv2dBackwardBias(p cpu.ConvParams, dy, db []float32) {
	cpu.Conv2dBackwardBias(p, dy, db)
}

func (fastOps) AttentionWithLSE(p cpu.AttnParams, q, k, v, o, lse []float32) {
	cpu.AttentionWithLSE(p, q, k, v, o, lse)
}

func (fastOps) AttentionBackward(p cpu.AttnParams, do, q, k, v, o, lse, dq, dk, dv []float32) {
	cpu.AttentionBackward(p, do, q, k, v, o, lse, dq, dk, dv)
}

func (fastOps) GroupNormSave(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool, mean, rstd []float32) {
	cpu.GroupNormSave(x, y, n, c, hw, groups, eps, gamma, beta, silu, mean, rstd)
}

func (fastOps) GroupNormBackward(x, dy, dx []float32, n, c, hw, groups int, mean, rstd, gamma, beta []float32, silu bool, dgamma, dbeta []float32) {
	cpu.GroupNormBackward(x, dy, dx, n, c, hw, groups, mean, rstd, gamma, beta, silu, dgamma, dbeta)
}

func (fastOps) LayerNormSave(x, y []float32, rows, cols int, eps float32, gamma, beta, mean, rstd []float32) {
	cpu.LayerNormSave(x, y, rows, cols, eps, gamma, beta, mean, rstd)
}

func (fastOps) LayerNormBackward(x, dy, dx []float32, rows, cols int, mean, rstd, gamma, dgamma, dbeta []float32) {
	cpu.LayerNormBackward(x, dy, dx, rows, cols, mean, rstd, gamma, dgamma, dbeta)
}

func (fastOps) SoftmaxBackward(y, dy, dx []float32, rows, cols int) {
	cpu.SoftmaxBackward(y, dy, dx, rows, cols)
}

func (fastOps) ActivateBackward(f cpu.Activation, x, dy, dx []float32) {
	cpu.ActivateBackward(f, x, dy, dx)
}

func (fastOps) GEGLUBackward(x, dy, dx []float32, rows, d int) { cpu.GEGLUBackward(x, dy, dx, rows, d) }

func (fastOps) Upsample2xBackward(dy, dx []float32, nc, h, w int) {
	cpu.Upsample2xBackward(dy, dx, nc, h, w)
}

func (fastOps) EmbeddingBackward(ids []int64, dy []float32, d, vocab int, dw []float32) {
	cpu.EmbeddingBackward(ids, dy, d, vocab, dw)
}

func (fastOps) EmbeddingBackwardSparse(ids []int64, dy []float32, d int, rows []int64, grad []float32) {
	cpu.EmbeddingBackwardSparse(ids, dy, d, rows, grad)
}

var _ kerneltest.BackwardOps = fastOps{}

// TestConformance runs the conformance suite over the fast paths, with the default
// thread count and on one thread.
func TestConformance(t *testing.T) {
	kerneltest.Run(t, fastOps{"cpu"}, kerneltest.Options{})
}

// TestConformanceSerial runs the suite on one goroutine (short shapes).
func TestConformanceSerial(t *testing.T) {
	prev := cpu.SetThreads(1)
	defer cpu.SetThreads(prev)
	kerneltest.Run(t, fastOps{"cpu-1thread"}, kerneltest.Options{Short: true})
}

// TestConformanceNoAsm runs the normalisation and elementwise ops with their
// assembly kernels switched off (the pure-Go fallback on this machine).
func TestConformanceNoAsm(t *testing.T) {
	prev := cpu.SetVecAsmForTest(false)
	defer cpu.SetVecAsmForTest(prev)
	kerneltest.Run(t, fastOps{"cpu-noasm"}, kerneltest.Options{Short: true,
		Ops: []string{"GroupNorm", "LayerNorm", "Softmax", "Activate", "GEGLU", "Upsample2x", "TimestepEmbedding",
			"GroupNormSave", "GroupNormBackward", "LayerNormSave", "LayerNormBackward", "SoftmaxBackward",
			"ActivateBackward", "GEGLUBackward", "Upsample2xBackward"}})
}

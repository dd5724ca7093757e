package kerneltest

import (
	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// BackwardOps is the optional set of training kernels: the backward (gradient)
// kernels of kernels/cpu and the forwards that save what they read, with the
// signatures and semantics of the kernels/cpu functions (each documented on
// its ...Ref function). Run checks them when its Ops also implements
// BackwardOps. Saved statistics (mean, rstd, lse) and parameter gradients (dw,
// db, dgamma, dbeta) are float32 on every device; the other operands are in
// the device's compute type (Caps.Compute; the suite rounds their inputs to it
// before the reference sees them).
type BackwardOps interface {
	Conv2dBackwardData(p kernels.ConvParams, dy []float32, w kernels.Mat, dx []float32)
	Conv2dBackwardWeight(p kernels.ConvParams, x, dy, dw []float32)
	Conv2dBackwardBias(p kernels.ConvParams, dy, db []float32)
	AttentionWithLSE(p kernels.AttnParams, q, k, v, o, lse []float32)
	AttentionBackward(p kernels.AttnParams, do, q, k, v, o, lse, dq, dk, dv []float32)
	GroupNormSave(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool, mean, rstd []float32)
	GroupNormBackward(x, dy, dx []float32, n, c, hw, groups int, mean, rstd, gamma, beta []float32, silu bool, dgamma, dbeta []float32)
	LayerNormSave(x, y []float32, rows, cols int, eps float32, gamma, beta, mean, rstd []float32)
	LayerNormBackward(x, dy, dx []float32, rows, cols int, mean, rstd, gamma, dgamma, dbeta []float32)
	SoftmaxBackward(y, dy, dx []float32, rows, cols int)
	ActivateBackward(f kernels.Activation, x, dy, dx []float32)
	GEGLUBackward(x, dy, dx []float32, rows, d int)
	Upsample2xBackward(dy, dx []float32, nc, h, w int)
	EmbeddingBackward(ids []int64, dy []float32, d, vocab int, dw []float32)
	EmbeddingBackwardSparse(ids []int64, dy []float32, d int, rows []int64, grad []float32)
}

// BackwardNames lists the names of the BackwardOps checks, for Options.Ops
// and Options.Skip (each a subtest of Run).
var BackwardNames = []string{
	"Conv2dBackwardData", "Conv2dBackwardWeight", "Conv2dBackwardBias",
	"AttentionWithLSE", "AttentionBackward",
	"GroupNormSave", "GroupNormBackward", "LayerNormSave", "LayerNormBackward",
	"SoftmaxBackward", "ActivateBackward", "GEGLUBackward", "Upsample2xBackward",
	"EmbeddingBackward", "EmbeddingBackwardSparse",
}

var _ BackwardOps = RefOps{}

// Conv2dBackwardData calls cpu.Conv2dBackwardDataRef.
func (RefOps) Conv2dBackwardData(p kernels.ConvParams, dy []float32, w kernels.Mat, dx []float32) {
	cpu.Conv2dBackwardDataRef(p, dy, w, dx)
}

// Conv2dBackwardWeight calls cpu.Conv2dBackwardWeightRef.
func (RefOps) Conv2dBackwardWeight(p kernels.ConvParams, x, dy, dw []float32) {
	cpu.Conv2dBackwardWeightRef(p, x, dy, dw)
}

// Conv2dBackwardBias calls cpu.Conv2dBackwardBiasRef.
func (RefOps) Conv2dBackwardBias(p kernels.ConvParams, dy, db []float32) {
	cpu.Conv2dBackwardBiasRef(p, dy, db)
}

// AttentionWithLSE calls cpu.AttentionWithLSERef.
func (RefOps) AttentionWithLSE(p kernels.AttnParams, q, k, v, o, lse []float32) {
	cpu.AttentionWithLSERef(p, q, k, v, o, lse)
}

// AttentionBackward calls cpu.AttentionBackwardRef.
func (RefOps) AttentionBackward(p kernels.AttnParams, do, q, k, v, o, lse, dq, dk, dv []float32) {
	cpu.AttentionBackwardRef(p, do, q, k, v, o, lse, dq, dk, dv)
}

// GroupNormSave calls cpu.GroupNormSaveRef.
func (RefOps) GroupNormSave(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool, mean, rstd []float32) {
	cpu.GroupNormSaveRef(x, y, n, c, hw, groups, eps, gamma, beta, silu, mean, rstd)
}

// GroupNormBackward calls cpu.GroupNormBackwardRef.
func (RefOps) GroupNormBackward(x, dy, dx []float32, n, c, hw, groups int, mean, rstd, gamma, beta []float32, silu bool, dgamma, dbeta []float32) {
	cpu.GroupNormBackwardRef(x, dy, dx, n, c, hw, groups, mean, rstd, gamma, beta, silu, dgamma, dbeta)
}

// LayerNormSave calls cpu.LayerNormSaveRef.
func (RefOps) LayerNormSave(x, y []float32, rows, cols int, eps float32, gamma, beta, mean, rstd []float32) {
	cpu.LayerNormSaveRef(x, y, rows, cols, eps, gamma, beta, mean, rstd)
}

// LayerNormBackward calls cpu.LayerNormBackwardRef.
func (RefOps) LayerNormBackward(x, dy, dx []float32, rows, cols int, mean, rstd, gamma, dgamma, dbeta []float32) {
	cpu.LayerNormBackwardRef(x, dy, dx, rows, cols, mean, rstd, gamma, dgamma, dbeta)
}

// SoftmaxBackward calls cpu.SoftmaxBackwardRef.
func (RefOps) SoftmaxBackward(y, dy, dx []float32, rows, cols int) {
	cpu.SoftmaxBackwardRef(y, dy, dx, rows, cols)
}

// ActivateBackward calls cpu.ActivateBackwardRef.
func (RefOps) ActivateBackward(f kernels.Activation, x, dy, dx []float32) {
	cpu.ActivateBackwardRef(f, x, dy, dx)
}

// GEGLUBackward calls cpu.GEGLUBackwardRef.
func (RefOps) GEGLUBackward(x, dy, dx []float32, rows, d int) {
	cpu.GEGLUBackwardRef(x, dy, dx, rows, d)
}

// Upsample2xBackward calls cpu.Upsample2xBackwardRef.
func (RefOps) Upsample2xBackward(dy, dx []float32, nc, h, w int) {
	cpu.Upsample2xBackwardRef(dy, dx, nc, h, w)
}

// EmbeddingBackward calls cpu.EmbeddingBackwardRef.
func (RefOps) EmbeddingBackward(ids []int64, dy []float32, d, vocab int, dw []float32) {
	cpu.EmbeddingBackwardRef(ids, dy, d, vocab, dw)
}

// EmbeddingBackwardSparse calls cpu.EmbeddingBackwardSparseRef.
func (RefOps) EmbeddingBackwardSparse(ids []int64, dy []float32, d int, rows []int64, grad []float32) {
	cpu.EmbeddingBackwardSparseRef(ids, dy, d, rows, grad)
}

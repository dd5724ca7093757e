package kerneltest

import "github.com/roentgo/roentgo/kernels"

// The training kernels of DeviceOps: tensor operands (x, y, dy, dx, q, ...,
// dq) in the compute type (Caps.Compute), statistics and parameter gradients
// F32. Outputs are uploaded with the slice's contents (the suite fills them
// with NaN), so elements a kernel must leave alone are checked too; an output
// that is an input slice itself is that input's buffer, and a nil output is
// the absent operand.

var _ BackwardOps = (*deviceOps[int])(nil)

// up uploads x in the compute type (nil: absent).
func (o *deviceOps[B]) up(x []float32) B { return o.upload(x, o.caps.Compute) }

// up32 uploads x as F32 (nil: absent).
func (o *deviceOps[B]) up32(x []float32) B { return o.upload(x, kernels.F32) }

// out returns the buffer of output y: that of the input x it aliases (as
// given in pairs of input slice and buffer), else y uploaded as dtype dt.
func (o *deviceOps[B]) out(y []float32, dt kernels.DType, ins ...any) B {
	for i := 0; i+1 < len(ins); i += 2 {
		if aliased(y, ins[i].([]float32)) {
			return ins[i+1].(B)
		}
	}
	return o.upload(y, dt)
}

// down downloads the buffer b into y (nothing for a nil y).
func (o *deviceOps[B]) down(y []float32, b B, dt kernels.DType) {
	if y != nil {
		o.download(y, b, dt)
	}
}

// Conv2dBackwardData runs dev.Conv2dBackwardData.
func (o *deviceOps[B]) Conv2dBackwardData(p kernels.ConvParams, dy []float32, w kernels.Mat, dx []float32) {
	t := o.caps.Compute
	ddy, dw, ddx := o.up(nonNil(dy)), o.uploadMat(w), o.up(nonNil(dx))
	must(o.dev.Conv2dBackwardData(p, ddy, dw, ddx))
	o.download(dx, ddx, t)
	o.free(ddy, dw.Buf, ddx)
}

// Conv2dBackwardWeight runs dev.Conv2dBackwardWeight.
func (o *deviceOps[B]) Conv2dBackwardWeight(p kernels.ConvParams, x, dy, dw []float32) {
	dx, ddy, ddw := o.up(nonNil(x)), o.up(nonNil(dy)), o.up32(nonNil(dw))
	must(o.dev.Conv2dBackwardWeight(p, dx, ddy, ddw))
	o.download(dw, ddw, kernels.F32)
	o.free(dx, ddy, ddw)
}

// Conv2dBackwardBias runs dev.Conv2dBackwardBias.
func (o *deviceOps[B]) Conv2dBackwardBias(p kernels.ConvParams, dy, db []float32) {
	ddy, ddb := o.up(nonNil(dy)), o.up32(nonNil(db))
	must(o.dev.Conv2dBackwardBias(p, ddy, ddb))
	o.download(db, ddb, kernels.F32)
	o.free(ddy, ddb)
}

// AttentionWithLSE runs dev.AttentionWithLSE.
func (o *deviceOps[B]) AttentionWithLSE(p kernels.AttnParams, q, k, v, out, lse []float32) {
	t := o.caps.Compute
	dq, dk, dv, do := o.up(nonNil(q)), o.up(nonNil(k)), o.up(nonNil(v)), o.up(nonNil(out))
	dl := o.up32(nonNil(lse))
	must(o.dev.AttentionWithLSE(p, dq, dk, dv, do, dl))
	o.download(out, do, t)
	o.download(lse, dl, kernels.F32)
	o.free(dq, dk, dv, do, dl)
}

// AttentionBackward runs dev.AttentionBackward.
func (o *deviceOps[B]) AttentionBackward(p kernels.AttnParams, do, q, k, v, out, lse, dq, dk, dv []float32) {
	t := o.caps.Compute
	bdo, bq, bk, bv, bo := o.up(nonNil(do)), o.up(nonNil(q)), o.up(nonNil(k)), o.up(nonNil(v)), o.up(nonNil(out))
	bl := o.up32(nonNil(lse))
	bdq, bdk, bdv := o.up(nonNil(dq)), o.up(nonNil(dk)), o.up(nonNil(dv))
	must(o.dev.AttentionBackward(p, bdo, bq, bk, bv, bo, bl, bdq, bdk, bdv))
	o.download(dq, bdq, t)
	o.download(dk, bdk, t)
	o.download(dv, bdv, t)
	o.free(bdo, bq, bk, bv, bo, bl, bdq, bdk, bdv)
}

// GroupNormSave runs dev.GroupNormSave.
func (o *deviceOps[B]) GroupNormSave(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool, mean, rstd []float32) {
	t := o.caps.Compute
	bx := o.up(nonNil(x))
	by := o.out(nonNil(y), t, x, bx)
	bg, bb := o.up32(gamma), o.up32(beta)
	bm, br := o.up32(nonNil(mean)), o.up32(nonNil(rstd))
	must(o.dev.GroupNormSave(bx, by, n, c, hw, groups, eps, bg, bb, silu, bm, br))
	o.download(y, by, t)
	o.download(mean, bm, kernels.F32)
	o.download(rstd, br, kernels.F32)
	o.free(bx, by, bg, bb, bm, br)
}

// GroupNormBackward runs dev.GroupNormBackward.
func (o *deviceOps[B]) GroupNormBackward(x, dy, dx []float32, n, c, hw, groups int, mean, rstd, gamma, beta []float32, silu bool, dgamma, dbeta []float32) {
	t := o.caps.Compute
	bx, bdy := o.up(nonNil(x)), o.up(nonNil(dy))
	var bdx B
	if dx != nil {
		bdx = o.out(dx, t, dy, bdy)
	}
	bm, br, bg, bb := o.up32(nonNil(mean)), o.up32(nonNil(rstd)), o.up32(gamma), o.up32(beta)
	bdg, bdb := o.up32(dgamma), o.up32(dbeta)
	must(o.dev.GroupNormBackward(bx, bdy, bdx, n, c, hw, groups, bm, br, bg, bb, silu, bdg, bdb))
	o.down(dx, bdx, t)
	o.down(dgamma, bdg, kernels.F32)
	o.down(dbeta, bdb, kernels.F32)
	o.free(bx, bdy, bdx, bm, br, bg, bb, bdg, bdb)
}

// LayerNormSave runs dev.LayerNormSave.
func (o *deviceOps[B]) LayerNormSave(x, y []float32, rows, cols int, eps float32, gamma, beta, mean, rstd []float32) {
	t := o.caps.Compute
	bx := o.up(nonNil(x))
	by := o.out(nonNil(y), t, x, bx)
	bg, bb := o.up32(gamma), o.up32(beta)
	bm, br := o.up32(nonNil(mean)), o.up32(nonNil(rstd))
	must(o.dev.LayerNormSave(bx, by, rows, cols, eps, bg, bb, bm, br))
	o.download(y, by, t)
	o.download(mean, bm, kernels.F32)
	o.download(rstd, br, kernels.F32)
	o.free(bx, by, bg, bb, bm, br)
}

// LayerNormBackward runs dev.LayerNormBackward.
func (o *deviceOps[B]) LayerNormBackward(x, dy, dx []float32, rows, cols int, mean, rstd, gamma, dgamma, dbeta []float32) {
	t := o.caps.Compute
	bx, bdy := o.up(nonNil(x)), o.up(nonNil(dy))
	var bdx B
	if dx != nil {
		bdx = o.out(dx, t, dy, bdy)
	}
	bm, br, bg := o.up32(nonNil(mean)), o.up32(nonNil(rstd)), o.up32(gamma)
	bdg, bdb := o.up32(dgamma), o.up32(dbeta)
	must(o.dev.LayerNormBackward(bx, bdy, bdx, rows, cols, bm, br, bg, bdg, bdb))
	o.down(dx, bdx, t)
	o.down(dgamma, bdg, kernels.F32)
	o.down(dbeta, bdb, kernels.F32)
	o.free(bx, bdy, bdx, bm, br, bg, bdg, bdb)
}

// SoftmaxBackward runs dev.SoftmaxBackward.
func (o *deviceOps[B]) SoftmaxBackward(y, dy, dx []float32, rows, cols int) {
	t := o.caps.Compute
	by, bdy := o.up(nonNil(y)), o.up(nonNil(dy))
	bdx := o.out(nonNil(dx), t, y, by, dy, bdy)
	must(o.dev.SoftmaxBackward(by, bdy, bdx, rows, cols))
	o.download(dx, bdx, t)
	o.free(by, bdy, bdx)
}

// ActivateBackward runs dev.ActivateBackward over len(x) elements.
func (o *deviceOps[B]) ActivateBackward(f kernels.Activation, x, dy, dx []float32) {
	t := o.caps.Compute
	dx = dx[:len(x)]
	bx, bdy := o.up(nonNil(x)), o.up(nonNil(dy[:len(x)]))
	bdx := o.out(nonNil(dx), t, x, bx, dy, bdy)
	must(o.dev.ActivateBackward(f, bx, bdy, bdx, len(x)))
	o.download(dx, bdx, t)
	o.free(bx, bdy, bdx)
}

// GEGLUBackward runs dev.GEGLUBackward.
func (o *deviceOps[B]) GEGLUBackward(x, dy, dx []float32, rows, d int) {
	t := o.caps.Compute
	bx, bdy := o.up(nonNil(x)), o.up(nonNil(dy))
	bdx := o.out(nonNil(dx), t, x, bx)
	must(o.dev.GEGLUBackward(bx, bdy, bdx, rows, d))
	o.download(dx, bdx, t)
	o.free(bx, bdy, bdx)
}

// Upsample2xBackward runs dev.Upsample2xBackward.
func (o *deviceOps[B]) Upsample2xBackward(dy, dx []float32, nc, h, w int) {
	t := o.caps.Compute
	bdy, bdx := o.up(nonNil(dy)), o.up(nonNil(dx))
	must(o.dev.Upsample2xBackward(bdy, bdx, nc, h, w))
	o.download(dx, bdx, t)
	o.free(bdy, bdx)
}

// EmbeddingBackward runs dev.EmbeddingBackward.
func (o *deviceOps[B]) EmbeddingBackward(ids []int64, dy []float32, d, vocab int, dw []float32) {
	bdy, bdw := o.up(nonNil(dy)), o.up32(nonNil(dw))
	must(o.dev.EmbeddingBackward(ids, bdy, d, vocab, bdw))
	o.download(dw, bdw, kernels.F32)
	o.free(bdy, bdw)
}

// EmbeddingBackwardSparse runs dev.EmbeddingBackwardSparse.
func (o *deviceOps[B]) EmbeddingBackwardSparse(ids []int64, dy []float32, d int, rows []int64, grad []float32) {
	bdy, bg := o.up(nonNil(dy)), o.up32(nonNil(grad))
	must(o.dev.EmbeddingBackwardSparse(ids, bdy, d, rows, bg))
	o.download(grad, bg, kernels.F32)
	o.free(bdy, bg)
}

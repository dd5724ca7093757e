package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// The simulated device's training kernels: the kernels/cpu backward kernels
// on host buffers. As in the forwards, 16-bit operands are read into float32
// and each 16-bit result is rounded once; statistics and parameter gradients
// are F32 buffers, handed to the kernels as they are.

// simF32 returns the first n elements of the F32 buffer x (nil for an absent
// x), panicking with op's name if x has another dtype.
func simF32(op, what string, x *simBuf, n int) []float32 {
	b := simb(x)
	if b == nil {
		return nil
	}
	if b.dt != cpu.F32 {
		panic(fmt.Sprintf("tensor: sim: %s: %s must be F32, is %v", op, what, b.dt))
	}
	return b.f32[:n]
}

// writeOpt is write for an optional output: nil and a no-op commit when x is
// absent.
func writeOpt(x *simBuf, n int) ([]float32, func()) {
	if x == nil {
		return nil, func() {}
	}
	return write(x, n)
}

// writeRows is write for an output of which a kernel writes only the first
// width elements of each of rows rows of stride elements: 16-bit results are
// rounded back into those elements only, so outputs interleaved in one buffer
// (the gradients of packed q, k, v) do not overwrite each other.
func writeRows(x *simBuf, rows, stride, width int) (f []float32, commit func()) {
	n := 0
	if rows > 0 {
		n = (rows-1)*stride + width
	}
	b := simb(x)
	if b.dt == cpu.F32 {
		return b.f32[:n], func() {}
	}
	f = make([]float32, n)
	half2f32(b.dt, f, b.u16[:n])
	return f, func() {
		for r := 0; r < rows; r++ {
			f322half(b.dt, b.u16[r*stride:r*stride+width], f[r*stride:r*stride+width])
		}
	}
}

func (s *simDevice) Conv2dBackwardData(p kernels.ConvParams, dy *simBuf, w kernels.DeviceMat[*simBuf], dx *simBuf) error {
	dyf := read(dy, p.N*p.K*p.OutH()*p.OutW())
	dxf, commit := write(dx, p.N*p.C*p.H*p.W)
	cpu.Conv2dBackwardData(p, dyf, simMat(w), dxf)
	commit()
	return nil
}

func (s *simDevice) Conv2dBackwardWeight(p kernels.ConvParams, x, dy, dw *simBuf) error {
	xf := read(x, p.N*p.C*p.H*p.W)
	dyf := read(dy, p.N*p.K*p.OutH()*p.OutW())
	cpu.Conv2dBackwardWeight(p, xf, dyf, simF32("Conv2dBackwardWeight", "dw", dw, p.K*p.C*p.R*p.S))
	return nil
}

func (s *simDevice) Conv2dBackwardBias(p kernels.ConvParams, dy, db *simBuf) error {
	dyf := read(dy, p.N*p.K*p.OutH()*p.OutW())
	cpu.Conv2dBackwardBias(p, dyf, simF32("Conv2dBackwardBias", "db", db, p.K))
	return nil
}

// attnRows returns the number of rows of an attention operand with seq rows
// per batch (0 when it is empty).
func attnRows(p kernels.AttnParams, seq int) int {
	if p.H == 0 || p.D == 0 {
		return 0
	}
	return p.B * seq
}

// attnSpan returns the elements an attention operand of rows rows and row
// stride st spans.
func attnSpan(p kernels.AttnParams, rows, st int) int {
	if rows == 0 {
		return 0
	}
	return (rows-1)*st + p.H*p.D
}

func (s *simDevice) AttentionWithLSE(p kernels.AttnParams, q, k, v, o, lse *simBuf) error {
	qs, ks, vs, os := p.Strides()
	nq, nk := attnRows(p, p.Sq), attnRows(p, p.Sk)
	of, commit := writeRows(o, nq, os, p.H*p.D)
	cpu.AttentionWithLSE(p, read(q, attnSpan(p, nq, qs)), read(k, attnSpan(p, nk, ks)), read(v, attnSpan(p, nk, vs)),
		of, simF32("AttentionWithLSE", "lse", lse, p.B*p.H*p.Sq))
	commit()
	return nil
}

func (s *simDevice) AttentionBackward(p kernels.AttnParams, do, q, k, v, o, lse, dq, dk, dv *simBuf) error {
	qs, ks, vs, os := p.Strides()
	nq, nk, hd := attnRows(p, p.Sq), attnRows(p, p.Sk), p.H*p.D
	dqf, cq := writeRows(dq, nq, qs, hd)
	dkf, ck := writeRows(dk, nk, ks, hd)
	dvf, cv := writeRows(dv, nk, vs, hd)
	cpu.AttentionBackward(p, read(do, attnSpan(p, nq, os)), read(q, attnSpan(p, nq, qs)),
		read(k, attnSpan(p, nk, ks)), read(v, attnSpan(p, nk, vs)), read(o, attnSpan(p, nq, os)),
		simF32("AttentionBackward", "lse", lse, p.B*p.H*p.Sq), dqf, dkf, dvf)
	cq()
	ck()
	cv()
	return nil
}

func (s *simDevice) GroupNormSave(x, y *simBuf, n, c, hw, groups int, eps float32, gamma, beta *simBuf, silu bool, mean, rstd *simBuf) error {
	const op = "GroupNormSave"
	m := n * c * hw
	xf := read(x, m)
	yf, commit := write(y, m)
	cpu.GroupNormSave(xf, yf, n, c, hw, groups, eps, simF32(op, "gamma", gamma, c), simF32(op, "beta", beta, c), silu,
		simF32(op, "mean", mean, n*groups), simF32(op, "rstd", rstd, n*groups))
	commit()
	return nil
}

func (s *simDevice) GroupNormBackward(x, dy, dx *simBuf, n, c, hw, groups int, mean, rstd, gamma, beta *simBuf, silu bool, dgamma, dbeta *simBuf) error {
	const op = "GroupNormBackward"
	m := n * c * hw
	xf, dyf := read(x, m), read(dy, m)
	dxf, commit := writeOpt(dx, m)
	cpu.GroupNormBackward(xf, dyf, dxf, n, c, hw, groups, simF32(op, "mean", mean, n*groups), simF32(op, "rstd", rstd, n*groups),
		simF32(op, "gamma", gamma, c), simF32(op, "beta", beta, c), silu, simF32(op, "dgamma", dgamma, c), simF32(op, "dbeta", dbeta, c))
	commit()
	return nil
}

func (s *simDevice) LayerNormSave(x, y *simBuf, rows, cols int, eps float32, gamma, beta, mean, rstd *simBuf) error {
	const op = "LayerNormSave"
	xf := read(x, rows*cols)
	yf, commit := write(y, rows*cols)
	cpu.LayerNormSave(xf, yf, rows, cols, eps, simF32(op, "gamma", gamma, cols), simF32(op, "beta", beta, cols),
		simF32(op, "mean", mean, rows), simF32(op, "rstd", rstd, rows))
	commit()
	return nil
}

func (s *simDevice) LayerNormBackward(x, dy, dx *simBuf, rows, cols int, mean, rstd, gamma, dgamma, dbeta *simBuf) error {
	const op = "LayerNormBackward"
	xf, dyf := read(x, rows*cols), read(dy, rows*cols)
	dxf, commit := writeOpt(dx, rows*cols)
	cpu.LayerNormBackward(xf, dyf, dxf, rows, cols, simF32(op, "mean", mean, rows), simF32(op, "rstd", rstd, rows),
		simF32(op, "gamma", gamma, cols), simF32(op, "dgamma", dgamma, cols), simF32(op, "dbeta", dbeta, cols))
	commit()
	return nil
}

func (s *simDevice) SoftmaxBackward(y, dy, dx *simBuf, rows, cols int) error {
	yf, dyf := read(y, rows*cols), read(dy, rows*cols)
	dxf, commit := write(dx, rows*cols)
	cpu.SoftmaxBackward(yf, dyf, dxf, rows, cols)
	commit()
	return nil
}

func (s *simDevice) ActivateBackward(f kernels.Activation, x, dy, dx *simBuf, n int) error {
	xf, dyf := read(x, n), read(dy, n)
	dxf, commit := write(dx, n)
	cpu.ActivateBackward(f, xf, dyf, dxf)
	commit()
	return nil
}

func (s *simDevice) GEGLUBackward(x, dy, dx *simBuf, rows, d int) error {
	xf, dyf := read(x, rows*2*d), read(dy, rows*d)
	dxf, commit := write(dx, rows*2*d)
	cpu.GEGLUBackward(xf, dyf, dxf, rows, d)
	commit()
	return nil
}

func (s *simDevice) Upsample2xBackward(dy, dx *simBuf, nc, h, w int) error {
	dyf := read(dy, 4*nc*h*w)
	dxf, commit := write(dx, nc*h*w)
	cpu.Upsample2xBackward(dyf, dxf, nc, h, w)
	commit()
	return nil
}

func (s *simDevice) EmbeddingBackward(ids []int64, dy *simBuf, d, vocab int, dw *simBuf) error {
	for p, id := range ids {
		if id < 0 || id >= int64(vocab) {
			return fmt.Errorf("sim: EmbeddingBackward: id %d at position %d is outside [0, %d)", id, p, vocab)
		}
	}
	cpu.EmbeddingBackward(ids, read(dy, len(ids)*d), d, vocab, simF32("EmbeddingBackward", "dw", dw, vocab*d))
	return nil
}

func (s *simDevice) EmbeddingBackwardSparse(ids []int64, dy *simBuf, d int, rows []int64, grad *simBuf) error {
	slot := make(map[int64]bool, len(rows))
	for _, id := range rows {
		slot[id] = true
	}
	for p, id := range ids {
		if !slot[id] {
			return fmt.Errorf("sim: EmbeddingBackwardSparse: id %d at position %d is not among the %d rows", id, p, len(rows))
		}
	}
	g := simF32("EmbeddingBackwardSparse", "grad", grad, len(rows)*d)
	dyf := read(dy, len(ids)*d)
	if isSorted(rows) {
		cpu.EmbeddingBackwardSparse(ids, dyf, d, rows, g)
	} else {
		cpu.EmbeddingBackwardSparseRef(ids, dyf, d, rows, g)
	}
	return nil
}

// isSorted reports whether rows increase strictly (the order
// cpu.EmbeddingBackwardSparse needs).
func isSorted(rows []int64) bool {
	for i := 1; i < len(rows); i++ {
		if rows[i] <= rows[i-1] {
			return false
		}
	}
	return true
}

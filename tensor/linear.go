package tensor

import (
	"fmt"
)

// Linear: the fully connected layer, a gemm with its weight used in place.

// Linear returns x w^T + b: x [..., in], w [out, in] (F32/F16/BF16, used in place,
// transposed views included), b [out] or nil; the result is [..., out].
func Linear(x, w, b *Tensor) *Tensor {
	out := linearImpl(x, w, b)
	if !needsGrad(x, w, b) {
		return out
	}
	// Only the gradients some input needs are computed, and only the values
	// they read are saved: a frozen weight (LoRA, textual inversion) costs
	// neither its product nor a saved input.
	needX, needW, needB := needsGrad(x), needsGrad(w), needsGrad(b)
	var sx, sw savedValue
	if needW {
		sx = save(x)
	}
	if needX {
		sw = save(w)
	}
	xShape := x.shape.Clone()
	in, outF := w.Dim(1), w.Dim(0)
	return record(out, "Linear", []*Tensor{x, w, b}, []savedValue{sx, sw}, func(g *Tensor) []*Tensor {
		// g [..., out]; dx = g w, dw = g^T x over all rows, db = sum of g's rows.
		g2 := g.Reshape(-1, outF)
		defer g2.Release()
		var dx, dw, db *Tensor
		if needX {
			dx2 := g2.matmulImpl(sw.t)
			dx = dx2.Reshape(xShape...)
			dx2.Release()
		}
		if needW {
			x2 := sx.t.Reshape(-1, in)
			gt := g2.Transpose(0, 1)
			dw = gt.matmulImpl(x2)
			gt.Release()
			x2.Release()
		}
		if needB {
			db = g2.Sum(0, false)
		}
		return []*Tensor{dx, dw, db}
	})
}

func linearImpl(x, w, b *Tensor) *Tensor {
	dev := sameDevice("Linear", x, w, b)
	if w.Rank() != 2 || x.Rank() < 1 || x.Dim(-1) != w.Dim(1) {
		panic(fmt.Sprintf("tensor: Linear: x %v and weight %v (want x [..., in], w [out, in])", x.shape, w.shape))
	}
	in, outF := w.Dim(1), w.Dim(0)
	if b != nil && (b.Rank() != 1 || b.Dim(0) != outF) {
		panic(fmt.Sprintf("tensor: Linear: bias %v for weight %v", b.shape, w.shape))
	}
	if c, owned := gemmOperand(x); owned {
		x = c
		defer x.Release()
	}
	lead := x.shape[:x.Rank()-1].Clone()
	rows := lead.Numel()
	// x as a [rows, in] matrix, without copying when its layout allows.
	var xm *Tensor
	if st := viewStrides(x.shape, x.strides, Shape{rows, in}); st != nil {
		xm = x.view(Shape{rows, in}, st, x.offset)
	}
	if xm != nil {
		if _, _, ok := matLayout(xm, rows, in); !ok {
			xm.Release()
			xm = nil
		}
	}
	if xm == nil {
		c := x.Contiguous()
		xm = c.View(rows, in)
		c.Release()
	}
	defer xm.Release()
	wm := w
	if _, _, ok := matLayout(w, outF, in); !ok {
		wm = w.Contiguous()
		defer wm.Release()
	}
	out := newTensor(dev, ComputeDType(dev), append(lead, outF), false)
	bc, rb := f32Contig(b)
	defer rb()
	xs, xt, _ := matLayout(xm, rows, in)
	ws, wt, _ := matLayout(wm, outF, in)
	// B = w^T: the same stored matrix with the transpose flag flipped.
	backendFor(dev).gemm(1, rows, outF, in, 1, matArg{xm, xm.offset, xs, xt}, 0, matArg{wm, wm.offset, ws, !wt}, 0, 0, out, outF, 0, bc)
	return out
}

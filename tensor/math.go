package tensor

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Elementwise arithmetic with NumPy/PyTorch broadcasting, and reductions.
//
// Inputs of another dtype (F16, BF16, I64 on the CPU) are converted to the
// device's compute dtype first (F32 on the CPU, see ComputeDType); results are
// new contiguous tensors of that dtype. The ...InPlace variants write into the
// receiver, which must be of the compute dtype and not a broadcast view; they
// return it.

func binaryOp(name string, op cpu.BinaryOp, a, b *Tensor) *Tensor {
	dev := sameDevice(name, a, b)
	fa, oa := asCompute(a)
	fb, ob := asCompute(b)
	shape := BroadcastShapes(fa.shape, fb.shape)
	out := newTensor(dev, ComputeDType(dev), shape, false)
	ea, eb := fa.broadcastTo(shape), fb.broadcastTo(shape)
	backendFor(dev).binary(op, out, ea, eb)
	ea.Release()
	eb.Release()
	if oa {
		fa.Release()
	}
	if ob {
		fb.Release()
	}
	return out
}

func binaryInPlace(name string, op cpu.BinaryOp, dst, src *Tensor) *Tensor {
	dev := sameDevice(name, dst, src)
	if cd := ComputeDType(dev); dst.DType() != cd {
		panic(fmt.Sprintf("tensor: %s: destination dtype %v, want %v (the compute dtype of %v)", name, dst.DType(), cd, dev))
	}
	checkWritable(name, dst)
	fs, owned := asCompute(src)
	if !BroadcastShapes(dst.shape, fs.shape).Equal(dst.shape) {
		panic(fmt.Sprintf("tensor: %s: source shape %v does not broadcast to destination %v", name, fs.shape, dst.shape))
	}
	es := fs.broadcastTo(dst.shape)
	backendFor(dev).binary(op, dst, dst, es)
	es.Release()
	if owned {
		fs.Release()
	}
	return dst
}

// Add returns t + o (broadcast). Gradients: g to each operand, summed over
// the dimensions it was broadcast along.
func (t *Tensor) Add(o *Tensor) *Tensor {
	out := binaryOp("Add", cpu.BAdd, t, o)
	if !needsGrad(t, o) {
		return out
	}
	ts, os := t.shape.Clone(), o.shape.Clone()
	return record(out, "Add", []*Tensor{t, o}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{sumTo(g, ts), sumTo(g, os)}
	})
}

// Sub returns t - o (broadcast). Gradients: g and -g, summed as for Add.
func (t *Tensor) Sub(o *Tensor) *Tensor {
	out := binaryOp("Sub", cpu.BSub, t, o)
	if !needsGrad(t, o) {
		return out
	}
	ts, os := t.shape.Clone(), o.shape.Clone()
	return record(out, "Sub", []*Tensor{t, o}, nil, func(g *Tensor) []*Tensor {
		n := g.Neg()
		defer n.Release()
		return []*Tensor{sumTo(g, ts), sumTo(n, os)}
	})
}

// Mul returns t * o elementwise (broadcast). Gradients: g*o and g*t, summed
// as for Add.
func (t *Tensor) Mul(o *Tensor) *Tensor {
	out := binaryOp("Mul", cpu.BMul, t, o)
	if !needsGrad(t, o) {
		return out
	}
	st, so := save(t), save(o)
	return record(out, "Mul", []*Tensor{t, o}, []savedValue{st, so}, func(g *Tensor) []*Tensor {
		return []*Tensor{productTo(g, so.t, st.t.shape), productTo(g, st.t, so.t.shape)}
	})
}

// Div returns t / o elementwise (broadcast). Gradients: g/o and -g t/o^2,
// summed as for Add.
func (t *Tensor) Div(o *Tensor) *Tensor {
	out := binaryOp("Div", cpu.BDiv, t, o)
	if !needsGrad(t, o) {
		return out
	}
	st, so := save(t), save(o)
	return record(out, "Div", []*Tensor{t, o}, []savedValue{st, so}, func(g *Tensor) []*Tensor {
		ga := binaryOp("Div", cpu.BDiv, g, so.t)
		defer ga.Release()
		q := binaryOp("Div", cpu.BDiv, ga, so.t) // g/o^2
		defer q.Release()
		nq := q.Neg()
		defer nq.Release()
		return []*Tensor{sumTo(ga, st.t.shape), productTo(nq, st.t, so.t.shape)}
	})
}

// productTo returns sumTo(g*x, shape).
func productTo(g, x *Tensor, shape Shape) *Tensor {
	p := binaryOp("Mul", cpu.BMul, g, x)
	r := sumTo(p, shape)
	p.Release()
	return r
}

// Maximum returns the elementwise maximum of t and o (broadcast; NaN
// propagates). It has no backward rule.
func (t *Tensor) Maximum(o *Tensor) *Tensor {
	noRule("Maximum", t, o)
	return binaryOp("Maximum", cpu.BMax, t, o)
}

// Minimum returns the elementwise minimum of t and o (broadcast; NaN
// propagates). It has no backward rule.
func (t *Tensor) Minimum(o *Tensor) *Tensor {
	noRule("Minimum", t, o)
	return binaryOp("Minimum", cpu.BMin, t, o)
}

// AddInPlace sets t += o (o broadcast to t's shape) and returns t. Use it for
// residual connections to reuse t's buffer. o must not partially overlap t (o
// may be t itself). While recording, t must be the only handle on its
// storage; the graph is rebased (t's gradient flows to its old value and to
// o), as PyTorch does.
func (t *Tensor) AddInPlace(o *Tensor) *Tensor { return addInPlace("AddInPlace", cpu.BAdd, t, o) }

// SubInPlace sets t -= o (broadcast) and returns t (recorded as AddInPlace
// is).
func (t *Tensor) SubInPlace(o *Tensor) *Tensor { return addInPlace("SubInPlace", cpu.BSub, t, o) }

// addInPlace is AddInPlace or SubInPlace, recorded when needed.
func addInPlace(name string, op cpu.BinaryOp, t, o *Tensor) *Tensor {
	if !needsGrad(t, o) {
		return binaryInPlace(name, op, t, o)
	}
	checkInPlaceRecording(name, t)
	var old, src *gradInfo
	if t.ag != nil && t.ag.requires {
		old = t.ag
	}
	if o.ag != nil && o.ag.requires {
		src = o.ag
	}
	os := o.shape.Clone()
	binaryInPlace(name, op, t, o)
	return recordInfos(t, name, []*gradInfo{old, src}, nil, func(g *Tensor) []*Tensor {
		if op == cpu.BSub {
			n := g.Neg()
			defer n.Release()
			return []*Tensor{g.Contiguous(), sumTo(n, os)}
		}
		return []*Tensor{g.Contiguous(), sumTo(g, os)}
	})
}

// MulInPlace sets t *= o (broadcast) and returns t. It has no backward rule:
// while recording use Mul.
func (t *Tensor) MulInPlace(o *Tensor) *Tensor {
	noRule("MulInPlace", t, o)
	return binaryInPlace("MulInPlace", cpu.BMul, t, o)
}

// DivInPlace sets t /= o (broadcast) and returns t. It has no backward rule:
// while recording use Div.
func (t *Tensor) DivInPlace(o *Tensor) *Tensor {
	noRule("DivInPlace", t, o)
	return binaryInPlace("DivInPlace", cpu.BDiv, t, o)
}

func unaryOp(name string, op cpu.UnaryOp, alpha, beta float32, t *Tensor) *Tensor {
	f, owned := asCompute(t)
	out := newTensor(f.Device(), f.DType(), f.shape, false)
	backendFor(f.st.device).unary(op, alpha, beta, out, f)
	if owned {
		f.Release()
	}
	return out
}

func unaryInPlace(name string, op cpu.UnaryOp, alpha, beta float32, t *Tensor) *Tensor {
	if cd := ComputeDType(t.Device()); t.DType() != cd {
		panic(fmt.Sprintf("tensor: %s: dtype %v, want %v (the compute dtype of %v)", name, t.DType(), cd, t.Device()))
	}
	checkWritable(name, t)
	backendFor(t.st.device).unary(op, alpha, beta, t, t)
	return t
}

// unaryRec computes a unary op and, when recording, its rule: grad returns
// the input's gradient from g, the input x and the output y (x and y are
// saved only when saveX / saveY).
func unaryRec(name string, op cpu.UnaryOp, alpha, beta float32, t *Tensor, saveX, saveY bool, grad func(g, x, y *Tensor) *Tensor) *Tensor {
	out := unaryOp(name, op, alpha, beta, t)
	if !needsGrad(t) {
		return out
	}
	var sx, sy savedValue
	var saved []savedValue
	if saveX {
		sx = save(t)
		saved = append(saved, sx)
	}
	if saveY {
		sy = save(out)
		saved = append(saved, sy)
	}
	return record(out, name, []*Tensor{t}, saved, func(g *Tensor) []*Tensor {
		return []*Tensor{grad(g, sx.t, sy.t)}
	})
}

// scaled returns the rule g -> a*g.
func scaled(a float32) func(g, x, y *Tensor) *Tensor {
	return func(g, _, _ *Tensor) *Tensor { return g.MulScalar(a) }
}

// mulAll returns c * prod(fs), releasing the intermediate products.
func mulAll(c float32, fs ...*Tensor) *Tensor {
	r := fs[0].MulScalar(c)
	for _, f := range fs[1:] {
		n := r.Mul(f)
		r.Release()
		r = n
	}
	return r
}

// AddScalar returns t + c.
func (t *Tensor) AddScalar(c float32) *Tensor {
	return unaryRec("AddScalar", cpu.UAffine, 1, c, t, false, false, scaled(1))
}

// MulScalar returns t * c.
func (t *Tensor) MulScalar(c float32) *Tensor {
	return unaryRec("MulScalar", cpu.UAffine, c, 0, t, false, false, scaled(c))
}

// Scale is MulScalar.
func (t *Tensor) Scale(c float32) *Tensor { return t.MulScalar(c) }

// Affine returns a*t + b elementwise.
func (t *Tensor) Affine(a, b float32) *Tensor {
	return unaryRec("Affine", cpu.UAffine, a, b, t, false, false, scaled(a))
}

// AddScalarInPlace sets t += c and returns t (recorded, as AddInPlace is).
func (t *Tensor) AddScalarInPlace(c float32) *Tensor {
	return scalarInPlace("AddScalarInPlace", 1, c, t)
}

// MulScalarInPlace sets t *= c and returns t (recorded, as AddInPlace is).
func (t *Tensor) MulScalarInPlace(c float32) *Tensor {
	return scalarInPlace("MulScalarInPlace", c, 0, t)
}

// scalarInPlace sets t = a*t + b in place, recorded when needed.
func scalarInPlace(name string, a, b float32, t *Tensor) *Tensor {
	if !needsGrad(t) {
		return unaryInPlace(name, cpu.UAffine, a, b, t)
	}
	checkInPlaceRecording(name, t)
	old := t.ag
	unaryInPlace(name, cpu.UAffine, a, b, t)
	return recordInfos(t, name, []*gradInfo{old}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{g.MulScalar(a)}
	})
}

// Neg returns -t.
func (t *Tensor) Neg() *Tensor {
	return unaryRec("Neg", cpu.UAffine, -1, 0, t, false, false, scaled(-1))
}

// Abs returns |t|. It has no backward rule.
func (t *Tensor) Abs() *Tensor {
	noRule("Abs", t)
	return unaryOp("Abs", cpu.UAbs, 0, 0, t)
}

// Exp returns e**t. Gradient: g*e**t.
func (t *Tensor) Exp() *Tensor {
	return unaryRec("Exp", cpu.UExp, 0, 0, t, false, true, func(g, _, y *Tensor) *Tensor { return g.Mul(y) })
}

// Log returns the natural logarithm of t. Gradient: g/t.
func (t *Tensor) Log() *Tensor {
	return unaryRec("Log", cpu.ULog, 0, 0, t, true, false, func(g, x, _ *Tensor) *Tensor { return g.Div(x) })
}

// Sqrt returns the square root of t. Gradient: g/(2 sqrt(t)).
func (t *Tensor) Sqrt() *Tensor {
	return unaryRec("Sqrt", cpu.USqrt, 0, 0, t, false, true, func(g, _, y *Tensor) *Tensor {
		q := g.Div(y)
		defer q.Release()
		return q.MulScalar(0.5)
	})
}

// Rsqrt returns 1/sqrt(t). Gradient: -g/(2 t sqrt(t)) = -g y^3/2.
func (t *Tensor) Rsqrt() *Tensor {
	return unaryRec("Rsqrt", cpu.URsqrt, 0, 0, t, false, true, func(g, _, y *Tensor) *Tensor {
		return mulAll(-0.5, g, y, y, y)
	})
}

// Square returns t*t. Gradient: 2 t g.
func (t *Tensor) Square() *Tensor {
	return unaryRec("Square", cpu.USquare, 0, 0, t, true, false, func(g, x, _ *Tensor) *Tensor { return mulAll(2, g, x) })
}

// Pow returns t**p. Gradient: p t**(p-1) g.
func (t *Tensor) Pow(p float32) *Tensor {
	return unaryRec("Pow", cpu.UPow, p, 0, t, true, false, func(g, x, _ *Tensor) *Tensor {
		d := x.Pow(p - 1)
		defer d.Release()
		return mulAll(p, g, d)
	})
}

// Recip returns 1/t. Gradient: -g/t^2 = -g y^2.
func (t *Tensor) Recip() *Tensor {
	return unaryRec("Recip", cpu.URecip, 0, 0, t, false, true, func(g, _, y *Tensor) *Tensor { return mulAll(-1, g, y, y) })
}

// Sin returns sin(t). Gradient: g cos(t).
func (t *Tensor) Sin() *Tensor {
	return unaryRec("Sin", cpu.USin, 0, 0, t, true, false, func(g, x, _ *Tensor) *Tensor {
		c := x.Cos()
		defer c.Release()
		return g.Mul(c)
	})
}

// Cos returns cos(t). Gradient: -g sin(t).
func (t *Tensor) Cos() *Tensor {
	return unaryRec("Cos", cpu.UCos, 0, 0, t, true, false, func(g, x, _ *Tensor) *Tensor {
		sn := x.Sin()
		defer sn.Release()
		return mulAll(-1, g, sn)
	})
}

// Tanh returns tanh(t). Gradient: g (1 - y^2).
func (t *Tensor) Tanh() *Tensor {
	return unaryRec("Tanh", cpu.UTanh, 0, 0, t, false, true, func(g, _, y *Tensor) *Tensor {
		y2 := y.Square()
		defer y2.Release()
		d := y2.Affine(-1, 1)
		defer d.Release()
		return g.Mul(d)
	})
}

// Sigmoid returns 1/(1+exp(-t)). Gradient: g y (1 - y).
func (t *Tensor) Sigmoid() *Tensor {
	return unaryRec("Sigmoid", cpu.USigmoid, 0, 0, t, false, true, func(g, _, y *Tensor) *Tensor {
		d := y.Affine(-1, 1)
		defer d.Release()
		return mulAll(1, g, y, d)
	})
}

// Clamp returns t limited to [lo, hi] (NaN stays NaN). Gradient: g where
// lo <= t <= hi, else 0.
func (t *Tensor) Clamp(lo, hi float32) *Tensor {
	if lo > hi {
		panic(fmt.Sprintf("tensor: Clamp: lo %v > hi %v", lo, hi))
	}
	out := unaryOp("Clamp", cpu.UClamp, lo, hi, t)
	if !needsGrad(t) {
		return out
	}
	dev := t.Device()
	sx := save(t)
	return record(out, "Clamp", []*Tensor{t}, []savedValue{sx}, func(g *Tensor) []*Tensor {
		// PyTorch's rule: g where lo <= x <= hi, else 0 (NaN x passes g).
		xc, rx := f32Contig(sx.t)
		defer rx()
		gc, rg := computeContig(g)
		defer rg()
		dx := newTensor(dev, ComputeDType(dev), sx.t.shape, false)
		backendFor(dev).clampBackward(xc, gc, dx, lo, hi)
		return []*Tensor{dx}
	})
}

// Reductions.

func reduceOp(name string, op cpu.ReduceOp, t *Tensor, dim int, keepdim bool) *Tensor {
	d := normDim(name, dim, len(t.shape))
	f, owned := asCompute(t)
	ks := f.shape.Clone()
	ks[d] = 1
	out := newTensor(f.st.device, f.DType(), ks, false)
	backendFor(f.st.device).reduce(op, out, f, d)
	if owned {
		f.Release()
	}
	return squeezeKeep(out, d, keepdim)
}

func squeezeKeep(out *Tensor, d int, keepdim bool) *Tensor {
	if keepdim {
		return out
	}
	r := out.Squeeze(d)
	out.Release()
	return r
}

func reduceAll(name string, op cpu.ReduceOp, t *Tensor) *Tensor {
	flat := t.reshapeImpl(-1) // internal: records nothing
	r := reduceOp(name, op, flat, 0, false)
	flat.Release()
	return r
}

// Sum returns the sum over dim (size 1 kept there if keepdim). Gradient: g
// broadcast back along dim.
func (t *Tensor) Sum(dim int, keepdim bool) *Tensor {
	return reduceRec("Sum", cpu.RSum, t, dim, keepdim, 1)
}

// Mean returns the mean over dim. Gradient: g/n broadcast back along dim.
func (t *Tensor) Mean(dim int, keepdim bool) *Tensor {
	d := normDim("Mean", dim, len(t.shape))
	return reduceRec("Mean", cpu.RMean, t, dim, keepdim, 1/float32(t.shape[d]))
}

// reduceRec is reduceOp recorded for Sum and Mean: the gradient is c*g
// broadcast back to t's shape.
func reduceRec(name string, op cpu.ReduceOp, t *Tensor, dim int, keepdim bool, c float32) *Tensor {
	out := reduceOp(name, op, t, dim, keepdim)
	if !needsGrad(t) {
		return out
	}
	in := t.shape.Clone()
	d := normDim(name, dim, len(in))
	return record(out, name, []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{spread(g, in, d, keepdim, c)}
	})
}

// spread returns c*g broadcast to shape, g having been reduced over dim d
// (kept with size 1 if keepdim; d < 0: g is a scalar of all of shape).
func spread(g *Tensor, shape Shape, d int, keepdim bool, c float32) *Tensor {
	var k *Tensor
	switch {
	case d < 0:
		ones := make([]int, len(shape))
		for i := range ones {
			ones[i] = 1
		}
		k = g.Reshape(ones...)
	case keepdim:
		k = g.Detach()
	default:
		k = g.Unsqueeze(d)
	}
	defer k.Release()
	e := k.Expand(shape...)
	defer e.Release()
	return e.MulScalar(c)
}

// Max returns the maximum over dim (NaN if any element is NaN). It has no
// backward rule.
func (t *Tensor) Max(dim int, keepdim bool) *Tensor {
	noRule("Max", t)
	return reduceOp("Max", cpu.RMax, t, dim, keepdim)
}

// Min returns the minimum over dim (NaN if any element is NaN). It has no
// backward rule.
func (t *Tensor) Min(dim int, keepdim bool) *Tensor {
	noRule("Min", t)
	return reduceOp("Min", cpu.RMin, t, dim, keepdim)
}

// Var returns the biased (population) variance over dim, as GroupNorm and
// LayerNorm use it (torch.var(..., unbiased=False)). It has no backward
// rule.
func (t *Tensor) Var(dim int, keepdim bool) *Tensor {
	noRule("Var", t)
	return reduceOp("Var", cpu.RVar, t, dim, keepdim)
}

// ArgMax returns the I64 index of the first maximum over dim.
func (t *Tensor) ArgMax(dim int, keepdim bool) *Tensor {
	d := normDim("ArgMax", dim, len(t.shape))
	if t.shape[d] == 0 {
		panic(fmt.Sprintf("tensor: ArgMax: empty dim %d of shape %v", dim, t.shape))
	}
	f, owned := asCompute(t)
	ks := f.shape.Clone()
	ks[d] = 1
	out := newTensor(f.st.device, I64, ks, false)
	backendFor(f.st.device).argmax(out, f, d)
	if owned {
		f.Release()
	}
	return squeezeKeep(out, d, keepdim)
}

// SumAll returns the sum of all elements as a 0-dimensional tensor.
// Gradient: g everywhere.
func (t *Tensor) SumAll() *Tensor { return reduceAllRec("SumAll", cpu.RSum, t, 1) }

// MeanAll returns the mean of all elements as a 0-dimensional tensor.
// Gradient: g/numel everywhere.
func (t *Tensor) MeanAll() *Tensor {
	return reduceAllRec("MeanAll", cpu.RMean, t, 1/float32(max(t.Numel(), 1)))
}

// reduceAllRec is reduceAll recorded for SumAll and MeanAll.
func reduceAllRec(name string, op cpu.ReduceOp, t *Tensor, c float32) *Tensor {
	out := reduceAll(name, op, t)
	if !needsGrad(t) {
		return out
	}
	in := t.shape.Clone()
	return record(out, name, []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{spread(g, in, -1, false, c)}
	})
}

// MaxAll returns the maximum of all elements as a 0-dimensional tensor. It
// has no backward rule.
func (t *Tensor) MaxAll() *Tensor {
	noRule("MaxAll", t)
	return reduceAll("MaxAll", cpu.RMax, t)
}

// MinAll returns the minimum of all elements as a 0-dimensional tensor. It
// has no backward rule.
func (t *Tensor) MinAll() *Tensor {
	noRule("MinAll", t)
	return reduceAll("MinAll", cpu.RMin, t)
}

// VarAll returns the biased variance of all elements as a 0-dimensional
// tensor. It has no backward rule.
func (t *Tensor) VarAll() *Tensor {
	noRule("VarAll", t)
	return reduceAll("VarAll", cpu.RVar, t)
}

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

// Add returns t + o (broadcast).
func (t *Tensor) Add(o *Tensor) *Tensor { return binaryOp("Add", cpu.BAdd, t, o) }

// Sub returns t - o (broadcast).
func (t *Tensor) Sub(o *Tensor) *Tensor { return binaryOp("Sub", cpu.BSub, t, o) }

// Mul returns t * o elementwise (broadcast).
func (t *Tensor) Mul(o *Tensor) *Tensor { return binaryOp("Mul", cpu.BMul, t, o) }

// Div returns t / o elementwise (broadcast).
func (t *Tensor) Div(o *Tensor) *Tensor { return binaryOp("Div", cpu.BDiv, t, o) }

// Maximum returns the elementwise maximum of t and o (broadcast; NaN propagates).
func (t *Tensor) Maximum(o *Tensor) *Tensor { return binaryOp("Maximum", cpu.BMax, t, o) }

// Minimum returns the elementwise minimum of t and o (broadcast; NaN propagates).
func (t *Tensor) Minimum(o *Tensor) *Tensor { return binaryOp("Minimum", cpu.BMin, t, o) }

// AddInPlace sets t += o (o broadcast to t's shape) and returns t. Use it for
// residual connections to reuse t's buffer. o must not partially overlap t (o
// may be t itself).
func (t *Tensor) AddInPlace(o *Tensor) *Tensor { return binaryInPlace("AddInPlace", cpu.BAdd, t, o) }

// SubInPlace sets t -= o (broadcast) and returns t.
func (t *Tensor) SubInPlace(o *Tensor) *Tensor { return binaryInPlace("SubInPlace", cpu.BSub, t, o) }

// MulInPlace sets t *= o (broadcast) and returns t.
func (t *Tensor) MulInPlace(o *Tensor) *Tensor { return binaryInPlace("MulInPlace", cpu.BMul, t, o) }

// DivInPlace sets t /= o (broadcast) and returns t.
func (t *Tensor) DivInPlace(o *Tensor) *Tensor { return binaryInPlace("DivInPlace", cpu.BDiv, t, o) }

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

// AddScalar returns t + c.
func (t *Tensor) AddScalar(c float32) *Tensor { return unaryOp("AddScalar", cpu.UAffine, 1, c, t) }

// MulScalar returns t * c.
func (t *Tensor) MulScalar(c float32) *Tensor { return unaryOp("MulScalar", cpu.UAffine, c, 0, t) }

// Scale is MulScalar.
func (t *Tensor) Scale(c float32) *Tensor { return t.MulScalar(c) }

// Affine returns a*t + b elementwise.
func (t *Tensor) Affine(a, b float32) *Tensor { return unaryOp("Affine", cpu.UAffine, a, b, t) }

// AddScalarInPlace sets t += c and returns t.
func (t *Tensor) AddScalarInPlace(c float32) *Tensor {
	return unaryInPlace("AddScalarInPlace", cpu.UAffine, 1, c, t)
}

// MulScalarInPlace sets t *= c and returns t.
func (t *Tensor) MulScalarInPlace(c float32) *Tensor {
	return unaryInPlace("MulScalarInPlace", cpu.UAffine, c, 0, t)
}

// Neg returns -t.
func (t *Tensor) Neg() *Tensor { return unaryOp("Neg", cpu.UAffine, -1, 0, t) }

// Abs returns |t|.
func (t *Tensor) Abs() *Tensor { return unaryOp("Abs", cpu.UAbs, 0, 0, t) }

// Exp returns e**t.
func (t *Tensor) Exp() *Tensor { return unaryOp("Exp", cpu.UExp, 0, 0, t) }

// Log returns the natural logarithm of t.
func (t *Tensor) Log() *Tensor { return unaryOp("Log", cpu.ULog, 0, 0, t) }

// Sqrt returns the square root of t.
func (t *Tensor) Sqrt() *Tensor { return unaryOp("Sqrt", cpu.USqrt, 0, 0, t) }

// Rsqrt returns 1/sqrt(t).
func (t *Tensor) Rsqrt() *Tensor { return unaryOp("Rsqrt", cpu.URsqrt, 0, 0, t) }

// Square returns t*t.
func (t *Tensor) Square() *Tensor { return unaryOp("Square", cpu.USquare, 0, 0, t) }

// Pow returns t**p.
func (t *Tensor) Pow(p float32) *Tensor { return unaryOp("Pow", cpu.UPow, p, 0, t) }

// Recip returns 1/t.
func (t *Tensor) Recip() *Tensor { return unaryOp("Recip", cpu.URecip, 0, 0, t) }

// Sin returns sin(t).
func (t *Tensor) Sin() *Tensor { return unaryOp("Sin", cpu.USin, 0, 0, t) }

// Cos returns cos(t).
func (t *Tensor) Cos() *Tensor { return unaryOp("Cos", cpu.UCos, 0, 0, t) }

// Tanh returns tanh(t).
func (t *Tensor) Tanh() *Tensor { return unaryOp("Tanh", cpu.UTanh, 0, 0, t) }

// Sigmoid returns 1/(1+exp(-t)).
func (t *Tensor) Sigmoid() *Tensor { return unaryOp("Sigmoid", cpu.USigmoid, 0, 0, t) }

// Clamp returns t limited to [lo, hi] (NaN stays NaN).
func (t *Tensor) Clamp(lo, hi float32) *Tensor {
	if lo > hi {
		panic(fmt.Sprintf("tensor: Clamp: lo %v > hi %v", lo, hi))
	}
	return unaryOp("Clamp", cpu.UClamp, lo, hi, t)
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
	flat := t.Reshape(-1)
	r := reduceOp(name, op, flat, 0, false)
	flat.Release()
	return r
}

// Sum returns the sum over dim (size 1 kept there if keepdim).
func (t *Tensor) Sum(dim int, keepdim bool) *Tensor {
	return reduceOp("Sum", cpu.RSum, t, dim, keepdim)
}

// Mean returns the mean over dim.
func (t *Tensor) Mean(dim int, keepdim bool) *Tensor {
	return reduceOp("Mean", cpu.RMean, t, dim, keepdim)
}

// Max returns the maximum over dim (NaN if any element is NaN).
func (t *Tensor) Max(dim int, keepdim bool) *Tensor {
	return reduceOp("Max", cpu.RMax, t, dim, keepdim)
}

// Min returns the minimum over dim (NaN if any element is NaN).
func (t *Tensor) Min(dim int, keepdim bool) *Tensor {
	return reduceOp("Min", cpu.RMin, t, dim, keepdim)
}

// Var returns the biased (population) variance over dim, as GroupNorm and
// LayerNorm use it (torch.var(..., unbiased=False)).
func (t *Tensor) Var(dim int, keepdim bool) *Tensor {
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
func (t *Tensor) SumAll() *Tensor { return reduceAll("SumAll", cpu.RSum, t) }

// MeanAll returns the mean of all elements as a 0-dimensional tensor.
func (t *Tensor) MeanAll() *Tensor { return reduceAll("MeanAll", cpu.RMean, t) }

// MaxAll returns the maximum of all elements as a 0-dimensional tensor.
func (t *Tensor) MaxAll() *Tensor { return reduceAll("MaxAll", cpu.RMax, t) }

// MinAll returns the minimum of all elements as a 0-dimensional tensor.
func (t *Tensor) MinAll() *Tensor { return reduceAll("MinAll", cpu.RMin, t) }

// VarAll returns the biased variance of all elements as a 0-dimensional tensor.
func (t *Tensor) VarAll() *Tensor { return reduceAll("VarAll", cpu.RVar, t) }

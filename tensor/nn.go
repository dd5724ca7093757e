package tensor

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Neural-network ops. Each checks shapes, brings activations to contiguous
// tensors of the device's compute dtype (F32 on the CPU; converting or copying
// only when needed), and dispatches one kernel; results have the compute
// dtype. Weights of matrix products and convolutions may be F32, F16 or BF16
// and are passed to the kernels as they are stored (no float32 copy).
// Optional parameters (bias, gamma, beta) may be nil; they go to the kernels
// as F32.

// Linear returns x w^T + b: x [..., in], w [out, in] (F32/F16/BF16, used in place,
// transposed views included), b [out] or nil; the result is [..., out].
func Linear(x, w, b *Tensor) *Tensor {
	out := linearImpl(x, w, b)
	if !needsGrad(x, w, b) {
		return out
	}
	sx, sw := save(x), save(w)
	hasBias := b != nil
	return record(out, "Linear", []*Tensor{x, w, b}, []savedValue{sx, sw}, func(g *Tensor) []*Tensor {
		// g [..., out]; dx = g w, dw = g^T x over all rows, db = sum of g's rows.
		in, outF := sw.t.Dim(1), sw.t.Dim(0)
		g2 := g.Reshape(-1, outF)
		defer g2.Release()
		x2 := sx.t.Reshape(-1, in)
		defer x2.Release()
		dx2 := g2.matmulImpl(sw.t)
		dx := dx2.Reshape(sx.t.shape...)
		dx2.Release()
		gt := g2.Transpose(0, 1)
		dw := gt.matmulImpl(x2)
		gt.Release()
		var db *Tensor
		if hasBias {
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

// ConvOpts are the strides and zero paddings of Conv2d. A zero stride means 1.
type ConvOpts struct {
	StrideH, StrideW int
	PadH, PadW       int
}

// ConvSquare returns ConvOpts with the same stride and padding in both directions.
func ConvSquare(stride, pad int) ConvOpts {
	return ConvOpts{StrideH: stride, StrideW: stride, PadH: pad, PadW: pad}
}

// Conv2d returns the 2-D cross-correlation (PyTorch's conv2d, groups=1) of
// x [N, C, H, W] with w [K, C, R, S] (F32/F16/BF16) plus b [K] (or nil): the
// result is [N, K, OH, OW] with OH = (H + 2 PadH - R)/StrideH + 1, likewise OW.
func Conv2d(x, w, b *Tensor, o ConvOpts) *Tensor {
	dev := sameDevice("Conv2d", x, w, b)
	if x.Rank() != 4 || w.Rank() != 4 || x.Dim(1) != w.Dim(1) {
		panic(fmt.Sprintf("tensor: Conv2d: x %v and weight %v (want x [N, C, H, W], w [K, C, R, S])", x.shape, w.shape))
	}
	if o.StrideH == 0 {
		o.StrideH = 1
	}
	if o.StrideW == 0 {
		o.StrideW = 1
	}
	p := cpu.ConvParams{
		N: x.Dim(0), C: x.Dim(1), H: x.Dim(2), W: x.Dim(3),
		K: w.Dim(0), R: w.Dim(2), S: w.Dim(3),
		StrideH: o.StrideH, StrideW: o.StrideW, PadH: o.PadH, PadW: o.PadW,
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 || p.H+2*p.PadH < p.R || p.W+2*p.PadW < p.S {
		panic(fmt.Sprintf("tensor: Conv2d: x %v, weight %v, %+v: invalid stride/padding or kernel larger than padded input", x.shape, w.shape, o))
	}
	if b != nil && (b.Rank() != 1 || b.Dim(0) != p.K) {
		panic(fmt.Sprintf("tensor: Conv2d: bias %v for weight %v", b.shape, w.shape))
	}
	xc, rx := computeContig(x)
	defer rx()
	wc := w
	if w.DType() == I64 {
		panic("tensor: Conv2d: I64 weight")
	}
	if !w.IsContiguous() {
		wc = w.Contiguous()
		defer wc.Release()
	}
	bc, rb := f32Contig(b)
	defer rb()
	y := newTensor(dev, xc.DType(), Shape{p.N, p.K, p.OutH(), p.OutW()}, false)
	backendFor(dev).conv2d(p, xc, wc, bc, y)
	if !needsGrad(x, w, b) {
		return y
	}
	cpuOnly("Conv2d", dev)
	sx, sw := save(xc), save(wc)
	hasBias := b != nil
	return record(y, "Conv2d", []*Tensor{x, w, b}, []savedValue{sx, sw}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dyv := f32n(gy, gy.Numel())
		dx := newTensor(CPU, F32, sx.t.shape, false)
		wm := matArg{t: sw.t, off: sw.t.offset, stride: p.C * p.R * p.S}.mat()
		cpu.Conv2dBackwardData(p, dyv, wm, f32s(dx))
		dw := newTensor(CPU, F32, sw.t.shape, false)
		cpu.Conv2dBackwardWeight(p, f32n(sx.t, sx.t.Numel()), dyv, f32s(dw))
		var db *Tensor
		if hasBias {
			db = newTensor(CPU, F32, Shape{p.K}, false)
			cpu.Conv2dBackwardBias(p, dyv, f32s(db))
		}
		return []*Tensor{dx, dw, db}
	})
}

// GroupNorm normalises x [N, C, ...] over groups of C/groups channels (and all
// positions), then scales by gamma [C] and shifts by beta [C] (either may be nil);
// with silu set it applies SiLU to the result (the fused GroupNorm+SiLU of the
// U-Net and VAE ResNet blocks).
func GroupNorm(x *Tensor, groups int, gamma, beta *Tensor, eps float32, silu bool) *Tensor {
	dev := sameDevice("GroupNorm", x, gamma, beta)
	if x.Rank() < 2 || groups < 1 || x.Dim(1)%groups != 0 {
		panic(fmt.Sprintf("tensor: GroupNorm: x %v with %d groups (want [N, C, ...], C divisible by groups)", x.shape, groups))
	}
	n, c := x.Dim(0), x.Dim(1)
	hw := x.Numel() / max(n*c, 1)
	checkVec("GroupNorm", "gamma", gamma, c)
	checkVec("GroupNorm", "beta", beta, c)
	xc, rx := computeContig(x)
	defer rx()
	gc, rg := f32Contig(gamma)
	defer rg()
	bc, rb := f32Contig(beta)
	defer rb()
	y := newTensor(dev, xc.DType(), x.shape, false)
	if !needsGrad(x, gamma, beta) || y.Numel() == 0 {
		if y.Numel() > 0 {
			backendFor(dev).groupNorm(xc, y, n, c, hw, groups, eps, gc, bc, silu)
		}
		return y
	}
	// Recording: the forward saves the statistics backward needs.
	cpuOnly("GroupNorm", dev)
	mean, rstd := newTensor(CPU, F32, Shape{n * groups}, false), newTensor(CPU, F32, Shape{n * groups}, false)
	m := n * c * hw
	cpu.GroupNormSave(f32n(xc, m), f32n(y, m), n, c, hw, groups, eps, f32n(gc, c), f32n(bc, c), silu, f32s(mean), f32s(rstd))
	sx, sg, sb := save(xc), save(gc), save(bc)
	smean, srstd := keep(mean), keep(rstd)
	sv := []savedValue{sx, smean, srstd}
	if gc != nil {
		sv = append(sv, sg)
	}
	if bc != nil {
		sv = append(sv, sb)
	}
	return record(y, "GroupNorm", []*Tensor{x, gamma, beta}, sv, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(CPU, F32, sx.t.shape, false)
		var dg, db *Tensor
		if sg.t != nil {
			dg = newTensor(CPU, F32, Shape{c}, false)
		}
		if sb.t != nil {
			db = newTensor(CPU, F32, Shape{c}, false)
		}
		cpu.GroupNormBackward(f32n(sx.t, m), f32n(gy, m), f32s(dx), n, c, hw, groups, f32s(smean.t), f32s(srstd.t),
			f32n(sg.t, c), f32n(sb.t, c), silu, f32n(dg, c), f32n(db, c))
		return []*Tensor{dx, dg, db}
	})
}

func checkVec(op, name string, v *Tensor, n int) {
	if v != nil && (v.Rank() != 1 || v.Dim(0) != n) {
		panic(fmt.Sprintf("tensor: %s: %s has shape %v, want [%d]", op, name, v.shape, n))
	}
}

// LayerNorm normalises x [..., D] over its last dimension, then scales by gamma
// [D] and shifts by beta [D] (either may be nil).
func LayerNorm(x, gamma, beta *Tensor, eps float32) *Tensor {
	dev := sameDevice("LayerNorm", x, gamma, beta)
	if x.Rank() < 1 {
		panic("tensor: LayerNorm: scalar input")
	}
	d := x.Dim(-1)
	checkVec("LayerNorm", "gamma", gamma, d)
	checkVec("LayerNorm", "beta", beta, d)
	xc, rx := computeContig(x)
	defer rx()
	gc, rg := f32Contig(gamma)
	defer rg()
	bc, rb := f32Contig(beta)
	defer rb()
	y := newTensor(dev, xc.DType(), x.shape, false)
	rows := x.Numel() / max(d, 1)
	if !needsGrad(x, gamma, beta) || y.Numel() == 0 {
		if y.Numel() > 0 {
			backendFor(dev).layerNorm(xc, y, rows, d, eps, gc, bc)
		}
		return y
	}
	cpuOnly("LayerNorm", dev)
	mean, rstd := newTensor(CPU, F32, Shape{rows}, false), newTensor(CPU, F32, Shape{rows}, false)
	m := rows * d
	cpu.LayerNormSave(f32n(xc, m), f32n(y, m), rows, d, eps, f32n(gc, d), f32n(bc, d), f32s(mean), f32s(rstd))
	sx, sg := save(xc), save(gc)
	smean, srstd := keep(mean), keep(rstd)
	sv := []savedValue{sx, smean, srstd}
	if gc != nil {
		sv = append(sv, sg)
	}
	hasGamma, hasBeta := gamma != nil, beta != nil
	return record(y, "LayerNorm", []*Tensor{x, gamma, beta}, sv, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(CPU, F32, sx.t.shape, false)
		var dg, db *Tensor
		if hasGamma {
			dg = newTensor(CPU, F32, Shape{d}, false)
		}
		if hasBeta {
			db = newTensor(CPU, F32, Shape{d}, false)
		}
		cpu.LayerNormBackward(f32n(sx.t, m), f32n(gy, m), f32s(dx), rows, d, f32s(smean.t), f32s(srstd.t), f32n(sg.t, d), f32n(dg, d), f32n(db, d))
		return []*Tensor{dx, dg, db}
	})
}

// Softmax returns the softmax of x over its last dimension.
func Softmax(x *Tensor) *Tensor {
	if x.Rank() < 1 {
		panic("tensor: Softmax: scalar input")
	}
	xc, rx := computeContig(x)
	defer rx()
	y := newTensor(x.Device(), xc.DType(), x.shape, false)
	d := x.Dim(-1)
	if y.Numel() > 0 {
		backendFor(x.Device()).softmax(xc, y, x.Numel()/d, d)
	}
	if !needsGrad(x) {
		return y
	}
	cpuOnly("Softmax", x.Device())
	sy := save(y)
	return record(y, "Softmax", []*Tensor{x}, []savedValue{sy}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		n := sy.t.Numel()
		dx := newTensor(CPU, F32, sy.t.shape, false)
		if n > 0 {
			cpu.SoftmaxBackward(f32n(sy.t, n), f32n(gy, n), f32s(dx), n/d, d)
		}
		return []*Tensor{dx}
	})
}

func activate(f cpu.Activation, x *Tensor) *Tensor {
	xc, rx := computeContig(x)
	defer rx()
	y := newTensor(x.Device(), xc.DType(), x.shape, false)
	backendFor(x.Device()).activate(f, xc, y)
	if !needsGrad(x) {
		return y
	}
	cpuOnly("activation", x.Device())
	sx := save(xc)
	return record(y, "activation", []*Tensor{x}, []savedValue{sx}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		n := sx.t.Numel()
		dx := newTensor(CPU, F32, sx.t.shape, false)
		cpu.ActivateBackward(f, f32n(sx.t, n), f32n(gy, n), f32s(dx))
		return []*Tensor{dx}
	})
}

// SiLU returns x * sigmoid(x).
func SiLU(x *Tensor) *Tensor { return activate(cpu.SiLU, x) }

// GELU returns the exact GELU x/2 (1 + erf(x/sqrt 2)).
func GELU(x *Tensor) *Tensor { return activate(cpu.GELU, x) }

// GELUTanh returns the tanh approximation of GELU.
func GELUTanh(x *Tensor) *Tensor { return activate(cpu.GELUTanh, x) }

// QuickGELU returns x * sigmoid(1.702 x) (OpenAI CLIP).
func QuickGELU(x *Tensor) *Tensor { return activate(cpu.QuickGELU, x) }

// GEGLU splits x [..., 2d] into halves a, g along the last dimension and returns
// a * gelu(g), [..., d] (diffusers' GEGLU after its projection).
func GEGLU(x *Tensor) *Tensor {
	if x.Rank() < 1 || x.Dim(-1)%2 != 0 {
		panic(fmt.Sprintf("tensor: GEGLU: x %v, want an even last dimension", x.shape))
	}
	d := x.Dim(-1) / 2
	xc, rx := computeContig(x)
	defer rx()
	ys := x.Shape()
	ys[len(ys)-1] = d
	y := newTensor(x.Device(), xc.DType(), ys, false)
	rows := y.Numel() / max(d, 1)
	if d > 0 && rows > 0 {
		backendFor(x.Device()).geglu(xc, y, rows, d)
	}
	if !needsGrad(x) {
		return y
	}
	cpuOnly("GEGLU", x.Device())
	sx := save(xc)
	return record(y, "GEGLU", []*Tensor{x}, []savedValue{sx}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(CPU, F32, sx.t.shape, false)
		if d > 0 && rows > 0 {
			cpu.GEGLUBackward(f32n(sx.t, rows*2*d), f32n(gy, rows*d), f32s(dx), rows, d)
		}
		return []*Tensor{dx}
	})
}

// Upsample2xNearest doubles the height and width of x [N, C, H, W] by repeating
// each pixel (nearest neighbour): the result is [N, C, 2H, 2W].
func Upsample2xNearest(x *Tensor) *Tensor {
	if x.Rank() != 4 {
		panic(fmt.Sprintf("tensor: Upsample2xNearest: x %v, want [N, C, H, W]", x.shape))
	}
	xc, rx := computeContig(x)
	defer rx()
	n, c, h, w := x.Dim(0), x.Dim(1), x.Dim(2), x.Dim(3)
	y := newTensor(x.Device(), xc.DType(), Shape{n, c, 2 * h, 2 * w}, false)
	if y.Numel() > 0 {
		backendFor(x.Device()).upsample2x(xc, y, n*c, h, w)
	}
	if !needsGrad(x) {
		return y
	}
	cpuOnly("Upsample2xNearest", x.Device())
	return record(y, "Upsample2xNearest", []*Tensor{x}, nil, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(CPU, F32, Shape{n, c, h, w}, false)
		if dx.Numel() > 0 {
			cpu.Upsample2xBackward(f32n(gy, n*c*4*h*w), f32s(dx), n*c, h, w)
		}
		return []*Tensor{dx}
	})
}

// TimestepEmbedding returns the sinusoidal embeddings [N, dim] of the timesteps
// t [N] (any dtype), with diffusers' get_timestep_embedding semantics:
// flipSinToCos puts cos first, downscaleFreqShift is the shift in the frequency
// exponent's denominator (half - shift), scale multiplies the arguments, and
// maxPeriod is the longest period (10000 in Stable Diffusion).
func TimestepEmbedding(t *Tensor, dim int, flipSinToCos bool, downscaleFreqShift, scale, maxPeriod float32) *Tensor {
	noRule("TimestepEmbedding", t)

	if t.Rank() != 1 || dim < 1 {
		panic(fmt.Sprintf("tensor: TimestepEmbedding: t %v, dim %d (want t [N], dim >= 1)", t.shape, dim))
	}
	tc, rt := f32Contig(t)
	defer rt()
	out := newTensor(t.Device(), ComputeDType(t.Device()), Shape{t.Dim(0), dim}, false)
	backendFor(t.Device()).timestepEmbedding(tc, out, dim, flipSinToCos, downscaleFreqShift, scale, maxPeriod)
	return out
}

// attnOperand returns x [B, S, W] (W >= heads*d) as an operand of the compute
// dtype with unit element stride and batch stride S*rowStride, plus its row
// stride; it copies only when x's layout does not allow that.
func attnOperand(x *Tensor) (*Tensor, int, func()) {
	if x.DType() == ComputeDType(x.Device()) {
		b, s := x.Dim(0), x.Dim(1)
		rs := x.strides[1]
		if s == 1 {
			rs = max(x.strides[0], x.Dim(2))
		}
		if (x.strides[2] == 1 || x.Dim(2) == 1) && rs >= x.Dim(2) && (b == 1 || x.strides[0] == s*rs) {
			return x, rs, func() {}
		}
	}
	c, rel := computeContig(x)
	return c, c.Dim(2), rel
}

// Attention returns multi-head scaled-dot-product attention
// softmax(scale q k^T [+ causal mask]) v per head, for q [B, Sq, H*D],
// k [B, Sk, H*D] and v [B, Sk, H*D] with heads = H; the result is [B, Sq, H*D].
// scale <= 0 means 1/sqrt(D). With causal set, query i sees keys j <= i + Sk - Sq.
// Operands whose rows are not dense (e.g. Narrow views of a fused qkv projection
// [B, S, 3*H*D]) are used in place.
func Attention(q, k, v *Tensor, heads int, scale float32, causal bool) *Tensor {
	dev := sameDevice("Attention", q, k, v)
	if q.Rank() != 3 || k.Rank() != 3 || v.Rank() != 3 || heads < 1 ||
		q.Dim(2)%heads != 0 || k.Dim(2) != q.Dim(2) || v.Dim(2) != q.Dim(2) ||
		k.Dim(0) != q.Dim(0) || v.Dim(0) != q.Dim(0) || v.Dim(1) != k.Dim(1) {
		panic(fmt.Sprintf("tensor: Attention: q %v, k %v, v %v, %d heads (want [B, Sq, H*D], [B, Sk, H*D], [B, Sk, H*D])", q.shape, k.shape, v.shape, heads))
	}
	b, sq, sk, hd := q.Dim(0), q.Dim(1), k.Dim(1), q.Dim(2)
	d := hd / heads
	if scale <= 0 {
		scale = float32(1 / math.Sqrt(float64(d)))
	}
	out := newTensor(dev, ComputeDType(dev), Shape{b, sq, hd}, false)
	if out.Numel() == 0 {
		return out
	}
	qc, qs, rq := attnOperand(q)
	defer rq()
	kc, ks, rk := attnOperand(k)
	defer rk()
	vc, vs, rv := attnOperand(v)
	defer rv()
	p := cpu.AttnParams{B: b, H: heads, Sq: sq, Sk: sk, D: d, Scale: scale, Causal: causal,
		QStride: qs, KStride: ks, VStride: vs, OStride: hd}
	if !needsGrad(q, k, v) {
		backendFor(dev).attention(p, qc, kc, vc, out)
		return out
	}
	// Recording: dense operands, and the forward saves each row's
	// log-sum-exp so that backward recomputes the probabilities tile by tile.
	cpuOnly("Attention", dev)
	qd, kd, vd := q.Contiguous(), k.Contiguous(), v.Contiguous()
	p.QStride, p.KStride, p.VStride = hd, hd, hd
	lse := newTensor(CPU, F32, Shape{b * heads * sq}, false)
	cpu.AttentionWithLSE(p, f32s(qd), f32s(kd), f32s(vd), f32s(out), f32s(lse))
	sq_, sk_, sv_, so, sl := keep(qd), keep(kd), keep(vd), save(out), keep(lse)
	return record(out, "Attention", []*Tensor{q, k, v}, []savedValue{sq_, sk_, sv_, so, sl}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dq := newTensor(CPU, F32, Shape{b, sq, hd}, false)
		dk := newTensor(CPU, F32, Shape{b, sk, hd}, false)
		dv := newTensor(CPU, F32, Shape{b, sk, hd}, false)
		cpu.AttentionBackward(p, f32s(gy), f32s(sq_.t), f32s(sk_.t), f32s(sv_.t), f32s(so.t), f32s(sl.t), f32s(dq), f32s(dk), f32s(dv))
		return []*Tensor{dq, dk, dv}
	})
}

// Embedding returns the rows of the table w [V, D] (any float dtype) selected by
// the I64 ids [...]: the result is [..., D] in the compute dtype. It panics if
// an id is out of range.
//
// Gradient with respect to w: row r is the sum of the output gradient's rows
// at the positions whose id is r, in position order in F32; other rows are
// zero. For a table marked with SetSparseGrad the rule delivers only the rows
// of the ids used (RowGrad) and nothing dense; otherwise it is a dense
// [V, D] F32 tensor, as torch's Embedding(sparse=False). The rows are the
// same numbers either way.
func Embedding(ids, w *Tensor) *Tensor {
	dev := sameDevice("Embedding", ids, w)
	if ids.DType() != I64 || w.Rank() != 2 {
		panic(fmt.Sprintf("tensor: Embedding: ids %v %v, table %v (want I64 ids, table [V, D])", ids.DType(), ids.shape, w.shape))
	}
	idc := ids.Contiguous()
	defer idc.Release()
	out := newTensor(dev, ComputeDType(dev), append(ids.shape.Clone(), w.Dim(1)), false)
	v := w.Dim(0)
	for i, id := range idc.st.i64[idc.offset : idc.offset+idc.Numel()] {
		if id < 0 || int(id) >= v {
			panic(fmt.Sprintf("tensor: Embedding: id %d out of range [0, %d)", id, v))
		}
		src := w.selectImpl(0, int(id))
		dst := out.view(Shape{w.Dim(1)}, []int{1}, i*w.Dim(1))
		dst.CopyFrom(src)
		dst.Release()
		src.Release()
	}
	if !needsGrad(w) {
		return out
	}
	cpuOnly("Embedding", dev)
	ids64 := append([]int64(nil), idc.st.i64[idc.offset:idc.offset+idc.Numel()]...)
	dim, vocab := w.Dim(1), v
	return record(out, "Embedding", []*Tensor{nil, w}, nil, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		if w.SparseGrad() {
			rows := cpu.EmbeddingGradRows(ids64, vocab)
			grad := make([]float32, len(rows)*dim)
			cpu.EmbeddingBackwardSparse(ids64, f32n(gy, len(ids64)*dim), dim, rows, grad)
			if addRowGrad(w, rows, grad) {
				return []*Tensor{nil, nil}
			}
		}
		dw := newTensor(CPU, F32, Shape{vocab, dim}, false)
		cpu.EmbeddingBackward(ids64, f32n(gy, len(ids64)*dim), dim, vocab, f32s(dw))
		return []*Tensor{nil, dw}
	})
}

// Pad2d returns x [..., H, W] with zero rows added above (top) and below
// (bottom) and zero columns left and right: [..., top+H+bottom,
// left+W+right] (torch.nn.functional.pad with constant 0 on the last two
// dimensions). Gradient: the corresponding window of g.
func Pad2d(x *Tensor, top, bottom, left, right int) *Tensor {
	if x.Rank() < 2 || top < 0 || bottom < 0 || left < 0 || right < 0 {
		panic(fmt.Sprintf("tensor: Pad2d: x %v, padding %d %d %d %d (want rank >= 2, paddings >= 0)", x.shape, top, bottom, left, right))
	}
	r := x.Rank()
	h, w := x.shape[r-2], x.shape[r-1]
	ps := x.shape.Clone()
	ps[r-2], ps[r-1] = top+h+bottom, left+w+right
	dev := x.Device()
	out := ZerosOn(dev, ComputeDType(dev), ps...)
	rows := out.sliceImpl(r-2, top, top+h)
	inner := rows.sliceImpl(r-1, left, left+w)
	xc, rx := asCompute(x)
	backendFor(dev).copy(inner, xc)
	if rx {
		xc.Release()
	}
	inner.Release()
	rows.Release()
	if !needsGrad(x) {
		return out
	}
	return record(out, "Pad2d", []*Tensor{x}, nil, func(g *Tensor) []*Tensor {
		a := g.sliceImpl(r-2, top, top+h)
		defer a.Release()
		b := a.sliceImpl(r-1, left, left+w)
		defer b.Release()
		return []*Tensor{b.Contiguous()}
	})
}

// cpuOnly panics when an op is recorded for autograd on a device whose
// backward kernels do not exist yet.
func cpuOnly(op string, dev Device) {
	if dev != CPU {
		panic(fmt.Sprintf("tensor: %s: gradients are computed on the CPU only for now (the op ran on %v); train on the CPU", op, dev))
	}
}

// MSELoss returns mean((pred - target)^2) over all elements as a
// 0-dimensional tensor (torch.nn.functional.mse_loss with reduction
// "mean"), differentiable through pred and target.
func MSELoss(pred, target *Tensor) *Tensor {
	if !pred.shape.Equal(target.shape) {
		panic(fmt.Sprintf("tensor: MSELoss: pred %v and target %v differ in shape", pred.shape, target.shape))
	}
	d := pred.Sub(target)
	sq := d.Square()
	d.Release()
	loss := sq.MeanAll()
	sq.Release()
	return loss
}

package tensor

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Scaled-dot-product attention: operands, dispatch and backward rule.

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
	// (Accelerators run heads wider than maxFusedHeadDim unfused and
	// recompute the scores in backward instead.)
	qd, rqd := computeContig(q)
	kd, rkd := computeContig(k)
	vd, rvd := computeContig(v)
	p.QStride, p.KStride, p.VStride = hd, hd, hd
	lse := newTensor(dev, F32, Shape{b * heads * sq}, false)
	backendFor(dev).attentionWithLSE(p, qd, kd, vd, out, lse)
	sq_, sk_, sv_, so, sl := save(qd), save(kd), save(vd), save(out), keep(lse)
	rqd()
	rkd()
	rvd()
	return record(out, "Attention", []*Tensor{q, k, v}, []savedValue{sq_, sk_, sv_, so, sl}, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		cd := ComputeDType(dev)
		dq := newTensor(dev, cd, Shape{b, sq, hd}, false)
		dk := newTensor(dev, cd, Shape{b, sk, hd}, false)
		dv := newTensor(dev, cd, Shape{b, sk, hd}, false)
		backendFor(dev).attentionBackward(p, gy, sq_.t, sk_.t, sv_.t, so.t, sl.t, dq, dk, dv)
		return []*Tensor{dq, dk, dv}
	})
}

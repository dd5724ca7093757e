//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/kernels"
)

// Launchers of the training kernels (conv_backward.cu, attention_backward.cu,
// normact_backward.cu): the forwards that save statistics and the backward
// (gradient) kernels, with the semantics and argument order of kernels/cpu's
// ...Ref functions, device buffers in place of slices. Unlike the forward
// launchers they return an error (never panic) for bad sizes, nil or short
// buffers and wrong dtypes. Tensor operands (x, dy, dx, q, ...) may be F32,
// F16 or BF16, each its own dtype unless a launcher says otherwise; saved
// statistics (mean, rstd, lse), gamma, beta and parameter gradients (dw, db,
// dgamma, dbeta) are F32. Arithmetic is F32 and every reduction runs in a
// fixed order, so results are deterministic. Outputs are overwritten.
// Workspaces are allocated when the work is queued and freed right after
// queueing, as GroupNorm does.

// bwErr returns an error "cuda: op: message".
func bwErr(op, format string, a ...any) error {
	return fmt.Errorf("cuda: %s: %s", op, fmt.Sprintf(format, a...))
}

// bwNeed checks that b is present, of a float dtype and holds at least n elements.
func bwNeed(op, what string, b *Buffer, n int) error {
	if b == nil {
		return bwErr(op, "%s is nil", what)
	}
	switch b.dtype {
	case kernels.F32, kernels.F16, kernels.BF16:
	default:
		return bwErr(op, "%s has dtype %v; want F32, F16 or BF16", what, b.dtype)
	}
	if b.n < n {
		return bwErr(op, "%s has %d elements, needs %d", what, b.n, n)
	}
	return nil
}

// bwNeedF32 is bwNeed for an F32 operand; optional operands may be nil.
func bwNeedF32(op, what string, b *Buffer, n int, optional bool) error {
	if b == nil && optional {
		return nil
	}
	if err := bwNeed(op, what, b, n); err != nil {
		return err
	}
	if b.dtype != kernels.F32 {
		return bwErr(op, "%s must be F32, is %v", what, b.dtype)
	}
	return nil
}

// bwSame checks that the named buffers share one dtype and returns it.
func bwSame(op string, names []string, bs ...*Buffer) (kernels.DType, error) {
	t := bs[0].dtype
	for i, b := range bs[1:] {
		if b.dtype != t {
			return t, bwErr(op, "%s is %v but %s is %v; they must share a dtype", names[i+1], b.dtype, names[0], t)
		}
	}
	return t, nil
}

// bwGrid is the grid of a grid-stride kernel over n elements (256 threads a block).
func (d *Device) bwGrid(n int) [3]int {
	return [3]int{max(1, min(cdiv(n, 256), 32*max(d.sms, 1))), 1, 1}
}

// bwFits checks that every value fits the int32 kernel parameters.
func bwFits(op string, vals ...int64) error {
	for _, v := range vals {
		if v >= 1<<31 {
			return bwErr(op, "problem too large for 32-bit indices (%d)", v)
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Convolution.

// bwConvCheck validates p (groups = 1) for the convolution gradients.
func bwConvCheck(op string, p kernels.ConvParams) error {
	if p.N < 0 || p.C < 1 || p.H < 1 || p.W < 1 || p.K < 1 || p.R < 1 || p.S < 1 ||
		p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		return bwErr(op, "invalid ConvParams %+v", p)
	}
	if p.OutH() < 1 || p.OutW() < 1 {
		return bwErr(op, "empty output %dx%d for %+v", p.OutH(), p.OutW(), p)
	}
	return bwFits(op, int64(p.N)*int64(p.H)*int64(p.W), int64(p.N)*int64(p.OutH())*int64(p.OutW()),
		int64(p.K)*int64(p.R)*int64(p.S), int64(p.C)*int64(p.R)*int64(p.S))
}

// Conv2dBackwardData computes dx [N, C, H, W], the gradient of the convolution
// p with respect to its input, from dy [N, K, OutH, OutW] and the weights w
// [K, C*R*S] (row stride w.Stride, not transposed, any dtype); see
// kernels/cpu.Conv2dBackwardDataRef. dx must not overlap dy or w.
func (d *Device) Conv2dBackwardData(p kernels.ConvParams, dy *Buffer, w Mat, dx *Buffer) error {
	const op = "Conv2dBackwardData"
	if err := bwConvCheck(op, p); err != nil {
		return err
	}
	if w.Trans {
		return bwErr(op, "transposed weights are not supported")
	}
	crs := p.C * p.R * p.S
	if w.Stride < crs {
		return bwErr(op, "weight row stride %d < C*R*S = %d", w.Stride, crs)
	}
	oh, ow := p.OutH(), p.OutW()
	if err := bwNeed(op, "dy", dy, p.N*p.K*oh*ow); err != nil {
		return err
	}
	if err := bwNeed(op, "w", w.Buf, (p.K-1)*w.Stride+crs); err != nil {
		return err
	}
	if err := bwNeed(op, "dx", dx, p.N*p.C*p.H*p.W); err != nil {
		return err
	}
	if p.N == 0 {
		return nil
	}
	a := new(args).ptr(dy).ptr(w.Buf).ptr(dx).
		i32(p.N).i32(p.C).i32(p.H).i32(p.W).i32(p.K).i32(p.R).i32(p.S).i32(oh).i32(ow).
		i32(p.StrideH).i32(p.StrideW).i32(p.PadH).i32(p.PadW).i32(w.Stride).
		dtype(dy.dtype).dtype(w.Buf.dtype).dtype(dx.dtype)
	grid := [3]int{cdiv(p.N*p.H*p.W, 64), cdiv(p.C, 64), 1}
	return d.queue(func() error { return d.launch("conv_backward", "conv2d_bwd_data", grid, 256, a) })
}

// convWeightSplits chooses how many chunks of the N*OutH*OutW reduction
// Conv2dBackwardWeight spreads over separate blocks (summed afterwards).
func (d *Device) convWeightSplits(tiles, depth int) int {
	s := 1
	for tiles*s < 2*max(d.sms, 1) && s < 64 && depth/(2*s) >= 256 {
		s *= 2
	}
	return s
}

// Conv2dBackwardWeight computes dw [K, C*R*S] (F32, dense rows), the gradient
// of the convolution p with respect to its weights summed over the batch, from
// x [N, C, H, W] and dy [N, K, OutH, OutW]; see
// kernels/cpu.Conv2dBackwardWeightRef. Large reductions are split over blocks
// writing partial sums to a workspace, added in a fixed order.
func (d *Device) Conv2dBackwardWeight(p kernels.ConvParams, x, dy, dw *Buffer) error {
	const op = "Conv2dBackwardWeight"
	if err := bwConvCheck(op, p); err != nil {
		return err
	}
	oh, ow := p.OutH(), p.OutW()
	crs := p.C * p.R * p.S
	if err := bwNeed(op, "x", x, p.N*p.C*p.H*p.W); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, p.N*p.K*oh*ow); err != nil {
		return err
	}
	if err := bwNeedF32(op, "dw", dw, p.K*crs, false); err != nil {
		return err
	}
	if p.N == 0 {
		return d.Zero(dw.View(0, p.K*crs))
	}
	tiles := cdiv(crs, 64) * cdiv(p.K, 64)
	splits := d.convWeightSplits(tiles, p.N*oh*ow)
	if cdiv(p.K, 64) > 65535 {
		return bwErr(op, "K = %d output channels is too many", p.K)
	}
	ws := dw
	if splits > 1 {
		var err error
		if ws, err = d.Alloc(kernels.F32, splits*p.K*crs); err != nil {
			return err
		}
		defer ws.Free()
	}
	a := new(args).ptr(x).ptr(dy).ptr(ws).
		i32(p.N).i32(p.C).i32(p.H).i32(p.W).i32(p.K).i32(p.R).i32(p.S).i32(oh).i32(ow).
		i32(p.StrideH).i32(p.StrideW).i32(p.PadH).i32(p.PadW).dtype(x.dtype).dtype(dy.dtype)
	grid := [3]int{cdiv(crs, 64), cdiv(p.K, 64), splits}
	n := p.K * crs
	r := new(args).ptr(ws).ptr(dw).i64(n).i32(splits)
	return d.queue(func() error {
		if err := d.launch("conv_backward", "conv2d_bwd_weight", grid, 256, a); err != nil || splits == 1 {
			return err
		}
		return d.launch("conv_backward", "conv2d_bwd_weight_reduce", d.bwGrid(n), 256, r)
	})
}

// Conv2dBackwardBias computes db [K] (F32), the gradient of the convolution p
// with respect to its bias, from dy [N, K, OutH, OutW]; see
// kernels/cpu.Conv2dBackwardBiasRef.
func (d *Device) Conv2dBackwardBias(p kernels.ConvParams, dy, db *Buffer) error {
	const op = "Conv2dBackwardBias"
	if err := bwConvCheck(op, p); err != nil {
		return err
	}
	ohw := p.OutH() * p.OutW()
	if err := bwNeed(op, "dy", dy, p.N*p.K*ohw); err != nil {
		return err
	}
	if err := bwNeedF32(op, "db", db, p.K, false); err != nil {
		return err
	}
	a := new(args).ptr(dy).dtype(dy.dtype).ptr(db).i32(p.N).i32(p.K).i64(ohw)
	return d.queue(func() error { return d.launch("conv_backward", "conv2d_bwd_bias", [3]int{p.K, 1, 1}, 256, a) })
}

// ---------------------------------------------------------------------------
// Attention.

// bwAttnCheck validates p and the sizes of q, k, v and o (o of length Sq rows).
func bwAttnCheck(op string, p kernels.AttnParams, q, k, v, o *Buffer, oname string) error {
	if p.B < 0 || p.H < 0 || p.Sq < 0 || p.Sk < 0 || p.D < 1 {
		return bwErr(op, "invalid AttnParams %+v", p)
	}
	if p.D > 256 {
		return bwErr(op, "head dim %d > 256 has no kernel", p.D)
	}
	if p.H > 65535 || p.B > 65535 {
		return bwErr(op, "B = %d or H = %d exceeds 65535", p.B, p.H)
	}
	qs, ks, vs, os := p.Strides()
	hd := p.H * p.D
	if qs < hd || ks < hd || vs < hd || os < hd {
		return bwErr(op, "row strides %d, %d, %d, %d: each must be at least H*D = %d", qs, ks, vs, os, hd)
	}
	rows := func(s, seq int) int {
		if seq == 0 || p.B == 0 || p.H == 0 {
			return 0
		}
		return (p.B*seq-1)*s + hd
	}
	for _, c := range []struct {
		name   string
		b      *Buffer
		s, seq int
	}{{"q", q, qs, p.Sq}, {"k", k, ks, p.Sk}, {"v", v, vs, p.Sk}, {oname, o, os, p.Sq}} {
		if err := bwNeed(op, c.name, c.b, rows(c.s, c.seq)); err != nil {
			return err
		}
	}
	return bwFits(op, int64(p.B)*int64(max(p.Sq, p.Sk))*int64(max(qs, ks, vs, os)))
}

// AttentionWithLSE computes attention (see kernels/cpu.AttentionWithLSERef)
// like Attention and also writes lse [B*H*Sq] (F32), the log-sum-exp of each
// query row's scaled scores (-Inf for a row the causal mask leaves without
// keys; its output is zeros), which AttentionBackward reads. q, k, v share a
// dtype; o may have any. Any D <= 256 and any strides (SIMT kernel, a warp per
// query row). o must not overlap q, k or v.
func (d *Device) AttentionWithLSE(p kernels.AttnParams, q, k, v, o, lse *Buffer) error {
	const op = "AttentionWithLSE"
	if err := bwAttnCheck(op, p, q, k, v, o, "o"); err != nil {
		return err
	}
	dt, err := bwSame(op, []string{"q", "k", "v"}, q, k, v)
	if err != nil {
		return err
	}
	if err := bwNeedF32(op, "lse", lse, p.B*p.H*p.Sq, false); err != nil {
		return err
	}
	if p.B == 0 || p.H == 0 || p.Sq == 0 {
		return nil
	}
	qs, ks, vs, os := p.Strides()
	a := new(args).ptr(q).ptr(k).ptr(v).ptr(o).ptr(lse).i32(p.H).i32(p.Sq).i32(p.Sk).i32(p.D).
		i32(qs).i32(ks).i32(vs).i32(os).f32(p.Scale).flag(p.Causal).dtype(dt).dtype(o.dtype)
	return d.queue(func() error {
		return d.launch("attention_backward", "attn_lse_fwd", [3]int{cdiv(p.Sq, 8), p.H, p.B}, 256, a)
	})
}

// attnBwdVariant returns the suffix of the backward kernels for head dim D.
func attnBwdVariant(D int) string {
	switch {
	case D <= 64:
		return "d64"
	case D <= 160:
		return "d160"
	}
	return "d256"
}

// AttentionBackward computes the gradients dq, dk, dv of attention (see
// kernels/cpu.AttentionBackwardRef) from the output gradient do, the inputs
// q, k, v, and the forward's output o and log-sum-exp lse (AttentionWithLSE),
// FlashAttention-2 style: probabilities are recomputed tile by tile, never
// stored whole (workspace: B*H*Sq floats). q, k, v, o and do share a dtype;
// dq, dk and dv share one (possibly another); dq is laid out like q, dk like
// k, dv like v, do like o (only the H*D columns of each row are written). D <=
// 256. The gradients must not overlap the inputs or each other.
func (d *Device) AttentionBackward(p kernels.AttnParams, do, q, k, v, o, lse, dq, dk, dv *Buffer) error {
	const op = "AttentionBackward"
	if err := bwAttnCheck(op, p, q, k, v, o, "o"); err != nil {
		return err
	}
	if err := bwAttnCheck(op, p, dq, dk, dv, do, "do"); err != nil {
		return err
	}
	dt, err := bwSame(op, []string{"q", "k", "v", "o", "do"}, q, k, v, o, do)
	if err != nil {
		return err
	}
	dtg, err := bwSame(op, []string{"dq", "dk", "dv"}, dq, dk, dv)
	if err != nil {
		return err
	}
	if err := bwNeedF32(op, "lse", lse, p.B*p.H*p.Sq, false); err != nil {
		return err
	}
	if p.B == 0 || p.H == 0 {
		return nil
	}
	qs, ks, vs, os := p.Strides()
	var dd *Buffer
	if p.Sq > 0 {
		if dd, err = d.Alloc(kernels.F32, p.B*p.H*p.Sq); err != nil {
			return err
		}
		defer dd.Free()
	}
	variant := attnBwdVariant(p.D)
	bt := map[string]int{"d64": 32, "d160": 16, "d256": 8}[variant]
	dot := new(args).ptr(o).ptr(do).ptr(dd).i32(p.Sq).i32(p.D).i32(os).dtype(dt)
	kv := new(args).ptr(q).ptr(k).ptr(v).ptr(do).ptr(lse).ptr(dd).ptr(dk).ptr(dv).
		i32(p.Sq).i32(p.Sk).i32(p.D).i32(qs).i32(ks).i32(vs).i32(os).f32(p.Scale).flag(p.Causal).
		dtype(dt).dtype(dtg)
	dqa := new(args).ptr(q).ptr(k).ptr(v).ptr(do).ptr(lse).ptr(dd).ptr(dq).
		i32(p.Sq).i32(p.Sk).i32(p.D).i32(qs).i32(ks).i32(vs).i32(os).f32(p.Scale).flag(p.Causal).
		dtype(dt).dtype(dtg)
	const mod = "attention_backward"
	return d.queue(func() error {
		if p.Sq > 0 {
			if err := d.launch(mod, "attn_bwd_dot", [3]int{cdiv(p.Sq, 8), p.H, p.B}, 256, dot); err != nil {
				return err
			}
		}
		if p.Sk > 0 {
			if err := d.launch(mod, "attn_bwd_dkdv_"+variant, [3]int{cdiv(p.Sk, bt), p.H, p.B}, 256, kv); err != nil {
				return err
			}
		}
		if p.Sq == 0 {
			return nil
		}
		return d.launch(mod, "attn_bwd_dq_"+variant, [3]int{cdiv(p.Sq, bt), p.H, p.B}, 256, dqa)
	})
}

// ---------------------------------------------------------------------------
// Group norm and layer norm.

// bwGroupNormCheck validates the sizes of a group norm and x, its dx-like
// operand y (named yname, nil allowed when yOpt), gamma, beta, mean and rstd.
func bwGroupNormCheck(op string, x, y *Buffer, yname string, yOpt bool, n, c, hw, groups int, gamma, beta, mean, rstd *Buffer) error {
	if n < 0 || c < 1 || hw < 1 || groups < 1 || c%groups != 0 {
		return bwErr(op, "invalid sizes n=%d c=%d hw=%d groups=%d (groups must divide c)", n, c, hw, groups)
	}
	if err := bwFits(op, int64(n)*int64(c), int64(c/groups)*int64(hw)); err != nil {
		return err
	}
	if err := bwNeed(op, "x", x, n*c*hw); err != nil {
		return err
	}
	if y != nil || !yOpt {
		if err := bwNeed(op, yname, y, n*c*hw); err != nil {
			return err
		}
	}
	if err := bwNeedF32(op, "gamma", gamma, c, true); err != nil {
		return err
	}
	if err := bwNeedF32(op, "beta", beta, c, true); err != nil {
		return err
	}
	if err := bwNeedF32(op, "mean", mean, n*groups, false); err != nil {
		return err
	}
	return bwNeedF32(op, "rstd", rstd, n*groups, false)
}

// gnSaveSplits chooses how many blocks share one group's statistics.
func (d *Device) gnSaveSplits(ng, cnt int) int {
	s := min(max(cdiv(cnt, 8192), 1), 64)
	for ng*s < 2*max(d.sms, 1) && s < 64 && cnt/(2*s) >= 1024 {
		s *= 2
	}
	return s
}

// GroupNormSave is GroupNorm (see kernels/cpu.GroupNormSaveRef) that also
// writes each (batch, group)'s mean and rstd = 1/sqrt(var+eps) (F32, [n*groups],
// index b*groups+g) for GroupNormBackward. x and y may have different dtypes;
// y may alias x; gamma, beta are F32 or nil.
func (d *Device) GroupNormSave(x, y *Buffer, n, c, hw, groups int, eps float32, gamma, beta *Buffer, silu bool, mean, rstd *Buffer) error {
	const op = "GroupNormSave"
	if err := bwGroupNormCheck(op, x, y, "y", false, n, c, hw, groups, gamma, beta, mean, rstd); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	ng := n * groups
	if ng > 65535 {
		return bwErr(op, "n*groups = %d exceeds 65535", ng)
	}
	cnt := c / groups * hw
	splits := d.gnSaveSplits(ng, cnt)
	ws, err := d.Alloc(kernels.F32, 4*splits*ng+2*ng)
	if err != nil {
		return err
	}
	defer ws.Free()
	st := ws.View(4*splits*ng, 2*ng)
	total := n * c * hw
	s := new(args).ptr(x).dtype(x.dtype).ptr(ws).i64(cnt).i32(splits)
	f := new(args).ptr(ws).ptr(st).ptr(mean).ptr(rstd).i32(ng).i32(splits).f32(eps)
	ap := new(args).ptr(x).dtype(x.dtype).ptr(y).dtype(y.dtype).ptr(st).ptr(rstd).ptr(gamma).ptr(beta).
		i32(c).i32(hw).i32(groups).i64(total).flag(silu)
	const mod = "normact_backward"
	return d.queue(func() error {
		if err := d.launch(mod, "gn_save_stats", [3]int{splits, ng, 1}, 256, s); err != nil {
			return err
		}
		if err := d.launch(mod, "gn_save_finalize", [3]int{cdiv(ng, 256), 1, 1}, 256, f); err != nil {
			return err
		}
		return d.launch(mod, "gn_save_apply", d.bwGrid(total), 256, ap)
	})
}

// GroupNormBackward computes the gradients of GroupNorm (see
// kernels/cpu.GroupNormBackwardRef): dx [n, c, hw] from x, dy and the saved
// mean, rstd (GroupNormSave), and dgamma, dbeta [c] (F32). gamma and beta are
// F32 or nil (1 and 0; beta matters only with silu). Each of dx, dgamma and
// dbeta may be nil (not computed). dx may alias dy, not x.
func (d *Device) GroupNormBackward(x, dy, dx *Buffer, n, c, hw, groups int, mean, rstd, gamma, beta *Buffer, silu bool, dgamma, dbeta *Buffer) error {
	const op = "GroupNormBackward"
	if err := bwGroupNormCheck(op, x, dx, "dx", true, n, c, hw, groups, gamma, beta, mean, rstd); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, n*c*hw); err != nil {
		return err
	}
	if err := bwNeedF32(op, "dgamma", dgamma, c, true); err != nil {
		return err
	}
	if err := bwNeedF32(op, "dbeta", dbeta, c, true); err != nil {
		return err
	}
	if n == 0 {
		for _, b := range []*Buffer{dgamma, dbeta} {
			if b != nil {
				if err := d.Zero(b.View(0, c)); err != nil {
					return err
				}
			}
		}
		return nil
	}
	ng := n * groups
	ws, err := d.Alloc(kernels.F32, 2*n*c+2*ng)
	if err != nil {
		return err
	}
	defer ws.Free()
	wsc, wsg := ws.View(0, 2*n*c), ws.View(2*n*c, 2*ng)
	total := n * c * hw
	ch := new(args).ptr(x).dtype(x.dtype).ptr(dy).dtype(dy.dtype).ptr(mean).ptr(rstd).ptr(gamma).ptr(beta).
		i32(c).i32(hw).i32(groups).flag(silu).ptr(wsc)
	red := new(args).ptr(wsc).ptr(gamma).ptr(dgamma).ptr(dbeta).ptr(wsg).i32(n).i32(c).i32(groups)
	var dxa *args
	if dx != nil {
		dxa = new(args).ptr(x).dtype(x.dtype).ptr(dy).dtype(dy.dtype).ptr(dx).dtype(dx.dtype).
			ptr(mean).ptr(rstd).ptr(gamma).ptr(beta).ptr(wsg).i32(c).i32(hw).i32(groups).i64(total).flag(silu)
	}
	const mod = "normact_backward"
	return d.queue(func() error {
		if err := d.launch(mod, "gn_bwd_chan", [3]int{n * c, 1, 1}, 256, ch); err != nil {
			return err
		}
		if err := d.launch(mod, "gn_bwd_reduce", [3]int{cdiv(max(c, ng), 256), 1, 1}, 256, red); err != nil {
			return err
		}
		if dxa == nil {
			return nil
		}
		return d.launch(mod, "gn_bwd_dx", d.bwGrid(total), 256, dxa)
	})
}

// bwLayerNormCheck validates the sizes of a layer norm and its operands.
func bwLayerNormCheck(op string, x, y *Buffer, yname string, yOpt bool, rows, cols int, gamma, mean, rstd *Buffer) error {
	if rows < 0 || cols < 1 {
		return bwErr(op, "invalid sizes rows=%d cols=%d", rows, cols)
	}
	if err := bwFits(op, int64(rows), int64(cols)); err != nil {
		return err
	}
	if err := bwNeed(op, "x", x, rows*cols); err != nil {
		return err
	}
	if y != nil || !yOpt {
		if err := bwNeed(op, yname, y, rows*cols); err != nil {
			return err
		}
	}
	if err := bwNeedF32(op, "gamma", gamma, cols, true); err != nil {
		return err
	}
	if err := bwNeedF32(op, "mean", mean, rows, false); err != nil {
		return err
	}
	return bwNeedF32(op, "rstd", rstd, rows, false)
}

// LayerNormSave is LayerNorm (see kernels/cpu.LayerNormSaveRef) that also
// writes each row's mean and rstd = 1/sqrt(var+eps) (F32, [rows]) for
// LayerNormBackward. gamma, beta: F32 or nil. y may alias x.
func (d *Device) LayerNormSave(x, y *Buffer, rows, cols int, eps float32, gamma, beta, mean, rstd *Buffer) error {
	const op = "LayerNormSave"
	if err := bwLayerNormCheck(op, x, y, "y", false, rows, cols, gamma, mean, rstd); err != nil {
		return err
	}
	if err := bwNeedF32(op, "beta", beta, cols, true); err != nil {
		return err
	}
	if rows == 0 {
		return nil
	}
	a := new(args).ptr(x).dtype(x.dtype).ptr(y).dtype(y.dtype).i32(rows).i32(cols).f32(eps).
		ptr(gamma).ptr(beta).ptr(mean).ptr(rstd)
	return d.queue(func() error {
		return d.launch("normact_backward", "ln_save", [3]int{cdiv(rows, 8), 1, 1}, 256, a)
	})
}

// LayerNormBackward computes the gradients of LayerNorm (see
// kernels/cpu.LayerNormBackwardRef): dx [rows, cols] from x, dy and the saved
// mean, rstd (LayerNormSave), and dgamma, dbeta [cols] (F32). gamma: F32 or
// nil (1). Each of dx, dgamma and dbeta may be nil. dx may alias dy, not x.
func (d *Device) LayerNormBackward(x, dy, dx *Buffer, rows, cols int, mean, rstd, gamma, dgamma, dbeta *Buffer) error {
	const op = "LayerNormBackward"
	if err := bwLayerNormCheck(op, x, dx, "dx", true, rows, cols, gamma, mean, rstd); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, rows*cols); err != nil {
		return err
	}
	if err := bwNeedF32(op, "dgamma", dgamma, cols, true); err != nil {
		return err
	}
	if err := bwNeedF32(op, "dbeta", dbeta, cols, true); err != nil {
		return err
	}
	const mod = "normact_backward"
	var pa, ra *args
	var splits int
	if dgamma != nil || dbeta != nil {
		if rows == 0 {
			for _, b := range []*Buffer{dgamma, dbeta} {
				if b != nil {
					if err := d.Zero(b.View(0, cols)); err != nil {
						return err
					}
				}
			}
		} else {
			colBlocks := cdiv(cols, 256)
			splits = max(1, min(cdiv(rows, 16), cdiv(2*max(d.sms, 1), colBlocks), 65535))
			ws, err := d.Alloc(kernels.F32, 2*splits*cols)
			if err != nil {
				return err
			}
			defer ws.Free()
			pa = new(args).ptr(x).dtype(x.dtype).ptr(dy).dtype(dy.dtype).i32(rows).i32(cols).
				ptr(mean).ptr(rstd).ptr(ws).i32(splits)
			ra = new(args).ptr(ws).i32(cols).i32(splits).ptr(dgamma).ptr(dbeta)
		}
	}
	var dxa *args
	if dx != nil && rows > 0 {
		dxa = new(args).ptr(x).dtype(x.dtype).ptr(dy).dtype(dy.dtype).ptr(dx).dtype(dx.dtype).
			i32(rows).i32(cols).ptr(mean).ptr(rstd).ptr(gamma)
	}
	return d.queue(func() error {
		// The parameter gradients read dy first: dx may alias it.
		if pa != nil {
			if err := d.launch(mod, "ln_bwd_params", [3]int{cdiv(cols, 256), splits, 1}, 256, pa); err != nil {
				return err
			}
			if err := d.launch(mod, "ln_bwd_params_reduce", d.bwGrid(cols), 256, ra); err != nil {
				return err
			}
		}
		if dxa == nil {
			return nil
		}
		return d.launch(mod, "ln_bwd_dx", [3]int{cdiv(rows, 8), 1, 1}, 256, dxa)
	})
}

// ---------------------------------------------------------------------------
// Softmax, activations, GEGLU, upsampling.

// SoftmaxBackward computes dx [rows, cols] = y*(dy - rowsum(dy*y)) from the
// softmax output y and dy (see kernels/cpu.SoftmaxBackwardRef). dx may alias
// y or dy.
func (d *Device) SoftmaxBackward(y, dy, dx *Buffer, rows, cols int) error {
	const op = "SoftmaxBackward"
	if rows < 0 || cols < 1 {
		return bwErr(op, "invalid sizes rows=%d cols=%d", rows, cols)
	}
	if err := bwFits(op, int64(rows), int64(cols)); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		b    *Buffer
	}{{"y", y}, {"dy", dy}, {"dx", dx}} {
		if err := bwNeed(op, c.name, c.b, rows*cols); err != nil {
			return err
		}
	}
	if rows == 0 {
		return nil
	}
	a := new(args).ptr(y).dtype(y.dtype).ptr(dy).dtype(dy.dtype).ptr(dx).dtype(dx.dtype).i32(rows).i32(cols)
	return d.queue(func() error {
		return d.launch("normact_backward", "softmax_bwd", [3]int{cdiv(rows, 8), 1, 1}, 256, a)
	})
}

// ActivateBackward computes dx[i] = dy[i] * f'(x[i]) for the first n
// elements (see kernels/cpu.ActivateBackwardRef; PyTorch's backward formulas,
// limits 0 and 1 at -Inf and +Inf). dx may alias x or dy.
func (d *Device) ActivateBackward(f kernels.Activation, x, dy, dx *Buffer, n int) error {
	const op = "ActivateBackward"
	if f > kernels.QuickGELU {
		return bwErr(op, "unknown activation %d", f)
	}
	if n < 0 {
		return bwErr(op, "negative count %d", n)
	}
	if err := bwNeed(op, "x", x, n); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, n); err != nil {
		return err
	}
	if err := bwNeed(op, "dx", dx, n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	a := new(args).i32(int(f)).ptr(x).dtype(x.dtype).ptr(dy).dtype(dy.dtype).ptr(dx).dtype(dx.dtype).i64(n)
	return d.queue(func() error { return d.launch("normact_backward", "act_bwd", d.bwGrid(n), 256, a) })
}

// GEGLUBackward computes the gradient dx [rows, 2d] of GEGLU for x [rows, 2d]
// and dy [rows, d] (see kernels/cpu.GEGLUBackwardRef; exact erf GELU). dx may
// alias x.
func (d *Device) GEGLUBackward(x, dy, dx *Buffer, rows, dim int) error {
	const op = "GEGLUBackward"
	if rows < 0 || dim < 0 {
		return bwErr(op, "invalid sizes rows=%d d=%d", rows, dim)
	}
	if err := bwFits(op, int64(rows), int64(dim)); err != nil {
		return err
	}
	if err := bwNeed(op, "x", x, rows*2*dim); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, rows*dim); err != nil {
		return err
	}
	if err := bwNeed(op, "dx", dx, rows*2*dim); err != nil {
		return err
	}
	if rows*dim == 0 {
		return nil
	}
	a := new(args).ptr(x).dtype(x.dtype).ptr(dy).dtype(dy.dtype).ptr(dx).dtype(dx.dtype).i32(rows).i32(dim)
	return d.queue(func() error {
		return d.launch("normact_backward", "geglu_bwd", d.bwGrid(rows*dim), 256, a)
	})
}

// Upsample2xBackward sums each 2x2 block of dy [nc, 2h, 2w] into dx [nc, h, w],
// the gradient of nearest 2x upsampling (see kernels/cpu.Upsample2xBackwardRef).
// dx must not overlap dy.
func (d *Device) Upsample2xBackward(dy, dx *Buffer, nc, h, w int) error {
	const op = "Upsample2xBackward"
	if nc < 0 || h < 0 || w < 0 {
		return bwErr(op, "invalid sizes nc=%d h=%d w=%d", nc, h, w)
	}
	if err := bwFits(op, int64(nc), 2*int64(h), 2*int64(w), 4*int64(h)*int64(w)); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, 4*nc*h*w); err != nil {
		return err
	}
	if err := bwNeed(op, "dx", dx, nc*h*w); err != nil {
		return err
	}
	if nc*h*w == 0 {
		return nil
	}
	a := new(args).ptr(dy).dtype(dy.dtype).ptr(dx).dtype(dx.dtype).i32(nc).i32(h).i32(w)
	return d.queue(func() error {
		return d.launch("normact_backward", "upsample2x_bwd", d.bwGrid(nc*h*w), 256, a)
	})
}

// ---------------------------------------------------------------------------
// Embeddings.
//
// The token ids are int64 host slices (the tensor package keeps index tensors
// in host memory): the launcher checks them, groups the positions by output
// row on the host and uploads that grouping as int32 values (bit patterns in
// an F32-typed buffer); the kernel then sums each row's dy rows in position
// order, so no two threads write one element and the result is deterministic.

// embeddingIndex builds the int32 table embedding_bwd reads: offs[nrows+1],
// order[len(ids)] (positions grouped by row), outrow[nrows], as float32 bits.
func embeddingIndex(slotOf func(id int64) int, ids []int64, outrow []int) []float32 {
	nrows := len(outrow)
	counts := make([]int, nrows+1)
	slots := make([]int, len(ids))
	for p, id := range ids {
		slots[p] = slotOf(id)
		counts[slots[p]+1]++
	}
	for k := 0; k < nrows; k++ {
		counts[k+1] += counts[k]
	}
	tab := make([]float32, nrows+1+len(ids)+nrows)
	put := func(i, v int) { tab[i] = math.Float32frombits(uint32(int32(v))) }
	for k := 0; k <= nrows; k++ {
		put(k, counts[k])
	}
	next := append([]int(nil), counts[:nrows]...)
	for p, k := range slots {
		put(nrows+1+next[k], p)
		next[k]++
	}
	for k, r := range outrow {
		put(nrows+1+len(ids)+k, r)
	}
	return tab
}

// embeddingLaunch uploads tab and queues embedding_bwd over nrows output rows.
func (d *Device) embeddingLaunch(tab []float32, nrows, npos int, dy *Buffer, dim int, out *Buffer) error {
	idx, err := d.Alloc(kernels.F32, len(tab))
	if err != nil {
		return err
	}
	defer idx.Free()
	if err := d.UploadF32(idx, tab); err != nil {
		return err
	}
	a := new(args).ptr(idx).i32(nrows).i32(npos).ptr(dy).dtype(dy.dtype).ptr(out).i32(dim)
	grid := [3]int{nrows, cdiv(dim, 256), 1}
	return d.queue(func() error { return d.launch("normact_backward", "embedding_bwd", grid, 256, a) })
}

// EmbeddingBackward computes the dense gradient dw [vocab, d] (F32) of an
// embedding lookup out[p, :] = table[ids[p], :] from dy [len(ids), d] (see
// kernels/cpu.EmbeddingBackwardRef): dw = 0, then dw[ids[p], :] += dy[p, :].
// ids stay on the host; an id outside [0, vocab) is an error.
func (d *Device) EmbeddingBackward(ids []int64, dy *Buffer, dim, vocab int, dw *Buffer) error {
	const op = "EmbeddingBackward"
	if dim < 0 || vocab < 0 {
		return bwErr(op, "invalid sizes d=%d vocab=%d", dim, vocab)
	}
	if err := bwFits(op, int64(len(ids)), int64(vocab), int64(dim)); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, len(ids)*dim); err != nil {
		return err
	}
	if err := bwNeedF32(op, "dw", dw, vocab*dim, false); err != nil {
		return err
	}
	slot := map[int64]int{}
	var rows []int
	for p, id := range ids {
		if id < 0 || id >= int64(vocab) {
			return bwErr(op, "id %d at position %d is outside [0, %d)", id, p, vocab)
		}
		if _, ok := slot[id]; !ok {
			slot[id] = len(rows)
			rows = append(rows, int(id))
		}
	}
	if vocab*dim == 0 {
		return nil
	}
	if err := d.Zero(dw.View(0, vocab*dim)); err != nil {
		return err
	}
	if len(rows) == 0 || dim == 0 {
		return nil
	}
	tab := embeddingIndex(func(id int64) int { return slot[id] }, ids, rows)
	return d.embeddingLaunch(tab, len(rows), len(ids), dy, dim, dw)
}

// EmbeddingBackwardSparse computes the gradient rows grad [len(rows), d] (F32)
// of an embedding lookup for the ids in rows (as kernels/cpu.EmbeddingGradRows
// returns them) from dy [len(ids), d] (see
// kernels/cpu.EmbeddingBackwardSparseRef): grad[k, :] = sum over p with
// ids[p] == rows[k] of dy[p, :]. An id not among rows is an error. ids and
// rows stay on the host.
func (d *Device) EmbeddingBackwardSparse(ids []int64, dy *Buffer, dim int, rows []int64, grad *Buffer) error {
	const op = "EmbeddingBackwardSparse"
	if dim < 0 {
		return bwErr(op, "invalid size d=%d", dim)
	}
	if err := bwFits(op, int64(len(ids)), int64(len(rows)), int64(dim)); err != nil {
		return err
	}
	if err := bwNeed(op, "dy", dy, len(ids)*dim); err != nil {
		return err
	}
	if err := bwNeedF32(op, "grad", grad, len(rows)*dim, false); err != nil {
		return err
	}
	slot := make(map[int64]int, len(rows))
	for k, id := range rows {
		slot[id] = k
	}
	for p, id := range ids {
		if _, ok := slot[id]; !ok {
			return bwErr(op, "id %d at position %d is not among the %d rows", id, p, len(rows))
		}
	}
	if len(rows) == 0 || dim == 0 {
		return nil
	}
	outrow := make([]int, len(rows))
	for k := range outrow {
		outrow[k] = k
	}
	tab := embeddingIndex(func(id int64) int { return slot[id] }, ids, outrow)
	return d.embeddingLaunch(tab, len(rows), len(ids), dy, dim, grad)
}

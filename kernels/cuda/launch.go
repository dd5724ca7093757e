//go:build cuda

package cuda

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels"
)

// This file holds the launchers: kernels/cpu-like signatures over device
// buffers. They queue work on the device stream and return launch errors;
// results are visible after Synchronize or a Download. Shape misuse panics
// with "cuda: ...". Inputs and outputs are device buffers whose dtype selects
// the kernel; bias, gamma and beta vectors are F32.

func dtName(t kernels.DType) string { return t.String() }

func need(op, what string, b *Buffer, n int) {
	if b == nil {
		panic(fmt.Sprintf("cuda: %s: %s is nil", op, what))
	}
	if b.n < n {
		panic(fmt.Sprintf("cuda: %s: %s has %d elements, needs %d", op, what, b.n, n))
	}
}

func needF32(op, what string, b *Buffer, n int) {
	if b == nil {
		return
	}
	if b.dtype != kernels.F32 {
		panic(fmt.Sprintf("cuda: %s: %s must be f32, is %v", op, what, b.dtype))
	}
	need(op, what, b, n)
}

func sameDType(op string, bs ...*Buffer) kernels.DType {
	t := bs[0].dtype
	for _, b := range bs[1:] {
		if b.dtype != t {
			panic(fmt.Sprintf("cuda: %s: mixed dtypes %v and %v", op, t, b.dtype))
		}
	}
	return t
}

func cdiv(a, b int) int { return (a + b - 1) / b }

// Mat is a device matrix operand (kernels.DeviceMat): the stored matrix is
// row-major with row stride Stride (elements) in Buf (any dtype); Trans makes
// the logical operand its transpose.
type Mat = kernels.DeviceMat[*Buffer]

// GemmParams describes C = alpha*op(A)*op(B) (+ bias) + beta*C (+ R), batched
// (kernels.GemmParams over device buffers; its doc gives the loop). C and R
// share a dtype (F32, or that of A and B); Bias is F32. When Beta is 0, C is
// not read. SIMT forces the SIMT kernel (for checking the tensor-core path).
type GemmParams = kernels.GemmParams[*Buffer]

func matNeed(m Mat, rows, cols int) int {
	if m.Trans {
		rows, cols = cols, rows
	}
	if rows == 0 || cols == 0 {
		return 0
	}
	return (rows-1)*m.Stride + cols
}

// GemmBatched runs batch products with operand z at offsets z*strideA, z*strideB,
// z*strideC (see kernels/cpu.GemmBatched).
func (d *Device) GemmBatched(batch, m, n, k int, alpha float32, a Mat, strideA int, b Mat, strideB int,
	beta float32, c *Buffer, ldc, strideC int) error {
	if batch == 0 {
		return nil
	}
	return d.Gemm(GemmParams{M: m, N: n, K: k, Alpha: alpha, A: a, B: b, Beta: beta, C: c, Ldc: ldc,
		Batch: batch, StrideA: strideA, StrideB: strideB, StrideC: strideC})
}

// gemmUsesTensorCores reports whether Gemm would take the mma.sync path for p.
func gemmUsesTensorCores(p GemmParams) bool {
	ta, tb := p.A.Buf.dtype, p.B.Buf.dtype
	if p.SIMT || ta != tb || ta == kernels.F32 || p.A.Trans {
		return false
	}
	if p.C.dtype != kernels.F32 && p.C.dtype != ta {
		return false
	}
	if !p.A.Buf.aligned16() || !p.B.Buf.aligned16() {
		return false
	}
	if p.A.Stride%8 != 0 || p.B.Stride%8 != 0 || p.K%8 != 0 || p.StrideA%8 != 0 || p.StrideB%8 != 0 {
		return false
	}
	if !p.B.Trans && p.N%8 != 0 {
		return false
	}
	return true
}

// Gemm queues the product described by p (see kernels.GemmParams and
// kernels/cpu.GemmRef). F16/BF16 operands with a non-transposed A, 16-byte
// alignment and strides/K multiples of 8 (N too when B is not transposed) run
// on tensor cores; everything else on the SIMT kernel.
func (d *Device) Gemm(p GemmParams) error {
	const op = "Gemm"
	if p.M < 0 || p.N < 0 || p.K < 0 || p.Batch < 0 {
		panic("cuda: Gemm: negative dimension")
	}
	batch := max(p.Batch, 1)
	if p.M == 0 || p.N == 0 {
		return nil
	}
	if p.Ldc < p.N {
		panic("cuda: Gemm: ldc < n")
	}
	need(op, "A", p.A.Buf, (batch-1)*p.StrideA+matNeed(p.A, p.M, p.K))
	need(op, "B", p.B.Buf, (batch-1)*p.StrideB+matNeed(p.B, p.K, p.N))
	need(op, "C", p.C, (batch-1)*p.StrideC+(p.M-1)*p.Ldc+p.N)
	if p.Bias != nil {
		needF32(op, "bias", p.Bias, map[bool]int{true: p.M, false: p.N}[p.BiasRows])
	}
	if p.R != nil {
		if p.R.dtype != p.C.dtype {
			panic(fmt.Sprintf("cuda: Gemm: residual is %v, C is %v", p.R.dtype, p.C.dtype))
		}
		if p.Ldr < p.N {
			panic("cuda: Gemm: ldr < n")
		}
		need(op, "R", p.R, (batch-1)*p.StrideR+(p.M-1)*p.Ldr+p.N)
	}
	if batch > 65535 {
		panic("cuda: Gemm: batch > 65535")
	}
	a := new(args)
	if gemmUsesTensorCores(p) {
		layout := "nn"
		if p.B.Trans {
			layout = "nt"
		}
		out := "of32"
		if p.C.dtype != kernels.F32 {
			out = "oh"
		}
		tile := 128
		if cdiv(p.M, 128)*cdiv(p.N, 128)*batch < d.sms {
			tile = 64
		}
		name := fmt.Sprintf("gemm_%s_%s_%s_%d", dtName(p.A.Buf.dtype), layout, out, tile)
		a.ptr(p.A.Buf).ptr(p.B.Buf).ptr(p.C).ptr(p.Bias).ptr(p.R).
			i32(p.M).i32(p.N).i32(p.K).i32(p.A.Stride).i32(p.B.Stride).i32(p.Ldc).i32(p.Ldr).
			i64(p.StrideA).i64(p.StrideB).i64(p.StrideC).i64(p.StrideR).
			f32(p.Alpha).f32(p.Beta).flag(p.BiasRows)
		threads := 256
		if tile == 64 {
			threads = 128
		}
		return d.queue(func() error {
			return d.launch("gemm", name, [3]int{cdiv(p.N, tile), cdiv(p.M, tile), batch}, threads, a)
		})
	}
	a.ptr(p.A.Buf).ptr(p.B.Buf).ptr(p.C).ptr(p.Bias).ptr(p.R).
		i32(p.M).i32(p.N).i32(p.K).i32(p.A.Stride).i32(p.B.Stride).i32(p.Ldc).i32(p.Ldr).
		i64(p.StrideA).i64(p.StrideB).i64(p.StrideC).i64(p.StrideR).
		f32(p.Alpha).f32(p.Beta).flag(p.BiasRows).
		dtype(p.A.Buf.dtype).dtype(p.B.Buf.dtype).dtype(p.C.dtype).flag(p.A.Trans).flag(p.B.Trans)
	return d.queue(func() error {
		return d.launch("gemm", "gemm_simt", [3]int{cdiv(p.N, 64), cdiv(p.M, 64), batch}, 256, a)
	})
}

// Conv2d computes the convolution of x [N, C, H, W] with w [K, C*R*S] into
// y [N, K, OutH, OutW], plus bias (F32, length K, may be nil); see
// kernels/cpu.Conv2dRef.
func (d *Device) Conv2d(p kernels.ConvParams, x *Buffer, w Mat, bias, y *Buffer) error {
	return d.Conv2dEx(p, x, w, bias, nil, y, false)
}

// Conv2dEx is Conv2d with an optional residual r (y's layout and dtype) added
// in the epilogue, and simt forcing the SIMT kernel. F16/BF16 x and w of the
// same dtype with 1x1 or 3x3 kernels run on tensor cores (y F32 or that dtype).
func (d *Device) Conv2dEx(p kernels.ConvParams, x *Buffer, w Mat, bias, r, y *Buffer, simt bool) error {
	const op = "Conv2d"
	if p.N < 0 || p.C < 1 || p.H < 1 || p.W < 1 || p.K < 1 || p.R < 1 || p.S < 1 ||
		p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		panic(fmt.Sprintf("cuda: Conv2d: invalid ConvParams %+v", p))
	}
	oh, ow := p.OutH(), p.OutW()
	if oh < 1 || ow < 1 {
		panic(fmt.Sprintf("cuda: Conv2d: empty output %dx%d for %+v", oh, ow, p))
	}
	if p.N == 0 {
		return nil
	}
	if w.Trans {
		panic("cuda: Conv2d: transposed weights")
	}
	crs := p.C * p.R * p.S
	if w.Stride < crs {
		panic("cuda: Conv2d: weight stride < C*R*S")
	}
	need(op, "x", x, p.N*p.C*p.H*p.W)
	need(op, "w", w.Buf, (p.K-1)*w.Stride+crs)
	need(op, "y", y, p.N*p.K*oh*ow)
	needF32(op, "bias", bias, p.K)
	if r != nil {
		if r.dtype != y.dtype {
			panic("cuda: Conv2d: residual dtype differs from y")
		}
		need(op, "residual", r, p.N*p.K*oh*ow)
	}
	if int64(p.N)*int64(oh)*int64(ow) >= 1<<31 || int64(p.N)*int64(p.C)*int64(p.H)*int64(p.W) >= 1<<40 {
		panic("cuda: Conv2d: problem too large")
	}
	npq := p.N * oh * ow
	a := new(args)
	tc := !simt && x.dtype != kernels.F32 && x.dtype == w.Buf.dtype && p.R == p.S && (p.R == 1 || p.R == 3) &&
		(y.dtype == kernels.F32 || y.dtype == x.dtype)
	if tc {
		out := "of32"
		if y.dtype != kernels.F32 {
			out = "oh"
		}
		name := fmt.Sprintf("conv2d_%s_k%d_%s", dtName(x.dtype), p.R, out)
		wvec := w.Buf.aligned16() && w.Stride%8 == 0 && crs%8 == 0
		a.ptr(x).ptr(w.Buf).ptr(bias).ptr(r).ptr(y).
			i32(p.N).i32(p.C).i32(p.H).i32(p.W).i32(p.K).i32(oh).i32(ow).
			i32(p.StrideH).i32(p.StrideW).i32(p.PadH).i32(p.PadW).i32(w.Stride).flag(wvec)
		return d.queue(func() error {
			return d.launch("conv", name, [3]int{cdiv(npq, 128), cdiv(p.K, 128), 1}, 256, a)
		})
	}
	a.ptr(x).ptr(w.Buf).ptr(bias).ptr(r).ptr(y).
		i32(p.N).i32(p.C).i32(p.H).i32(p.W).i32(p.K).i32(p.R).i32(p.S).i32(oh).i32(ow).
		i32(p.StrideH).i32(p.StrideW).i32(p.PadH).i32(p.PadW).i32(w.Stride).
		dtype(x.dtype).dtype(w.Buf.dtype).dtype(y.dtype)
	return d.queue(func() error {
		return d.launch("conv", "conv2d_simt", [3]int{cdiv(npq, 64), cdiv(p.K, 64), 1}, 256, a)
	})
}

// attnTensorCoreDims are the head dims with a tensor-core attention kernel.
var attnTensorCoreDims = map[int]bool{40: true, 64: true, 80: true, 160: true}

// Attention computes multi-head scaled-dot-product attention (see
// kernels/cpu.AttentionRef) with q, k, v, o of one dtype in the [B, seq, H*D]
// layout with row strides. F16/BF16 with D in {40, 64, 80, 160}, 16-byte
// aligned buffers and strides multiple of 8 use the tensor-core flash kernel;
// otherwise the SIMT kernel (D <= 256). o must not overlap q, k or v.
func (d *Device) Attention(p kernels.AttnParams, q, k, v, o *Buffer) error {
	return d.attention(p, q, k, v, o, false)
}

// AttentionSIMT is Attention forced onto the SIMT kernel (for checking).
func (d *Device) AttentionSIMT(p kernels.AttnParams, q, k, v, o *Buffer) error {
	return d.attention(p, q, k, v, o, true)
}

func (d *Device) attention(p kernels.AttnParams, q, k, v, o *Buffer, simt bool) error {
	const op = "Attention"
	if p.B < 0 || p.H < 0 || p.Sq < 0 || p.Sk < 0 || p.D < 1 {
		panic("cuda: Attention: negative size or D < 1 in AttnParams")
	}
	qs, ks, vs, os := p.Strides()
	hd := p.H * p.D
	if qs < hd || ks < hd || vs < hd || os < hd {
		panic("cuda: Attention: row stride smaller than H*D")
	}
	if p.B == 0 || p.H == 0 || p.Sq == 0 {
		return nil
	}
	dt := sameDType(op, q, k, v, o)
	rows := func(s, seq int) int {
		if seq == 0 {
			return 0
		}
		return (p.B*seq-1)*s + hd
	}
	need(op, "q", q, rows(qs, p.Sq))
	need(op, "o", o, rows(os, p.Sq))
	need(op, "k", k, rows(ks, p.Sk))
	need(op, "v", v, rows(vs, p.Sk))
	if p.H > 65535 || p.B > 65535 {
		panic("cuda: Attention: B or H > 65535")
	}
	a := new(args)
	tc := !simt && dt != kernels.F32 && attnTensorCoreDims[p.D] &&
		q.aligned16() && k.aligned16() && v.aligned16() && o.aligned16() &&
		qs%8 == 0 && ks%8 == 0 && vs%8 == 0 && os%8 == 0
	if tc {
		name := fmt.Sprintf("attention_%s_d%d", dtName(dt), p.D)
		a.ptr(q).ptr(k).ptr(v).ptr(o).i32(p.Sq).i32(p.Sk).i32(qs).i32(ks).i32(vs).i32(os).
			f32(p.Scale).flag(p.Causal)
		return d.queue(func() error {
			return d.launch("attention", name, [3]int{cdiv(p.Sq, 64), p.H, p.B}, 128, a)
		})
	}
	if p.D > 256 {
		panic(fmt.Sprintf("cuda: Attention: head dim %d > 256 has no kernel", p.D))
	}
	a.ptr(q).ptr(k).ptr(v).ptr(o).i32(p.Sq).i32(p.Sk).i32(p.D).i32(qs).i32(ks).i32(vs).i32(os).
		f32(p.Scale).flag(p.Causal)
	return d.queue(func() error {
		return d.launch("attention", "attention_simt_"+dtName(dt), [3]int{cdiv(p.Sq, 8), p.H, p.B}, 256, a)
	})
}

// groupNormSplits chooses how many blocks share one group.
func (d *Device) groupNormSplits(groupsTotal, cnt int) int {
	s := min(max(cdiv(cnt, 8192), 1), 64)
	for groupsTotal*s < 2*d.sms && s < 64 && cnt/(2*s) >= 1024 {
		s *= 2
	}
	return s
}

// GroupNorm normalises x [n, c, hw] over groups of c/groups channels, with
// optional fused SiLU (see kernels/cpu.GroupNormRef). x and y share a dtype;
// gamma and beta are F32 or nil. y may alias x.
func (d *Device) GroupNorm(x, y *Buffer, n, c, hw, groups int, eps float32, gamma, beta *Buffer, silu bool) error {
	const op = "GroupNorm"
	if n < 0 || c < 1 || hw < 1 || groups < 1 || c%groups != 0 {
		panic(fmt.Sprintf("cuda: GroupNorm: invalid sizes n=%d c=%d hw=%d groups=%d", n, c, hw, groups))
	}
	if n == 0 {
		return nil
	}
	dt := sameDType(op, x, y)
	need(op, "x", x, n*c*hw)
	need(op, "y", y, n*c*hw)
	needF32(op, "gamma", gamma, c)
	needF32(op, "beta", beta, c)
	ng := n * groups
	if ng > 65535 {
		panic("cuda: GroupNorm: n*groups > 65535")
	}
	cnt := c / groups * hw
	splits := d.groupNormSplits(ng, cnt)
	// The workspace is allocated here, when the work is queued, not when it
	// runs: frees take effect at once (see allocator), so a block allocated
	// at run time could be one that queued work still reads. Freeing it right
	// after queueing is safe: whoever gets it next queues after these kernels.
	ws, err := d.Alloc(kernels.F32, 4*splits*ng)
	if err != nil {
		return err
	}
	defer ws.Free()
	s := new(args).ptr(x).ptr(ws).i64(cnt).i32(splits)
	ap := new(args).ptr(x).ptr(y).ptr(ws).ptr(gamma).ptr(beta).i32(c).i32(hw).i32(groups).i32(splits).
		f32(eps).flag(silu)
	return d.queue(func() error {
		if err := d.launch("norm", "groupnorm_stats_"+dtName(dt), [3]int{splits, ng, 1}, 256, s); err != nil {
			return err
		}
		return d.launch("norm", "groupnorm_apply_"+dtName(dt), [3]int{splits, ng, 1}, 256, ap)
	})
}

// LayerNorm normalises each row of x [rows, cols] (see kernels/cpu.LayerNormRef).
// gamma, beta: F32 or nil. y may alias x.
func (d *Device) LayerNorm(x, y *Buffer, rows, cols int, eps float32, gamma, beta *Buffer) error {
	const op = "LayerNorm"
	if rows < 0 || cols < 1 {
		panic("cuda: LayerNorm: invalid sizes")
	}
	if rows == 0 {
		return nil
	}
	dt := sameDType(op, x, y)
	need(op, "x", x, rows*cols)
	need(op, "y", y, rows*cols)
	needF32(op, "gamma", gamma, cols)
	needF32(op, "beta", beta, cols)
	a := new(args).ptr(x).ptr(y).i32(rows).i32(cols).f32(eps).ptr(gamma).ptr(beta)
	return d.queue(func() error { return d.launch("norm", "layernorm_"+dtName(dt), [3]int{cdiv(rows, 8), 1, 1}, 256, a) })
}

// Softmax computes a softmax over each row of x [rows, cols] (see kernels/cpu.SoftmaxRef). y may alias x.
func (d *Device) Softmax(x, y *Buffer, rows, cols int) error {
	const op = "Softmax"
	if rows < 0 || cols < 1 {
		panic("cuda: Softmax: invalid sizes")
	}
	if rows == 0 {
		return nil
	}
	dt := sameDType(op, x, y)
	need(op, "x", x, rows*cols)
	need(op, "y", y, rows*cols)
	a := new(args).ptr(x).ptr(y).i32(rows).i32(cols)
	return d.queue(func() error { return d.launch("norm", "softmax_"+dtName(dt), [3]int{cdiv(rows, 8), 1, 1}, 256, a) })
}

// ewGrid is the grid of a grid-stride elementwise kernel over n elements.
func (d *Device) ewGrid(n int) [3]int {
	return [3]int{max(1, min(cdiv(n, 256), 32*max(d.sms, 1))), 1, 1}
}

// Activate applies f elementwise to the first n elements: y[i] = f(x[i])
// (see kernels/cpu.ActivateRef). y may alias x.
func (d *Device) Activate(f kernels.Activation, x, y *Buffer, n int) error {
	dt := sameDType("Activate", x, y)
	if n < 0 {
		panic(fmt.Sprintf("cuda: Activate: negative count %d", n))
	}
	need("Activate", "x", x, n)
	need("Activate", "y", y, n)
	if n == 0 {
		return nil
	}
	a := new(args).i32(int(f)).ptr(x).ptr(y).i64(n)
	return d.queue(func() error { return d.launch("elementwise", "act_"+dtName(dt), d.ewGrid(n), 256, a) })
}

// GEGLU computes y [rows, d] = x[:, :d] * gelu(x[:, d:]) for x [rows, 2d] (see kernels/cpu.GEGLURef).
func (d *Device) GEGLU(x, y *Buffer, rows, dim int) error {
	dt := sameDType("GEGLU", x, y)
	need("GEGLU", "x", x, rows*2*dim)
	need("GEGLU", "y", y, rows*dim)
	if rows*dim == 0 {
		return nil
	}
	a := new(args).ptr(x).ptr(y).i32(rows).i32(dim)
	return d.queue(func() error { return d.launch("elementwise", "geglu_"+dtName(dt), d.ewGrid(rows*dim), 256, a) })
}

// Add computes y[i] = (a[i] + b[i]) * scale for i < y.Len() (residual adds;
// scale is diffusers' output_scale_factor reciprocal, usually 1). y may alias a or b.
func (d *Device) Add(a, b, y *Buffer, scale float32) error {
	dt := sameDType("Add", a, b, y)
	n := y.n
	need("Add", "a", a, n)
	need("Add", "b", b, n)
	if n == 0 {
		return nil
	}
	ar := new(args).ptr(a).ptr(b).ptr(y).i64(n).f32(scale)
	return d.queue(func() error { return d.launch("elementwise", "add_"+dtName(dt), d.ewGrid(n), 256, ar) })
}

// AddBroadcast computes y[i] = x[i] + b[(i/inner) % nb] for i < y.Len(): a
// per-channel bias over [N, C, HW] is inner = HW, nb = C; a per-sample channel
// vector (time embedding [N, C]) is inner = HW, nb = N*C. b may have any dtype.
func (d *Device) AddBroadcast(x, b, y *Buffer, inner, nb int) error {
	dt := sameDType("AddBroadcast", x, y)
	n := y.n
	need("AddBroadcast", "x", x, n)
	need("AddBroadcast", "b", b, nb)
	if inner < 1 || nb < 1 {
		panic("cuda: AddBroadcast: inner and nb must be >= 1")
	}
	if n == 0 {
		return nil
	}
	a := new(args).ptr(x).ptr(b).ptr(y).i64(n).i64(inner).i64(nb).dtype(b.dtype)
	return d.queue(func() error { return d.launch("elementwise", "add_bcast_"+dtName(dt), d.ewGrid(n), 256, a) })
}

// Upsample2x is nearest-neighbour 2x upsampling of x [nc, h, w] into y [nc, 2h, 2w]
// (see kernels/cpu.Upsample2xRef).
func (d *Device) Upsample2x(x, y *Buffer, nc, h, w int) error {
	dt := sameDType("Upsample2x", x, y)
	need("Upsample2x", "x", x, nc*h*w)
	need("Upsample2x", "y", y, nc*4*h*w)
	if nc*h*w == 0 {
		return nil
	}
	a := new(args).ptr(x).ptr(y).i32(nc).i32(h).i32(w)
	return d.queue(func() error { return d.launch("elementwise", "upsample2x_"+dtName(dt), d.ewGrid(4*nc*h*w), 256, a) })
}

// Concat concatenates a [outer, ca, inner] and b [outer, cb, inner] along the
// middle axis into y [outer, ca+cb, inner] (channel concat of NCHW tensors).
func (d *Device) Concat(a, b, y *Buffer, outer, ca, cb, inner int) error {
	dt := sameDType("Concat", a, b, y)
	need("Concat", "a", a, outer*ca*inner)
	need("Concat", "b", b, outer*cb*inner)
	n := outer * (ca + cb) * inner
	need("Concat", "y", y, n)
	if n == 0 {
		return nil
	}
	ar := new(args).ptr(a).ptr(b).ptr(y).i32(outer).i32(ca).i32(cb).i64(inner)
	return d.queue(func() error { return d.launch("elementwise", "concat_"+dtName(dt), d.ewGrid(n), 256, ar) })
}

// TimestepEmbedding writes the sinusoidal embedding of the n timesteps t
// (F32) into out [n, dim] (F32); see kernels/cpu.TimestepEmbeddingRef.
func (d *Device) TimestepEmbedding(t *Buffer, n, dim int, flipSinToCos bool, shift, scale, maxPeriod float32, out *Buffer) error {
	if n < 0 || dim < 0 {
		panic(fmt.Sprintf("cuda: TimestepEmbedding: negative size n=%d dim=%d", n, dim))
	}
	need("TimestepEmbedding", "t", t, n)
	need("TimestepEmbedding", "out", out, n*dim)
	needF32("TimestepEmbedding", "t", t, n)
	needF32("TimestepEmbedding", "out", out, n*dim)
	if n*dim == 0 {
		return nil
	}
	a := new(args).ptr(t).ptr(out).i32(n).i32(dim).flag(flipSinToCos).f32(shift).f32(scale).f32(maxPeriod)
	return d.queue(func() error {
		return d.launch("elementwise", "timestep_embedding_f32", d.ewGrid(n*dim), 256, a)
	})
}

// Convert converts the first n elements of src into the first n of dst, in
// dst's dtype (round to nearest even, as kernels/cpu's F32ToF16/F32ToBF16).
// Equal dtypes copy.
func (d *Device) Convert(src, dst *Buffer, n int) error {
	if n < 0 {
		panic(fmt.Sprintf("cuda: Convert: negative count %d", n))
	}
	need("Convert", "src", src, n)
	need("Convert", "dst", dst, n)
	if n == 0 {
		return nil
	}
	if src.dtype == dst.dtype {
		return d.Copy(dst, src, n)
	}
	name := fmt.Sprintf("convert_%s_to_%s", dtName(src.dtype), dtName(dst.dtype))
	a := new(args).ptr(src).ptr(dst).i64(n)
	return d.queue(func() error { return d.launch("elementwise", name, d.ewGrid(n), 256, a) })
}

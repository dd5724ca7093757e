package tensor

import (
	"math"
	"math/rand"
	"testing"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// naiveMatMul computes torch.matmul for rank >= 2 operands with At.
func naiveMatMul(a, b *Tensor) ([]float32, Shape) {
	m, k, n := a.Dim(-2), a.Dim(-1), b.Dim(-1)
	bs := BroadcastShapes(a.shape[:a.Rank()-2], b.shape[:b.Rank()-2])
	out := append(bs.Clone(), m, n)
	var res []float32
	eachIndex(out, func(idx []int) {
		bi := idx[:len(bs)]
		ia := append(bcastIndex(bi, a.shape[:a.Rank()-2]), idx[len(bs)], 0)
		ib := append(bcastIndex(bi, b.shape[:b.Rank()-2]), 0, idx[len(bs)+1])
		var s float64
		for p := 0; p < k; p++ {
			ia[len(ia)-1] = p
			ib[len(ib)-2] = p
			s += float64(a.At(ia...)) * float64(b.At(ib...))
		}
		res = append(res, float32(s))
	})
	return res, out
}

func TestMatMulHand(t *testing.T) {
	a := FromFloat32([]float32{1, 2, 3, 4}, 2, 2)
	b := FromFloat32([]float32{5, 6, 7, 8}, 2, 2)
	requireClose(t, "2x2", values(a.MatMul(b)), []float32{19, 22, 43, 50}, 0, 0)
	// a^T b without a copy: [[1,3],[2,4]] x [[5,6],[7,8]] = [[26,30],[38,44]]
	requireClose(t, "a^T b", values(a.Transpose(0, 1).MatMul(b)), []float32{26, 30, 38, 44}, 0, 0)
	// 1-D operands: vector-matrix and dot product.
	v := FromFloat32([]float32{1, 1})
	r := v.MatMul(b)
	requireShape(t, r, 2)
	requireClose(t, "vec mat", values(r), []float32{12, 14}, 0, 0)
	d := v.MatMul(v)
	if d.Rank() != 0 || d.Item() != 2 {
		t.Fatalf("dot %v", d)
	}
	requirePanic(t, "inner", func() { a.MatMul(Zeros(F32, 3, 2)) })
}

func TestMatMulBatchedBroadcast(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	cases := []struct{ a, b []int }{
		{[]int{3, 4, 5}, []int{3, 5, 6}},       // plain bmm
		{[]int{2, 3, 4, 5}, []int{5, 6}},       // 2-D weight broadcast
		{[]int{4, 5}, []int{2, 3, 5, 6}},       // 2-D left operand
		{[]int{2, 1, 4, 5}, []int{1, 3, 5, 6}}, // both broadcast: no single batch stride
		{[]int{1, 1, 7}, []int{2, 7, 1}},
		{[]int{2, 33, 65}, []int{2, 65, 17}},
	}
	for _, c := range cases {
		a, b := randT(r, c.a...), randT(r, c.b...)
		want, shape := naiveMatMul(a, b)
		got := a.MatMul(b)
		requireShape(t, got, shape...)
		requireClose(t, "matmul", values(got), want, 1e-5, 1e-5)
		// Non-contiguous operands.
		got = nonContig(a).MatMul(nonContig(b))
		requireClose(t, "matmul strided", values(got), want, 1e-5, 1e-5)
	}
}

func TestMatMulTransposedNoCopy(t *testing.T) {
	r := rand.New(rand.NewSource(7))
	// q [B, S, D] @ k^T: k [B, S, D] transposed is [B, D, S] with strides (S*D, 1, D).
	q, k := randT(r, 3, 9, 8), randT(r, 3, 11, 8)
	kt := k.Transpose(-2, -1)
	if s, tr, ok := matLayout(kt, 8, 11); !ok || !tr || s != 8 {
		t.Fatalf("transposed view not usable in place: stride %d trans %v ok %v", s, tr, ok)
	}
	if st, ok := batchStride(kt.shape, kt.strides); !ok || st != 88 {
		t.Fatalf("batch stride %d %v", st, ok)
	}
	want, _ := naiveMatMul(q, kt)
	before := GetPoolStats()
	got := q.MatMul(kt)
	after := GetPoolStats()
	// Only the output is allocated: no contiguous copy of kt.
	if n := (after.Hits + after.Misses) - (before.Hits + before.Misses); n != 1 {
		t.Fatalf("MatMul with a transposed view made %d allocations, want 1 (the output)", n)
	}
	requireClose(t, "q k^T", values(got), want, 1e-5, 1e-5)
}

func TestMatMulHalfWeights(t *testing.T) {
	r := rand.New(rand.NewSource(8))
	a := randT(r, 2, 5, 16)
	w := randT(r, 16, 12)
	for _, dt := range []DType{F16, BF16} {
		wh := w.To(dt)
		want, _ := naiveMatMul(a, wh) // At reads the rounded 16-bit values
		requireClose(t, "matmul "+dt.String(), values(a.MatMul(wh)), want, 1e-5, 1e-5)
		// the same weight stored as [12, 16] and used through a transposed view
		wt := w.T2().Contiguous().To(dt).T2()
		requireClose(t, "matmul T "+dt.String(), values(a.MatMul(wt)), want, 1e-5, 1e-5)
	}
}

func TestLinear(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	x := randT(r, 2, 3, 10)
	w := randT(r, 7, 10)
	b := randT(r, 7)
	naive := func(x, w, b *Tensor) []float32 {
		var out []float32
		eachIndex(Shape{2, 3, 7}, func(idx []int) {
			var s float64
			if b != nil {
				s = float64(b.At(idx[2]))
			}
			for p := 0; p < 10; p++ {
				s += float64(x.At(idx[0], idx[1], p)) * float64(w.At(idx[2], p))
			}
			out = append(out, float32(s))
		})
		return out
	}
	for _, dt := range []DType{F32, F16, BF16} {
		wd := w.To(dt)
		got := Linear(x, wd, b)
		requireShape(t, got, 2, 3, 7)
		requireClose(t, "linear "+dt.String(), values(got), naive(x, wd, b), 1e-5, 1e-5)
		requireClose(t, "linear nobias "+dt.String(), values(Linear(nonContig(x), wd, nil)), naive(x, wd, nil), 1e-5, 1e-5)
	}
	// Weight given as a transposed view of [in, out].
	wt := w.Transpose(0, 1).Contiguous().Transpose(0, 1)
	requireClose(t, "linear wT", values(Linear(x, wt, b)), naive(x, w, b), 1e-5, 1e-5)
	// x as a slice of a fused projection (rows not dense) is used in place.
	fused := randT(r, 2, 3, 30)
	xs := fused.Narrow(-1, 10, 10)
	requireClose(t, "linear on slice", values(Linear(xs, w, b)), naive(xs, w, b), 1e-5, 1e-5)
	requirePanic(t, "linear shapes", func() { Linear(x, Zeros(F32, 7, 9), nil) })
}

func TestConv2d(t *testing.T) {
	r := rand.New(rand.NewSource(10))
	cases := []struct {
		n, c, h, w, k, kh, kw int
		o                     ConvOpts
	}{
		{1, 3, 8, 8, 4, 3, 3, ConvSquare(1, 1)},
		{2, 4, 9, 7, 5, 3, 3, ConvSquare(2, 1)},
		{1, 6, 5, 5, 3, 1, 1, ConvOpts{}},
		{2, 2, 6, 8, 3, 3, 2, ConvOpts{StrideH: 1, StrideW: 2, PadH: 0, PadW: 1}},
	}
	for _, c := range cases {
		x := randT(r, c.n, c.c, c.h, c.w)
		w := randT(r, c.k, c.c, c.kh, c.kw)
		b := randT(r, c.k)
		for _, dt := range []DType{F32, F16} {
			wd := w.To(dt)
			got := Conv2d(nonContig(x), wd, b, c.o)
			// Independent naive loop over At.
			sh, sw := max(c.o.StrideH, 1), max(c.o.StrideW, 1)
			oh := (c.h+2*c.o.PadH-c.kh)/sh + 1
			ow := (c.w+2*c.o.PadW-c.kw)/sw + 1
			requireShape(t, got, c.n, c.k, oh, ow)
			var want []float32
			eachIndex(Shape{c.n, c.k, oh, ow}, func(i []int) {
				s := float64(b.At(i[1]))
				for ch := 0; ch < c.c; ch++ {
					for p := 0; p < c.kh; p++ {
						for q := 0; q < c.kw; q++ {
							ih, iw := i[2]*sh-c.o.PadH+p, i[3]*sw-c.o.PadW+q
							if ih < 0 || iw < 0 || ih >= c.h || iw >= c.w {
								continue
							}
							s += float64(x.At(i[0], ch, ih, iw)) * float64(wd.At(i[1], ch, p, q))
						}
					}
				}
				want = append(want, float32(s))
			})
			requireClose(t, "conv2d "+dt.String(), values(got), want, 1e-4, 1e-4)
		}
	}
	requirePanic(t, "conv channels", func() { Conv2d(Zeros(F32, 1, 3, 4, 4), Zeros(F32, 2, 2, 3, 3), nil, ConvOpts{}) })
}

func TestNorms(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	x := randT(r, 2, 6, 3, 4)
	g, b := randT(r, 6), randT(r, 6)
	for _, silu := range []bool{false, true} {
		got := GroupNorm(nonContig(x), 3, g, b, 1e-5, silu)
		// Independent: normalise each (n, group) with float64 loops.
		want := make([]float32, x.Numel())
		xv := values(x)
		for n := 0; n < 2; n++ {
			for gr := 0; gr < 3; gr++ {
				base := (n*6 + gr*2) * 12
				var m, q float64
				for i := 0; i < 24; i++ {
					m += float64(xv[base+i])
				}
				m /= 24
				for i := 0; i < 24; i++ {
					q += (float64(xv[base+i]) - m) * (float64(xv[base+i]) - m)
				}
				inv := 1 / math.Sqrt(q/24+1e-5)
				for i := 0; i < 24; i++ {
					ch := gr*2 + i/12
					v := (float64(xv[base+i])-m)*inv*float64(g.At(ch)) + float64(b.At(ch))
					if silu {
						v = v / (1 + math.Exp(-v))
					}
					want[base+i] = float32(v)
				}
			}
		}
		requireClose(t, "groupnorm", values(got), want, 1e-5, 1e-4)
	}
	// LayerNorm on a transposed input, with F16 gamma.
	y := randT(r, 5, 8).Transpose(0, 1) // [8, 5]
	lg := randT(r, 5).To(F16)
	got := LayerNorm(y, lg, nil, 1e-5)
	yv := values(y)
	want := make([]float32, 40)
	for row := 0; row < 8; row++ {
		var m, q float64
		for j := 0; j < 5; j++ {
			m += float64(yv[row*5+j])
		}
		m /= 5
		for j := 0; j < 5; j++ {
			q += (float64(yv[row*5+j]) - m) * (float64(yv[row*5+j]) - m)
		}
		for j := 0; j < 5; j++ {
			want[row*5+j] = float32((float64(yv[row*5+j]) - m) / math.Sqrt(q/5+1e-5) * float64(lg.At(j)))
		}
	}
	requireClose(t, "layernorm", values(got), want, 1e-5, 1e-4)
	// Softmax by hand: softmax([0, ln 3]) = [1/4, 3/4].
	s := Softmax(FromFloat32([]float32{0, float32(math.Log(3)), 5, 5}, 2, 2))
	requireClose(t, "softmax", values(s), []float32{0.25, 0.75, 0.5, 0.5}, 1e-6, 1e-6)
	requirePanic(t, "groupnorm groups", func() { GroupNorm(x, 4, nil, nil, 1e-5, false) })
}

func TestActivations(t *testing.T) {
	r := rand.New(rand.NewSource(12))
	x := nonContig(randT(r, 3, 17))
	xv := values(x)
	for _, c := range []struct {
		name string
		f    func(*Tensor) *Tensor
		a    cpu.Activation
	}{{"silu", SiLU, cpu.SiLU}, {"gelu", GELU, cpu.GELU}, {"gelu_tanh", GELUTanh, cpu.GELUTanh}, {"quick_gelu", QuickGELU, cpu.QuickGELU}} {
		want := make([]float32, len(xv))
		for i, v := range xv {
			want[i] = float32(c.a.ActivateScalar(float64(v)))
		}
		requireClose(t, c.name, values(c.f(x)), want, 1e-6, 1e-5)
	}
	// Hand value: silu(0) = 0, gelu(0) = 0, silu(large) = large.
	requireClose(t, "silu hand", values(SiLU(FromFloat32([]float32{0, 30}))), []float32{0, 30}, 1e-6, 1e-6)
	// GEGLU: [a, g] -> a * gelu(g).
	gx := randT(r, 2, 3, 8)
	got := GEGLU(gx)
	requireShape(t, got, 2, 3, 4)
	var want []float32
	eachIndex(Shape{2, 3, 4}, func(i []int) {
		a := float64(gx.At(i[0], i[1], i[2]))
		g := float64(gx.At(i[0], i[1], i[2]+4))
		want = append(want, float32(a*0.5*g*(1+math.Erf(g/math.Sqrt2))))
	})
	requireClose(t, "geglu", values(got), want, 1e-6, 1e-5)
	// Upsample: each pixel repeated 2x2.
	u := Upsample2xNearest(FromFloat32([]float32{1, 2, 3, 4}, 1, 1, 2, 2))
	requireShape(t, u, 1, 1, 4, 4)
	requireClose(t, "upsample", values(u), []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}, 0, 0)
}

func TestTimestepEmbedding(t *testing.T) {
	// dim 4, half 2, shift 1: freqs exp(-ln(10000)*j/1) = 1, 1e-4.
	// t = 2: args [2, 2e-4]; flip: [cos 2, cos 2e-4, sin 2, sin 2e-4].
	ts := FromInt64([]int64{0, 2})
	e := TimestepEmbedding(ts, 4, true, 1, 1, 10000)
	requireShape(t, e, 2, 4)
	want := []float32{1, 1, 0, 0, float32(math.Cos(2)), float32(math.Cos(2e-4)), float32(math.Sin(2)), float32(math.Sin(2e-4))}
	requireClose(t, "timestep", values(e), want, 1e-6, 1e-5)
}

func TestAttention(t *testing.T) {
	r := rand.New(rand.NewSource(13))
	b, sq, sk, h, d := 2, 5, 7, 3, 4
	naive := func(q, k, v *Tensor, causal bool, scale float64) []float32 {
		out := make([]float32, b*sq*h*d)
		for bb := 0; bb < b; bb++ {
			for hh := 0; hh < h; hh++ {
				for i := 0; i < q.Dim(1); i++ {
					n := k.Dim(1)
					if causal {
						n = min(n, i+k.Dim(1)-q.Dim(1)+1)
					}
					s := make([]float64, n)
					mx := math.Inf(-1)
					for j := range s {
						for e := 0; e < d; e++ {
							s[j] += float64(q.At(bb, i, hh*d+e)) * float64(k.At(bb, j, hh*d+e))
						}
						s[j] *= scale
						mx = math.Max(mx, s[j])
					}
					var sum float64
					for j := range s {
						s[j] = math.Exp(s[j] - mx)
						sum += s[j]
					}
					for e := 0; e < d; e++ {
						var acc float64
						for j := range s {
							acc += s[j] * float64(v.At(bb, j, hh*d+e))
						}
						out[(bb*q.Dim(1)+i)*h*d+hh*d+e] = float32(acc / sum)
					}
				}
			}
		}
		return out
	}
	q, k, v := randT(r, b, sq, h*d), randT(r, b, sk, h*d), randT(r, b, sk, h*d)
	got := Attention(q, k, v, h, 0, false)
	requireShape(t, got, b, sq, h*d)
	requireClose(t, "attention", values(got), naive(q, k, v, false, 0.5), 1e-5, 1e-4)
	requireClose(t, "attention causal", values(Attention(q, k, v, h, 0.3, true)), naive(q, k, v, true, 0.3), 1e-5, 1e-4)
	// Self-attention on slices of a fused qkv projection [B, S, 3*H*D].
	qkv := randT(r, b, sq, 3*h*d)
	parts := qkv.Chunk(3, -1)
	if s, rs, _ := attnOperand(parts[1]); s != parts[1] || rs != 3*h*d {
		t.Fatal("qkv slice was copied")
	}
	got = Attention(parts[0], parts[1], parts[2], h, 0, false)
	requireClose(t, "attention fused qkv", values(got), naive(parts[0], parts[1], parts[2], false, 0.5), 1e-5, 1e-4)
	// Non-contiguous (permuted) operands.
	qp := randT(r, sq, b, h*d).Permute(1, 0, 2)
	got = Attention(qp, k, v, h, 0, false)
	requireClose(t, "attention permuted", values(got), naive(qp, k, v, false, 0.5), 1e-5, 1e-4)
}

func TestEmbedding(t *testing.T) {
	w := FromFloat32([]float32{0, 1, 10, 11, 20, 21}, 3, 2).To(BF16)
	e := Embedding(FromInt64([]int64{2, 0, 2}, 1, 3), w)
	requireShape(t, e, 1, 3, 2)
	requireClose(t, "embedding", values(e), []float32{20, 21, 0, 1, 20, 21}, 0, 0)
	requirePanic(t, "embedding range", func() { Embedding(FromInt64([]int64{3}), w) })
}

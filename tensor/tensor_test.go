package tensor

import (
	"math"
	"math/rand"
	"testing"
)

func TestConstructors(t *testing.T) {
	z := Zeros(F32, 2, 3)
	requireShape(t, z, 2, 3)
	requireClose(t, "zeros", values(z), make([]float32, 6), 0, 0)
	requireClose(t, "ones", values(Ones(F16, 3)), []float32{1, 1, 1}, 0, 0)
	requireClose(t, "full", values(Full(BF16, 2.5, 2)), []float32{2.5, 2.5}, 0, 0)
	requireClose(t, "arange", values(Arange(F32, 0, 1, 0.25)), []float32{0, 0.25, 0.5, 0.75}, 0, 0)
	requireClose(t, "arange neg", values(Arange(F32, 3, 0, -1)), []float32{3, 2, 1}, 0, 0)
	a := Arange(I64, 0, 5, 1)
	if a.DType() != I64 || len(a.Int64s()) != 5 || a.Int64s()[4] != 4 {
		t.Fatalf("arange i64: %v", a)
	}
	data := []float32{1, 2, 3, 4, 5, 6}
	x := FromFloat32(data, 2, 3)
	data[4] = 50
	if x.At(1, 1) != 50 {
		t.Fatal("FromFloat32 does not adopt its slice")
	}
	if s := Scalar(3); s.Rank() != 0 || s.Item() != 3 {
		t.Fatalf("scalar: %v", s)
	}
	if x.String() == "" || Shape([]int{2, 3}).String() != "[2, 3]" {
		t.Fatal("String")
	}
	requirePanic(t, "FromFloat32 count", func() { FromFloat32(data, 4, 2) })
	requirePanic(t, "FromHalfBits dtype", func() { FromHalfBits([]uint16{1}, F32) })
}

func TestViews(t *testing.T) {
	x := FromFloat32([]float32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 2, 3, 2) // x[i,j,k] = 6i+2j+k
	v := x.Reshape(3, -1)
	requireShape(t, v, 3, 4)
	if !v.SharesStorage(x) || v.At(2, 1) != 9 {
		t.Fatal("reshape of contiguous is a view")
	}
	p := x.Permute(2, 0, 1) // p[k,i,j] = x[i,j,k]
	requireShape(t, p, 2, 2, 3)
	if p.At(1, 1, 2) != 6+4+1 {
		t.Fatalf("permute: %v", p.At(1, 1, 2))
	}
	requirePanic(t, "View non-viewable", func() { p.View(4, 3) })
	r := p.Reshape(4, 3) // copies
	if r.SharesStorage(x) {
		t.Fatal("Reshape of permuted must copy")
	}
	requireClose(t, "reshape copy", values(r), values(p), 0, 0)
	// view that is possible on a non-contiguous tensor: split a dim of a transpose
	tr := x.Transpose(0, 2) // [2, 3, 2], tr[k,j,i]
	sv := tr.View(2, 3, 2, 1)
	if !sv.SharesStorage(x) || sv.At(1, 2, 1, 0) != x.At(1, 2, 1) {
		t.Fatal("view with unit dim")
	}
	// Slices, views of views.
	s := x.Slice(1, 1, 3) // [2, 2, 2], s[i,j,k] = x[i,j+1,k]
	requireShape(t, s, 2, 2, 2)
	ss := s.Select(0, -1).Narrow(0, 1, 1) // [1, 2] = x[1, 2, :]
	requireClose(t, "view of view", values(ss), []float32{10, 11}, 0, 0)
	ss.CopyFrom(FromFloat32([]float32{-1, -2}, 2))
	if x.At(1, 2, 0) != -1 || x.At(1, 2, 1) != -2 {
		t.Fatal("write through view of view")
	}
	e := FromFloat32([]float32{1, 2, 3}, 3, 1).Expand(2, -1, 4)
	requireShape(t, e, 2, 3, 4)
	if e.At(1, 2, 3) != 3 || e.Strides()[0] != 0 || e.Strides()[2] != 0 {
		t.Fatalf("expand %v", e.Strides())
	}
	requirePanic(t, "write to expand", func() { e.CopyFrom(Zeros(F32, 1)) })
	u := x.Unsqueeze(1).Unsqueeze(-1)
	requireShape(t, u, 2, 1, 3, 2, 1)
	requireShape(t, u.Squeeze(), 2, 3, 2)
	requireShape(t, u.Squeeze(1), 2, 3, 2, 1)
	requirePanic(t, "squeeze non-1", func() { u.Squeeze(0) })
	requireShape(t, x.Flatten(1, -1), 2, 6)
	requireShape(t, x.Flatten(0, 1), 6, 2)
	c := p.Contiguous()
	if !c.IsContiguous() || c.SharesStorage(x) {
		t.Fatal("Contiguous of permuted copies")
	}
	requireClose(t, "contiguous", values(c), values(p), 0, 0)
	c2 := x.Contiguous()
	if !c2.SharesStorage(x) {
		t.Fatal("Contiguous of contiguous shares")
	}
	requirePanic(t, "slice range", func() { x.Slice(1, 2, 4) })
	requirePanic(t, "dim range", func() { x.Sum(3, false) })
}

func TestCatChunkSplit(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	x := randT(r, 3, 7, 4)
	for dim := 0; dim < 3; dim++ {
		parts := x.Chunk(3, dim)
		back := Cat(dim, parts...)
		requireClose(t, "cat(chunk)", values(back), values(x), 0, 0)
		sizes := []int{1, x.Dim(dim) - 1}
		sp := x.Split(sizes, dim)
		requireShape(t, sp[0], replace(x.Shape(), dim, 1)...)
		back = Cat(dim, sp...)
		requireClose(t, "cat(split)", values(back), values(x), 0, 0)
	}
	if n := len(x.Chunk(3, 1)); n != 3 {
		t.Fatalf("chunk 7 in 3: %d parts", n)
	}
	if n := len(x.Chunk(4, 0)); n != 3 {
		t.Fatalf("chunk 3 in 4: %d parts (torch gives 3)", n)
	}
	// Cat of non-contiguous inputs and F16.
	a := nonContig(randT(r, 2, 3))
	b := randT(r, 2, 5)
	c := Cat(1, a, b)
	requireShape(t, c, 2, 8)
	if c.At(1, 2) != a.At(1, 2) || c.At(1, 4) != b.At(1, 1) {
		t.Fatal("cat values")
	}
	h := Cat(0, Ones(F16, 1, 2), Zeros(F16, 2, 2))
	if h.DType() != F16 {
		t.Fatal("cat keeps dtype")
	}
	requireClose(t, "cat f16", values(h), []float32{1, 1, 0, 0, 0, 0}, 0, 0)
	st := Stack(0, a, a)
	requireShape(t, st, 2, 2, 3)
	requirePanic(t, "cat shapes", func() { Cat(0, a, b) })
	requirePanic(t, "split sum", func() { x.Split([]int{1, 1}, 0) })
}

func replace(s Shape, d, v int) []int {
	s[d] = v
	return s
}

func TestElementwiseBroadcast(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	cases := [][2][]int{
		{{2, 3, 4}, {2, 3, 4}},
		{{2, 3, 4}, {4}},
		{{2, 1, 4}, {3, 1}},
		{{1}, {5, 2}},
		{{}, {3}},
		{{4, 1, 3, 1}, {1, 2, 1, 5}},
		{{200, 300}, {300}}, // large enough to run in parallel
	}
	ops := []struct {
		name string
		f    func(a, b *Tensor) *Tensor
		ref  func(a, b float32) float32
	}{
		{"add", (*Tensor).Add, func(a, b float32) float32 { return a + b }},
		{"sub", (*Tensor).Sub, func(a, b float32) float32 { return a - b }},
		{"mul", (*Tensor).Mul, func(a, b float32) float32 { return a * b }},
		{"div", (*Tensor).Div, func(a, b float32) float32 { return a / b }},
		{"max", (*Tensor).Maximum, func(a, b float32) float32 { return float32(math.Max(float64(a), float64(b))) }},
		{"min", (*Tensor).Minimum, func(a, b float32) float32 { return float32(math.Min(float64(a), float64(b))) }},
	}
	for _, c := range cases {
		for _, nc := range []bool{false, true} {
			a, b := randT(r, c[0]...), randT(r, c[1]...)
			if nc {
				a, b = nonContig(a), nonContig(b)
			}
			shape := BroadcastShapes(a.Shape(), b.Shape())
			for _, op := range ops {
				got := op.f(a, b)
				requireShape(t, got, shape...)
				var want []float32
				eachIndex(shape, func(idx []int) {
					want = append(want, op.ref(a.At(bcastIndex(idx, a.shape)...), b.At(bcastIndex(idx, b.shape)...)))
				})
				requireClose(t, op.name, values(got), want, 0, 0)
			}
		}
	}
	requirePanic(t, "bad broadcast", func() { Zeros(F32, 2, 3).Add(Zeros(F32, 2)) })
	// 16-bit and I64 inputs are converted.
	h := FromFloat32([]float32{1, 2}).To(F16)
	got := h.Add(FromInt64([]int64{10, 20}))
	if got.DType() != F32 {
		t.Fatal("result dtype")
	}
	requireClose(t, "mixed dtypes", values(got), []float32{11, 22}, 0, 0)
}

func TestInPlace(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	x := randT(r, 4, 5)
	orig := values(x)
	b := randT(r, 5)
	x.AddInPlace(b)
	var want []float32
	eachIndex(Shape{4, 5}, func(idx []int) { want = append(want, orig[idx[0]*5+idx[1]]+b.At(idx[1])) })
	requireClose(t, "AddInPlace", values(x), want, 0, 0)
	// In place on a strided view writes only the view.
	y := Zeros(F32, 3, 4)
	v := y.Transpose(0, 1).Slice(0, 1, 3) // [2, 3], y[:, 1:3]^T
	v.AddScalarInPlace(2).MulScalarInPlace(3).MulInPlace(FromFloat32([]float32{1, 2, 3}, 3))
	want = []float32{0, 6, 6, 0, 0, 12, 12, 0, 0, 18, 18, 0}
	requireClose(t, "in place on view", values(y), want, 0, 0)
	x.SubInPlace(x)
	requireClose(t, "x -= x", values(x), make([]float32, 20), 0, 0)
	requirePanic(t, "in place shape", func() { Zeros(F32, 3).AddInPlace(Zeros(F32, 2, 3)) })
	requirePanic(t, "in place dtype", func() { Zeros(F16, 3).AddInPlace(Zeros(F32, 3)) })
}

func TestUnary(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	x := nonContig(randT(r, 3, 4, 5))
	pos := x.Abs().AddScalar(0.1)
	cases := []struct {
		name string
		got  *Tensor
		in   *Tensor
		ref  func(float64) float64
	}{
		{"neg", x.Neg(), x, func(v float64) float64 { return -v }},
		{"abs", x.Abs(), x, math.Abs},
		{"exp", x.Exp(), x, math.Exp},
		{"log", pos.Log(), pos, math.Log},
		{"sqrt", pos.Sqrt(), pos, math.Sqrt},
		{"rsqrt", pos.Rsqrt(), pos, func(v float64) float64 { return 1 / math.Sqrt(v) }},
		{"sin", x.Sin(), x, math.Sin},
		{"cos", x.Cos(), x, math.Cos},
		{"tanh", x.Tanh(), x, math.Tanh},
		{"sigmoid", x.Sigmoid(), x, func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }},
		{"square", x.Square(), x, func(v float64) float64 { return v * v }},
		{"pow", pos.Pow(1.5), pos, func(v float64) float64 { return math.Pow(v, 1.5) }},
		{"recip", pos.Recip(), pos, func(v float64) float64 { return 1 / v }},
		{"clamp", x.Clamp(-0.5, 0.25), x, func(v float64) float64 { return math.Min(math.Max(v, -0.5), 0.25) }},
		{"addscalar", x.AddScalar(1.5), x, func(v float64) float64 { return v + 1.5 }},
		{"scale", x.Scale(-2), x, func(v float64) float64 { return -2 * v }},
		{"affine", x.Affine(2, 1), x, func(v float64) float64 { return 2*v + 1 }},
	}
	for _, c := range cases {
		var want []float32
		for _, v := range values(c.in) {
			want = append(want, float32(c.ref(float64(v))))
		}
		requireClose(t, c.name, values(c.got), want, 1e-6, 1e-6)
	}
}

func TestReductions(t *testing.T) {
	// x [2, 3] = [[1, 2, 3], [4, 6, 8]] (hand-derived expectations)
	x := FromFloat32([]float32{1, 2, 3, 4, 6, 8}, 2, 3)
	requireClose(t, "sum1", values(x.Sum(1, false)), []float32{6, 18}, 0, 0)
	requireShape(t, x.Sum(1, true), 2, 1)
	requireClose(t, "sum0", values(x.Sum(0, false)), []float32{5, 8, 11}, 0, 0)
	requireClose(t, "mean", values(x.Mean(-1, false)), []float32{2, 6}, 0, 0)
	requireClose(t, "max", values(x.Max(0, false)), []float32{4, 6, 8}, 0, 0)
	requireClose(t, "min", values(x.Min(1, false)), []float32{1, 4}, 0, 0)
	requireClose(t, "var", values(x.Var(1, false)), []float32{2.0 / 3, 8.0 / 3}, 1e-7, 1e-6)
	if x.SumAll().Item() != 24 || x.MeanAll().Item() != 4 || x.MaxAll().Item() != 8 || x.MinAll().Item() != 1 {
		t.Fatal("all-reductions")
	}
	if x.SumAll().Rank() != 0 {
		t.Fatal("SumAll is 0-d")
	}
	am := FromFloat32([]float32{1, 9, 3, 7, 2, 7}, 2, 3).ArgMax(1, false)
	if am.DType() != I64 || am.Int64s()[0] != 1 || am.Int64s()[1] != 0 {
		t.Fatalf("argmax %v", am)
	}
	// Non-contiguous input against naive loops.
	r := rand.New(rand.NewSource(5))
	y := nonContig(randT(r, 4, 5, 6))
	for dim := 0; dim < 3; dim++ {
		got := y.Sum(dim, true)
		var want []float32
		eachIndex(got.shape, func(idx []int) {
			var s float64
			j := append([]int(nil), idx...)
			for k := 0; k < y.Dim(dim); k++ {
				j[dim] = k
				s += float64(y.At(j...))
			}
			want = append(want, float32(s))
		})
		requireClose(t, "strided sum", values(got), want, 1e-6, 1e-6)
	}
	v := y.VarAll().Item()
	var m, q float64
	all := values(y)
	for _, a := range all {
		m += float64(a)
	}
	m /= float64(len(all))
	for _, a := range all {
		q += (float64(a) - m) * (float64(a) - m)
	}
	if !near(float64(v), q/float64(len(all)), 1e-6, 1e-5) {
		t.Fatalf("VarAll %v want %v", v, q/float64(len(all)))
	}
}

func TestDTypeRoundTrip(t *testing.T) {
	// Hand-derived: 0.1 is 0x2E66 in binary16 (0.0999755859375) and 0x3DCD in
	// bfloat16 (0.10009765625); 65520 overflows binary16 to +Inf (round to
	// nearest even at the top of the range); 1/3 -> 0x3555 (0.333251953125).
	x := FromFloat32([]float32{0.1, 1, -2, 65520, 1.0 / 3})
	h := x.To(F16)
	if h.DType() != F16 || h.HalfData()[0] != 0x2E66 || h.HalfData()[4] != 0x3555 {
		t.Fatalf("f16 bits %x", h.HalfData())
	}
	requireClose(t, "f16", h.Float32s(), []float32{0.0999755859375, 1, -2, float32(math.Inf(1)), 0.333251953125}, 0, 0)
	b := x.To(BF16)
	if b.HalfData()[0] != 0x3DCD {
		t.Fatalf("bf16 bits %x", b.HalfData())
	}
	requireClose(t, "bf16", b.To(F32).Float32s()[:3], []float32{0.10009765625, 1, -2}, 0, 0)
	// F16 -> BF16 -> F32 on a non-contiguous view.
	m := FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3).To(F16).Transpose(0, 1)
	requireClose(t, "f16 view to bf16", m.To(BF16).Float32s(), []float32{1, 4, 2, 5, 3, 6}, 0, 0)
	i := FromFloat32([]float32{1.7, -1.7, 3}).To(I64)
	if got := i.Int64s(); got[0] != 1 || got[1] != -1 || got[2] != 3 {
		t.Fatalf("to i64 %v", got)
	}
	if same := x.To(F32); !same.SharesStorage(x) {
		t.Fatal("To same dtype shares")
	}
}

func TestReleaseReuse(t *testing.T) {
	x := Zeros(F32, 1000, 37) // odd size: its own class
	before := GetPoolStats()
	v := x.Slice(0, 0, 10)
	x.Release()
	requirePanic(t, "use after release", func() { x.Add(x) })
	// The view keeps the storage: a new tensor of the same size must not get it.
	y := Full(F32, 7, 1000, 37)
	if y.st.f32[0:1][0] != 7 || &y.st.f32[0] == &v.st.f32[0] {
		t.Fatal("storage with a live view was recycled")
	}
	if v.At(3, 3) != 0 {
		t.Fatal("view corrupted")
	}
	addr := &v.st.f32[0]
	v.Release()
	v.Release() // no-op
	after := GetPoolStats()
	if after.HeldBytes <= before.HeldBytes {
		t.Fatalf("released storage not pooled: %+v -> %+v", before, after)
	}
	z := Empty(F32, 999, 37) // same size class
	if &z.st.f32[0] != addr {
		t.Fatal("pooled buffer not reused")
	}
	z.AddScalarInPlace(5) // dirty it; Zeros from the pool must clear it
	z.Release()
	zz := Zeros(F32, 1000, 37)
	requireClose(t, "zeros from pool", zz.Float32s(), make([]float32, 37000), 0, 0)
	// Adopted storage is never pooled.
	data := make([]float32, 4096)
	a := FromFloat32(data)
	a.Release()
	b := Empty(F32, 4096)
	if &b.st.f32[0] == &data[0] {
		t.Fatal("adopted buffer was recycled")
	}
}

func TestSizeClass(t *testing.T) {
	for _, n := range []int{1, 17, 100, 1000, 4097, 1 << 20, 3<<20 + 1} {
		c := sizeClass(n)
		if c < n || float64(c) > float64(n)*1.125+16 || sizeClass(c) != c {
			t.Fatalf("sizeClass(%d) = %d", n, c)
		}
	}
}

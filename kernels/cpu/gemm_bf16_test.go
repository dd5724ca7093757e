package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The BF16 compute products are checked against GemmRef (float64 sums) on
// operands rounded to bfloat16 first (round to nearest even, as the packing
// does): a BF16 product of two BF16 values is exact in float32, so the only
// differences left are float32 accumulation, which gemmTol bounds, while a
// packing or pairing mistake is O(1). The operands are uniform in [-1, 1), far
// from BF16 subnormals (which VDPBF16PS flushes).

// bf16Rounded returns an F32 operand with o's layout holding o's values rounded
// to BF16.
func bf16Rounded(m Mat) Mat {
	var n int
	if m.DType == F32 {
		n = len(m.F32)
	} else {
		n = len(m.U16)
	}
	v := make([]float32, n)
	for i := range v {
		var f float32
		switch m.DType {
		case F32:
			f = m.F32[i]
		case F16:
			f = F16ToF32Scalar(m.U16[i])
		default:
			f = BF16ToF32Scalar(m.U16[i])
		}
		v[i] = BF16ToF32Scalar(F32ToBF16Scalar(f))
	}
	return F32Mat(v, m.Stride, m.Trans)
}

// runBF16Case checks fn on gc in BF16 compute against the rounded reference.
func runBF16Case(t *testing.T, rng *rand.Rand, gc gemmCase, fn gemmFunc) {
	t.Helper()
	a := newOperand(rng, gc.m, gc.k, gc.da, gc.ta, gc.padA)
	b := newOperand(rng, gc.k, gc.n, gc.db, gc.tb, gc.padB)
	ldc := gc.n + gc.padC
	c0 := make([]float32, max(gc.m*ldc, 1))
	for i := range c0 {
		switch {
		case i%ldc >= gc.n:
			c0[i] = sentinel
		case gc.beta == 0:
			c0[i] = float32(math.NaN())
		default:
			c0[i] = rng.Float32()*2 - 1
		}
	}
	want := append([]float32(nil), c0...)
	GemmRef(gc.m, gc.n, gc.k, gc.alpha, bf16Rounded(a.mat), bf16Rounded(b.mat), gc.beta, want, ldc)
	got := append([]float32(nil), c0...)
	fn.fn(gc.m, gc.n, gc.k, gc.alpha, a.mat, b.mat, gc.beta, got, ldc)
	compareC(t, fmt.Sprintf("bf16 %s %v", fn.name, gc), gc.m, gc.n, gc.k, got, want, ldc)
}

// withBF16 runs f with BF16 compute, skipping when this machine lacks it.
func withBF16(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	prev, err := SetCompute(BF16)
	if err != nil {
		t.Skipf("BF16 compute: %v", err)
	}
	defer SetCompute(prev)
	if Compute() != BF16 || activeKernel() != bf16Kernel() {
		t.Fatalf("SetCompute(BF16) left compute %v, kernel %s", Compute(), activeKernel().name)
	}
	f(t)
}

// bf16Kernels returns the pair kernels to test: the pure-Go one always (it
// checks the packing on any machine) and the AVX512_BF16 one when present.
func bf16Kernels() []*gemmKernel {
	ks := []*gemmKernel{&goPairGemmKernel}
	if k := bf16Kernel(); k != nil {
		ks = append(ks, k)
	}
	return ks
}

func TestGemmBF16AgainstRef(t *testing.T) {
	cases := gemmCases(testing.Short())
	// Odd K and K passes with an odd last pass.
	cases = append(cases,
		gemmCase{m: 29, n: 65, k: 1, alpha: 1},
		gemmCase{m: 15, n: 33, k: 2, alpha: 1, beta: 1},
		gemmCase{m: 31, n: 40, k: 1001, tb: true, da: F16, alpha: 1},
		gemmCase{m: 45, n: 70, k: 1537, ta: true, db: BF16, alpha: 0.5, beta: 0.25},
	)
	for _, kern := range bf16Kernels() {
		t.Run(kern.name, func(t *testing.T) {
			testKernel = kern
			defer func() { testKernel = nil }()
			rng := rand.New(rand.NewPCG(11, 0))
			for _, fn := range gemmFuncs {
				for i, gc := range cases {
					if kern.mr == 4 && gc.m*gc.n*gc.k > 1<<21 {
						continue // the Go pair kernel is slow; the small cases cover it
					}
					if fn.f32 && (gc.da != F32 || gc.db != F32) {
						continue
					}
					if i%3 == 1 && !fn.f32 {
						gc.da = F16
					}
					if i%5 == 2 && !fn.f32 {
						gc.db = BF16
					}
					runBF16Case(t, rng, gc, fn)
				}
			}
		})
	}
}

// TestGemmBF16SmallBlocks shrinks the cache blocks of each pair kernel so that
// every loop order runs several blocks and K passes, with even and odd kc.
func TestGemmBF16SmallBlocks(t *testing.T) {
	for _, base := range bf16Kernels() {
		t.Run(base.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(12, 0))
			for _, kc := range []int{8, 7} {
				k := *base
				k.kc = kc
				smallBlockRuns(&k, func(gc gemmCase, fn gemmFunc) { runBF16Case(t, rng, gc, fn) })
			}
		})
	}
}

// TestGemmBF16Packed checks PackA/GemmPacked and GemmBatched in BF16 compute.
func TestGemmBF16Packed(t *testing.T) {
	withBF16(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(13, 0))
		for _, s := range [][3]int{{1, 1, 1}, {15, 33, 7}, {29, 100, 301}, {300, 70, 900}} {
			m, n, k := s[0], s[1], s[2]
			for _, da := range []DType{F32, F16, BF16} {
				a := newOperand(rng, m, k, da, false, 1)
				b := newOperand(rng, k, n, F32, false, 0)
				want := make([]float32, m*n)
				GemmRef(m, n, k, 1, bf16Rounded(a.mat), bf16Rounded(b.mat), 0, want, n)
				buf := make([]float32, PackedAFloats(m, k))
				pa := PackA(buf, m, k, a.mat)
				got := make([]float32, m*n)
				GemmPacked(m, n, k, 1, pa, b.mat, 0, got, n)
				compareC(t, fmt.Sprintf("GemmPacked %dx%dx%d %v", m, n, k, da), m, n, k, got, want, n)
				// A packed in BF16 stays BF16 after switching back to F32.
				prev, _ := SetCompute(F32)
				clear(got)
				GemmPackedSerial(m, n, k, 1, pa, b.mat, 0, got, n)
				SetCompute(prev)
				compareC(t, fmt.Sprintf("GemmPackedSerial after F32 %dx%dx%d %v", m, n, k, da), m, n, k, got, want, n)
			}
		}
		const batch, m, n, k = 5, 17, 40, 50
		a := newOperand(rng, batch*m, k, F32, false, 0)
		b := newOperand(rng, batch*k, n, F16, false, 0)
		got := make([]float32, batch*m*n)
		GemmBatched(batch, m, n, k, 1, a.mat, m*k, b.mat, k*n, 0, got, n, m*n)
		ra, rb := bf16Rounded(a.mat), bf16Rounded(b.mat)
		for i := 0; i < batch; i++ {
			want := make([]float32, m*n)
			GemmRef(m, n, k, 1, offsetMat(ra, i*m*k), offsetMat(rb, i*k*n), 0, want, n)
			compareC(t, fmt.Sprintf("GemmBatched %d", i), m, n, k, got[i*m*n:(i+1)*m*n], want, n)
		}
	})
}

// TestConv2dBF16 runs convolutions of every plan (im2col tiles, split K,
// pointwise, the bias row) in BF16 compute against Conv2dRef on rounded
// inputs and weights.
func TestConv2dBF16(t *testing.T) {
	withBF16(t, func(t *testing.T) {
		for _, cc := range []convCase{
			{1, 3, 9, 11, 5, 3, 3, 1, 1, 1, 1},
			{2, 16, 12, 12, 40, 3, 3, 2, 2, 1, 1},
			{1, 64, 16, 16, 320, 1, 1, 1, 1, 0, 0},
			{1, 33, 8, 8, 700, 3, 3, 1, 1, 1, 1},
			{2, 4, 20, 20, 8, 3, 3, 1, 1, 1, 1},
		} {
			for _, dt := range []DType{F32, F16} {
				p := cc.params()
				crs := p.C * p.R * p.S
				x := convTestData(p.N*p.C*p.H*p.W, uint64(5+p.C))
				wf := convTestData(p.K*crs, uint64(6+p.K))
				for i := range wf {
					wf[i] /= float32(math.Sqrt(float64(crs)))
				}
				w := convWeights(wf, dt, crs)
				bias := convTestData(p.K, 7)
				xr := append([]float32(nil), x...)
				for i, v := range xr {
					xr[i] = BF16ToF32Scalar(F32ToBF16Scalar(v))
				}
				ny := p.N * p.K * p.OutH() * p.OutW()
				want := make([]float32, ny)
				Conv2dRef(p, xr, bf16Rounded(w), bias, want)
				got := make([]float32, ny)
				Conv2d(p, x, w, bias, got)
				convCompare(t, fmt.Sprintf("bf16 %v/%v", cc, dt), got, want, 2e-5*math.Sqrt(float64(crs)), 1e-5)
			}
		}
	})
}

func TestSetCompute(t *testing.T) {
	if _, err := SetCompute(F16); err == nil {
		t.Fatal("SetCompute(F16) succeeded; F16 compute is not implemented")
	}
	if Compute() != F32 {
		t.Fatalf("default compute %v, want F32", Compute())
	}
	prev, err := SetCompute(BF16)
	if !BF16ComputeSupported() {
		if err == nil {
			t.Fatal("SetCompute(BF16) succeeded without AVX512_BF16")
		}
		return
	}
	if err != nil || prev != F32 {
		t.Fatalf("SetCompute(BF16) = %v, %v", prev, err)
	}
	// Restricting the SIMD level below AVX-512 falls back to the F32 kernels.
	old := setSIMDLevel(levelAVX2)
	if activeKernel().pairs {
		t.Error("BF16 pair kernel chosen at the AVX2 level")
	}
	setSIMDLevel(old)
	if p, _ := SetCompute(F32); p != BF16 {
		t.Fatalf("SetCompute(F32) returned previous %v, want BF16", p)
	}
}

// TestPairPackingPaths checks that every pack hook of the BF16 kernel (the
// assembly paths) writes the same panel words as the generic Go packers,
// bit for bit, on values that include rounding ties, NaNs, infinities and
// subnormals, for odd and even kc and short panels.
func TestPairPackingPaths(t *testing.T) {
	kern := bf16Kernel()
	if kern == nil {
		t.Skip("no BF16 kernel on this machine")
	}
	rng := rand.New(rand.NewPCG(14, 0))
	special := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 0,
		math.Float32frombits(0x3f808000), math.Float32frombits(0x3f818000), // ties to even down / up
		math.Float32frombits(0x7f800001), math.Float32frombits(0xffc00001), // NaNs with low payloads
		math.Float32frombits(0x00000001), math.Float32frombits(0x7f7fffff)} // subnormal, max
	vals := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			if rng.IntN(5) == 0 {
				v[i] = special[rng.IntN(len(special))]
			} else {
				v[i] = float32(rng.NormFloat64())
			}
		}
		return v
	}
	mat := func(v []float32, dt DType, stride int, trans bool) Mat {
		if dt == F32 {
			return F32Mat(v, stride, trans)
		}
		u := make([]uint16, len(v))
		for i, f := range v {
			if dt == F16 {
				u[i] = F32ToF16Scalar(f)
			} else {
				u[i] = F32ToBF16Scalar(f)
			}
		}
		return HalfMat(u, dt, stride, trans)
	}
	scratch := make([]float32, 4096)
	for _, kc := range []int{1, 2, 7, 16, 33, 300} {
		for _, dt := range []DType{F32, F16, BF16} {
			for _, rows := range []int{1, 5, 14} {
				// A panel (rows along k), width 14.
				stride := kc + 3
				a := mat(vals(rows*stride), dt, stride, false)
				got := make([]float32, kc*14)
				want := make([]float32, kc*14)
				if kern.packA(got, a, 0, kc, rows) {
					packPairRows(want, a, 0, kc, rows, 14, scratch)
					compareWords(t, fmt.Sprintf("packA kc%d %v rows%d", kc, dt, rows), got, want, pairWords(kc, 14))
				}
			}
			for _, nn := range []int{1, 16, 17, 32} {
				// Transposed B (rows along k), width 32.
				stride := kc + 1
				bt := mat(vals(nn*stride), dt, stride, true)
				got := make([]float32, kc*32)
				want := make([]float32, kc*32)
				if kern.packBT(got, bt, 0, kc, nn) {
					packPairRows(want, bt, 0, kc, nn, 32, scratch)
					compareWords(t, fmt.Sprintf("packBT kc%d %v nn%d", kc, dt, nn), got, want, pairWords(kc, 32))
				}
				// Non-transposed B (columns along the stored rows).
				b := mat(vals(kc*(nn+2)), dt, nn+2, false)
				clear(got)
				clear(want)
				if kern.packB(got, b, 0, kc, nn) {
					packPairCols(want, b, 0, kc, nn, 32, scratch)
					compareWords(t, fmt.Sprintf("packB kc%d %v nn%d", kc, dt, nn), got, want, pairWords(kc, 32))
				} else if dt == F32 {
					t.Errorf("packB did not take an F32 panel")
				}
			}
		}
	}
}

// compareWords fails t unless the first n words of got and want are equal bit for bit.
func compareWords(t *testing.T, what string, got, want []float32, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: word %d = %#08x, want %#08x", what, i, math.Float32bits(got[i]), math.Float32bits(want[i]))
		}
	}
}

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerance of the products against GemmRef (which accumulates in float64):
//
//	|got - ref| <= tol + tol*|ref|,  tol = 4e-7 * (k + 16)
//
// The operands are uniform in [-1, 1) (16-bit operands hold the same values as
// the reference sees), so a float32 sum of k products carries a rounding error far
// below k * 2^-24 * max|partial sum|; an indexing or packing mistake is O(1).
func gemmTol(k int) float64 { return 4e-7 * float64(k+16) }

// testLevels returns the SIMD levels this machine can run, widest first.
func testLevels() []simdLevel {
	var ls []simdLevel
	for l := maxLevel(); l >= levelGo; l-- {
		ls = append(ls, l)
	}
	return ls
}

// withLevel runs f with the kernels restricted to level l.
func withLevel(t *testing.T, l simdLevel, f func(t *testing.T)) {
	t.Run(l.String(), func(t *testing.T) {
		prev := setSIMDLevel(l)
		defer setSIMDLevel(prev)
		if got := level(); got != l {
			t.Fatalf("setSIMDLevel(%v) left level %v", l, got)
		}
		f(t)
	})
}

// operand is a randomly filled stored matrix with its Mat view.
type operand struct {
	mat Mat
	f32 []float32 // the values as float32, stored layout
}

// newOperand returns a rows x cols logical operand stored as dt, transposed when
// trans, with pad extra elements per stored row.
func newOperand(rng *rand.Rand, rows, cols int, dt DType, trans bool, pad int) operand {
	sr, sc := rows, cols
	if trans {
		sr, sc = cols, rows
	}
	stride := sc + pad
	n := max(sr*stride, 1)
	o := operand{f32: make([]float32, n)}
	for i := range o.f32 {
		o.f32[i] = rng.Float32()*2 - 1
	}
	switch dt {
	case F32:
		o.mat = F32Mat(o.f32, stride, trans)
	default:
		u := make([]uint16, n)
		for i, v := range o.f32 {
			if dt == F16 {
				u[i] = F32ToF16Scalar(v)
			} else {
				u[i] = F32ToBF16Scalar(v)
			}
		}
		o.mat = HalfMat(u, dt, stride, trans)
	}
	return o
}

// gemmCase is one product to check.
type gemmCase struct {
	m, n, k     int
	ta, tb      bool
	da, db      DType
	padA, padB  int
	padC        int
	alpha, beta float32
}

func (c gemmCase) String() string {
	return fmt.Sprintf("m%d_n%d_k%d_ta%v_tb%v_%v_%v_pa%d_pb%d_pc%d_al%g_be%g",
		c.m, c.n, c.k, c.ta, c.tb, c.da, c.db, c.padA, c.padB, c.padC, c.alpha, c.beta)
}

// gemmFunc is one of the entry points under test, in GemmRef's form.
type gemmFunc struct {
	name string
	f32  bool // only float32 operands
	fn   func(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int)
}

var gemmFuncs = []gemmFunc{
	{"Gemm", false, Gemm},
	{"GemmSerial", false, GemmSerial},
	{"Sgemm", true, func(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int) {
		Sgemm(a.Trans, b.Trans, m, n, k, alpha, a.F32, a.Stride, b.F32, b.Stride, beta, c, ldc)
	}},
}

const sentinel = 12345.5

// runGemmCase checks fn on c against GemmRef, including that beta = 0 does not
// read C (C starts NaN-filled) and that the padding of C is left alone.
func runGemmCase(t *testing.T, rng *rand.Rand, gc gemmCase, fn gemmFunc) {
	t.Helper()
	a := newOperand(rng, gc.m, gc.k, gc.da, gc.ta, gc.padA)
	b := newOperand(rng, gc.k, gc.n, gc.db, gc.tb, gc.padB)
	ldc := gc.n + gc.padC
	size := max(gc.m*ldc, 1)
	c0 := make([]float32, size)
	for i := range c0 {
		if i%ldc >= gc.n {
			c0[i] = sentinel
		} else if gc.beta == 0 {
			c0[i] = float32(math.NaN())
		} else {
			c0[i] = rng.Float32()*2 - 1
		}
	}
	want := append([]float32(nil), c0...)
	GemmRef(gc.m, gc.n, gc.k, gc.alpha, a.mat, b.mat, gc.beta, want, ldc)
	got := append([]float32(nil), c0...)
	fn.fn(gc.m, gc.n, gc.k, gc.alpha, a.mat, b.mat, gc.beta, got, ldc)
	compareC(t, fmt.Sprintf("%s %v", fn.name, gc), gc.m, gc.n, gc.k, got, want, ldc)
}

// compareC fails t when got and want differ beyond gemmTol(k) in the m x n region
// or differ at all in the padding.
func compareC(t *testing.T, what string, m, n, k int, got, want []float32, ldc int) {
	t.Helper()
	tol := gemmTol(k)
	bad, maxd := 0, 0.0
	for i := 0; i < m; i++ {
		for j := 0; j < ldc; j++ {
			idx := i*ldc + j
			g, w := float64(got[idx]), float64(want[idx])
			if j >= n {
				if got[idx] != sentinel {
					t.Fatalf("%s: padding C[%d,%d] = %g was written", what, i, j, g)
				}
				continue
			}
			d := math.Abs(g - w)
			if math.IsNaN(g) || math.IsInf(g, 0) {
				d = math.Inf(1)
			}
			maxd = max(maxd, d)
			if d > tol+tol*math.Abs(w) {
				if bad < 5 {
					t.Errorf("%s: C[%d,%d] = %g, want %g (|diff| %.3g > tol %.3g)", what, i, j, g, w, d, tol+tol*math.Abs(w))
				}
				bad++
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d elements out of tolerance, max |diff| %.3g", what, bad, m*n, maxd)
	}
}

// gemmCases returns the table: awkward sizes with every transpose combination,
// 16-bit operands on either side, padded strides and alpha/beta variants.
func gemmCases(short bool) []gemmCase {
	var cs []gemmCase
	dims := []int{1, 3, 17, 33}
	trans := [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}}
	i := 0
	for _, m := range dims {
		for _, n := range dims {
			for _, k := range []int{1, 3, 17, 100} {
				for _, tt := range trans {
					i++
					gc := gemmCase{m: m, n: n, k: k, ta: tt[0], tb: tt[1], alpha: 1, beta: 0}
					switch i % 4 {
					case 1:
						gc.alpha, gc.beta = -0.5, 1
					case 2:
						gc.alpha, gc.beta = 1.25, 0.75
						gc.padA, gc.padB, gc.padC = 3, 5, 7
					case 3:
						gc.padC = 2
					}
					cs = append(cs, gc)
				}
			}
		}
	}
	big := []gemmCase{
		{m: 1023, n: 17, k: 33},
		{m: 17, n: 1023, k: 33},
		{m: 33, n: 17, k: 1023},
		{m: 130, n: 1023, k: 37, tb: true, alpha: 1, beta: 1},
		{m: 1023, n: 65, k: 31, ta: true, tb: true, beta: 0.5, padC: 3},
		{m: 67, n: 71, k: 1023, ta: true, padA: 1, padB: 9},
		{m: 300, n: 257, k: 129, alpha: 0.5, beta: 0},
		{m: 257, n: 300, k: 129, tb: true},
		{m: 1500, n: 45, k: 50, tb: true, beta: 1}, // the BLIS loop order (m > l1MaxM)
	}
	if !short {
		big = append(big,
			gemmCase{m: 1023, n: 1023, k: 3},
			gemmCase{m: 200, n: 190, k: 700, ta: true, tb: true, padA: 4},
		)
	}
	for _, gc := range big {
		if gc.alpha == 0 {
			gc.alpha = 1
		}
		cs = append(cs, gc)
	}
	return cs
}

func TestGemmAgainstRef(t *testing.T) {
	cases := gemmCases(testing.Short())
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(l)))
			for _, fn := range gemmFuncs {
				for _, gc := range cases {
					runGemmCase(t, rng, gc, fn)
				}
			}
		})
	}
}

// TestGemmHalfOperands covers F16 and BF16 on either side in all layouts.
func TestGemmHalfOperands(t *testing.T) {
	shapes := [][3]int{{1, 1, 1}, {3, 17, 5}, {17, 3, 33}, {33, 47, 129}, {70, 129, 300}, {5, 1023, 17}}
	dts := [][2]DType{{F16, F32}, {F32, F16}, {BF16, F32}, {F32, BF16}, {F16, BF16}, {BF16, F16}}
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, uint64(l)))
			i := 0
			for _, s := range shapes {
				for _, dt := range dts {
					for _, tt := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
						i++
						gc := gemmCase{m: s[0], n: s[1], k: s[2], da: dt[0], db: dt[1], ta: tt[0], tb: tt[1],
							alpha: 1, beta: float32(i % 2), padA: i % 3, padB: (i / 2) % 3}
						runGemmCase(t, rng, gc, gemmFuncs[i%2])
					}
				}
			}
		})
	}
}

// TestGemmSmallBlocks shrinks the cache blocks so that the NC, KC and MC loops
// all run several times (and the K passes accumulate with beta = 1).
func TestGemmSmallBlocks(t *testing.T) {
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			k := *activeKernel()
			k.kc = 8
			rng := rand.New(rand.NewPCG(3, uint64(l)))
			smallBlockRuns(&k, func(gc gemmCase, fn gemmFunc) { runGemmCase(t, rng, gc, fn) })
		})
	}
}

// smallBlockRuns installs k as the test kernel with MC and NC of two
// micro-tiles (its KC as set by the caller) and calls run on each product of
// a table of awkward shapes, layouts and dtypes, with Gemm and GemmSerial, in
// every loop order: the BLIS one, then the A-in-L1 one (gemmSerialAL1) with
// the K passes outermost, then with A packed for all of K.
func smallBlockRuns(k *gemmKernel, run func(gc gemmCase, fn gemmFunc)) {
	k.mc, k.nc = 2*k.mr, 2*k.nr
	testKernel = k
	defer func() { testKernel = nil }()
	for l1 := range 3 {
		k.l1MaxM, k.l1MC, k.l1NC, k.l1AllK = 0, 0, 0, 0
		if l1 > 0 {
			k.l1MaxM, k.l1MC, k.l1NC = 1<<30, 2*k.mr, 2*k.nr
		}
		if l1 > 1 {
			k.l1AllK = 1 << 30
		}
		for _, gc := range []gemmCase{
			{m: 3*k.mr + 1, n: 5*k.nr + 3, k: 45, alpha: 1},
			{m: 5*k.mr - 1, n: 3*k.nr + 1, k: 19, ta: true, tb: true, alpha: -1, beta: 0.5, padC: 1},
			{m: 4*k.mr + 2, n: 2*k.nr + 5, k: 64, ta: true, db: F16, alpha: 2, beta: 1},
			{m: 70, n: 90, k: 33, tb: true, da: BF16, alpha: 1},
		} {
			for _, fn := range gemmFuncs[:2] {
				run(gc, fn)
			}
		}
	}
}

func TestGemmKZeroAndEmpty(t *testing.T) {
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			for _, fn := range gemmFuncs {
				// k = 0: C = beta*C; beta = 0 clears C even if it holds NaN.
				c := []float32{1, 2, 3, 4, 5, 6}
				fn.fn(2, 3, 0, 1, F32Mat(nil, 0, false), F32Mat(nil, 3, false), 0.5, c, 3)
				for i, w := range []float32{0.5, 1, 1.5, 2, 2.5, 3} {
					if c[i] != w {
						t.Fatalf("%s k=0 beta=0.5: c[%d] = %g, want %g", fn.name, i, c[i], w)
					}
				}
				nan := float32(math.NaN())
				c = []float32{nan, nan, sentinel, nan, nan, sentinel}
				fn.fn(2, 2, 0, 1, F32Mat(nil, 0, false), F32Mat(nil, 2, false), 0, c, 3)
				for i, w := range []float32{0, 0, sentinel, 0, 0, sentinel} {
					if c[i] != w {
						t.Fatalf("%s k=0 beta=0: c[%d] = %g, want %g", fn.name, i, c[i], w)
					}
				}
				// m = 0 or n = 0: nothing happens.
				fn.fn(0, 3, 4, 1, F32Mat(nil, 4, false), F32Mat(make([]float32, 12), 3, false), 0, nil, 3)
				fn.fn(3, 0, 4, 1, F32Mat(make([]float32, 12), 4, false), F32Mat(nil, 0, false), 0, nil, 0)
			}
		})
	}
}

func TestGemmBatched(t *testing.T) {
	type bcase struct {
		batch, m, n, k int
		ta, tb         bool
		db             DType
		broadcastA     bool
		broadcastB     bool
		beta           float32
	}
	cases := []bcase{
		{batch: 1, m: 17, n: 33, k: 40},
		{batch: 3, m: 64, n: 70, k: 40, tb: true, beta: 1},
		{batch: 8, m: 17, n: 3, k: 100, ta: true},
		{batch: 5, m: 33, n: 65, k: 17, db: F16, broadcastB: true, beta: 0.5},
		{batch: 4, m: 150, n: 140, k: 64, broadcastA: true},
		{batch: 2, m: 200, n: 130, k: 90, tb: true, db: BF16},
	}
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(4, uint64(l)))
			for _, bc := range cases {
				nA, nB := bc.batch, bc.batch
				if bc.broadcastA {
					nA = 1
				}
				if bc.broadcastB {
					nB = 1
				}
				// Stack the batch as one tall stored matrix per operand.
				ar, ac := bc.m, bc.k
				if bc.ta {
					ar, ac = bc.k, bc.m
				}
				br, bcn := bc.k, bc.n
				if bc.tb {
					br, bcn = bc.n, bc.k
				}
				a := newOperand(rng, nA*ar, ac, F32, false, 0)
				b := newOperand(rng, nB*br, bcn, bc.db, false, 0)
				a.mat.Trans, b.mat.Trans = bc.ta, bc.tb
				sA, sB := ar*ac, br*bcn
				if bc.broadcastA {
					sA = 0
				}
				if bc.broadcastB {
					sB = 0
				}
				ldc := bc.n + 2
				sC := bc.m*ldc + 5
				c0 := make([]float32, bc.batch*sC)
				for i := range c0 {
					if (i%sC)%ldc >= bc.n || i%sC >= bc.m*ldc {
						c0[i] = sentinel
					} else if bc.beta == 0 {
						c0[i] = float32(math.NaN())
					} else {
						c0[i] = rng.Float32()
					}
				}
				want := append([]float32(nil), c0...)
				for i := 0; i < bc.batch; i++ {
					GemmRef(bc.m, bc.n, bc.k, 0.75, offsetMat(a.mat, i*sA), offsetMat(b.mat, i*sB), bc.beta, want[i*sC:], ldc)
				}
				got := append([]float32(nil), c0...)
				GemmBatched(bc.batch, bc.m, bc.n, bc.k, 0.75, a.mat, sA, b.mat, sB, bc.beta, got, ldc, sC)
				for i := 0; i < bc.batch; i++ {
					what := fmt.Sprintf("GemmBatched %+v item %d", bc, i)
					compareC(t, what, bc.m, bc.n, bc.k, got[i*sC:i*sC+bc.m*ldc], want[i*sC:i*sC+bc.m*ldc], ldc)
					for j := i*sC + bc.m*ldc; j < (i+1)*sC; j++ {
						if got[j] != sentinel {
							t.Fatalf("%s: gap element %d written", what, j)
						}
					}
				}
			}
		})
	}
}

// TestGemmThreads runs the parallel split with several thread counts, including
// more goroutines than tiles.
func TestGemmThreads(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for _, th := range []int{1, 2, 3, 7} {
		prev := SetThreads(th)
		for _, gc := range []gemmCase{
			{m: 250, n: 90, k: 100, alpha: 1},
			{m: 20, n: 300, k: 200, tb: true, alpha: 1, beta: 1},
			{m: 15, n: 2000, k: 40, ta: true, alpha: 1},
		} {
			runGemmCase(t, rng, gc, gemmFuncs[0])
		}
		SetThreads(prev)
	}
}

// TestGemmSerialNoAlloc checks that GemmSerial reuses its packing buffers.
func TestGemmSerialNoAlloc(t *testing.T) {
	a := make([]float32, 64*40)
	b := make([]float32, 40*512)
	c := make([]float32, 64*512)
	am, bm := F32Mat(a, 40, false), F32Mat(b, 40, true)
	GemmSerial(64, 512, 40, 1, am, F32Mat(b, 512, false), 0, c, 512)
	allocs := testing.AllocsPerRun(20, func() {
		GemmSerial(64, 512, 40, 1, am, F32Mat(b, 512, false), 0, c, 512)
		GemmSerial(64, 40, 40, 1, am, bm, 0, c, 512)
	})
	if allocs > 0.5 {
		t.Fatalf("GemmSerial allocates %.1f times per call pair", allocs)
	}
}

// TestGemmPackEdges covers the packing and edge paths around the micro-tile
// sizes: partial A panels (m not a multiple of MR), partial B panels in either
// 16-column half (n not a multiple of NR), K not a multiple of the 16-column
// transpose blocks, F32 and F16 B and F32 A in both layouts, with padded strides.
func TestGemmPackEdges(t *testing.T) {
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, uint64(l)))
			i := 0
			for _, m := range []int{5, 14, 29} {
				for _, n := range []int{7, 16, 20, 37, 64} {
					for _, k := range []int{15, 16, 40, 77} {
						for _, db := range []DType{F32, F16} {
							for _, tt := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
								i++
								gc := gemmCase{m: m, n: n, k: k, ta: tt[0], tb: tt[1], db: db, alpha: 1,
									beta: float32(i % 2), padA: i % 3, padB: 3, padC: i % 2}
								runGemmCase(t, rng, gc, gemmFuncs[1])
							}
						}
					}
				}
			}
		})
	}
}

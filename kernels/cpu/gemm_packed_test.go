package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// packedCase is a product whose A is packed with mPack >= m rows (the product
// uses the first m).
type packedCase struct {
	gemmCase
	mPack int
}

// runPackedCase checks GemmPacked and GemmPackedSerial against GemmRef (within
// gemmTol(k)) and against Gemm and GemmSerial on the unpacked operand (bit for
// bit: the same blocking and accumulation order), with C NaN-filled when beta
// is 0 and its padding checked untouched.
func runPackedCase(t *testing.T, rng *rand.Rand, pc packedCase) {
	t.Helper()
	gc := pc.gemmCase
	a := newOperand(rng, pc.mPack, gc.k, gc.da, gc.ta, gc.padA)
	b := newOperand(rng, gc.k, gc.n, gc.db, gc.tb, gc.padB)
	ldc := gc.n + gc.padC
	size := max(gc.m*ldc, 1)
	c0 := make([]float32, size)
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
	GemmRef(gc.m, gc.n, gc.k, gc.alpha, a.mat, b.mat, gc.beta, want, ldc)
	buf := make([]float32, PackedAFloats(pc.mPack, gc.k)+3)
	for i := range buf {
		buf[i] = float32(math.NaN()) // every value read must have been packed
	}
	for _, serialPack := range []bool{false, true} {
		var pa PackedA
		if serialPack {
			pa = PackASerial(buf, pc.mPack, gc.k, a.mat)
		} else {
			pa = PackA(buf, pc.mPack, gc.k, a.mat)
		}
		if pa.M() != pc.mPack || pa.K() != gc.k {
			t.Fatalf("%v: PackedA is %dx%d, want %dx%d", pc, pa.M(), pa.K(), pc.mPack, gc.k)
		}
		for _, f := range []struct {
			name   string
			packed func(m, n, k int, alpha float32, pa PackedA, b Mat, beta float32, c []float32, ldc int)
			plain  func(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int)
		}{{"GemmPacked", GemmPacked, Gemm}, {"GemmPackedSerial", GemmPackedSerial, GemmSerial}} {
			what := fmt.Sprintf("%s(serialPack=%v) %v mPack%d", f.name, serialPack, gc, pc.mPack)
			got := append([]float32(nil), c0...)
			f.packed(gc.m, gc.n, gc.k, gc.alpha, pa, b.mat, gc.beta, got, ldc)
			compareC(t, what, gc.m, gc.n, gc.k, got, want, ldc)
			same := append([]float32(nil), c0...)
			f.plain(gc.m, gc.n, gc.k, gc.alpha, subRows(a.mat, 0), b.mat, gc.beta, same, ldc)
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(same[i]) {
					t.Fatalf("%s: c[%d] = %g, unpacked product gives %g", what, i, got[i], same[i])
				}
			}
		}
	}
}

func packedCases(k gemmKernel) []packedCase {
	mr, nr := k.mr, k.nr
	return []packedCase{
		{gemmCase{m: 1, n: 1, k: 1, alpha: 1}, 1},
		{gemmCase{m: 3*mr + 1, n: 5*nr + 3, k: 45, alpha: 1}, 3*mr + 1},
		{gemmCase{m: 3*mr + 1, n: 2*nr + 1, k: 45, alpha: 1, beta: 1}, 4*mr + 3}, // first rows of a taller A
		{gemmCase{m: 5*mr - 1, n: 3*nr + 1, k: 19, ta: true, tb: true, alpha: -1, beta: 0.5, padC: 1}, 5*mr - 1},
		{gemmCase{m: 4*mr + 2, n: 2*nr + 5, k: 64, ta: true, db: F16, alpha: 2, beta: 1, padA: 3}, 4*mr + 2},
		{gemmCase{m: 2*mr + 3, n: nr + 7, k: 70, da: F16, padA: 2, alpha: 1}, 3 * mr},
		{gemmCase{m: 70, n: 90, k: 33, tb: true, da: BF16, alpha: 1}, 71},
		{gemmCase{m: 33, n: 17, k: 0, alpha: 1, beta: 0.5}, 40},
		{gemmCase{m: 0, n: 17, k: 9, alpha: 1}, 5},
	}
}

// TestGemmPackedAgainstRef runs the packed products with the real blocks, on
// every SIMD level, with shapes big enough to use several goroutines, several K
// passes and both loop orders of the AVX-512 kernel.
func TestGemmPackedAgainstRef(t *testing.T) {
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, uint64(l)))
			cases := packedCases(*activeKernel())
			cases = append(cases,
				packedCase{gemmCase{m: 320, n: 300, k: 501, da: F16, alpha: 1, beta: 1}, 320},      // conv: K passes, A in L1 order
				packedCase{gemmCase{m: 1500, n: 45, k: 50, tb: true, beta: 1, alpha: 1}, 1501},     // BLIS order (m > l1MaxM)
				packedCase{gemmCase{m: 1000, n: 100, k: 40, ta: true, tb: true, alpha: 0.5}, 1000}, // attention S^T = K Q^T
				packedCase{gemmCase{m: 40, n: 100, k: 1000, ta: true, alpha: 1}, 40},               // attention O^T = V^T P^T
				packedCase{gemmCase{m: 60, n: 2000, k: 100, alpha: 1, padC: 3}, 60},                // parallel over n
				packedCase{gemmCase{m: 1500, n: 5, k: 1500, da: F16, ta: true, alpha: 1}, 1503},    // PackA on several goroutines
			)
			for _, pc := range cases {
				runPackedCase(t, rng, pc)
			}
		})
	}
}

// TestGemmPackedSmallBlocks shrinks the cache blocks (as TestGemmSmallBlocks
// does) so that every blocking loop runs several times over a packed A, in all
// three loop orders, with 1 and 3 goroutines.
func TestGemmPackedSmallBlocks(t *testing.T) {
	for _, l := range testLevels() {
		withLevel(t, l, func(t *testing.T) {
			k := *activeKernel()
			k.kc, k.mc, k.nc = 8, 2*k.mr, 2*k.nr
			testKernel = &k
			defer func() { testKernel = nil }()
			rng := rand.New(rand.NewPCG(12, uint64(l)))
			for l1 := range 3 {
				k.l1MaxM, k.l1MC, k.l1NC, k.l1AllK = 0, 0, 0, 0
				if l1 > 0 {
					k.l1MaxM, k.l1MC, k.l1NC = 1<<30, 2*k.mr, 2*k.nr
				}
				if l1 > 1 {
					k.l1AllK = 1 << 30
				}
				for _, th := range []int{1, 3} {
					prev := SetThreads(th)
					for _, pc := range packedCases(k) {
						runPackedCase(t, rng, pc)
					}
					// Big enough for GemmPacked to split over rows, then columns.
					runPackedCase(t, rng, packedCase{gemmCase{m: 40*k.mr + 5, n: 3*k.nr + 1, k: 700, ta: true, alpha: 1}, 41*k.mr + 5})
					runPackedCase(t, rng, packedCase{gemmCase{m: 3*k.mr + 5, n: 60*k.nr + 1, k: 700, db: F16, alpha: 1, beta: 1}, 4*k.mr + 5})
					SetThreads(prev)
				}
			}
		})
	}
}

func TestGemmPackedPanics(t *testing.T) {
	a := newOperand(rand.New(rand.NewPCG(1, 1)), 10, 8, F32, false, 0)
	buf := make([]float32, PackedAFloats(10, 8))
	pa := PackASerial(buf, 10, 8, a.mat)
	c := make([]float32, 100)
	b := F32Mat(make([]float32, 100), 10, false)
	for name, f := range map[string]func(){
		"short dst": func() { PackA(buf[:len(buf)-1], 10, 8, a.mat) },
		"k differs": func() { GemmPackedSerial(10, 10, 7, 1, pa, b, 0, c, 10) },
		"m too big": func() { GemmPacked(11, 5, 8, 1, pa, b, 0, c, 10) },
		"zero":      func() { GemmPacked(1, 1, 1, 1, PackedA{m: 1, k: 1}, b, 0, c, 10) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

//go:build cuda

// GPU tests of the strided launchers (launch_strided.go) against kernels/cpu's
// CopyStrided, UnaryRef and BinaryRef on host data. They use TestMain, testDev
// and the helpers of cuda_test.go.

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/kernels/kerneltest"
)

// stridedView is a shape with the strides of each operand (in launcher order).
type stridedView struct {
	name    string
	shape   []int
	strides [][]int
}

// unaryViews: operand 0 is the output y, operand 1 the input x.
var unaryViews = []stridedView{
	{"[1]", []int{1}, [][]int{{1}, {1}}},
	{"[3] x stride 2", []int{3}, [][]int{{1}, {2}}},
	{"[17] x broadcast", []int{17}, [][]int{{1}, {0}}},
	{"[1023]", []int{1023}, [][]int{{1}, {1}}},
	{"[2000000] (grid-stride rounds)", []int{2000000}, [][]int{{1}, {1}}},
	{"[17,3] x transposed", []int{17, 3}, [][]int{{3, 1}, {1, 17}}},
	{"[4,5,3] x bcast dim1, y padded", []int{4, 5, 3}, [][]int{{20, 4, 1}, {3, 0, 1}}},
	{"[2,3,1,4,2,3] x permuted", []int{2, 3, 1, 4, 2, 3}, [][]int{{72, 24, 24, 6, 3, 1}, {1, 2, 6, 6, 24, 96}}},
	{"[3,1,7,5] y transposed", []int{3, 1, 7, 5}, [][]int{{1, 3, 3, 21}, {35, 35, 5, 1}}},
	{"[2,2,3,2,2,3] both permuted", []int{2, 2, 3, 2, 2, 3}, [][]int{{1, 2, 4, 12, 24, 48}, {72, 1, 24, 2, 4, 8}}},
	{"[2,64,33,35] NCHW->NHWC", []int{2, 64, 33, 35}, [][]int{{64 * 33 * 35, 1, 35 * 64, 64}, {64 * 33 * 35, 33 * 35, 35, 1}}},
	// y padded (dims 0-5 mergeable); x a dense permutation in which only
	// dims 4 and 5 stay adjacent, so exactly one pair merges: rank 6.
	{"[2,3,4,5,2,3,2] 7-d merging to 6", []int{2, 3, 4, 5, 2, 3, 2},
		[][]int{{1440, 480, 120, 24, 12, 4, 1}, {48, 96, 6, 288, 3, 1, 24}}},
}

// binaryViews: operands y, a, b.
var binaryViews = []stridedView{
	{"[1]", []int{1}, [][]int{{1}, {1}, {1}}},
	{"[3] b stride 3", []int{3}, [][]int{{1}, {1}, {3}}},
	{"[1023] b scalar", []int{1023}, [][]int{{1}, {1}, {0}}},
	{"[17,3] a transposed, b row bcast", []int{17, 3}, [][]int{{3, 1}, {1, 17}, {0, 1}}},
	{"[2,3,4,5] b channel bias", []int{2, 3, 4, 5}, [][]int{{60, 20, 5, 1}, {60, 20, 5, 1}, {0, 1, 0, 0}}},
	{"[2,3,1,4,2,3] permuted, b bcast", []int{2, 3, 1, 4, 2, 3},
		[][]int{{72, 24, 24, 6, 3, 1}, {1, 2, 6, 6, 24, 96}, {0, 1, 0, 3, 0, 12}}},
	{"[3,17] y transposed, b scalar", []int{3, 17}, [][]int{{1, 3}, {17, 1}, {0, 0}}},
	{"[2,320,64,64] time embedding bcast", []int{2, 320, 64, 64},
		[][]int{{320 * 4096, 4096, 64, 1}, {320 * 4096, 4096, 64, 1}, {320, 1, 0, 0}}},
}

// stridedInputs returns n values in [lo, hi) with zeros of both signs, infinities
// and NaN mixed in.
func stridedInputs(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), 1e-30, -3.5, 1}
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
		if i%11 == 5 {
			x[i] = special[(i/11)%len(special)]
		}
	}
	return x
}

// toDevice uploads x (rounded to dtype t first, returned as float32) as a
// buffer of dtype t.
func toDevice(t *testing.T, x []float32, dt kernels.DType) (*Buffer, []float32) {
	t.Helper()
	if dt == kernels.F32 {
		return uploadF32(t, x), x
	}
	f, h := round(x, dt)
	return uploadU16(t, dt, h), f
}

// roundTo rounds x to dtype dt in place (no-op for F32).
func roundTo(x []float32, dt kernels.DType) {
	if dt != kernels.F32 {
		f, _ := round(x, dt)
		copy(x, f)
	}
}

// ulpTol is one ulp of dtype dt relative, plus its smallest subnormal step;
// F32 transcendentals get 2 ulp (the device's double-precision functions and
// Go's math may differ by an ulp of float64, which can move the float32 rounding).
func ulpTol(dt kernels.DType, transcendental bool) (atol, rtol float64) {
	switch dt {
	case kernels.F16:
		return 0x1p-24, 0x1p-10
	case kernels.BF16:
		return 1e-38, 0x1p-7
	}
	if transcendental {
		return 1e-38, 0x1p-22
	}
	return 1e-38, 0x1p-23
}

func isTranscendental(op kernels.UnaryOp) bool {
	switch op {
	case kernels.UExp, kernels.ULog, kernels.URsqrt, kernels.USin, kernels.UCos, kernels.UTanh, kernels.USigmoid, kernels.UPow:
		return true
	}
	return false
}

const stridedSentinel = -7.5 // exact in every dtype: elements the kernel must not touch

func sentinelBuffer(t *testing.T, dt kernels.DType, n int) *Buffer {
	t.Helper()
	b, err := testDev.Alloc(dt, n)
	if err != nil {
		t.Fatal(err)
	}
	must(testDev.Fill(b, n, stridedSentinel))
	return b
}

func sentinels(n int) []float32 {
	y := make([]float32, n)
	for i := range y {
		y[i] = stridedSentinel
	}
	return y
}

// TestUnaryStrided runs every UnaryOp over views (ranks 1-7 before merging,
// broadcast, transposed reads and writes, padded outputs) and dtype pairs
// against UnaryRef on the rounded inputs, rounded once to y's dtype.
func TestUnaryStrided(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	dts := [][2]kernels.DType{{kernels.F32, kernels.F32}, {kernels.F16, kernels.F32}, {kernels.F32, kernels.BF16}, {kernels.BF16, kernels.F16}, {kernels.F16, kernels.F16}}
	for op := kernels.UCopy; op <= kernels.URecip; op++ {
		var alpha, beta float32
		switch op {
		case kernels.UAffine:
			alpha, beta = -1.25, 0.5
		case kernels.UClamp:
			alpha, beta = 0, 0.75 // clamp(-0) = +0, as Go's max(-0, +0)
		case kernels.UPow:
			alpha = 1.5
		}
		for di, dt := range dts {
			for _, v := range unaryViews {
				if v.shape[0] >= 1000000 && di > 1 {
					continue // the large view for two dtype pairs only (host reference time)
				}
				ny, nx := kernels.Span(v.shape, v.strides[0]), kernels.Span(v.shape, v.strides[1])
				dx, x := toDevice(t, stridedInputs(r, nx, -0.5, 3), dt[0])
				dy := sentinelBuffer(t, dt[1], ny)
				must(testDev.Unary(op, alpha, beta, v.shape, dy, v.strides[0], dx, v.strides[1]))
				want := sentinels(ny)
				cpu.UnaryRef(op, alpha, beta, v.shape, want, v.strides[0], x, v.strides[1])
				roundTo(want, dt[1])
				atol, rtol := ulpTol(dt[1], isTranscendental(op))
				kerneltest.Compare(t, fmt.Sprintf("Unary op %d %v->%v %s", op, dt[0], dt[1], v.name),
					fetch(t, dy), want, atol, rtol)
				dx.Free()
				dy.Free()
			}
		}
	}
}

// TestBinaryStrided runs every BinaryOp over broadcast and permuted views and
// mixed dtypes against BinaryRef, in place too (y = a, y = b).
func TestBinaryStrided(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	dts := [][3]kernels.DType{{kernels.F32, kernels.F32, kernels.F32}, {kernels.F16, kernels.BF16, kernels.F32}, {kernels.F32, kernels.F16, kernels.F16},
		{kernels.BF16, kernels.BF16, kernels.BF16}, {kernels.BF16, kernels.F32, kernels.F16}}
	for op := kernels.BAdd; op <= kernels.BMin; op++ {
		for _, dt := range dts {
			for _, v := range binaryViews {
				ny := kernels.Span(v.shape, v.strides[0])
				na, nb := kernels.Span(v.shape, v.strides[1]), kernels.Span(v.shape, v.strides[2])
				da, a := toDevice(t, stridedInputs(r, na, -2, 2), dt[0])
				db, b := toDevice(t, stridedInputs(r, nb, -2, 2), dt[1])
				dy := sentinelBuffer(t, dt[2], ny)
				must(testDev.Binary(op, v.shape, dy, v.strides[0], da, v.strides[1], db, v.strides[2]))
				want := sentinels(ny)
				cpu.BinaryRef(op, v.shape, want, v.strides[0], a, v.strides[1], b, v.strides[2])
				roundTo(want, dt[2])
				atol, rtol := ulpTol(dt[2], false)
				kerneltest.Compare(t, fmt.Sprintf("Binary op %d %v,%v->%v %s", op, dt[0], dt[1], dt[2], v.name),
					fetch(t, dy), want, atol, rtol)
				for _, bb := range []*Buffer{da, db, dy} {
					bb.Free()
				}
			}
		}
		// In place: y = a over [2,3,4,5] with a channel bias b; y = b with a transposed.
		for _, inplaceB := range []bool{false, true} {
			shape := []int{2, 3, 4, 5}
			ys, as, bs := []int{60, 20, 5, 1}, []int{60, 20, 5, 1}, []int{0, 1, 0, 0}
			dtA, dtB := kernels.F16, kernels.F32
			if inplaceB {
				as, bs = []int{1, 2, 6, 24}, ys
				dtA, dtB = kernels.F32, kernels.BF16
			}
			da, a := toDevice(t, stridedInputs(r, kernels.Span(shape, as), -2, 2), dtA)
			db, b := toDevice(t, stridedInputs(r, kernels.Span(shape, bs), -2, 2), dtB)
			dy, want, wdt := da, a, dtA
			if inplaceB {
				dy, want, wdt = db, b, dtB
			}
			want = append([]float32(nil), want...)
			must(testDev.Binary(op, shape, dy, ys, da, as, db, bs))
			cpu.BinaryRef(op, shape, want, ys, a, as, b, bs)
			roundTo(want, wdt)
			atol, rtol := ulpTol(wdt, false)
			kerneltest.Compare(t, fmt.Sprintf("Binary op %d in place (y = b: %v)", op, inplaceB), fetch(t, dy), want, atol, rtol)
			da.Free()
			db.Free()
		}
	}
	// Signed zeros, NaN and infinities paired explicitly, bit for bit (F32).
	nz := float32(math.Copysign(0, -1))
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	za := []float32{nz, 0, nz, 0, nan, 1, nz, inf, inf, 2}
	zb := []float32{0, nz, nz, 0, 1, nan, 0, -inf, inf, 0}
	dza, dzb := uploadF32(t, za), uploadF32(t, zb)
	dzy, _ := testDev.Alloc(kernels.F32, len(za))
	for op := kernels.BAdd; op <= kernels.BMin; op++ {
		must(testDev.Binary(op, []int{len(za)}, dzy, []int{1}, dza, []int{1}, dzb, []int{1}))
		got := fetch(t, dzy)
		for i := range za {
			w := op.BinaryScalar(za[i], zb[i])
			if g := got[i]; !(g != g && w != w) && math.Float32bits(g) != math.Float32bits(w) {
				t.Errorf("Binary op %d (%g, %g) = %g (%#x), want %g (%#x)", op, za[i], zb[i], g, math.Float32bits(g),
					w, math.Float32bits(w))
			}
		}
	}
	for _, bb := range []*Buffer{dza, dzb, dzy} {
		bb.Free()
	}
}

// TestCopyStridedAndFill checks CopyStrided (bit copies, 2- and 4-byte dtypes)
// against cpu.CopyStrided and Fill against the host conversions, with the
// elements outside the view and past n untouched.
func TestCopyStridedAndFill(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	for _, v := range unaryViews {
		nd, ns := kernels.Span(v.shape, v.strides[0]), kernels.Span(v.shape, v.strides[1])
		// 4-byte: random bit patterns (NaN payloads included) through an F32 buffer.
		src := make([]float32, ns)
		for i := range src {
			src[i] = math.Float32frombits(r.Uint32())
		}
		want := make([]float32, nd)
		for i := range want {
			want[i] = math.Float32frombits(0x5a5a5a5a)
		}
		dsrc, ddst := uploadF32(t, src), uploadF32(t, want)
		must(testDev.CopyStrided(v.shape, ddst, v.strides[0], dsrc, v.strides[1]))
		cpu.CopyStrided(v.shape, want, v.strides[0], src, v.strides[1])
		got := make([]float32, nd)
		must(testDev.DownloadF32(got, ddst))
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Errorf("CopyStrided f32 %s: element %d is %#x, want %#x", v.name, i, math.Float32bits(got[i]),
					math.Float32bits(want[i]))
				break
			}
		}
		dsrc.Free()
		ddst.Free()
		// 2-byte.
		for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
			s16 := make([]uint16, ns)
			for i := range s16 {
				s16[i] = uint16(r.Uint32())
			}
			w16 := make([]uint16, nd)
			for i := range w16 {
				w16[i] = 0x5a5a
			}
			dsrc, ddst := uploadU16(t, dt, s16), uploadU16(t, dt, w16)
			must(testDev.CopyStrided(v.shape, ddst, v.strides[0], dsrc, v.strides[1]))
			cpu.CopyStrided(v.shape, w16, v.strides[0], s16, v.strides[1])
			g16 := make([]uint16, nd)
			must(testDev.DownloadU16(g16, ddst))
			for i := range w16 {
				if g16[i] != w16[i] {
					t.Errorf("CopyStrided %v %s: element %d is %#x, want %#x", dt, v.name, i, g16[i], w16[i])
					break
				}
			}
			dsrc.Free()
			ddst.Free()
		}
	}
	for _, n := range []int{0, 1, 3, 17, 1023, 300001} {
		for _, v := range []float32{-1.5, 1.0009765625, float32(math.Inf(-1)), 3.14159} {
			// F32
			b := uploadF32(t, sentinels(n+5))
			must(testDev.Fill(b, n, v))
			got := fetch(t, b)
			for i, g := range got {
				w := float32(stridedSentinel)
				if i < n {
					w = v
				}
				if math.Float32bits(g) != math.Float32bits(w) {
					t.Errorf("Fill f32 n=%d v=%g: element %d is %g, want %g", n, v, i, g, w)
					break
				}
			}
			b.Free()
			for _, dt := range []kernels.DType{kernels.F16, kernels.BF16} {
				sent := kernels.F32ToF16Scalar(stridedSentinel)
				wantBits := kernels.F32ToF16Scalar(v)
				if dt == kernels.BF16 {
					sent, wantBits = kernels.F32ToBF16Scalar(stridedSentinel), kernels.F32ToBF16Scalar(v)
				}
				h := make([]uint16, n+5)
				for i := range h {
					h[i] = sent
				}
				b := uploadU16(t, dt, h)
				must(testDev.Fill(b, n, v))
				must(testDev.DownloadU16(h, b))
				for i, g := range h {
					w := sent
					if i < n {
						w = wantBits
					}
					if g != w {
						t.Errorf("Fill %v n=%d v=%g: element %d is %#04x, want %#04x", dt, n, v, i, g, w)
						break
					}
				}
				b.Free()
			}
		}
	}
}

// TestStridedLauncherMisuse checks the launchers' panics.
func TestStridedLauncherMisuse(t *testing.T) {
	f32, _ := testDev.Alloc(kernels.F32, 12)
	f16, _ := testDev.Alloc(kernels.F16, 12)
	defer f32.Free()
	defer f16.Free()
	cases := []struct {
		want string
		fn   func()
	}{
		{"CopyStrided: mixed dtypes", func() { _ = testDev.CopyStrided([]int{12}, f32, []int{1}, f16, []int{1}) }},
		{"CopyStrided: dst is nil", func() { _ = testDev.CopyStrided([]int{12}, nil, []int{1}, f32, []int{1}) }},
		{"Unary: y has 12 elements", func() {
			_ = testDev.Unary(kernels.UExp, 0, 0, []int{13}, f32, []int{1}, f32, []int{1})
		}},
		{"Unary: x has 12 elements", func() {
			_ = testDev.Unary(kernels.UExp, 0, 0, []int{3, 4}, f32, []int{4, 1}, f16, []int{1, 4})
		}},
		{"Unary: operand 1 has 1 strides", func() {
			_ = testDev.Unary(kernels.UExp, 0, 0, []int{3, 4}, f32, []int{4, 1}, f16, []int{1})
		}},
		{"Binary: negative stride", func() {
			_ = testDev.Binary(kernels.BAdd, []int{3}, f32, []int{1}, f32, []int{-1}, f16, []int{1})
		}},
		{"Binary: output stride 0", func() {
			_ = testDev.Binary(kernels.BAdd, []int{3}, f32, []int{0}, f32, []int{1}, f16, []int{1})
		}},
		{"Binary: b is nil", func() { _ = testDev.Binary(kernels.BAdd, []int{3}, f32, []int{1}, f32, []int{1}, nil, []int{1}) }},
		{"Binary: more than 6 dimensions after merging", func() {
			shape := []int{1, 1, 1, 1, 1, 1, 1}
			for i := range shape {
				shape[i] = 2
			}
			st := []int{1, 2, 4, 8, 16, 32, 64}
			big, _ := testDev.Alloc(kernels.F32, 128)
			defer big.Free()
			_ = testDev.Binary(kernels.BAdd, shape, big, []int{64, 32, 16, 8, 4, 2, 1}, big, st, big, st)
		}},
		{"Fill: b has 12 elements, needs 13", func() { _ = testDev.Fill(f32, 13, 1) }},
		{"Unary: unknown op 99", func() { _ = testDev.Unary(99, 0, 0, []int{3}, f32, []int{1}, f32, []int{1}) }},
		{"Binary: unknown op 6", func() {
			_ = testDev.Binary(kernels.BMin+1, []int{3}, f32, []int{1}, f32, []int{1}, f32, []int{1})
		}},
	}
	for _, c := range cases {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), "cuda: "+c.want) {
					t.Errorf("panic %v, want one containing %q", r, "cuda: "+c.want)
				}
			}()
			c.fn()
		}()
	}
	must(testDev.Synchronize())
}

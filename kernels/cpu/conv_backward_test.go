package cpu

import (
	"fmt"
	"math"
	"testing"
)

// conv64 is the loop of Conv2dRef in float64: y [N, K, OH, OW] from x, w [K, C*R*S]
// (dense) and bias (nil: none).
func conv64(p ConvParams, x, w, bias []float64) []float64 {
	oh, ow := p.OutH(), p.OutW()
	crs := p.C * p.R * p.S
	y := make([]float64, p.N*p.K*oh*ow)
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var s float64
					if bias != nil {
						s = bias[k]
					}
					for c := 0; c < p.C; c++ {
						for r := 0; r < p.R; r++ {
							for q := 0; q < p.S; q++ {
								ih, iw := i*p.StrideH-p.PadH+r, j*p.StrideW-p.PadW+q
								if ih >= 0 && ih < p.H && iw >= 0 && iw < p.W {
									s += x[((n*p.C+c)*p.H+ih)*p.W+iw] * w[k*crs+(c*p.R+r)*p.S+q]
								}
							}
						}
					}
					y[((n*p.K+k)*oh+i)*ow+j] = s
				}
			}
		}
	}
	return y
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// fdGrad returns the central-difference gradient of loss with respect to every
// element of x (perturbed in place by ±h and restored).
func fdGrad(x []float64, h float64, loss func() float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		old := x[i]
		x[i] = old + h
		lp := loss()
		x[i] = old - h
		lm := loss()
		x[i] = old
		g[i] = (lp - lm) / (2 * h)
	}
	return g
}

// fdCompare fails t where an analytic gradient (float32) differs from the
// finite-difference one by more than atol + rtol*|fd|.
func fdCompare(t *testing.T, name string, got []float32, fd []float64, atol, rtol float64) {
	t.Helper()
	want := make([]float32, len(fd))
	for i, v := range fd {
		want[i] = float32(v)
	}
	convCompare(t, name, got, want, atol, rtol)
}

// dot64 returns sum_i r[i]*y[i].
func dot64(r []float32, y []float64) float64 {
	var s float64
	for i, v := range y {
		s += float64(r[i]) * v
	}
	return s
}

// TestConv2dBackwardRefFiniteDiff checks the three gradient references against
// central differences of the float64 forward loop: for a random R, the loss
// L = sum(R .* conv(x, w, b)) has dL/dx = Conv2dBackwardDataRef(R),
// dL/dw = Conv2dBackwardWeightRef(x, R), dL/db = Conv2dBackwardBiasRef(R).
// The convolution is linear in each argument, so the differences are exact
// up to float64 rounding; the tolerance (1e-5 absolute and relative) covers
// the float32 outputs of the references.
func TestConv2dBackwardRefFiniteDiff(t *testing.T) {
	for _, cc := range []convCase{
		{n: 2, c: 3, h: 5, w: 4, k: 2, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},
		{n: 1, c: 2, h: 7, w: 6, k: 3, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1},
		{n: 2, c: 3, h: 3, w: 5, k: 2, r: 1, s: 1, sh: 1, sw: 1},
		{n: 1, c: 2, h: 6, w: 7, k: 2, r: 3, s: 1, sh: 1, sw: 2, ph: 1, pw: 1},
		{n: 1, c: 1, h: 4, w: 5, k: 2, r: 2, s: 3, sh: 3, sw: 2, ph: 2, pw: 2},
		{n: 1, c: 2, h: 1, w: 1, k: 1, r: 1, s: 1, sh: 1, sw: 1},
	} {
		p := cc.params()
		crs := p.C * p.R * p.S
		ny := p.N * p.K * p.OutH() * p.OutW()
		x32 := convTestData(p.N*p.C*p.H*p.W, 1)
		w32 := convTestData(p.K*crs, 2)
		b32 := convTestData(p.K, 3)
		r := convTestData(ny, 4)
		x, w, b := to64(x32), to64(w32), to64(b32)
		// The float64 loop is Conv2dRef's.
		y32 := make([]float32, ny)
		Conv2dRef(p, x32, F32Mat(w32, crs, false), b32, y32)
		fdCompare(t, cc.String()+"/forward", y32, conv64(p, x, w, b), 1e-6, 1e-6)

		loss := func() float64 { return dot64(r, conv64(p, x, w, b)) }
		const h = 1e-3
		dx := make([]float32, len(x))
		Conv2dBackwardDataRef(p, r, F32Mat(w32, crs, false), dx)
		fdCompare(t, cc.String()+"/dx", dx, fdGrad(x, h, loss), 1e-5, 1e-5)
		dw := make([]float32, len(w))
		Conv2dBackwardWeightRef(p, x32, r, dw)
		fdCompare(t, cc.String()+"/dw", dw, fdGrad(w, h, loss), 1e-5, 1e-5)
		db := make([]float32, len(b))
		Conv2dBackwardBiasRef(p, r, db)
		fdCompare(t, cc.String()+"/db", db, fdGrad(b, h, loss), 1e-5, 1e-5)
	}
}

// Tolerances of the fast gradients against the references, for values in
// [-1, 1] (weights scaled by 1/sqrt(C*R*S)): float32 sums of n terms against
// float64 ones, atol = convBwdAtol*sqrt(n), rtol = convBwdRtol.
const (
	convBwdAtol = 5e-6
	convBwdRtol = 1e-5
)

// convBwdRun checks the three fast gradients against their references for one
// case, weight dtype and extra weight row stride.
func convBwdRun(t *testing.T, cc convCase, dt DType, wstrideExtra int) {
	t.Helper()
	p := cc.params()
	crs := p.C * p.R * p.S
	ws := crs + wstrideExtra
	ohw := p.OutH() * p.OutW()
	x := convTestData(p.N*p.C*p.H*p.W, uint64(1+p.C*p.H))
	wf := convTestData(p.K*ws, uint64(2+p.K))
	for i := range wf {
		wf[i] /= float32(math.Sqrt(float64(crs)))
	}
	w := convWeights(wf, dt, ws)
	dy := convTestData(p.N*p.K*ohw, uint64(3+p.W))
	name := fmt.Sprintf("%v/%v/ws+%d/threads%d", cc, dt, wstrideExtra, Threads())

	nan := float32(math.NaN())
	fill := func(n int) []float32 { // every output must be written
		s := make([]float32, n)
		for i := range s {
			s[i] = nan
		}
		return s
	}
	want := make([]float32, len(x))
	Conv2dBackwardDataRef(p, dy, w, want)
	got := fill(len(x))
	Conv2dBackwardData(p, dy, w, got)
	terms := float64(p.K * p.R * p.S)
	convCompare(t, name+"/dx", got, want, convBwdAtol*math.Sqrt(terms), convBwdRtol)

	if dt != F32 || wstrideExtra != 0 {
		return // the weight and bias gradients do not read w
	}
	want = make([]float32, p.K*crs)
	Conv2dBackwardWeightRef(p, x, dy, want)
	got = fill(len(want))
	Conv2dBackwardWeight(p, x, dy, got)
	terms = float64(p.N * ohw)
	convCompare(t, name+"/dw", got, want, convBwdAtol*math.Sqrt(terms), convBwdRtol)

	want = make([]float32, p.K)
	Conv2dBackwardBiasRef(p, dy, want)
	got = fill(p.K)
	Conv2dBackwardBias(p, dy, got)
	convCompare(t, name+"/db", got, want, convBwdAtol*math.Sqrt(terms), convBwdRtol)
}

// TestConv2dBackwardMatchesRef runs the fast gradients over awkward shapes:
// sizes 1, 3, 17, odd channel counts, strides 1 to 3 (different per
// dimension), padding 0 to 2, 1x1 and 3x3 and rectangular kernels.
func TestConv2dBackwardMatchesRef(t *testing.T) {
	var cases []convCase
	for _, n := range []int{1, 2} {
		for _, c := range []int{1, 3, 17} {
			for _, hw := range [][2]int{{1, 1}, {3, 3}, {17, 17}, {5, 9}} {
				for _, k := range []int{1, 5, 33} {
					for _, geo := range [][6]int{
						{1, 1, 0, 0, 1, 1}, // r, s, ph, pw, sh, sw
						{1, 1, 0, 0, 2, 2},
						{3, 3, 1, 1, 1, 1},
						{3, 3, 0, 0, 1, 1},
						{3, 3, 1, 1, 2, 2},
						{3, 1, 1, 0, 1, 2},
						{3, 3, 2, 2, 3, 3}, // padding wider than the kernel's reach
						{1, 3, 0, 1, 1, 3},
					} {
						cc := convCase{n: n, c: c, h: hw[0], w: hw[1], k: k, r: geo[0], s: geo[1],
							ph: geo[2], pw: geo[3], sh: geo[4], sw: geo[5]}
						if cc.h+2*cc.ph < cc.r || cc.w+2*cc.pw < cc.s {
							continue
						}
						cases = append(cases, cc)
					}
				}
			}
		}
	}
	for _, cc := range cases {
		convBwdRun(t, cc, F32, 0)
	}
}

// TestConv2dBackwardHalfWeights runs the data gradient with F16 and BF16
// weights (and weight rows with padding).
func TestConv2dBackwardHalfWeights(t *testing.T) {
	for _, dt := range []DType{F32, F16, BF16} {
		for _, cc := range []convCase{
			{n: 2, c: 3, h: 7, w: 5, k: 5, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},
			{n: 1, c: 17, h: 9, w: 11, k: 33, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1},
			{n: 2, c: 17, h: 6, w: 4, k: 5, r: 1, s: 1, sh: 1, sw: 1},
			{n: 1, c: 31, h: 12, w: 12, k: 40, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},
		} {
			convBwdRun(t, cc, dt, 0)
			convBwdRun(t, cc, dt, 3)
		}
	}
}

// TestConv2dBackwardTiling covers several column tiles per image (tiles that
// cross output rows), several channel groups and weight column blocks, row
// chunks of dW, and the serial-task path, on 1, 2 and 3 goroutines.
func TestConv2dBackwardTiling(t *testing.T) {
	cases := []convCase{
		{n: 1, c: 40, h: 48, w: 48, k: 7, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},   // 3 tiles, 2 groups, 2 blocks
		{n: 2, c: 45, h: 20, w: 130, k: 3, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},  // tiles cross rows
		{n: 1, c: 30, h: 101, w: 47, k: 50, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 0}, // stride 2
		{n: 1, c: 4, h: 64, w: 64, k: 40, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},   // one group: serial tasks
		{n: 2, c: 300, h: 9, w: 7, k: 70, r: 1, s: 1, sh: 1, sw: 1},                 // pointwise, 2 blocks
		{n: 1, c: 6, h: 70, w: 50, k: 9, r: 1, s: 1, sh: 1, sw: 1},                  // pointwise, 2 tiles
	}
	for _, th := range []int{1, 2, 3} {
		old := SetThreads(th)
		for i, cc := range cases {
			convBwdRun(t, cc, []DType{F32, F16, BF16}[i%3], 0)
			if i%3 != 0 {
				convBwdRun(t, cc, F32, 0)
			}
		}
		SetThreads(old)
	}
}

// TestConv2dBackwardSIMDLevels runs the gradients on every instruction-set
// level (the Go 4x4, AVX2 6x16 and AVX-512 14x32 micro-kernels, whose panel
// sizes decide the channel groups and weight blocks, and the Go and AVX2
// col2im adds).
func TestConv2dBackwardSIMDLevels(t *testing.T) {
	oldAdd := bwdUseAVX2
	defer func() { bwdUseAVX2 = oldAdd }()
	oldLevel := setSIMDLevel(levelAVX512)
	defer setSIMDLevel(oldLevel)
	for _, lvl := range []simdLevel{levelGo, levelAVX2, levelAVX512} {
		setSIMDLevel(lvl)
		bwdUseAVX2 = lvl >= levelAVX2 && oldAdd
		for _, th := range []int{1, 3} {
			old := SetThreads(th)
			for i, cc := range []convCase{
				{n: 2, c: 45, h: 20, w: 33, k: 7, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},
				{n: 1, c: 30, h: 21, w: 17, k: 50, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 0},
				{n: 2, c: 70, h: 5, w: 7, k: 9, r: 1, s: 1, sh: 1, sw: 1},
			} {
				convBwdRun(t, cc, []DType{F32, F16, BF16}[i], 0)
				convBwdRun(t, cc, F32, 0)
			}
			SetThreads(old)
		}
	}
}

func TestConv2dBackwardPanics(t *testing.T) {
	p := ConvParams{N: 1, C: 2, H: 4, W: 4, K: 3, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	x := make([]float32, 32)
	dy := make([]float32, 48)
	w := F32Mat(make([]float32, 3*18), 18, false)
	for name, f := range map[string]func(){
		"data short dy":    func() { Conv2dBackwardData(p, dy[:47], w, x) },
		"data short dx":    func() { Conv2dBackwardData(p, dy, w, x[:31]) },
		"data short w":     func() { Conv2dBackwardData(p, dy, F32Mat(make([]float32, 53), 18, false), x) },
		"data trans w":     func() { Conv2dBackwardData(p, dy, F32Mat(w.F32, 18, true), x) },
		"data zero stride": func() { q := p; q.StrideW = 0; Conv2dBackwardData(q, dy, w, x) },
		"weight short x":   func() { Conv2dBackwardWeight(p, x[:31], dy, make([]float32, 54)) },
		"weight short dy":  func() { Conv2dBackwardWeight(p, x, dy[:47], make([]float32, 54)) },
		"weight short dw":  func() { Conv2dBackwardWeight(p, x, dy, make([]float32, 53)) },
		"weight big R":     func() { q := p; q.PadH = 0; q.R = 5; Conv2dBackwardWeight(q, x, dy, make([]float32, 90)) },
		"bias short dy":    func() { Conv2dBackwardBias(p, dy[:47], make([]float32, 3)) },
		"bias short db":    func() { Conv2dBackwardBias(p, dy, make([]float32, 2)) },
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
	// An empty batch: zero gradients for the weights and bias, nothing else.
	q := p
	q.N = 0
	dw, db := convTestData(54, 1), convTestData(3, 2)
	Conv2dBackwardData(q, nil, w, nil)
	Conv2dBackwardWeight(q, nil, nil, dw)
	Conv2dBackwardBias(q, nil, db)
	for _, v := range append(dw, db...) {
		if v != 0 {
			t.Fatalf("N = 0: gradient %g, want 0", v)
		}
	}
}

// TestConvCol2imAdjoint checks that convCol2im is the adjoint of convIm2col
// on pieces (row ranges, column ranges crossing output rows):
// <im2col(x), c> == <x, col2im(c)>.
func TestConvCol2imAdjoint(t *testing.T) {
	for _, cc := range []convCase{
		{n: 1, c: 3, h: 9, w: 11, k: 1, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},
		{n: 1, c: 2, h: 10, w: 13, k: 1, r: 3, s: 2, sh: 2, sw: 3, ph: 2, pw: 1},
	} {
		p := cc.params()
		crs := p.C * p.R * p.S
		ohw := p.OutH() * p.OutW()
		x := convTestData(p.C*p.H*p.W, 1)
		for _, rng := range [][4]int{{0, crs, 0, ohw}, {2, crs - 3, 5, ohw - 7}, {4, 5, 1, 2}} {
			r0, r1, j0, j1 := rng[0], rng[1], rng[2], rng[3]
			cols := convTestData((r1-r0)*(j1-j0), 2)
			im := make([]float32, len(cols))
			convIm2col(p, x, im, r0, r1, j0, j1, nil)
			back := make([]float32, len(x))
			convCol2im(p, back, cols, r0, r1, j0, j1)
			var a, b float64
			for i := range im {
				a += float64(im[i]) * float64(cols[i])
			}
			for i := range x {
				b += float64(x[i]) * float64(back[i])
			}
			if math.Abs(a-b) > 1e-5*max(1, math.Abs(a)) { // col2im sums in float32
				t.Errorf("%v rows [%d,%d) cols [%d,%d): <im2col x, c> = %g, <x, col2im c> = %g", cc, r0, r1, j0, j1, a, b)
			}
		}
	}
}

// TestConvAddTo checks the vector add of col2im around the vector widths.
func TestConvAddTo(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 64, 100} {
		d0, s := convTestData(n, 1), convTestData(n, 2)
		d := append([]float32(nil), d0...)
		convAddTo(d, s)
		for i := range d {
			if d[i] != d0[i]+s[i] {
				t.Fatalf("n %d: [%d] = %g, want %g", n, i, d[i], d0[i]+s[i])
			}
		}
	}
}

package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// convTestData fills a slice of n values uniform in [-1, 1) from a fixed seed.
func convTestData(n int, seed uint64) []float32 {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.Float64()*2 - 1)
	}
	return x
}

// convCompare fails t when |got-want| > atol + rtol*|want| anywhere, printing the
// largest difference and the first mismatches.
func convCompare(t *testing.T, name string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", name, len(got), len(want))
	}
	var maxd float64
	bad := 0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		gn, wn := math.IsNaN(float64(got[i])), math.IsNaN(float64(want[i]))
		if gn || wn {
			d = math.Inf(1) // a NaN on one side only is a mismatch
			if gn && wn {
				d = 0
			}
		}
		maxd = max(maxd, d)
		if d > atol+rtol*math.Abs(float64(want[i])) {
			if bad < 5 {
				t.Errorf("%s: [%d] = %g, want %g (diff %g)", name, i, got[i], want[i], d)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance (atol %g, rtol %g), max diff %g", name, bad, len(want), atol, rtol, maxd)
	}
}

// convWeights returns the weight operand of dtype dt holding w (rounded to dt).
func convWeights(w []float32, dt DType, stride int) Mat {
	switch dt {
	case F16:
		b := make([]uint16, len(w))
		F32ToF16(b, w)
		return HalfMat(b, F16, stride, false)
	case BF16:
		b := make([]uint16, len(w))
		F32ToBF16(b, w)
		return HalfMat(b, BF16, stride, false)
	}
	return F32Mat(w, stride, false)
}

type convCase struct {
	n, c, h, w, k, r, s, sh, sw, ph, pw int
}

func (cc convCase) params() ConvParams {
	return ConvParams{N: cc.n, C: cc.c, H: cc.h, W: cc.w, K: cc.k, R: cc.r, S: cc.s,
		StrideH: cc.sh, StrideW: cc.sw, PadH: cc.ph, PadW: cc.pw}
}

func (cc convCase) String() string {
	return fmt.Sprintf("N%d_C%d_%dx%d_K%d_%dx%d_s%d,%d_p%d,%d", cc.n, cc.c, cc.h, cc.w, cc.k, cc.r, cc.s, cc.sh, cc.sw, cc.ph, cc.pw)
}

// convRun checks Conv2d against Conv2dRef for one case, weight dtype and bias choice.
func convRun(t *testing.T, cc convCase, dt DType, withBias bool, wstrideExtra int) {
	t.Helper()
	p := cc.params()
	crs := p.C * p.R * p.S
	ws := crs + wstrideExtra
	x := convTestData(p.N*p.C*p.H*p.W, uint64(1+p.C*p.H))
	wf := convTestData(p.K*ws, uint64(2+p.K))
	for i := range wf {
		wf[i] /= float32(math.Sqrt(float64(crs)))
	}
	w := convWeights(wf, dt, ws)
	var bias []float32
	if withBias {
		bias = convTestData(p.K, 3)
	}
	ny := p.N * p.K * p.OutH() * p.OutW()
	want := make([]float32, ny)
	Conv2dRef(p, x, w, bias, want)
	got := make([]float32, ny)
	for i := range got {
		got[i] = float32(math.NaN()) // every output must be written
	}
	Conv2d(p, x, w, bias, got)
	// Products of up to a few hundred terms in float32 against a float64 reference,
	// same (already rounded) weights on both sides.
	convCompare(t, fmt.Sprintf("%v/%v/bias=%v", cc, dt, withBias), got, want, 2e-5*math.Sqrt(float64(crs)), 1e-5)
}

func TestConv2dMatchesRef(t *testing.T) {
	var cases []convCase
	for _, n := range []int{1, 2} {
		for _, c := range []int{1, 3, 17} {
			for _, hw := range [][2]int{{1, 1}, {3, 3}, {17, 17}, {5, 9}, {16, 3}} {
				for _, k := range []int{1, 5, 33} {
					for _, geo := range [][5]int{
						{1, 1, 0, 1, 1}, // r, s, pad, sh, sw
						{1, 1, 0, 2, 2},
						{3, 3, 1, 1, 1},
						{3, 3, 0, 1, 1},
						{3, 3, 1, 2, 2},
						{3, 3, 0, 2, 2},
						{3, 1, 1, 1, 2},
						{3, 3, 2, 3, 3}, // padding wider than the kernel's reach, stride 3
						{1, 3, 1, 1, 3},
					} {
						cc := convCase{n: n, c: c, h: hw[0], w: hw[1], k: k, r: geo[0], s: geo[1],
							sh: geo[3], sw: geo[4], ph: geo[2], pw: geo[2]}
						if cc.h+2*cc.ph < cc.r || cc.w+2*cc.pw < cc.s {
							continue
						}
						cases = append(cases, cc)
					}
				}
			}
		}
	}
	for i, cc := range cases {
		convRun(t, cc, F32, i%2 == 0, 0)
	}
}

func TestConv2dHalfWeights(t *testing.T) {
	for _, dt := range []DType{F16, BF16} {
		for _, cc := range []convCase{
			{n: 2, c: 3, h: 7, w: 5, k: 5, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},
			{n: 1, c: 17, h: 9, w: 11, k: 33, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1},
			{n: 2, c: 17, h: 6, w: 4, k: 5, r: 1, s: 1, sh: 1, sw: 1},
		} {
			convRun(t, cc, dt, true, 0)
			convRun(t, cc, dt, false, 3) // weight rows with padding
		}
	}
}

// TestConv2dTiling covers several column tiles and im2col row blocks per image,
// with 1, 2 and 3 goroutines.
func TestConv2dTiling(t *testing.T) {
	cases := []convCase{
		{n: 1, c: 32, h: 48, w: 48, k: 5, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},  // 2 tiles, 2 blocks
		{n: 2, c: 40, h: 20, w: 130, k: 3, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // tiles cross rows
		{n: 1, c: 30, h: 101, w: 47, k: 2, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 0},
	}
	for _, th := range []int{1, 2, 3} {
		old := SetThreads(th)
		for _, cc := range cases {
			convRun(t, cc, F32, true, 0)
		}
		SetThreads(old)
	}
	if got := ConvScratchFloats(cases[0].params()); got <= 0 || got > convBlockRows*convTileCols {
		t.Errorf("ConvScratchFloats = %d, want in (0, %d]", got, convBlockRows*convTileCols)
	}
}

// TestConv2dSmallCRSBias covers convBiasRow (small C*R*S with a bias, the bias
// as an extra column of W): several column tiles crossing output rows, every
// weight dtype, padded weight rows, 1 to 3 goroutines, and C*R*S on both sides
// of convBiasRowMaxCRS.
func TestConv2dSmallCRSBias(t *testing.T) {
	cases := []convCase{
		{n: 2, c: 4, h: 64, w: 64, k: 37, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // U-Net conv_in shape, fewer K
		{n: 1, c: 3, h: 70, w: 61, k: 20, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // tiles cross rows
		{n: 3, c: 2, h: 9, w: 13, k: 5, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1},
		{n: 1, c: 14, h: 40, w: 40, k: 17, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // C*R*S = 126
		{n: 1, c: 15, h: 40, w: 40, k: 17, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // C*R*S = 135
	}
	for _, th := range []int{1, 2, 3} {
		old := SetThreads(th)
		for _, cc := range cases {
			for _, dt := range []DType{F32, F16, BF16} {
				convRun(t, cc, dt, true, 0)
				convRun(t, cc, dt, true, 5)
			}
		}
		SetThreads(old)
	}
}

func TestConv2dPanics(t *testing.T) {
	p := ConvParams{N: 1, C: 2, H: 4, W: 4, K: 3, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	x := make([]float32, 32)
	y := make([]float32, 48)
	w := F32Mat(make([]float32, 3*18), 18, false)
	for name, f := range map[string]func(){
		"short x":      func() { Conv2d(p, x[:31], w, nil, y) },
		"short y":      func() { Conv2d(p, x, w, nil, y[:47]) },
		"short w":      func() { Conv2d(p, x, F32Mat(make([]float32, 53), 18, false), nil, y) },
		"short bias":   func() { Conv2d(p, x, w, make([]float32, 2), y) },
		"zero stride":  func() { q := p; q.StrideH = 0; Conv2d(q, x, w, nil, y) },
		"transposed w": func() { Conv2d(p, x, F32Mat(w.F32, 18, true), nil, y) },
		"big kernel":   func() { q := p; q.PadH = 0; q.R = 5; Conv2d(q, x, w, nil, y) },
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

// TestConvGather2 checks the stride-2 gather (vector and scalar parts) at lengths
// around the 16-float chunks, with sources just long enough and longer.
func TestConvGather2(t *testing.T) {
	old := convUseAVX512
	defer func() { convUseAVX512 = old }()
	for _, simd := range []bool{false, old} {
		convUseAVX512 = simd
		for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100} {
			src := convTestData(2*n+1, uint64(n))
			for _, sl := range []int{2*n - 1, 2 * n, 2*n + 1} {
				if sl < 0 {
					continue
				}
				dst := make([]float32, n)
				convGather2(dst, src[:sl])
				for i := range dst {
					if dst[i] != src[2*i] {
						t.Fatalf("avx512=%v n %d len(src) %d: dst[%d] = %g, want %g", simd, n, sl, i, dst[i], src[2*i])
					}
				}
			}
		}
	}
}

// convPerTile is the earlier Conv2d loop nest, kept as a structural reference:
// every column tile runs its own products over the row blocks of W (packing W
// itself), one product over all C for a pointwise convolution.
func convPerTile(p ConvParams, x []float32, w Mat, bias, y []float32) {
	pl := convMakePlan(p)
	ohw := pl.ohw
	beta := float32(0)
	if bias != nil {
		beta = 1
	}
	for task := 0; task < p.N*pl.tilesPerImg; task++ {
		n, tile := task/pl.tilesPerImg, task%pl.tilesPerImg
		j0 := tile * pl.colsPerTile
		j1 := min(j0+pl.colsPerTile, ohw)
		cols := j1 - j0
		xn := x[n*p.C*p.H*p.W : (n+1)*p.C*p.H*p.W]
		yn := y[n*p.K*ohw:]
		for k := 0; bias != nil && k < p.K; k++ {
			convFill(yn[k*ohw+j0:k*ohw+j1], bias[k])
		}
		if convIsPointwise(p) {
			GemmSerial(p.K, cols, p.C, 1, w, F32Mat(xn[j0:], ohw, false), beta, yn[j0:], ohw)
			continue
		}
		buf := make([]float32, pl.rowsPerBlock*cols)
		for r0 := 0; r0 < pl.crs; r0 += pl.rowsPerBlock {
			r1 := min(r0+pl.rowsPerBlock, pl.crs)
			convIm2col(p, xn, buf[:(r1-r0)*cols], r0, r1, j0, j1, nil)
			bb := beta
			if r0 > 0 {
				bb = 1
			}
			GemmSerial(p.K, cols, r1-r0, 1, offsetMat(w, r0), F32Mat(buf, cols, false), bb, yn[j0:], ohw)
		}
	}
}

// TestConv2dPackedOnce checks that the split over output channels for narrow
// tiles (convSplitK: each goroutine packs its rows of W once for all tiles)
// gives bit for bit the results of the per-tile products (convPerTile): the
// same blocks, the same products, the same order of sums. It covers several
// row blocks and tiles, pointwise convolutions with several K passes, F16 and
// BF16 weights and 1 to 3 goroutines; Conv2d is checked against Conv2dRef
// elsewhere.
func TestConv2dPackedOnce(t *testing.T) {
	cases := []convCase{
		{n: 2, c: 64, h: 3, w: 3, k: 80, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},   // 2 row blocks, K >= 8 columns
		{n: 1, c: 130, h: 7, w: 9, k: 170, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1}, // 3 row blocks, stride 2
		{n: 2, c: 700, h: 3, w: 5, k: 130, r: 1, s: 1, sh: 1, sw: 1},               // pointwise, several K passes
		{n: 3, c: 40, h: 20, w: 13, k: 19, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // wide tiles: per-tile path
	}
	for _, cc := range cases[:3] {
		p := cc.params()
		if split := p.K >= convSplitKRatio*convMakePlan(p).colsPerTile; !split {
			t.Fatalf("%v does not take convSplitK", cc)
		}
	}
	for _, th := range []int{1, 2, 3} {
		old := SetThreads(th)
		for i, cc := range cases {
			p := cc.params()
			crs := p.C * p.R * p.S
			x := convTestData(p.N*p.C*p.H*p.W, uint64(5+i))
			w := convWeights(convTestData(p.K*crs, uint64(6+i)), []DType{F32, F16, BF16}[(i+th)%3], crs)
			bias := convTestData(p.K, 7)
			if i%2 == 1 {
				bias = nil
			}
			ny := p.N * p.K * p.OutH() * p.OutW()
			want, got := make([]float32, ny), make([]float32, ny)
			convPerTile(p, x, w, bias, want)
			Conv2d(p, x, w, bias, got)
			for j := range got {
				if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
					t.Fatalf("%v/%v threads %d: y[%d] = %g, per-tile products give %g", cc, w.DType, th, j, got[j], want[j])
				}
			}
		}
		SetThreads(old)
	}
	// And against the reference, on the split path.
	for _, th := range []int{1, 3} {
		old := SetThreads(th)
		convRun(t, cases[0], F16, true, 3)
		convRun(t, cases[2], BF16, true, 0)
		SetThreads(old)
	}
}

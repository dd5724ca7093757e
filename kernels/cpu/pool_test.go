package cpu

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
)

func TestPoolHand(t *testing.T) {
	// One 3x3 plane 1..9, 3x3 windows, stride 1, padding 1.
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9}
	p := PoolParams{NC: 1, H: 3, W: 3, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	y := make([]float32, 9)
	MaxPool2d(p, x, y)
	want := []float32{5, 6, 6, 8, 9, 9, 8, 9, 9}
	for i := range y {
		if y[i] != want[i] {
			t.Fatalf("max pool %v, want %v", y, want)
		}
	}
	// Corner (0,0): window {1,2,4,5}: count_include_pad=False -> 12/4, True -> 12/9.
	AvgPool2d(p, false, x, y)
	if y[0] != 3 || y[4] != 5 || y[1] != float32(1+2+3+4+5+6)/6 {
		t.Fatalf("avg pool (exclude pad) %v", y)
	}
	AvgPool2d(p, true, x, y)
	if y[0] != float32(12)/9 || y[4] != 5 {
		t.Fatalf("avg pool (include pad) %v", y)
	}
	// Adaptive 3x3 -> 2x2: rows {0,1},{1,2}, columns likewise.
	y4 := make([]float32, 4)
	AdaptiveAvgPool2d(1, 3, 3, 2, 2, x, y4)
	if y4[0] != 3 || y4[3] != 7 {
		t.Fatalf("adaptive %v", y4)
	}
	ChannelAffine(1, 1, 9, x, []float32{-1}, []float32{4}, true, y)
	if y[0] != 3 || y[3] != 0 || y[8] != 0 {
		t.Fatalf("affine relu %v", y)
	}
}

func randPlanes(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func closeSlices(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(w) != math.IsNaN(g) || math.Abs(g-w) > tol*(1+math.Abs(w)) {
			t.Fatalf("%s: element %d: got %v, want %v", what, i, g, w)
		}
	}
}

func TestPoolAgainstRef(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for _, p := range []PoolParams{
		{NC: 3, H: 17, W: 13, KH: 3, KW: 3, StrideH: 2, StrideW: 2},
		{NC: 5, H: 8, W: 9, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{NC: 1, H: 1, W: 1, KH: 1, KW: 1, StrideH: 1, StrideW: 1},
		{NC: 70, H: 35, W: 35, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		{NC: 2, H: 7, W: 23, KH: 2, KW: 5, StrideH: 2, StrideW: 3, PadH: 1, PadW: 2},
		{NC: 4, H: 6, W: 6, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
	} {
		x := randPlanes(r, p.NC*p.H*p.W)
		n := p.NC * p.OutH() * p.OutW()
		got, want := make([]float32, n), make([]float32, n)
		MaxPool2d(p, x, got)
		MaxPool2dRef(p, x, want)
		closeSlices(t, "max", got, want, 0)
		for _, inc := range []bool{false, true} {
			AvgPool2d(p, inc, x, got)
			AvgPool2dRef(p, inc, x, want)
			closeSlices(t, "avg", got, want, 1e-6)
		}
	}
	for _, s := range [][4]int{{17, 13, 1, 1}, {8, 8, 3, 3}, {7, 5, 3, 2}, {1, 1, 1, 1}, {10, 10, 4, 7}} {
		nc := 6
		x := randPlanes(r, nc*s[0]*s[1])
		got, want := make([]float32, nc*s[2]*s[3]), make([]float32, nc*s[2]*s[3])
		AdaptiveAvgPool2d(nc, s[0], s[1], s[2], s[3], x, got)
		AdaptiveAvgPool2dRef(nc, s[0], s[1], s[2], s[3], x, want)
		closeSlices(t, "adaptive", got, want, 0)
	}
	for _, relu := range []bool{false, true} {
		n, c, hw := 2, 7, 19
		x := randPlanes(r, n*c*hw)
		sc, sh := randPlanes(r, c), randPlanes(r, c)
		got, want := make([]float32, len(x)), make([]float32, len(x))
		ChannelAffine(n, c, hw, x, sc, sh, relu, got)
		ChannelAffineRef(n, c, hw, x, sc, sh, relu, want)
		closeSlices(t, "affine", got, want, 0)
		ChannelAffine(n, c, hw, x, nil, nil, relu, got)
		ChannelAffineRef(n, c, hw, x, nil, nil, relu, want)
		closeSlices(t, "affine nil", got, want, 0)
	}
	// NaN propagates through max pooling.
	x := []float32{1, float32(math.NaN()), 3, 4}
	y := make([]float32, 1)
	MaxPool2d(PoolParams{NC: 1, H: 2, W: 2, KH: 2, KW: 2, StrideH: 1, StrideW: 1}, x, y)
	if !math.IsNaN(float64(y[0])) {
		t.Fatalf("NaN lost: %v", y)
	}
}

// poolInput returns n floats: normals, or with specials set, normals
// rounded to halves (so windows hold ties) with NaN, +-Inf and +-0 sprinkled
// in at a few per cent each.
func poolInput(r *rand.Rand, n int, specials bool) []float32 {
	x := randPlanes(r, n)
	if !specials {
		return x
	}
	nan, inf, nz := float32(math.NaN()), float32(math.Inf(1)), float32(math.Copysign(0, -1))
	for i := range x {
		switch u := r.Float64(); {
		case u < 0.02:
			x[i] = nan
		case u < 0.03:
			x[i] = inf
		case u < 0.04:
			x[i] = -inf
		case u < 0.10:
			x[i] = nz
		case u < 0.14:
			x[i] = 0
		default:
			x[i] = float32(math.Round(float64(x[i])*2) / 2)
		}
	}
	return x
}

// poolCheck compares got with the reference want: NaN where want is NaN and
// only there, infinities exactly, finite values within tol*(1+|want|); with
// tol 0 and signedZero also the sign of zeros (bitwise equality).
func poolCheck(t *testing.T, what string, got, want []float32, tol float64, signedZero bool) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		bad := math.IsNaN(g) != math.IsNaN(w)
		switch {
		case bad || math.IsNaN(w):
		case math.IsInf(w, 0) || math.IsInf(g, 0):
			bad = g != w
		case signedZero && tol == 0:
			bad = math.Float32bits(got[i]) != math.Float32bits(want[i])
		default:
			bad = math.Abs(g-w) > tol*(1+math.Abs(w))
		}
		if bad {
			t.Fatalf("%s: element %d of %d: got %v (%#x), want %v (%#x)", what, i, len(want),
				got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// poolShapes lists pooling problems over awkward sizes: planes from 1x1 to
// 17x47 (widths below, at and around the vector width 8 and its multiples),
// windows 1..5, strides 1..3 and every padding torch allows (at most half the
// window), plus the shapes of the feature extractors.
func poolShapes() []PoolParams {
	var ps []PoolParams
	for _, h := range []int{1, 2, 3, 5, 8, 17} {
		for _, w := range []int{1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 18, 23, 24, 31, 32, 33, 35, 47} {
			for k := 1; k <= 5; k++ {
				for s := 1; s <= 3; s++ {
					for pad := 0; pad <= k/2; pad++ {
						kh := min(k, h+2*pad) // a window taller than the padded plane is no problem
						if kh/2 < pad {
							continue
						}
						p := PoolParams{NC: 2, H: h, W: w, KH: kh, KW: k, StrideH: s, StrideW: s, PadH: pad, PadW: pad}
						if p.W+2*pad < k {
							continue
						}
						ps = append(ps, p)
					}
				}
			}
		}
	}
	// Unequal strides and windows, and the networks' pools (one batch).
	ps = append(ps,
		PoolParams{NC: 2, H: 7, W: 23, KH: 2, KW: 5, StrideH: 2, StrideW: 3, PadH: 1, PadW: 2},
		PoolParams{NC: 2, H: 9, W: 40, KH: 3, KW: 3, StrideH: 1, StrideW: 2, PadH: 1},
		PoolParams{NC: 2, H: 12, W: 30, KH: 3, KW: 2, StrideH: 2, StrideW: 1, PadW: 1},
		PoolParams{NC: 3, H: 147, W: 147, KH: 3, KW: 3, StrideH: 2, StrideW: 2},
		PoolParams{NC: 3, H: 35, W: 35, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
		PoolParams{NC: 3, H: 112, W: 112, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
		PoolParams{NC: 3, H: 56, W: 56, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
	)
	return ps
}

// poolFastCase runs MaxPool2d and AvgPool2d (both count_include_pad modes)
// on x and returns their outputs, one after the other.
func poolFastRun(p PoolParams, x []float32) []float32 {
	n := p.NC * p.OutH() * p.OutW()
	y := make([]float32, 3*n)
	MaxPool2d(p, x, y[:n])
	AvgPool2d(p, false, x, y[n:2*n])
	AvgPool2d(p, true, x, y[2*n:])
	return y
}

// TestPoolFastMatchesRef checks MaxPool2d and AvgPool2d against their
// references over poolShapes, with clean inputs and with NaN/Inf/-0 and
// ties, on the pure-Go path and (where the machine has it) the AVX2 path;
// and that the two paths agree bit for bit (same reduction order, same tie
// and NaN rules). The max is compared exactly, except that a tie of -0 and
// +0 may resolve to either (the passes visit the window in another order
// than the reference); the average within 1e-6 relative.
func TestPoolFastMatchesRef(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	type problem struct {
		p   PoolParams
		x   []float32
		ref []float32
	}
	var probs []problem
	for _, p := range poolShapes() {
		for _, sp := range []bool{false, true} {
			x := poolInput(r, p.NC*p.H*p.W, sp)
			n := p.NC * p.OutH() * p.OutW()
			ref := make([]float32, 3*n)
			MaxPool2dRef(p, x, ref[:n])
			AvgPool2dRef(p, false, x, ref[n:2*n])
			AvgPool2dRef(p, true, x, ref[2*n:])
			probs = append(probs, problem{p, x, ref})
		}
	}
	outs := map[bool][][]float32{}
	actForEachPath(t, func(t *testing.T) {
		for _, pr := range probs {
			got := poolFastRun(pr.p, pr.x)
			n := len(got) / 3
			what := fmt.Sprintf("%+v", pr.p)
			poolCheck(t, "max "+what, got[:n], pr.ref[:n], 0, false)
			poolCheck(t, "avg "+what, got[n:2*n], pr.ref[n:2*n], 1e-6, false)
			poolCheck(t, "avg include-pad "+what, got[2*n:], pr.ref[2*n:], 1e-6, false)
			outs[vecAsm] = append(outs[vecAsm], got)
		}
	})
	if len(outs) == 2 {
		for i, pr := range probs {
			poolCheck(t, fmt.Sprintf("asm vs go %+v", pr.p), outs[true][i], outs[false][i], 0, true)
		}
	}
}

// TestPoolNaNEachPosition puts a single NaN at every position of a plane in
// turn and checks that exactly the outputs whose windows (clipped to the
// plane) contain it are NaN, for the hot 3x3 pools, on both paths.
func TestPoolNaNEachPosition(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	actForEachPath(t, func(t *testing.T) {
		for _, p := range []PoolParams{
			{NC: 1, H: 9, W: 21, KH: 3, KW: 3, StrideH: 2, StrideW: 2},
			{NC: 1, H: 9, W: 21, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1},
			{NC: 1, H: 9, W: 19, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1},
			{NC: 1, H: 6, W: 20, KH: 2, KW: 2, StrideH: 2, StrideW: 2},
		} {
			oh, ow := p.OutH(), p.OutW()
			for pos := 0; pos < p.H*p.W; pos++ {
				x := randPlanes(r, p.H*p.W)
				x[pos] = float32(math.NaN())
				got := poolFastRun(p, x)
				pr, pq := pos/p.W, pos%p.W
				for i := 0; i < oh; i++ {
					for j := 0; j < ow; j++ {
						r0, q0 := i*p.StrideH-p.PadH, j*p.StrideW-p.PadW
						in := pr >= r0 && pr < r0+p.KH && pq >= q0 && pq < q0+p.KW
						for m := 0; m < 3; m++ {
							if v := got[m*oh*ow+i*ow+j]; math.IsNaN(float64(v)) != in {
								t.Fatalf("%+v: NaN at (%d,%d): op %d output (%d,%d) = %v", p, pr, pq, m, i, j, v)
							}
						}
					}
				}
			}
		}
	})
}

// TestPoolChannelAffineBits checks ChannelAffine against ChannelAffineRef bit
// for bit (tolerance 0, the sign of zero and NaN-ness included) for rows of
// 0..40 and 1023 elements (every tail of the 8-wide vectors), per-channel,
// single-channel and absent scale/shift, inputs and parameters with NaN,
// +-Inf, +-0 and subnormals, with and without ReLU, in place too; and facts
// by hand: ReLU keeps NaN and -0 (x*1 + -0), and maps -1 to +0.
func TestPoolChannelAffineBits(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	nan, inf, nz := float32(math.NaN()), float32(math.Inf(1)), float32(math.Copysign(0, -1))
	specials := []float32{nan, inf, -inf, nz, 0, 1e-40, -1e-40, 3e38, -3e38, 1, -1}
	mix := func(n int) []float32 {
		x := randPlanes(r, n)
		for i := range x {
			if r.Intn(4) == 0 {
				x[i] = specials[r.Intn(len(specials))]
			}
		}
		return x
	}
	bits := func(what string, got, want []float32) {
		t.Helper()
		for i := range want {
			g, w := got[i], want[i]
			if g != g && w != w {
				continue
			}
			if math.Float32bits(g) != math.Float32bits(w) {
				t.Fatalf("%s: element %d: got %v (%#x), want %v (%#x)", what, i, g, math.Float32bits(g), w, math.Float32bits(w))
			}
		}
	}
	actForEachPath(t, func(t *testing.T) {
		hws := []int{1023}
		for hw := 0; hw <= 40; hw++ {
			hws = append(hws, hw)
		}
		for _, hw := range hws {
			for _, c := range []int{1, 3} {
				n := 2
				x := mix(n * c * hw)
				sc, sh := mix(c), mix(c)
				sh[0] = nz // -0 shift: x*a = -0 gives v = -0
				for _, relu := range []bool{false, true} {
					for _, nilParams := range []bool{false, true} {
						s, b := sc, sh
						if nilParams {
							s, b = nil, nil
						}
						want, got := make([]float32, len(x)), make([]float32, len(x))
						ChannelAffineRef(n, c, hw, x, s, b, relu, want)
						ChannelAffine(n, c, hw, x, s, b, relu, got)
						what := fmt.Sprintf("hw %d c %d relu %v nil %v", hw, c, relu, nilParams)
						bits(what, got, want)
						inplace := append([]float32(nil), x...)
						ChannelAffine(n, c, hw, inplace, s, b, relu, inplace)
						bits(what+" in place", inplace, want)
					}
				}
			}
		}
		x := []float32{nan, nz, -1, 2, -inf, inf, 0, -3, nan, nz, 5}
		y := make([]float32, len(x))
		// Shift -0: -0*1 + -0 = -0, which ReLU keeps (with no shift, -0 + 0 = +0).
		ChannelAffine(1, 1, len(x), x, []float32{1}, []float32{nz}, true, y)
		if !math.IsNaN(float64(y[0])) || !math.IsNaN(float64(y[8])) {
			t.Fatalf("ReLU lost a NaN: %v", y)
		}
		if !math.Signbit(float64(y[1])) || y[1] != 0 || math.Signbit(float64(y[2])) || y[2] != 0 {
			t.Fatalf("ReLU(-0), ReLU(-1) = %v (%#x), %v (%#x), want -0, +0", y[1], math.Float32bits(y[1]), y[2], math.Float32bits(y[2]))
		}
		if y[3] != 2 || y[4] != 0 || y[5] != inf || y[10] != 5 {
			t.Fatalf("ReLU %v", y)
		}
	})
}

// TestPoolHandStride2 checks the stride-2 pools on a 5x6 plane by hand:
// x[r][q] = 6r + q, so a window's maximum is its bottom-right element and
// its mean the mean of its corners.
func TestPoolHandStride2(t *testing.T) {
	x := make([]float32, 30)
	for i := range x {
		x[i] = float32(i)
	}
	actForEachPath(t, func(t *testing.T) {
		// 3x3 stride 2: windows at rows {0,2}, columns {0,2}: max at (2,2),(2,4),(4,2),(4,4).
		p := PoolParams{NC: 1, H: 5, W: 6, KH: 3, KW: 3, StrideH: 2, StrideW: 2}
		y := make([]float32, 4)
		MaxPool2d(p, x, y)
		if want := []float32{14, 16, 26, 28}; !slicesEqual(y, want) {
			t.Fatalf("max 3x3/2: %v, want %v", y, want)
		}
		// Padding 1: 3x3 outputs, windows start at -1, 1, 3.
		p.PadH, p.PadW = 1, 1
		y = make([]float32, 9)
		MaxPool2d(p, x, y)
		if want := []float32{7, 9, 11, 19, 21, 23, 25, 27, 29}; !slicesEqual(y, want) {
			t.Fatalf("max 3x3/2 pad 1: %v, want %v", y, want)
		}
		// 2x2 stride 2 average: (x00 + x01 + x10 + x11)/4 = 6r' + q' + 3.5 at (2i, 2j).
		p = PoolParams{NC: 1, H: 5, W: 6, KH: 2, KW: 2, StrideH: 2, StrideW: 2}
		y = make([]float32, 6)
		AvgPool2d(p, true, x, y)
		if want := []float32{3.5, 5.5, 7.5, 15.5, 17.5, 19.5}; !slicesEqual(y, want) {
			t.Fatalf("avg 2x2/2: %v, want %v", y, want)
		}
	})
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

package cpu

import (
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

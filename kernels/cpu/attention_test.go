package cpu

import (
	"fmt"
	"math"
	"testing"
)

type attnCase struct {
	b, h, sq, sk, d int
	causal          bool
	pad             [4]int // extra row stride of q, k, v, o beyond H*D (0: dense)
}

func (ac attnCase) params() AttnParams {
	p := AttnParams{B: ac.b, H: ac.h, Sq: ac.sq, Sk: ac.sk, D: ac.d, Causal: ac.causal,
		Scale: float32(1 / math.Sqrt(float64(ac.d)))}
	hd := ac.h * ac.d
	if ac.pad != [4]int{} {
		p.QStride, p.KStride, p.VStride, p.OStride = hd+ac.pad[0], hd+ac.pad[1], hd+ac.pad[2], hd+ac.pad[3]
	}
	return p
}

func (ac attnCase) String() string {
	return fmt.Sprintf("B%d_H%d_Sq%d_Sk%d_D%d_causal%v_pad%v", ac.b, ac.h, ac.sq, ac.sk, ac.d, ac.causal, ac.pad)
}

// attnRun checks Attention against AttentionRef for one case; the scores are
// scaled up by amp to make the softmax peaky.
func attnRun(t *testing.T, ac attnCase, amp float32) {
	t.Helper()
	p := ac.params()
	qs, ks, vs, os := p.strides()
	q := convTestData(p.B*p.Sq*qs, uint64(11+p.D))
	k := convTestData(p.B*p.Sk*ks, uint64(12+p.Sk))
	v := convTestData(p.B*p.Sk*vs, uint64(13))
	for i := range q {
		q[i] *= amp
	}
	want := make([]float32, p.B*p.Sq*os)
	got := make([]float32, len(want))
	for i := range want {
		want[i] = -7 // the row padding must stay untouched
		got[i] = -7
	}
	AttentionRef(p, q, k, v, want)
	Attention(p, q, k, v, got)
	// Outputs are convex combinations of values in [-1, 1]; float32 scores with
	// sums over D terms and a 1e-7 exp leave errors of a few 1e-6.
	convCompare(t, fmt.Sprintf("%v/amp%g", ac, amp), got, want, 2e-5, 1e-5)
}

func TestAttentionMatchesRef(t *testing.T) {
	var cases []attnCase
	for _, d := range []int{1, 3, 40, 64, 80} {
		for _, s := range [][2]int{{1, 1}, {5, 5}, {17, 17}, {17, 77}, {33, 9}, {9, 33}} {
			for _, causal := range []bool{false, true} {
				cases = append(cases, attnCase{b: 2, h: 3, sq: s[0], sk: s[1], d: d, causal: causal})
			}
		}
	}
	cases = append(cases,
		attnCase{b: 1, h: 2, sq: 19, sk: 77, d: 40, pad: [4]int{3, 1, 5, 2}},
		attnCase{b: 2, h: 1, sq: 23, sk: 23, d: 3, causal: true, pad: [4]int{1, 7, 0, 4}},
		attnCase{b: 1, h: 1, sq: 0, sk: 4, d: 3},
		attnCase{b: 1, h: 2, sq: 3, sk: 0, d: 3},
	)
	for _, ac := range cases {
		attnRun(t, ac, 1)
	}
	// Peaky softmax (large scores).
	attnRun(t, attnCase{b: 1, h: 2, sq: 17, sk: 40, d: 16}, 12)
}

// TestAttentionTiling covers several query tiles per head (and the tail tile),
// with causal masks that leave early tiles seeing few keys, on 1..3 goroutines.
func TestAttentionTiling(t *testing.T) {
	cases := []attnCase{
		{b: 1, h: 2, sq: 300, sk: 2100, d: 40},
		{b: 1, h: 1, sq: 700, sk: 700, d: 8, causal: true},
		{b: 2, h: 1, sq: 130, sk: 900, d: 5, causal: true}, // Sk > Sq: offset mask
		{b: 1, h: 3, sq: 1100, sk: 77, d: 24},
	}
	for _, th := range []int{1, 2, 3} {
		old := SetThreads(th)
		for _, ac := range cases {
			attnRun(t, ac, 1)
		}
		SetThreads(old)
	}
	p := AttnParams{B: 2, H: 8, Sq: 4096, Sk: 4096, D: 40}
	if got := AttentionScratchFloats(p); got > 2*attnScratchFloats {
		t.Errorf("scratch for 4096x4096: %d floats, want <= %d", got, 2*attnScratchFloats)
	}
}

// TestAttentionPureGo runs the softmax without the AVX2 helpers.
func TestAttentionPureGo(t *testing.T) {
	if !attnUseAVX2 {
		t.Skip("the pure-Go path is the only one here")
	}
	attnUseAVX2 = false
	defer func() { attnUseAVX2 = true }()
	attnRun(t, attnCase{b: 1, h: 2, sq: 33, sk: 77, d: 40, causal: true}, 1)
}

// TestAttnExp checks the exp approximation (scalar and vectorised) against math.Exp.
func TestAttnExp(t *testing.T) {
	n := 4096 + 13
	x := make([]float32, n)
	for i := range x {
		x[i] = -100 + 170*float32(i)/float32(n) // [-100, 70): the sum stays finite
	}
	x[0] = 0
	x[1] = -0.5
	x[2] = 88
	check := func(name string, got []float32, sum float32) {
		var want float64
		for i, xi := range x {
			e := math.Exp(float64(min(max(xi, -87), 88)))
			want += float64(got[i])
			if d := math.Abs(float64(got[i]) - e); d > 3e-7*e {
				t.Fatalf("%s: exp(%g) = %g, want %g (rel %g)", name, xi, got[i], e, d/e)
			}
		}
		if math.Abs(float64(sum)-want) > 1e-5*want {
			t.Errorf("%s: sum %g, want %g", name, sum, want)
		}
	}
	got := append([]float32(nil), x...)
	var sum float32
	for i := range got {
		got[i] = expf(got[i])
		sum += got[i]
	}
	check("expf", got, sum)
	if attnUseAVX2 {
		got = append(got[:0], x...)
		sum = attnExpSum(got, 0)
		check("attnExpSum", got, sum)
	}
	if math.IsNaN(float64(expf(float32(math.NaN())))) == false {
		t.Errorf("expf(NaN) is not NaN")
	}
	// Row max over lengths around the vector widths.
	for _, l := range []int{1, 7, 31, 32, 33, 64, 100} {
		y := convTestData(l, uint64(l))
		y[l/2] = 5
		if m := attnRowMax(y); m != 5 {
			t.Errorf("attnRowMax len %d = %g, want 5", l, m)
		}
	}
}

func TestAttentionPanics(t *testing.T) {
	p := AttnParams{B: 1, H: 2, Sq: 3, Sk: 4, D: 5, Scale: 1}
	q, o := make([]float32, 30), make([]float32, 30)
	k, v := make([]float32, 40), make([]float32, 40)
	for name, f := range map[string]func(){
		"short q":      func() { Attention(p, q[:29], k, v, o) },
		"short o":      func() { Attention(p, q, k, v, o[:29]) },
		"short k":      func() { Attention(p, q, k[:39], v, o) },
		"short v":      func() { Attention(p, q, k, v[:39], o) },
		"small stride": func() { r := p; r.KStride = 9; Attention(r, q, k, v, o) },
		"zero D":       func() { r := p; r.D = 0; Attention(r, q, k, v, o) },
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

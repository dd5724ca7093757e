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
	qs, ks, vs, os := p.Strides()
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

// TestAttentionSIMDLevels runs the softmax with the pure-Go and AVX2 helpers too.
func TestAttentionSIMDLevels(t *testing.T) {
	old, old512 := attnUseAVX2, attnUseAVX512
	defer func() { attnUseAVX2, attnUseAVX512 = old, old512 }()
	for _, lvl := range [][2]bool{{false, false}, {old, false}} {
		attnUseAVX2, attnUseAVX512 = lvl[0], lvl[1]
		attnRun(t, attnCase{b: 1, h: 2, sq: 33, sk: 77, d: 40, causal: true}, 1)
		attnRun(t, attnCase{b: 2, h: 1, sq: 300, sk: 61, d: 8}, 3)
	}
}

// TestAttnExp checks the exp approximation (scalar, and the column-wise softmax
// helpers on both paths) against math.Exp, and the column max.
func TestAttnExp(t *testing.T) {
	const ld, rows = 32, 129
	x := make([]float32, ld*rows)
	for i := range x {
		x[i] = -100 + 170*float32(i)/float32(len(x)) // [-100, 70): the sums stay finite
	}
	x[0], x[1], x[2] = 0, -0.5, 88
	m := make([]float32, ld)
	for c := range m {
		m[c] = float32(c) - 3
	}
	for _, c := range []int{0, 1, 2} {
		m[c] = 0
	}
	ref := func(j, c int) float64 { return math.Exp(float64(min(max(x[j*ld+c]-m[c], -87), 88))) }
	got := make([]float32, len(x))
	for i := range got {
		got[i] = expf(x[i] - m[i%ld])
	}
	check := func(name string, got, sum []float32) {
		t.Helper()
		for c := 0; c < ld; c++ {
			var want float64
			for j := 0; j < rows; j++ {
				e := ref(j, c)
				want += e
				if d := math.Abs(float64(got[j*ld+c]) - e); d > 3e-7*e {
					t.Fatalf("%s: exp(%g) = %g, want %g (rel %g)", name, x[j*ld+c]-m[c], got[j*ld+c], e, d/e)
				}
			}
			if sum != nil && math.Abs(float64(sum[c])-want) > 1e-5*want {
				t.Errorf("%s: column %d sum %g, want %g", name, c, sum[c], want)
			}
		}
	}
	check("expf", got, nil)
	if expf(float32(math.NaN())) == expf(float32(math.NaN())) {
		t.Errorf("expf(NaN) is not NaN")
	}
	y := make([]float32, ld*rows)
	old, old512 := attnUseAVX2, attnUseAVX512
	defer func() { attnUseAVX2, attnUseAVX512 = old, old512 }()
	for _, lvl := range []int{0, 1, 2} {
		if lvl == 1 && !old || lvl == 2 && !old512 {
			continue
		}
		attnUseAVX2, attnUseAVX512 = lvl >= 1, lvl >= 2
		avx := []string{"go", "avx2", "avx512"}[lvl]
		copy(got, x)
		sum := make([]float32, ld)
		attnExpCols(got, ld, m, sum)
		check(fmt.Sprintf("attnExpCols(%s)", avx), got, sum)
		// Column max over 1, 2 and 3 rows (pairs and a tail) and many rows.
		for _, r := range []int{1, 2, 3, rows} {
			copy(y, convTestData(len(y), uint64(r)))
			mx := make([]float32, ld)
			for c := 0; c < ld; c++ {
				y[(c%r)*ld+c] = 5 + float32(c)
			}
			attnColMax(y[:r*ld], ld, mx)
			for c := 0; c < ld; c++ {
				if mx[c] != 5+float32(c) {
					t.Errorf("attnColMax(%s) rows %d column %d = %g, want %g", avx, r, c, mx[c], 5+float32(c))
				}
			}
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

package cpu

import (
	"fmt"
	"math"
	"testing"
)

// attn64 is the loop of AttentionRef in float64 (o laid out like the float32
// operands, strides from p), for finite differences.
func attn64(p AttnParams, q, k, v []float64) []float64 {
	qs, ks, vs, os := p.Strides()
	o := make([]float64, p.B*p.Sq*os)
	s := make([]float64, p.Sk)
	for b := 0; b < p.B; b++ {
		for h := 0; h < p.H; h++ {
			for i := 0; i < p.Sq; i++ {
				n := attnRefVisible(p, i)
				mx := math.Inf(-1)
				for j := 0; j < n; j++ {
					var d float64
					for t := 0; t < p.D; t++ {
						d += q[b*p.Sq*qs+i*qs+h*p.D+t] * k[b*p.Sk*ks+j*ks+h*p.D+t]
					}
					s[j] = d * float64(p.Scale)
					mx = math.Max(mx, s[j])
				}
				var sum float64
				for j := 0; j < n; j++ {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for t := 0; t < p.D; t++ {
					var acc float64
					for j := 0; j < n; j++ {
						acc += s[j] * v[b*p.Sk*vs+j*vs+h*p.D+t]
					}
					if n > 0 {
						o[b*p.Sq*os+i*os+h*p.D+t] = acc / sum
					}
				}
			}
		}
	}
	return o
}

// attnBwdInputs returns q, k, v (q scaled by amp) and an output gradient for p.
func attnBwdInputs(p AttnParams, amp float32) (q, k, v, do []float32) {
	qs, ks, vs, os := p.Strides()
	q = convTestData(p.B*p.Sq*qs, uint64(21+p.D))
	k = convTestData(p.B*p.Sk*ks, uint64(22+p.Sk))
	v = convTestData(p.B*p.Sk*vs, uint64(23+p.Sq))
	do = convTestData(p.B*p.Sq*os, uint64(24))
	for i := range q {
		q[i] *= amp
	}
	return
}

// TestAttentionBackwardRefFiniteDiff checks AttentionBackwardRef against central
// differences of the float64 forward loop (h = 1e-4): for the loss
// L = sum(R .* attention(q, k, v)), dL/dq, dL/dk, dL/dv are the reference's
// gradients with do = R. The differences are accurate to about 1e-8; the
// tolerance (1e-6 absolute, 1e-5 relative) covers the float32 outputs of the
// reference. Also checks AttentionWithLSERef's o and log-sum-exp against the
// float64 loop.
func TestAttentionBackwardRefFiniteDiff(t *testing.T) {
	for _, tc := range []struct {
		ac  attnCase
		amp float32
	}{
		{attnCase{b: 1, h: 2, sq: 3, sk: 5, d: 4}, 1},
		{attnCase{b: 2, h: 1, sq: 4, sk: 4, d: 3}, 3},               // peakier softmax
		{attnCase{b: 1, h: 2, sq: 5, sk: 3, d: 2, causal: true}, 1}, // Sk < Sq: two queries see no key
		{attnCase{b: 1, h: 1, sq: 3, sk: 6, d: 3, causal: true, pad: [4]int{1, 2, 0, 3}}, 1},
		{attnCase{b: 1, h: 1, sq: 1, sk: 1, d: 1}, 1},
	} {
		p := tc.ac.params()
		qs, ks, _, os := p.Strides()
		q32, k32, v32, r := attnBwdInputs(p, tc.amp)
		name := fmt.Sprintf("%v/amp%g", tc.ac, tc.amp)
		q, k, v := to64(q32), to64(k32), to64(v32)
		// The float64 loop is AttentionRef's, and the log-sum-exp is its normaliser.
		o32 := make([]float32, p.B*p.Sq*os)
		AttentionRef(p, q32, k32, v32, o32)
		fdCompare(t, name+"/forward", o32, attn64(p, q, k, v), 1e-6, 1e-6)
		o2 := make([]float32, len(o32))
		lse := make([]float32, p.B*p.H*p.Sq)
		AttentionWithLSERef(p, q32, k32, v32, o2, lse)
		convCompare(t, name+"/AttentionWithLSERef o", o2, o32, 1e-6, 1e-6)
		for b := 0; b < p.B; b++ {
			for h := 0; h < p.H; h++ {
				for i := 0; i < p.Sq; i++ {
					n := attnRefVisible(p, i)
					var sum float64
					for j := 0; j < n; j++ {
						var d float64
						for t := 0; t < p.D; t++ {
							d += q[b*p.Sq*qs+i*qs+h*p.D+t] * k[b*p.Sk*ks+j*ks+h*p.D+t]
						}
						sum += math.Exp(d * float64(p.Scale))
					}
					want, got := math.Log(sum), float64(lse[(b*p.H+h)*p.Sq+i])
					if n == 0 && !math.IsInf(got, -1) || n > 0 && math.Abs(got-want) > 1e-6*(1+math.Abs(want)) {
						t.Errorf("%s: lse[%d,%d,%d] = %g, want %g", name, b, h, i, got, want)
					}
				}
			}
		}

		loss := func() float64 { return dot64(r, attn64(p, q, k, v)) }
		dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
		AttentionBackwardRef(p, r, q32, k32, v32, nil, nil, dq, dk, dv)
		const h = 1e-4
		fdCompare(t, name+"/dq", dq, fdGrad(q, h, loss), 1e-6, 1e-5)
		fdCompare(t, name+"/dk", dk, fdGrad(k, h, loss), 1e-6, 1e-5)
		fdCompare(t, name+"/dv", dv, fdGrad(v, h, loss), 1e-6, 1e-5)
	}
}

// Tolerances of the fast backward against the reference, for q, k, v and do in
// [-1, 1] (q times amp): float32 products over D and over the keys (dq) or
// queries (dk, dv) against float64 sums, exp with relative error 1e-7 and the
// probabilities recomputed from the float32 log-sum-exp.
const (
	attnBwdAtol = 1e-5
	attnBwdRtol = 1e-5
)

// attnBwdRun checks AttentionWithLSE against AttentionRef (o bit for bit
// against Attention) and AttentionWithLSERef (lse), and AttentionBackward
// against AttentionBackwardRef, for one case.
func attnBwdRun(t *testing.T, ac attnCase, amp float32) {
	t.Helper()
	p := ac.params()
	qs, ks, vs, os := p.Strides()
	q, k, v, do := attnBwdInputs(p, amp)
	name := fmt.Sprintf("%v/amp%g/threads%d", ac, amp, Threads())
	filled := func(n int, x float32) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = x
		}
		return s
	}
	// Forward with the log-sum-exp.
	o := filled(p.B*p.Sq*os, -7) // the row padding must stay untouched
	lse := filled(p.B*p.H*p.Sq, float32(math.NaN()))
	AttentionWithLSE(p, q, k, v, o, lse)
	o0 := filled(len(o), -7)
	Attention(p, q, k, v, o0)
	for i := range o {
		if math.Float32bits(o[i]) != math.Float32bits(o0[i]) {
			t.Fatalf("%s: AttentionWithLSE o[%d] = %g, Attention gives %g", name, i, o[i], o0[i])
		}
	}
	lref, oref := make([]float32, len(lse)), make([]float32, len(o))
	AttentionWithLSERef(p, q, k, v, oref, lref)
	convCompare(t, name+"/lse", lse, lref, 1e-5, 1e-6)

	// Backward from the fast forward's o and lse.
	wq, wk, wv := filled(p.B*p.Sq*qs, -7), filled(p.B*p.Sk*ks, -7), filled(p.B*p.Sk*vs, -7)
	AttentionBackwardRef(p, do, q, k, v, o, lse, wq, wk, wv)
	nan := float32(math.NaN())
	gq, gk, gv := filled(len(wq), nan), filled(len(wk), nan), filled(len(wv), nan)
	hd := p.H * p.D
	for _, g := range []struct {
		x  []float32
		st int
	}{{gq, qs}, {gk, ks}, {gv, vs}} {
		for i := 0; i+hd <= len(g.x); i += g.st { // NaN in the H*D columns, -7 in the padding
			for j := i + hd; j < min(i+g.st, len(g.x)); j++ {
				g.x[j] = -7
			}
		}
	}
	AttentionBackward(p, do, q, k, v, o, lse, gq, gk, gv)
	convCompare(t, name+"/dq", gq, wq, attnBwdAtol, attnBwdRtol)
	convCompare(t, name+"/dk", gk, wk, attnBwdAtol, attnBwdRtol)
	convCompare(t, name+"/dv", gv, wv, attnBwdAtol, attnBwdRtol)
}

// TestAttentionBackwardMatchesRef runs the fast backward over awkward shapes:
// head dims 1, 3, 40, 64, 80, 160, 512; Sq != Sk both ways (the text length
// 77); causal masks (with queries that see no key); padded row strides;
// empty sequences; a peaky softmax.
func TestAttentionBackwardMatchesRef(t *testing.T) {
	var cases []attnCase
	for _, d := range []int{1, 3, 40, 64, 80} {
		for _, s := range [][2]int{{1, 1}, {5, 5}, {17, 17}, {17, 77}, {33, 9}, {9, 33}} {
			for _, causal := range []bool{false, true} {
				cases = append(cases, attnCase{b: 2, h: 3, sq: s[0], sk: s[1], d: d, causal: causal})
			}
		}
	}
	cases = append(cases,
		attnCase{b: 1, h: 2, sq: 19, sk: 33, d: 160},
		attnCase{b: 1, h: 1, sq: 37, sk: 41, d: 512},
		attnCase{b: 1, h: 1, sq: 20, sk: 20, d: 512, causal: true},
		attnCase{b: 1, h: 2, sq: 19, sk: 77, d: 40, pad: [4]int{3, 1, 5, 2}},
		attnCase{b: 2, h: 1, sq: 23, sk: 23, d: 3, causal: true, pad: [4]int{1, 7, 0, 4}},
		attnCase{b: 1, h: 1, sq: 0, sk: 4, d: 3},
		attnCase{b: 1, h: 2, sq: 3, sk: 0, d: 3},
		attnCase{b: 0, h: 2, sq: 3, sk: 3, d: 3},
	)
	for _, ac := range cases {
		attnBwdRun(t, ac, 1)
	}
	attnBwdRun(t, attnCase{b: 1, h: 2, sq: 17, sk: 40, d: 16}, 12)
}

// TestAttentionBackwardTiling covers several query tiles per head (and the tail
// tile), causal masks that leave early tiles seeing few keys, one and several
// tile groups per head (partial dK, dV summed afterwards) on 1 to 3 goroutines,
// with dK, dV accumulated transposed and (D a multiple of 32) in their own
// layout.
func TestAttentionBackwardTiling(t *testing.T) {
	cases := []attnCase{
		{b: 1, h: 2, sq: 300, sk: 2100, d: 40},
		{b: 1, h: 1, sq: 700, sk: 700, d: 8, causal: true},
		{b: 2, h: 1, sq: 130, sk: 900, d: 5, causal: true}, // Sk > Sq: offset mask
		{b: 1, h: 3, sq: 1100, sk: 77, d: 24},
		{b: 1, h: 1, sq: 900, sk: 300, d: 33, causal: true, pad: [4]int{1, 2, 3, 4}}, // Sk < Sq
		// D a multiple of the micro-kernel's panel width: dK, dV in their own layout.
		{b: 1, h: 1, sq: 600, sk: 500, d: 64, pad: [4]int{0, 3, 5, 0}},
		{b: 1, h: 2, sq: 700, sk: 700, d: 32, causal: true},
	}
	for _, th := range []int{1, 2, 3} {
		old := SetThreads(th)
		for _, ac := range cases {
			p := ac.params()
			tq := attnBwdTileRows(p)
			nt := (p.Sq + tq - 1) / tq
			if th == 3 && nt > 1 && p.B*p.H < th && attnBwdGroups(p, nt) < 2 {
				t.Errorf("%v: one tile group per head on 3 goroutines", ac)
			}
			attnBwdRun(t, ac, 1)
		}
		SetThreads(old)
	}
}

// TestAttentionBackwardSIMDLevels runs the backward on every instruction-set
// level: the pure-Go and AVX2 softmax and dS helpers, and the Go 4x4 and
// AVX2 6x16 micro-kernels (whose panel widths decide the layout of dK, dV).
func TestAttentionBackwardSIMDLevels(t *testing.T) {
	old, old512 := attnUseAVX2, attnUseAVX512
	defer func() { attnUseAVX2, attnUseAVX512 = old, old512 }()
	oldDS := bwdUseAVX2
	defer func() { bwdUseAVX2 = oldDS }()
	oldLevel := setSIMDLevel(levelAVX512)
	defer setSIMDLevel(oldLevel)
	for _, lvl := range []simdLevel{levelGo, levelAVX2, levelAVX512} {
		setSIMDLevel(lvl)
		attnUseAVX2, attnUseAVX512 = lvl >= levelAVX2 && old, lvl >= levelAVX512 && old512
		bwdUseAVX2 = lvl >= levelAVX2 && oldDS
		attnBwdRun(t, attnCase{b: 1, h: 2, sq: 33, sk: 77, d: 40, causal: true}, 1)
		attnBwdRun(t, attnCase{b: 2, h: 1, sq: 300, sk: 61, d: 8}, 3)
		attnBwdRun(t, attnCase{b: 1, h: 1, sq: 600, sk: 100, d: 48}, 1) // 16 | D, 32 does not
		attnBwdRun(t, attnCase{b: 1, h: 3, sq: 40, sk: 50, d: 64, causal: true}, 1)
	}
}

// TestAttnBwdDS checks the dS kernel against its loop at row lengths around the
// vector widths.
func TestAttnBwdDS(t *testing.T) {
	oldDS := bwdUseAVX2
	defer func() { bwdUseAVX2 = oldDS }()
	for _, useAsm := range []bool{false, oldDS} {
		bwdUseAVX2 = useAsm
		for _, ld := range []int{16, 32, 48, 64, 128} {
			for _, rows := range []int{1, 3, 7} {
				pt := convTestData(rows*ld, 1)
				dp0 := convTestData(rows*ld, 2)
				dv := convTestData(ld, 3)
				dp := append([]float32(nil), dp0...)
				attnBwdDS(pt, dp, ld, dv)
				for j := 0; j < rows; j++ {
					for c := 0; c < ld; c++ {
						want := pt[j*ld+c] * (dp0[j*ld+c] - dv[c])
						if dp[j*ld+c] != want {
							t.Fatalf("asm %v ld %d: [%d,%d] = %g, want %g", useAsm, ld, j, c, dp[j*ld+c], want)
						}
					}
				}
			}
		}
	}
}

func TestAttentionBackwardPanics(t *testing.T) {
	p := AttnParams{B: 1, H: 2, Sq: 3, Sk: 4, D: 2, Scale: 1}
	q, o, do, dq := make([]float32, 12), make([]float32, 12), make([]float32, 12), make([]float32, 12)
	k, v, dk, dv := make([]float32, 16), make([]float32, 16), make([]float32, 16), make([]float32, 16)
	lse := make([]float32, 6)
	for name, f := range map[string]func(){
		"lse short":  func() { AttentionWithLSE(p, q, k, v, o, lse[:5]) },
		"bwd lse":    func() { AttentionBackward(p, do, q, k, v, o, lse[:5], dq, dk, dv) },
		"bwd do":     func() { AttentionBackward(p, do[:11], q, k, v, o, lse, dq, dk, dv) },
		"bwd dq":     func() { AttentionBackward(p, do, q, k, v, o, lse, dq[:11], dk, dv) },
		"bwd dk":     func() { AttentionBackward(p, do, q, k, v, o, lse, dq, dk[:15], dv) },
		"bwd dv":     func() { AttentionBackward(p, do, q, k, v, o, lse, dq, dk, dv[:15]) },
		"bwd k":      func() { AttentionBackward(p, do, q, k[:15], v, o, lse, dq, dk, dv) },
		"bwd stride": func() { r := p; r.QStride = 3; AttentionBackward(r, do, q, k, v, o, lse, dq, dk, dv) },
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

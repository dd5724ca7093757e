package kerneltest

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// The cases of BackwardOps. Inputs in the compute type are rounded to it
// before the reference sees them, so the differences are the kernels' own:
// the one rounding of each output (unit roundoff u of its type) and float32
// accumulation. An output element passes when
//
//	|got - want| <= 2u|want| + c * max(u, 2^-20) * max|want|
//
// (times Caps.TolScale), max over the finite elements compared, with c a small
// per-output constant (F16 outputs add the spacing 2^-24 of its subnormals);
// where the result cancels (a norm's dx), max|want| is at
// least the magnitude of the terms. Outputs start as NaN, and elements a
// kernel must leave alone (attention rows' padding) must stay NaN.

// backwardChecks returns the named checks of the backward ops, in order.
func (s *suite) backwardChecks() []struct {
	name string
	fn   func(*testing.T)
} {
	return []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Conv2dBackwardData", s.convBackwardData},
		{"Conv2dBackwardWeight", s.convBackwardWeight},
		{"Conv2dBackwardBias", s.convBackwardBias},
		{"AttentionWithLSE", s.attentionWithLSE},
		{"AttentionBackward", s.attentionBackward},
		{"GroupNormSave", s.groupNormSave},
		{"GroupNormBackward", s.groupNormBackward},
		{"LayerNormSave", s.layerNormSave},
		{"LayerNormBackward", s.layerNormBackward},
		{"SoftmaxBackward", s.softmaxBackward},
		{"ActivateBackward", s.activateBackward},
		{"GEGLUBackward", s.gegluBackward},
		{"Upsample2xBackward", s.upsampleBackward},
		{"EmbeddingBackward", s.embeddingBackward},
		{"EmbeddingBackwardSparse", s.embeddingBackwardSparse},
	}
}

// rnd rounds x in place to the compute type and returns it.
func (s *suite) rnd(x []float32) []float32 {
	switch s.caps.Compute {
	case kernels.F16:
		for i, v := range x {
			x[i] = cpu.F16ToF32Scalar(cpu.F32ToF16Scalar(v))
		}
	case kernels.BF16:
		for i, v := range x {
			x[i] = cpu.BF16ToF32Scalar(cpu.F32ToBF16Scalar(v))
		}
	}
	return x
}

// nans returns n NaNs (an output's initial contents).
func nans(n int) []float32 { return filled(n, float32(math.NaN())) }

// gradCheck compares got with want under the tolerance of the file comment,
// for an output of dtype dt whose terms have magnitudes up to mag (0: those of
// want), and logs the worst |diff|/tolerance.
func (s *suite) gradCheck(t *testing.T, name string, shape []int, got, want []float32, dt kernels.DType, c, mag float64) {
	t.Helper()
	u := unitRoundoff(dt)
	mx := mag
	for _, w := range want {
		if a := math.Abs(float64(w)); !math.IsInf(a, 0) && !math.IsNaN(a) {
			mx = math.Max(mx, a)
		}
	}
	atol, rtol := s.tol*c*math.Max(u, 0x1p-20)*mx, s.tol*2*u
	if dt == kernels.F16 {
		atol += s.tol * 0x1p-24 // the spacing of F16's subnormals
	}
	if CompareShape(t, name, shape, got, want, atol, rtol) {
		worst := 0.0
		for i := range want {
			g, w := float64(got[i]), float64(want[i])
			if d := math.Abs(g - w); d > 0 && !math.IsNaN(d) && !math.IsInf(d, 0) {
				worst = math.Max(worst, d/(atol+rtol*math.Abs(w)))
			}
		}
		t.Logf("%s: max |diff|/tol %.3f (max |want| %.3g)", name, worst, mx)
	}
}

// convCase is a convolution of the backward checks.
type convCase struct {
	name string
	p    kernels.ConvParams
	dt   kernels.DType // of the weights
	pad  int           // extra elements per weight row
	big  bool
}

func (s *suite) convCases(weights bool) []convCase {
	P := func(n, c, h, w, k, r, s, sh, sw, ph, pw int) kernels.ConvParams {
		return kernels.ConvParams{N: n, C: c, H: h, W: w, K: k, R: r, S: s, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw}
	}
	cases := []convCase{
		{name: "1x1-trivial", p: P(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0)},
		{name: "1x1", p: P(2, 17, 5, 7, 3, 1, 1, 1, 1, 0, 0)},
		{name: "3x3-pad1", p: P(1, 3, 17, 9, 8, 3, 3, 1, 1, 1, 1)},
		{name: "3x3-stride2", p: P(2, 8, 16, 15, 5, 3, 3, 2, 2, 1, 1)},
		{name: "1x1-stride2-gaps", p: P(1, 3, 9, 9, 4, 1, 1, 2, 2, 0, 0)},
		{name: "4x3-asym", p: P(1, 4, 9, 11, 6, 4, 3, 1, 2, 2, 0)},
		{name: "3x3-nopad-1x1out", p: P(1, 5, 3, 3, 7, 3, 3, 1, 1, 0, 0)},
		{name: "3x3-64ch", p: P(1, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1), big: true},
	}
	if weights {
		cases = append(cases, convCase{name: "3x3-wpad", p: P(2, 6, 10, 12, 9, 3, 3, 1, 1, 1, 1), pad: 5})
		for _, dt := range s.dtypes()[1:] {
			if s.caps.Compute != kernels.F32 && dt != s.caps.Compute {
				continue // the device would round the weights to the compute type
			}
			cases = append(cases, convCase{name: "3x3-" + dt.String(), p: P(2, 6, 10, 12, 9, 3, 3, 1, 1, 1, 1), dt: dt})
		}
	}
	return cases
}

// weights returns a random weight matrix [k, crs] (row padding pad) of dtype
// dt, with F32 values rounded to the compute type.
func (s *suite) weights(r *rand.Rand, k, crs int, dt kernels.DType, pad int) kernels.Mat {
	w := mat(r, k, crs, dt, false, pad)
	if dt == kernels.F32 {
		s.rnd(w.F32)
	}
	return w
}

func (s *suite) convBackwardData(t *testing.T) {
	for _, c := range s.convCases(true) {
		s.run(t, "Conv2dBackwardData", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			p := c.p
			dy := s.rnd(uniform(r, p.N*p.K*p.OutH()*p.OutW(), -1, 1))
			w := s.weights(r, p.K, p.C*p.R*p.S, c.dt, c.pad)
			n := p.N * p.C * p.H * p.W
			want, got := nans(n), nans(n)
			cpu.Conv2dBackwardDataRef(p, dy, w, want)
			s.bw.Conv2dBackwardData(p, dy, w, got)
			s.gradCheck(t, "Conv2dBackwardData dx", []int{p.N, p.C, p.H, p.W}, got, want, s.caps.Compute, 4, 0)
		})
	}
}

func (s *suite) convBackwardWeight(t *testing.T) {
	for _, c := range s.convCases(false) {
		s.run(t, "Conv2dBackwardWeight", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			p := c.p
			x := s.rnd(uniform(r, p.N*p.C*p.H*p.W, -1, 1))
			dy := s.rnd(uniform(r, p.N*p.K*p.OutH()*p.OutW(), -1, 1))
			crs := p.C * p.R * p.S
			want, got := nans(p.K*crs), nans(p.K*crs)
			cpu.Conv2dBackwardWeightRef(p, x, dy, want)
			s.bw.Conv2dBackwardWeight(p, x, dy, got)
			s.gradCheck(t, "Conv2dBackwardWeight dw", []int{p.K, crs}, got, want, kernels.F32, 8, 0)
		})
	}
}

func (s *suite) convBackwardBias(t *testing.T) {
	for _, c := range s.convCases(false) {
		s.run(t, "Conv2dBackwardBias", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			p := c.p
			dy := s.rnd(uniform(r, p.N*p.K*p.OutH()*p.OutW(), -1, 1))
			want, got := nans(p.K), nans(p.K)
			cpu.Conv2dBackwardBiasRef(p, dy, want)
			s.bw.Conv2dBackwardBias(p, dy, got)
			s.gradCheck(t, "Conv2dBackwardBias db", nil, got, want, kernels.F32, 8, 0)
		})
	}
}

// attnCase is an attention of the backward checks.
type attnCase struct {
	name          string
	b, h, sq, sk  int
	d             int
	causal        bool
	scale         float32 // 0: 1/sqrt(d)
	packed        bool    // q, k, v interleaved in one [B, S, 3*H*D] buffer (Sq == Sk)
	kvPad, outPad int
	big           bool
}

var attnBackwardCases = []attnCase{
	{name: "1x1x1", b: 1, h: 1, sq: 1, sk: 1, d: 1},
	{name: "self-17", b: 2, h: 3, sq: 17, sk: 17, d: 8},
	{name: "cross-33x77", b: 2, h: 2, sq: 33, sk: 77, d: 40},
	{name: "causal-17", b: 1, h: 2, sq: 17, sk: 17, d: 8, causal: true},
	{name: "causal-5x23", b: 2, h: 1, sq: 5, sk: 23, d: 12, causal: true},
	// Sq > Sk: the first Sq-Sk queries see no key (lse -Inf, zero output and gradient).
	{name: "causal-6x5", b: 1, h: 2, sq: 6, sk: 5, d: 4, causal: true},
	{name: "scale2", b: 1, h: 2, sq: 9, sk: 13, d: 5, scale: 2},
	{name: "packed-qkv", b: 2, h: 3, sq: 19, sk: 19, d: 8, packed: true, outPad: 5},
	{name: "strided", b: 2, h: 2, sq: 7, sk: 11, d: 6, kvPad: 3, outPad: 1},
	{name: "d100", b: 1, h: 2, sq: 5, sk: 9, d: 100},
	{name: "d256", b: 1, h: 1, sq: 4, sk: 6, d: 256, outPad: 3},
	{name: "d64-257", b: 1, h: 2, sq: 64, sk: 257, d: 64, big: true},
}

// attnInputs returns the parameters and the (rounded) q, k, v of c, and the
// length of an output laid out like o.
func (s *suite) attnInputs(c attnCase, r *rand.Rand) (p kernels.AttnParams, q, k, v []float32, osize int) {
	hd := c.h * c.d
	p = kernels.AttnParams{B: c.b, H: c.h, Sq: c.sq, Sk: c.sk, D: c.d, Scale: c.scale, Causal: c.causal}
	if p.Scale == 0 {
		p.Scale = float32(1 / math.Sqrt(float64(c.d)))
	}
	if c.packed {
		p.QStride, p.KStride, p.VStride = 3*hd, 3*hd, 3*hd
		buf := s.rnd(uniform(r, c.b*c.sq*3*hd, -1, 1))
		q, k, v = buf, buf[hd:], buf[2*hd:]
	} else {
		p.QStride, p.KStride, p.VStride = hd, hd+c.kvPad, hd+2*c.kvPad
		q = s.rnd(uniform(r, c.b*c.sq*p.QStride, -1, 1))
		k = s.rnd(uniform(r, c.b*c.sk*p.KStride, -1, 1))
		v = s.rnd(uniform(r, c.b*c.sk*p.VStride, -1, 1))
	}
	p.OStride = hd + c.outPad
	return p, q, k, v, c.b * c.sq * p.OStride
}

func (s *suite) attentionWithLSE(t *testing.T) {
	for _, c := range attnBackwardCases {
		s.run(t, "AttentionWithLSE", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			p, q, k, v, osize := s.attnInputs(c, r)
			nl := p.B * p.H * p.Sq
			wantO, gotO, wantL, gotL := nans(osize), nans(osize), nans(nl), nans(nl)
			cpu.AttentionWithLSERef(p, q, k, v, wantO, wantL)
			s.bw.AttentionWithLSE(p, q, k, v, gotO, gotL)
			s.gradCheck(t, "AttentionWithLSE o", []int{c.b, c.sq, p.OStride}, gotO, wantO, s.caps.Compute, 4, 0)
			s.gradCheck(t, "AttentionWithLSE lse", []int{c.b, c.h, c.sq}, gotL, wantL, kernels.F32, 16, 0)
		})
	}
}

func (s *suite) attentionBackward(t *testing.T) {
	for _, c := range attnBackwardCases {
		s.run(t, "AttentionBackward", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			p, q, k, v, osize := s.attnInputs(c, r)
			o, lse := make([]float32, osize), make([]float32, p.B*p.H*p.Sq)
			cpu.AttentionWithLSERef(p, q, k, v, o, lse)
			s.rnd(o)
			do := s.rnd(uniform(r, osize, -1, 1))
			wq, wk, wv := nans(len(q)), nans(len(k)), nans(len(v))
			gq, gk, gv := nans(len(q)), nans(len(k)), nans(len(v))
			cpu.AttentionBackwardRef(p, do, q, k, v, o, lse, wq, wk, wv)
			s.bw.AttentionBackward(p, do, q, k, v, o, lse, gq, gk, gv)
			// c: the rounded o enters rowsum(do*o)
			s.gradCheck(t, "AttentionBackward dq", nil, gq, wq, s.caps.Compute, 4, 0)
			s.gradCheck(t, "AttentionBackward dk", nil, gk, wk, s.caps.Compute, 4, 0)
			s.gradCheck(t, "AttentionBackward dv", nil, gv, wv, s.caps.Compute, 4, 0)
		})
	}
}

// normCase is a group or layer norm of the backward checks (rows, cols for
// a layer norm; n, c, hw, groups for a group norm).
type normCase struct {
	name             string
	n, c, hw, groups int
	gamma, beta      bool
	silu, inp        bool
	noDX, noParams   bool
	mean             float64
	big              bool
}

var groupNormBackwardCases = []normCase{
	{name: "1x1x3-g1", n: 1, c: 1, hw: 3, groups: 1, gamma: true, beta: true},
	{name: "2x6x17-g3", n: 2, c: 6, hw: 17, groups: 3, gamma: true, beta: true},
	{name: "1x32x1023-g32", n: 1, c: 32, hw: 1023, groups: 32},
	{name: "2x64x33-silu", n: 2, c: 64, hw: 33, groups: 32, gamma: true, beta: true, silu: true},
	{name: "3x12x5-g1", n: 3, c: 12, hw: 5, groups: 1, gamma: true, beta: true},
	{name: "inplace", n: 2, c: 8, hw: 31, groups: 4, gamma: true, beta: true, inp: true},
	{name: "inplace-silu", n: 1, c: 8, hw: 100, groups: 2, silu: true, inp: true},
	{name: "mean1000", n: 2, c: 16, hw: 257, groups: 8, gamma: true, beta: true, mean: 1000},
	{name: "dx-only", n: 2, c: 8, hw: 20, groups: 2, gamma: true, beta: true, silu: true, noParams: true},
	{name: "params-only", n: 2, c: 8, hw: 20, groups: 2, gamma: true, beta: true, silu: true, noDX: true},
	{name: "2x320x32x32-silu", n: 2, c: 320, hw: 32 * 32, groups: 32, gamma: true, beta: true, silu: true, big: true},
}

// normMag is the magnitude of the terms of a norm's dx: max|dy| max|gamma| max rstd.
func normMag(dy, gamma, rstd []float32) float64 {
	m := func(x []float32) float64 {
		v := 0.0
		for _, e := range x {
			v = math.Max(v, math.Abs(float64(e)))
		}
		return v
	}
	g := 1.0
	if gamma != nil {
		g = m(gamma)
	}
	return m(dy) * g * m(rstd)
}

// params returns random gamma and beta of length c (nil where not wanted).
func params(r *rand.Rand, c int, g, b bool) (gamma, beta []float32) {
	if g {
		gamma = normal(r, c, 1, 0.2)
	}
	if b {
		beta = normal(r, c, 0, 0.5)
	}
	return
}

func (s *suite) groupNormSave(t *testing.T) {
	for _, c := range groupNormBackwardCases {
		if c.inp && s.caps.NoInPlace || c.noDX || c.noParams {
			continue
		}
		s.run(t, "GroupNormSave", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			x := s.rnd(normal(r, c.n*c.c*c.hw, c.mean, 1))
			gamma, beta := params(r, c.c, c.gamma, c.beta)
			ng := c.n * c.groups
			wantY, wantM, wantR := nans(len(x)), nans(ng), nans(ng)
			cpu.GroupNormSaveRef(x, wantY, c.n, c.c, c.hw, c.groups, 1e-5, gamma, beta, c.silu, wantM, wantR)
			gotY, gotM, gotR := nans(len(x)), nans(ng), nans(ng)
			if c.inp {
				gotY = clone(x)
				x = gotY
			}
			s.bw.GroupNormSave(x, gotY, c.n, c.c, c.hw, c.groups, 1e-5, gamma, beta, c.silu, gotM, gotR)
			s.gradCheck(t, "GroupNormSave y", []int{c.n, c.c, c.hw}, gotY, wantY, s.caps.Compute, 8, 0)
			s.gradCheck(t, "GroupNormSave mean", nil, gotM, wantM, kernels.F32, 32, 0)
			s.gradCheck(t, "GroupNormSave rstd", nil, gotR, wantR, kernels.F32, 8, 0)
		})
	}
}

func (s *suite) groupNormBackward(t *testing.T) {
	for _, c := range groupNormBackwardCases {
		if c.inp && s.caps.NoInPlace {
			continue
		}
		s.run(t, "GroupNormBackward", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			m, ng := c.n*c.c*c.hw, c.n*c.groups
			x := s.rnd(normal(r, m, c.mean, 1))
			dy := s.rnd(normal(r, m, 0, 1))
			gamma, beta := params(r, c.c, c.gamma, c.beta)
			mean, rstd := make([]float32, ng), make([]float32, ng)
			cpu.GroupNormSaveRef(x, make([]float32, m), c.n, c.c, c.hw, c.groups, 1e-5, gamma, beta, c.silu, mean, rstd)
			wantDX, wantDG, wantDB := nans(m), nans(c.c), nans(c.c)
			cpu.GroupNormBackwardRef(x, dy, wantDX, c.n, c.c, c.hw, c.groups, mean, rstd, gamma, beta, c.silu, wantDG, wantDB)
			gotDX, gotDG, gotDB := nans(m), nans(c.c), nans(c.c)
			if c.inp {
				gotDX = clone(dy)
				dy = gotDX
			}
			if c.noDX {
				gotDX = nil
			}
			if c.noParams {
				gotDG, gotDB = nil, nil
			}
			s.bw.GroupNormBackward(x, dy, gotDX, c.n, c.c, c.hw, c.groups, mean, rstd, gamma, beta, c.silu, gotDG, gotDB)
			if !c.noDX {
				s.gradCheck(t, "GroupNormBackward dx", []int{c.n, c.c, c.hw}, gotDX, wantDX, s.caps.Compute, 32, normMag(dy, gamma, rstd))
			}
			if !c.noParams {
				s.gradCheck(t, "GroupNormBackward dgamma", nil, gotDG, wantDG, kernels.F32, 16, 0)
				s.gradCheck(t, "GroupNormBackward dbeta", nil, gotDB, wantDB, kernels.F32, 16, 0)
			}
		})
	}
}

// layerNormBackwardCases use n as rows and c as cols.
var layerNormBackwardCases = []normCase{
	{name: "1x2", n: 1, c: 2, gamma: true, beta: true},
	{name: "3x17", n: 3, c: 17, gamma: true, beta: true},
	{name: "17x1023-gamma", n: 17, c: 1023, gamma: true},
	{name: "5x320-beta", n: 5, c: 320, beta: true},
	{name: "7x768-nil", n: 7, c: 768},
	{name: "inplace", n: 9, c: 100, gamma: true, beta: true, inp: true},
	{name: "mean1000", n: 13, c: 333, gamma: true, beta: true, mean: 1000},
	{name: "dx-only", n: 6, c: 40, gamma: true, noParams: true},
	{name: "params-only", n: 70, c: 40, gamma: true, noDX: true},
	{name: "4096x320", n: 4096, c: 320, gamma: true, beta: true, big: true},
}

func (s *suite) layerNormSave(t *testing.T) {
	for _, c := range layerNormBackwardCases {
		if c.inp && s.caps.NoInPlace || c.noDX || c.noParams {
			continue
		}
		s.run(t, "LayerNormSave", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			rows, cols := c.n, c.c
			x := s.rnd(normal(r, rows*cols, c.mean, 1))
			gamma, beta := params(r, cols, c.gamma, c.beta)
			wantY, wantM, wantR := nans(len(x)), nans(rows), nans(rows)
			cpu.LayerNormSaveRef(x, wantY, rows, cols, 1e-5, gamma, beta, wantM, wantR)
			gotY, gotM, gotR := nans(len(x)), nans(rows), nans(rows)
			if c.inp {
				gotY = clone(x)
				x = gotY
			}
			s.bw.LayerNormSave(x, gotY, rows, cols, 1e-5, gamma, beta, gotM, gotR)
			s.gradCheck(t, "LayerNormSave y", []int{rows, cols}, gotY, wantY, s.caps.Compute, 8, 0)
			s.gradCheck(t, "LayerNormSave mean", nil, gotM, wantM, kernels.F32, 32, 0)
			s.gradCheck(t, "LayerNormSave rstd", nil, gotR, wantR, kernels.F32, 8, 0)
		})
	}
}

func (s *suite) layerNormBackward(t *testing.T) {
	for _, c := range layerNormBackwardCases {
		if c.inp && s.caps.NoInPlace {
			continue
		}
		s.run(t, "LayerNormBackward", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			rows, cols := c.n, c.c
			x := s.rnd(normal(r, rows*cols, c.mean, 1))
			dy := s.rnd(normal(r, rows*cols, 0, 1))
			gamma, _ := params(r, cols, c.gamma, false)
			mean, rstd := make([]float32, rows), make([]float32, rows)
			cpu.LayerNormSaveRef(x, make([]float32, len(x)), rows, cols, 1e-5, gamma, nil, mean, rstd)
			wantDX, wantDG, wantDB := nans(len(x)), nans(cols), nans(cols)
			cpu.LayerNormBackwardRef(x, dy, wantDX, rows, cols, mean, rstd, gamma, wantDG, wantDB)
			gotDX, gotDG, gotDB := nans(len(x)), nans(cols), nans(cols)
			if c.inp {
				gotDX = clone(dy)
				dy = gotDX
			}
			if c.noDX {
				gotDX = nil
			}
			if c.noParams {
				gotDG, gotDB = nil, nil
			}
			s.bw.LayerNormBackward(x, dy, gotDX, rows, cols, mean, rstd, gamma, gotDG, gotDB)
			if !c.noDX {
				s.gradCheck(t, "LayerNormBackward dx", []int{rows, cols}, gotDX, wantDX, s.caps.Compute, 32, normMag(dy, gamma, rstd))
			}
			if !c.noParams {
				s.gradCheck(t, "LayerNormBackward dgamma", nil, gotDG, wantDG, kernels.F32, 16, 0)
				s.gradCheck(t, "LayerNormBackward dbeta", nil, gotDB, wantDB, kernels.F32, 16, 0)
			}
		})
	}
}

func (s *suite) softmaxBackward(t *testing.T) {
	for _, c := range []struct {
		name       string
		rows, cols int
		masked     bool
		inp        string // "dy" or "y": dx is that input
		big        bool
	}{
		{name: "1x1", rows: 1, cols: 1},
		{name: "3x17", rows: 3, cols: 17},
		{name: "17x1023", rows: 17, cols: 1023},
		{name: "5x4096", rows: 5, cols: 4096},
		{name: "masked", rows: 6, cols: 40, masked: true},
		{name: "inplace-dy", rows: 8, cols: 33, inp: "dy"},
		{name: "inplace-y", rows: 8, cols: 33, inp: "y"},
		{name: "256x4096", rows: 256, cols: 4096, big: true},
	} {
		if c.inp != "" && s.caps.NoInPlace {
			continue
		}
		s.run(t, "SoftmaxBackward", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			n := c.rows * c.cols
			x := normal(r, n, 0, 3)
			if c.masked {
				for i := 0; i < c.rows; i++ {
					for j := i + 1; j < c.cols; j++ {
						x[i*c.cols+j] = float32(math.Inf(-1))
					}
				}
			}
			y := make([]float32, n)
			cpu.SoftmaxRef(x, y, c.rows, c.cols)
			s.rnd(y)
			dy := s.rnd(normal(r, n, 0, 1))
			want := nans(n)
			cpu.SoftmaxBackwardRef(y, dy, want, c.rows, c.cols)
			got := nans(n)
			switch c.inp {
			case "dy":
				got = clone(dy)
				dy = got
			case "y":
				got = clone(y)
				y = got
			}
			s.bw.SoftmaxBackward(y, dy, got, c.rows, c.cols)
			s.gradCheck(t, "SoftmaxBackward dx", []int{c.rows, c.cols}, got, want, s.caps.Compute, 4, 0)
		})
	}
}

func (s *suite) activateBackward(t *testing.T) {
	for _, a := range activations {
		for _, n := range []int{1, 17, 1023, 70001} {
			for _, inp := range []string{"", "dy", "x"} {
				if inp != "" && (s.caps.NoInPlace || n != 1023) {
					continue
				}
				name := a.name + "-" + itoa(n)
				if inp != "" {
					name += "-inplace-" + inp
				}
				s.run(t, "ActivateBackward", name, n > 10000, func(t *testing.T, r *rand.Rand) {
					x := s.rnd(normal(r, n, 0, 3))
					dy := s.rnd(uniform(r, n, -1, 1))
					want := nans(n)
					cpu.ActivateBackwardRef(a.f, x, dy, want)
					got := nans(n)
					switch inp {
					case "dy":
						got = clone(dy)
						dy = got
					case "x":
						got = clone(x)
						x = got
					}
					s.bw.ActivateBackward(a.f, x, dy, got)
					s.gradCheck(t, "ActivateBackward "+a.name, nil, got, want, s.caps.Compute, 4, 0)
				})
			}
		}
		s.run(t, "ActivateBackward", a.name+"-special", false, func(t *testing.T, r *rand.Rand) {
			inf, nan := float32(math.Inf(1)), float32(math.NaN())
			x := s.rnd([]float32{nan, inf, -inf, 0, float32(math.Copysign(0, -1)), 1e30, -1e30, 88, -88, 1e-30,
				-1e-30, 200, -200, 17, -17, 5, -5, 3.4e38, -3.4e38, -0.75, 1e-3})
			dy := s.rnd(uniform(r, len(x), 0.5, 1))
			want := nans(len(x))
			cpu.ActivateBackwardRef(a.f, x, dy, want)
			got := nans(len(x))
			s.bw.ActivateBackward(a.f, x, dy, got)
			s.gradCheck(t, "ActivateBackward "+a.name+" special values", nil, got, want, s.caps.Compute, 4, 0)
		})
	}
}

func (s *suite) gegluBackward(t *testing.T) {
	for _, c := range []struct {
		rows, d int
		inp     bool
		big     bool
	}{{1, 1, false, false}, {3, 17, false, false}, {3, 17, true, false}, {17, 1023, false, false}, {5, 8, false, false}, {256, 1280, false, true}} {
		if c.inp && s.caps.NoInPlace {
			continue
		}
		name := itoa(c.rows) + "x" + itoa(c.d)
		if c.inp {
			name += "-inplace"
		}
		s.run(t, "GEGLUBackward", name, c.big, func(t *testing.T, r *rand.Rand) {
			x := s.rnd(normal(r, c.rows*2*c.d, 0, 3))
			dy := s.rnd(normal(r, c.rows*c.d, 0, 1))
			want := nans(len(x))
			cpu.GEGLUBackwardRef(x, dy, want, c.rows, c.d)
			got := nans(len(x))
			if c.inp {
				got = clone(x)
				x = got
			}
			s.bw.GEGLUBackward(x, dy, got, c.rows, c.d)
			s.gradCheck(t, "GEGLUBackward dx", []int{c.rows, 2 * c.d}, got, want, s.caps.Compute, 4, 0)
		})
	}
}

func (s *suite) upsampleBackward(t *testing.T) {
	for _, c := range []struct{ nc, h, w int }{{1, 1, 1}, {3, 17, 5}, {2, 7, 1023}, {4, 1, 9}, {64, 16, 16}} {
		s.run(t, "Upsample2xBackward", itoa(c.nc)+"x"+itoa(c.h)+"x"+itoa(c.w), false, func(t *testing.T, r *rand.Rand) {
			dy := s.rnd(normal(r, 4*c.nc*c.h*c.w, 0, 1))
			n := c.nc * c.h * c.w
			want, got := nans(n), nans(n)
			cpu.Upsample2xBackwardRef(dy, want, c.nc, c.h, c.w)
			s.bw.Upsample2xBackward(dy, got, c.nc, c.h, c.w)
			s.gradCheck(t, "Upsample2xBackward dx", []int{c.nc, c.h, c.w}, got, want, s.caps.Compute, 2, 0)
		})
	}
}

// embeddingCases are lookups of n ids drawn from [0, vocab) (with repeats).
var embeddingCases = []struct {
	name        string
	vocab, d, n int
}{
	{"small", 10, 7, 20},
	{"one-row", 1, 1, 3},
	{"clip-77", 1000, 320, 77},
	{"no-ids", 5, 3, 0},
	{"wide-4x1029", 6, 1029, 4},
}

func embeddingIDs(r *rand.Rand, n, vocab int) []int64 {
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(r.IntN(vocab))
	}
	return ids
}

func (s *suite) embeddingBackward(t *testing.T) {
	for _, c := range embeddingCases {
		s.run(t, "EmbeddingBackward", c.name, false, func(t *testing.T, r *rand.Rand) {
			ids := embeddingIDs(r, c.n, c.vocab)
			dy := s.rnd(normal(r, c.n*c.d, 0, 1))
			want, got := nans(c.vocab*c.d), nans(c.vocab*c.d)
			cpu.EmbeddingBackwardRef(ids, dy, c.d, c.vocab, want)
			s.bw.EmbeddingBackward(ids, dy, c.d, c.vocab, got)
			s.gradCheck(t, "EmbeddingBackward dw", []int{c.vocab, c.d}, got, want, kernels.F32, 2, 0)
		})
	}
}

func (s *suite) embeddingBackwardSparse(t *testing.T) {
	for _, c := range embeddingCases {
		s.run(t, "EmbeddingBackwardSparse", c.name, false, func(t *testing.T, r *rand.Rand) {
			ids := embeddingIDs(r, c.n, c.vocab)
			rows := cpu.EmbeddingGradRows(ids, c.vocab)
			dy := s.rnd(normal(r, c.n*c.d, 0, 1))
			want, got := nans(len(rows)*c.d), nans(len(rows)*c.d)
			cpu.EmbeddingBackwardSparseRef(ids, dy, c.d, rows, want)
			s.bw.EmbeddingBackwardSparse(ids, dy, c.d, rows, got)
			s.gradCheck(t, "EmbeddingBackwardSparse grad", []int{len(rows), c.d}, got, want, kernels.F32, 2, 0)
		})
	}
}

package kerneltest

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// Options tunes Run.
type Options struct {
	// Ops restricts the run to these ops ("Gemm", "Conv2d", "Attention",
	// "GroupNorm", "LayerNorm", "Softmax", "Activate", "GEGLU", "Upsample2x",
	// "TimestepEmbedding", and those of BackwardNames); empty runs them all.
	Ops []string
	// Skip leaves out ops ("Softmax") or single cases ("Softmax/masked").
	Skip []string
	// Short trims the larger shapes (as does testing.Short()).
	Short bool
	// Seed varies the inputs; 0 keeps the fixed default.
	Seed uint64
}

// suite carries one Run's settings.
type suite struct {
	ops   Ops
	bw    BackwardOps // ops, if it implements the training kernels
	caps  Caps
	opt   Options
	short bool
	tol   float64 // caps.scale()
	uc    float64 // unit roundoff of the matrix-product compute type
}

const u32 = 0x1p-24 // float32 unit roundoff

// Run checks every op of ops against the references of kernels/cpu, each op and
// each case in its own subtest (named "Op/case", so `go test -run` selects them).
// When ops also implements BackwardOps, the training kernels are checked too
// (after the forward ops, named as in BackwardNames).
func Run(t *testing.T, ops Ops, opt Options) {
	caps := ops.Caps()
	s := &suite{ops: ops, caps: caps, opt: opt, short: opt.Short || testing.Short(),
		tol: caps.scale(), uc: unitRoundoff(caps.Compute)}
	if s.opt.Seed == 0 {
		s.opt.Seed = 0x5eed
	}
	t.Logf("kerneltest: %s (compute %s, weights %v, tolerance x%g, short %v)",
		ops.Name(), caps.Compute, caps.WeightDTypes, s.tol, s.short)
	checks := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Gemm", s.gemm},
		{"Conv2d", s.conv2d},
		{"Attention", s.attention},
		{"GroupNorm", s.groupNorm},
		{"LayerNorm", s.layerNorm},
		{"Softmax", s.softmax},
		{"Activate", s.activate},
		{"GEGLU", s.geglu},
		{"Upsample2x", s.upsample},
		{"TimestepEmbedding", s.timestep},
	}
	if bw, ok := ops.(BackwardOps); ok {
		s.bw = bw
		checks = append(checks, s.backwardChecks()...)
	}
	for _, op := range checks {
		if (len(opt.Ops) > 0 && !slices.Contains(opt.Ops, op.name)) || slices.Contains(opt.Skip, op.name) {
			continue
		}
		t.Run(op.name, op.fn)
	}
}

// run runs one case as a subtest with its own deterministic generator. Big cases
// are left out in short mode.
func (s *suite) run(t *testing.T, op, name string, big bool, fn func(t *testing.T, r *rand.Rand)) {
	t.Helper()
	if (big && s.short) || slices.Contains(s.opt.Skip, op+"/"+name) {
		return
	}
	h := fnv.New64a()
	h.Write([]byte(op + "/" + name))
	r := rand.New(rand.NewPCG(s.opt.Seed, h.Sum64()))
	t.Run(name, func(t *testing.T) { fn(t, r) })
}

// uniform returns n values uniform in [lo, hi).
func uniform(r *rand.Rand, n int, lo, hi float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(lo + (hi-lo)*r.Float64())
	}
	return x
}

// normal returns n values from N(mean, std^2).
func normal(r *rand.Rand, n int, mean, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(mean + std*r.NormFloat64())
	}
	return x
}

// filled returns n copies of v.
func filled(n int, v float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = v
	}
	return x
}

func clone(x []float32) []float32 { return append([]float32(nil), x...) }

// mat returns a random logical rows x cols operand with values in [-1, 1): stored
// transposed when trans, with pad extra elements per stored row, in dtype dt.
func mat(r *rand.Rand, rows, cols int, dt kernels.DType, trans bool, pad int) kernels.Mat {
	sr, sc := rows, cols
	if trans {
		sr, sc = cols, rows
	}
	stride := sc + pad
	f := uniform(r, sr*stride, -1, 1)
	switch dt {
	case kernels.F16:
		h := make([]uint16, len(f))
		cpu.F32ToF16(h, f)
		return kernels.HalfMat(h, dt, stride, trans)
	case kernels.BF16:
		h := make([]uint16, len(f))
		cpu.F32ToBF16(h, f)
		return kernels.HalfMat(h, dt, stride, trans)
	}
	return kernels.F32Mat(f, stride, trans)
}

// productTol returns the tolerance of a sum of k products of magnitude <= mag:
// float32 accumulation (2u per term, the growth of a blocked or serial sum) plus
// the rounding of the operands to the compute type (a random walk over k terms).
func (s *suite) productTol(k int, mag float64) (atol, rtol float64) {
	atol = s.tol * mag * (2*u32*float64(k+16) + 4*s.uc*math.Sqrt(float64(k)))
	rtol = s.tol * 4 * s.uc
	return
}

// dtypes returns the weight dtypes to test: F32 and those the device supports.
func (s *suite) dtypes() []kernels.DType {
	var d []kernels.DType
	for _, dt := range []kernels.DType{kernels.F32, kernels.F16, kernels.BF16} {
		if s.caps.supports(dt) {
			d = append(d, dt)
		}
	}
	return d
}

func (s *suite) gemm(t *testing.T) {
	type gc struct {
		name           string
		m, n, k        int
		ta, tb         bool
		da, db         kernels.DType
		alpha, beta    float32
		padA, padB, pC int
		big            bool
	}
	cases := []gc{
		{name: "1x1x1", m: 1, n: 1, k: 1, alpha: 1},
		{name: "3x17x1", m: 3, n: 17, k: 1, alpha: 1},
		{name: "17x3x1023", m: 17, n: 3, k: 1023, alpha: 1},
		{name: "1023x3x17", m: 1023, n: 3, k: 17, alpha: 1},
		{name: "3x1023x17", m: 3, n: 1023, k: 17, alpha: 1},
		{name: "k=0", m: 5, n: 7, k: 0, alpha: 1, beta: 0.5},
		{name: "alpha-beta", m: 33, n: 19, k: 65, alpha: -0.75, beta: 1.5},
		{name: "beta0-nanC", m: 9, n: 31, k: 40, alpha: 2},
		{name: "strides", m: 23, n: 29, k: 37, alpha: 1, beta: 1, padA: 3, padB: 5, pC: 7},
		{name: "big-strided", m: 129, n: 100, k: 257, alpha: 1, padA: 1, padB: 2, pC: 3, big: true},
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			cases = append(cases, gc{name: "trans" + tf(ta) + tf(tb), m: 64, n: 48, k: 96, ta: ta, tb: tb,
				alpha: 1, padA: 1, padB: 3, pC: 2})
		}
	}
	for _, dt := range s.dtypes()[1:] {
		// nn.Linear: y[m, n] = x[m, k] * W[n, k]^T with 16-bit W
		cases = append(cases,
			gc{name: "linear-" + dt.String(), m: 77, n: 40, k: 96, tb: true, db: dt, alpha: 1},
			gc{name: "linear-big-" + dt.String(), m: 64, n: 320, k: 320, tb: true, db: dt, alpha: 1, big: true},
			gc{name: "A-" + dt.String(), m: 17, n: 33, k: 65, ta: true, da: dt, alpha: 1, beta: 1, pC: 1})
	}
	for _, c := range cases {
		s.run(t, "Gemm", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			a := mat(r, c.m, c.k, c.da, c.ta, c.padA)
			b := mat(r, c.k, c.n, c.db, c.tb, c.padB)
			ldc := c.n + c.pC
			var c0 []float32
			if c.beta == 0 {
				c0 = filled(max(0, (c.m-1)*ldc+c.n), float32(math.NaN())) // must not be read
			} else {
				c0 = uniform(r, max(0, (c.m-1)*ldc+c.n), -1, 1)
			}
			want, got := clone(c0), clone(c0)
			cpu.GemmRef(c.m, c.n, c.k, c.alpha, a, b, c.beta, want, ldc)
			s.ops.Gemm(c.m, c.n, c.k, c.alpha, a, b, c.beta, got, ldc)
			atol, rtol := s.productTol(c.k, math.Abs(float64(c.alpha))+math.Abs(float64(c.beta)))
			CompareShape(t, "Gemm C", []int{c.m, ldc}, got, want, atol, rtol)
		})
	}
}

func tf(b bool) string {
	if b {
		return "T"
	}
	return "N"
}

func (s *suite) conv2d(t *testing.T) {
	type cc struct {
		name string
		p    kernels.ConvParams
		dt   kernels.DType
		bias bool
		big  bool
	}
	P := func(n, c, h, w, k, r, s, sh, sw, ph, pw int) kernels.ConvParams {
		return kernels.ConvParams{N: n, C: c, H: h, W: w, K: k, R: r, S: s, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw}
	}
	cases := []cc{
		{name: "1x1-trivial", p: P(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0), bias: true},
		{name: "1x1", p: P(2, 17, 5, 7, 3, 1, 1, 1, 1, 0, 0), bias: true},
		{name: "3x3-pad1", p: P(1, 3, 17, 9, 8, 3, 3, 1, 1, 1, 1), bias: true},
		{name: "3x3-stride2", p: P(2, 8, 16, 15, 5, 3, 3, 2, 2, 1, 1)},
		{name: "4x3-asym", p: P(1, 4, 9, 11, 6, 4, 3, 1, 2, 2, 0), bias: true},
		{name: "3x3-nopad-1x3", p: P(1, 5, 3, 3, 7, 3, 3, 1, 1, 0, 0)},
		{name: "3x3-64ch", p: P(1, 64, 16, 16, 64, 3, 3, 1, 1, 1, 1), bias: true, big: true},
		{name: "1x1-1023", p: P(1, 3, 31, 33, 1023, 1, 1, 1, 1, 0, 0), big: true},
	}
	for _, dt := range s.dtypes()[1:] {
		cases = append(cases, cc{name: "3x3-" + dt.String(), p: P(2, 6, 10, 12, 9, 3, 3, 1, 1, 1, 1), dt: dt, bias: true},
			cc{name: "1x1-" + dt.String(), p: P(1, 16, 7, 9, 11, 1, 1, 1, 1, 0, 0), dt: dt})
	}
	for _, c := range cases {
		s.run(t, "Conv2d", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			p := c.p
			x := uniform(r, p.N*p.C*p.H*p.W, -1, 1)
			kk := p.C * p.R * p.S
			w := mat(r, p.K, kk, c.dt, false, 0)
			var bias []float32
			if c.bias {
				bias = uniform(r, p.K, -1, 1)
			}
			ysize := p.N * p.K * p.OutH() * p.OutW()
			want, got := make([]float32, ysize), filled(ysize, float32(math.NaN()))
			cpu.Conv2dRef(p, x, w, bias, want)
			s.ops.Conv2d(p, x, w, bias, got)
			atol, rtol := s.productTol(kk, 2)
			CompareShape(t, "Conv2d y", []int{p.N, p.K, p.OutH(), p.OutW()}, got, want, atol, rtol)
		})
	}
}

func (s *suite) attention(t *testing.T) {
	type ac struct {
		name          string
		b, h, sq, sk  int
		d             int
		causal        bool
		scale         float32 // 0: 1/sqrt(d)
		packed        bool    // q, k, v interleaved in one [B, S, 3*H*D] buffer (Sq == Sk)
		kvPad, outPad int
		big           bool
	}
	cases := []ac{
		{name: "1x1x1", b: 1, h: 1, sq: 1, sk: 1, d: 1},
		{name: "self-17", b: 2, h: 3, sq: 17, sk: 17, d: 8},
		{name: "cross-33x77", b: 2, h: 2, sq: 33, sk: 77, d: 40},
		{name: "sq1", b: 1, h: 4, sq: 1, sk: 1023, d: 16},
		{name: "causal-17", b: 1, h: 2, sq: 17, sk: 17, d: 8, causal: true},
		{name: "causal-5x23", b: 2, h: 1, sq: 5, sk: 23, d: 12, causal: true},
		// Sq > Sk: the first Sq-Sk queries may attend to no key; their output is 0.
		{name: "causal-6x5", b: 1, h: 2, sq: 6, sk: 5, d: 4, causal: true},
		{name: "causal-9x4", b: 1, h: 2, sq: 9, sk: 4, d: 4, causal: true},
		{name: "scale2", b: 1, h: 2, sq: 9, sk: 13, d: 5, scale: 2},
		{name: "packed-qkv", b: 2, h: 3, sq: 19, sk: 19, d: 8, packed: true, outPad: 5},
		{name: "strided", b: 2, h: 2, sq: 7, sk: 11, d: 6, kvPad: 3, outPad: 1},
		{name: "d64-1023", b: 1, h: 2, sq: 64, sk: 1023, d: 64, big: true},
		{name: "d40-4096x77", b: 1, h: 8, sq: 256, sk: 77, d: 40, big: true},
	}
	for _, c := range cases {
		s.run(t, "Attention", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			hd := c.h * c.d
			p := kernels.AttnParams{B: c.b, H: c.h, Sq: c.sq, Sk: c.sk, D: c.d, Scale: c.scale, Causal: c.causal}
			if p.Scale == 0 {
				p.Scale = float32(1 / math.Sqrt(float64(c.d)))
			}
			var q, k, v []float32
			if c.packed {
				p.QStride, p.KStride, p.VStride = 3*hd, 3*hd, 3*hd
				buf := uniform(r, c.b*c.sq*3*hd, -1, 1)
				q, k, v = buf, buf[hd:], buf[2*hd:]
			} else {
				p.QStride, p.KStride, p.VStride = hd, hd+c.kvPad, hd+2*c.kvPad
				q = uniform(r, c.b*c.sq*p.QStride, -1, 1)
				k = uniform(r, c.b*c.sk*p.KStride, -1, 1)
				v = uniform(r, c.b*c.sk*p.VStride, -1, 1)
			}
			p.OStride = hd + c.outPad
			osize := c.b * c.sq * p.OStride
			want := filled(osize, float32(math.NaN())) // padding must stay untouched
			got := clone(want)
			cpu.AttentionRef(p, q, k, v, want)
			s.ops.Attention(p, q, k, v, got)
			qk, _ := s.productTol(c.d, float64(p.Scale)) // error of the scores
			atol := s.tol*2*u32*float64(c.d+c.sk+16) + 4*qk
			CompareShape(t, "Attention o", []int{c.b, c.sq, p.OStride}, got, want, atol, s.tol*4*s.uc)
		})
	}
}

// normTol is the tolerance of normalised outputs of magnitude ~1-5.
func (s *suite) normTol() (atol, rtol float64) { return s.tol * 1e-5, s.tol * 1e-5 }

func (s *suite) groupNorm(t *testing.T) {
	type gc struct {
		name              string
		n, c, hw, groups  int
		affine, silu, inp bool
		mean              float64
		big               bool
	}
	cases := []gc{
		{name: "1x1x1", n: 1, c: 1, hw: 1, groups: 1, affine: true}, // zero variance: beta
		{name: "2x6x17-g3", n: 2, c: 6, hw: 17, groups: 3, affine: true},
		{name: "1x32x1023-g32", n: 1, c: 32, hw: 1023, groups: 32},
		{name: "2x64x33-silu", n: 2, c: 64, hw: 33, groups: 32, affine: true, silu: true},
		{name: "3x12x5-g1", n: 3, c: 12, hw: 5, groups: 1, affine: true},
		{name: "inplace", n: 2, c: 8, hw: 31, groups: 4, affine: true, inp: true},
		{name: "inplace-silu", n: 1, c: 8, hw: 100, groups: 2, silu: true, inp: true},
		{name: "mean1000", n: 2, c: 16, hw: 257, groups: 8, affine: true, mean: 1000},
		{name: "mean1000-silu", n: 1, c: 4, hw: 4096, groups: 2, silu: true, mean: 1000},
		{name: "unet-2x320x64x64", n: 2, c: 320, hw: 64 * 64, groups: 32, affine: true, silu: true, big: true},
	}
	atol, rtol := s.normTol()
	for _, c := range cases {
		if c.inp && s.caps.NoInPlace {
			continue
		}
		s.run(t, "GroupNorm", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			x := normal(r, c.n*c.c*c.hw, c.mean, 1)
			var gamma, beta []float32
			if c.affine {
				gamma, beta = normal(r, c.c, 1, 0.2), normal(r, c.c, 0, 0.5)
			}
			want := make([]float32, len(x))
			cpu.GroupNormRef(x, want, c.n, c.c, c.hw, c.groups, 1e-5, gamma, beta, c.silu)
			got := make([]float32, len(x))
			if c.inp {
				got = clone(x)
				x = got
			}
			s.ops.GroupNorm(x, got, c.n, c.c, c.hw, c.groups, 1e-5, gamma, beta, c.silu)
			CompareShape(t, "GroupNorm y", []int{c.n, c.c, c.hw}, got, want, atol, rtol)
		})
	}
}

func (s *suite) layerNorm(t *testing.T) {
	type lc struct {
		name        string
		rows, cols  int
		gamma, beta bool
		inp         bool
		mean        float64
		big         bool
	}
	cases := []lc{
		{name: "1x1", rows: 1, cols: 1, gamma: true, beta: true},
		{name: "3x17", rows: 3, cols: 17, gamma: true, beta: true},
		{name: "17x1023-gamma", rows: 17, cols: 1023, gamma: true},
		{name: "5x320-beta", rows: 5, cols: 320, beta: true},
		{name: "7x768-nil", rows: 7, cols: 768},
		{name: "inplace", rows: 9, cols: 100, gamma: true, beta: true, inp: true},
		{name: "mean1000", rows: 13, cols: 333, gamma: true, beta: true, mean: 1000},
		{name: "4096x320", rows: 4096, cols: 320, gamma: true, beta: true, big: true},
	}
	atol, rtol := s.normTol()
	for _, c := range cases {
		if c.inp && s.caps.NoInPlace {
			continue
		}
		s.run(t, "LayerNorm", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			x := normal(r, c.rows*c.cols, c.mean, 1)
			var gamma, beta []float32
			if c.gamma {
				gamma = normal(r, c.cols, 1, 0.2)
			}
			if c.beta {
				beta = normal(r, c.cols, 0, 0.5)
			}
			want := make([]float32, len(x))
			cpu.LayerNormRef(x, want, c.rows, c.cols, 1e-5, gamma, beta)
			got := make([]float32, len(x))
			if c.inp {
				got = clone(x)
				x = got
			}
			s.ops.LayerNorm(x, got, c.rows, c.cols, 1e-5, gamma, beta)
			CompareShape(t, "LayerNorm y", []int{c.rows, c.cols}, got, want, atol, rtol)
		})
	}
}

func (s *suite) softmax(t *testing.T) {
	type sc struct {
		name       string
		rows, cols int
		std, mean  float64
		masked     bool
		inp        bool
		big        bool
	}
	cases := []sc{
		{name: "1x1", rows: 1, cols: 1, std: 1},
		{name: "3x17", rows: 3, cols: 17, std: 3},
		{name: "17x1023", rows: 17, cols: 1023, std: 3},
		{name: "5x4096", rows: 5, cols: 4096, std: 5},
		{name: "offset1000", rows: 4, cols: 77, std: 2, mean: 1000},
		{name: "masked", rows: 6, cols: 40, std: 2, masked: true},
		{name: "inplace", rows: 8, cols: 33, std: 2, inp: true},
		{name: "256x4096", rows: 256, cols: 4096, std: 4, big: true},
	}
	for _, c := range cases {
		if c.inp && s.caps.NoInPlace {
			continue
		}
		s.run(t, "Softmax", c.name, c.big, func(t *testing.T, r *rand.Rand) {
			x := normal(r, c.rows*c.cols, c.mean, c.std)
			if c.masked { // a causal-style mask of -Inf, keeping at least one entry per row
				for i := 0; i < c.rows; i++ {
					for j := i + 1; j < c.cols; j++ {
						x[i*c.cols+j] = float32(math.Inf(-1))
					}
				}
			}
			want := make([]float32, len(x))
			cpu.SoftmaxRef(x, want, c.rows, c.cols)
			got := make([]float32, len(x))
			if c.inp {
				got = clone(x)
				x = got
			}
			s.ops.Softmax(x, got, c.rows, c.cols)
			// float32 rounding of x - max (|x - max| up to ~8 std) bounds the accuracy
			CompareShape(t, "Softmax y", []int{c.rows, c.cols}, got, want, s.tol*1e-9, s.tol*(2e-6+1e-6*c.std))
		})
	}
}

var activations = []struct {
	name string
	f    kernels.Activation
}{
	{"identity", kernels.Identity}, {"silu", kernels.SiLU}, {"gelu", kernels.GELU},
	{"gelutanh", kernels.GELUTanh}, {"quickgelu", kernels.QuickGELU},
}

// actTol is the tolerance of the activations on inputs of standard deviation 3:
// the float32 rounding of the argument of exp (up to ~20) costs ~2.4e-6 relative.
func (s *suite) actTol() (atol, rtol float64) { return s.tol * 1e-9, s.tol * 5e-6 }

func (s *suite) activate(t *testing.T) {
	atol, rtol := s.actTol()
	for _, a := range activations {
		for _, n := range []int{1, 3, 17, 1023, 70001} {
			for _, inp := range []bool{false, true} {
				if inp && (s.caps.NoInPlace || n != 1023) {
					continue
				}
				name := a.name + "-" + itoa(n)
				if inp {
					name += "-inplace"
				}
				s.run(t, "Activate", name, n > 10000, func(t *testing.T, r *rand.Rand) {
					x := normal(r, n, 0, 3)
					want := make([]float32, n)
					cpu.ActivateRef(a.f, x, want)
					got := make([]float32, n)
					if inp {
						got = clone(x)
						x = got
					}
					s.ops.Activate(a.f, x, got)
					Compare(t, "Activate "+a.name, got, want, atol, rtol)
				})
			}
		}
		s.run(t, "Activate", a.name+"-special", false, func(t *testing.T, r *rand.Rand) {
			inf, nan := float32(math.Inf(1)), float32(math.NaN())
			x := []float32{nan, inf, -inf, 0, float32(math.Copysign(0, -1)), 1e30, -1e30, 88, -88, 1e-30,
				-1e-30, 200, -200, 17, -17, 5, -5, 3.4e38, -3.4e38}
			want := make([]float32, len(x))
			cpu.ActivateRef(a.f, x, want)
			got := make([]float32, len(x))
			s.ops.Activate(a.f, x, got)
			Compare(t, "Activate "+a.name+" special values", got, want, atol, rtol)
		})
	}
}

func (s *suite) geglu(t *testing.T) {
	atol, rtol := s.actTol()
	for _, c := range []struct {
		rows, d int
		big     bool
	}{{1, 1, false}, {3, 17, false}, {17, 1023, false}, {5, 8, false}, {256, 1280, true}} {
		s.run(t, "GEGLU", itoa(c.rows)+"x"+itoa(c.d), c.big, func(t *testing.T, r *rand.Rand) {
			x := normal(r, c.rows*2*c.d, 0, 3)
			want := make([]float32, c.rows*c.d)
			cpu.GEGLURef(x, want, c.rows, c.d)
			got := filled(len(want), float32(math.NaN()))
			s.ops.GEGLU(x, got, c.rows, c.d)
			CompareShape(t, "GEGLU y", []int{c.rows, c.d}, got, want, atol, rtol)
		})
	}
}

func (s *suite) upsample(t *testing.T) {
	for _, c := range []struct{ nc, h, w int }{{1, 1, 1}, {3, 17, 5}, {2, 7, 1023}, {4, 1, 9}, {64, 16, 16}} {
		s.run(t, "Upsample2x", itoa(c.nc)+"x"+itoa(c.h)+"x"+itoa(c.w), false, func(t *testing.T, r *rand.Rand) {
			x := normal(r, c.nc*c.h*c.w, 0, 1)
			n := 4 * len(x)
			want, got := make([]float32, n), filled(n, float32(math.NaN()))
			cpu.Upsample2xRef(x, want, c.nc, c.h, c.w)
			s.ops.Upsample2x(x, got, c.nc, c.h, c.w)
			CompareShape(t, "Upsample2x y", []int{c.nc, 2 * c.h, 2 * c.w}, got, want, 0, 0)
		})
	}
}

func (s *suite) timestep(t *testing.T) {
	for _, c := range []struct {
		name         string
		ts           []float32
		dim          int
		flip         bool
		shift, scale float32
	}{
		{"unet-320", []float32{0, 1, 999, 500.5, 37}, 320, true, 0, 1},
		{"odd-7", []float32{3, 250}, 7, false, 1, 1},
		{"dim1", []float32{5}, 1, false, 0, 1},
		{"scaled-64", []float32{0.001, 0.5, 1}, 64, false, 1, 1000},
	} {
		s.run(t, "TimestepEmbedding", c.name, false, func(t *testing.T, r *rand.Rand) {
			n := len(c.ts) * c.dim
			want, got := make([]float32, n), filled(n, float32(math.NaN()))
			cpu.TimestepEmbeddingRef(c.ts, c.dim, c.flip, c.shift, c.scale, 10000, want)
			s.ops.TimestepEmbedding(c.ts, c.dim, c.flip, c.shift, c.scale, 10000, got)
			// sin/cos of a float32 argument a: one rounding of a moves them by ~u32*|a|
			var amax float64
			for _, v := range c.ts {
				amax = max(amax, math.Abs(float64(v*c.scale)))
			}
			CompareShape(t, "TimestepEmbedding", []int{len(c.ts), c.dim}, got, want,
				s.tol*(2e-6+2*u32*amax), 0)
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for ; n > 0; n /= 10 {
		i--
		b[i] = byte('0' + n%10)
	}
	return string(b[i:])
}

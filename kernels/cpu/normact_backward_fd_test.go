package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Finite-difference checks of the normalisation, activation and small-op
// backward kernels: for L = sum(R .* f(x)) with random R, each kernel's
// gradient (dy = R) must match central differences of a float64 forward
// evaluated at the same (float32-representable) inputs. The float64 forwards
// are checked against the float32 forward kernels first, so the differences
// test the function the forward computes.

// nabFD returns the central-difference gradient of loss with respect to p,
// perturbing each p[i] by h*max(1, |p[i]|) in place (restored afterwards).
func nabFD(p []float64, h float64, loss func() float64) []float64 {
	g := make([]float64, len(p))
	for i, v := range p {
		d := h * max(1, math.Abs(v))
		p[i] = v + d
		lp := loss()
		p[i] = v - d
		lm := loss()
		p[i] = v
		g[i] = (lp - lm) / (2 * d)
	}
	return g
}

// nabRand returns n float32-representable normals (as float32 and float64) with
// the given scale and offset.
func nabRand(r *rand.Rand, n int, scale, off float64) ([]float32, []float64) {
	f := make([]float32, n)
	d := make([]float64, n)
	for i := range f {
		f[i] = float32(off + scale*r.NormFloat64())
		d[i] = float64(f[i])
	}
	return f, d
}

// nabDot is sum(r .* y).
func nabDot(r []float32, y []float64) float64 {
	var s float64
	for i, v := range y {
		s += float64(r[i]) * v
	}
	return s
}

// nabCmp fails t when some |got[i] - want[i]| > rtol*(|want[i]| + rms(want)) +
// atol, printing the largest error and the first mismatches.
func nabCmp(t *testing.T, what string, got []float32, want []float64, rtol, atol float64) {
	t.Helper()
	if len(got) < len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var ss float64
	for _, w := range want {
		ss += w * w
	}
	rms := math.Sqrt(ss / float64(max(1, len(want))))
	worst, wi, bad := 0.0, -1, 0
	for i, w := range want {
		g := float64(got[i])
		tol := rtol*(math.Abs(w)+rms) + atol
		e := math.Abs(g - w)
		if math.IsNaN(w) || math.IsNaN(g) {
			if math.IsNaN(w) != math.IsNaN(g) {
				e = math.Inf(1)
			} else {
				e = 0
			}
		}
		if r := e / tol; r > worst || wi < 0 {
			worst, wi = r, i
		}
		if e > tol {
			if bad++; bad <= 5 {
				t.Errorf("%s[%d] = %.9g, want %.9g (err %.3g, tol %.3g)", what, i, g, w, e, tol)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance; worst err/tol %.3g at %d", what, bad, len(want), worst, wi)
	} else {
		t.Logf("%s: worst err/tol %.3g", what, worst)
	}
}

// gn64 is GroupNorm in float64 (gamma, beta nil: 1 and 0).
func gn64(x, gamma, beta []float64, n, c, hw, groups int, eps float64, silu bool) []float64 {
	y := make([]float64, len(x))
	cg := c / groups
	cnt := cg * hw
	for t := 0; t < n*groups; t++ {
		var m, v float64
		for _, e := range x[t*cnt : (t+1)*cnt] {
			m += e
		}
		m /= float64(cnt)
		for _, e := range x[t*cnt : (t+1)*cnt] {
			v += (e - m) * (e - m)
		}
		r := 1 / math.Sqrt(v/float64(cnt)+eps)
		for i := t * cnt; i < (t+1)*cnt; i++ {
			ch := (i / hw) % c
			z := (x[i] - m) * r
			if gamma != nil {
				z *= gamma[ch]
			}
			if beta != nil {
				z += beta[ch]
			}
			if silu {
				z /= 1 + math.Exp(-z)
			}
			y[i] = z
		}
	}
	return y
}

// ln64 is LayerNorm in float64 (gamma, beta nil: 1 and 0).
func ln64(x, gamma, beta []float64, rows, cols int, eps float64) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		var m, v float64
		for _, e := range row {
			m += e
		}
		m /= float64(cols)
		for _, e := range row {
			v += (e - m) * (e - m)
		}
		rs := 1 / math.Sqrt(v/float64(cols)+eps)
		for j, e := range row {
			z := (e - m) * rs
			if gamma != nil {
				z = z*gamma[j] + beta[j]
			}
			y[r*cols+j] = z
		}
	}
	return y
}

// softmax64 is Softmax in float64.
func softmax64(x []float64, rows, cols int) []float64 {
	y := make([]float64, len(x))
	for r := 0; r < rows; r++ {
		mx := math.Inf(-1)
		for _, e := range x[r*cols : (r+1)*cols] {
			mx = math.Max(mx, e)
		}
		var s float64
		for j, e := range x[r*cols : (r+1)*cols] {
			y[r*cols+j] = math.Exp(e - mx)
			s += y[r*cols+j]
		}
		for j := range cols {
			y[r*cols+j] /= s
		}
	}
	return y
}

// act64 applies f in float64 (the exact GELU through erfc, as accurate in the tail).
func act64(f Activation, x []float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		if f == GELU {
			y[i] = 0.5 * v * math.Erfc(-v/math.Sqrt2)
		} else {
			y[i] = f.ActivateScalar(v)
		}
	}
	return y
}

// nabF32 rounds a float64 slice to float32 (nil stays nil).
func nabF32(x []float64) []float32 {
	if x == nil {
		return nil
	}
	f := make([]float32, len(x))
	for i, v := range x {
		f[i] = float32(v)
	}
	return f
}

// fdCase is one finite-difference check: params are the inputs (float32 values
// held in float64), fwd the float64 forward, fwd32 the float32 forward kernel
// (to check that fwd computes the same function), grads the kernel gradients
// with respect to each param for dy = r.
type fdCase struct {
	name   string
	params [][]float64
	fwd    func(p [][]float64) []float64
	fwd32  func(p [][]float32) []float32
	grads  func(p [][]float32, r []float32) [][]float32
}

// fdCases builds the table of finite-difference checks.
func fdCases() []fdCase {
	rng := rand.New(rand.NewPCG(21, 22))
	rnd := func(n int, scale, off float64) []float64 { _, d := nabRand(rng, n, scale, off); return d }
	var cases []fdCase

	for _, s := range []struct {
		n, c, hw, groups int
		eps              float32
		silu, affine     bool
	}{
		{2, 6, 5, 3, 1e-5, false, true},
		{2, 6, 5, 3, 1e-5, true, true},
		{1, 4, 3, 4, 1e-6, true, true},  // one channel per group
		{1, 4, 3, 4, 1e-6, false, true}, // one channel per group
		{2, 4, 9, 2, 1e-5, true, false}, // no affine
		{1, 2, 2, 2, 1e-5, true, true},  // two elements per group
	} {
		s := s
		size := s.n * s.c * s.hw
		p := [][]float64{rnd(size, 1.5, 0.3), rnd(s.c, 0.5, 1), rnd(s.c, 0.5, 0.1)}
		if !s.affine {
			p = p[:1]
		}
		gb := func(p [][]float64) ([]float64, []float64) {
			if len(p) == 1 {
				return nil, nil
			}
			return p[1], p[2]
		}
		gb32 := func(p [][]float32) ([]float32, []float32) {
			if len(p) == 1 {
				return nil, nil
			}
			return p[1], p[2]
		}
		cases = append(cases, fdCase{
			name:   fmt.Sprintf("GroupNorm/n%d-c%d-hw%d-g%d-eps%g-silu%v-affine%v", s.n, s.c, s.hw, s.groups, s.eps, s.silu, s.affine),
			params: p,
			fwd: func(p [][]float64) []float64 {
				g, b := gb(p)
				return gn64(p[0], g, b, s.n, s.c, s.hw, s.groups, float64(s.eps), s.silu)
			},
			fwd32: func(p [][]float32) []float32 {
				g, b := gb32(p)
				y := make([]float32, size)
				GroupNorm(p[0], y, s.n, s.c, s.hw, s.groups, s.eps, g, b, s.silu)
				return y
			},
			grads: func(p [][]float32, r []float32) [][]float32 {
				g, b := gb32(p)
				y := make([]float32, size)
				mean, rstd := make([]float32, s.n*s.groups), make([]float32, s.n*s.groups)
				GroupNormSave(p[0], y, s.n, s.c, s.hw, s.groups, s.eps, g, b, s.silu, mean, rstd)
				dx, dg, db := make([]float32, size), make([]float32, s.c), make([]float32, s.c)
				GroupNormBackward(p[0], r, dx, s.n, s.c, s.hw, s.groups, mean, rstd, g, b, s.silu, dg, db)
				if g == nil {
					return [][]float32{dx}
				}
				return [][]float32{dx, dg, db}
			},
		})
	}

	for _, s := range []struct {
		rows, cols int
		eps        float32
		affine     bool
	}{{3, 7, 1e-5, true}, {2, 17, 1e-6, true}, {4, 5, 1e-5, false}, {2, 1, 1e-5, true}} {
		s := s
		size := s.rows * s.cols
		p := [][]float64{rnd(size, 2, -0.5), rnd(s.cols, 0.5, 1), rnd(s.cols, 0.5, 0)}
		if !s.affine {
			p = p[:1]
		}
		cases = append(cases, fdCase{
			name:   fmt.Sprintf("LayerNorm/%dx%d-eps%g-affine%v", s.rows, s.cols, s.eps, s.affine),
			params: p,
			fwd: func(p [][]float64) []float64 {
				if len(p) == 1 {
					return ln64(p[0], nil, nil, s.rows, s.cols, float64(s.eps))
				}
				return ln64(p[0], p[1], p[2], s.rows, s.cols, float64(s.eps))
			},
			fwd32: func(p [][]float32) []float32 {
				y := make([]float32, size)
				if len(p) == 1 {
					LayerNorm(p[0], y, s.rows, s.cols, s.eps, nil, nil)
				} else {
					LayerNorm(p[0], y, s.rows, s.cols, s.eps, p[1], p[2])
				}
				return y
			},
			grads: func(p [][]float32, r []float32) [][]float32 {
				var g, b []float32
				if len(p) > 1 {
					g, b = p[1], p[2]
				}
				y := make([]float32, size)
				mean, rstd := make([]float32, s.rows), make([]float32, s.rows)
				LayerNormSave(p[0], y, s.rows, s.cols, s.eps, g, b, mean, rstd)
				dx, dg, db := make([]float32, size), make([]float32, s.cols), make([]float32, s.cols)
				LayerNormBackward(p[0], r, dx, s.rows, s.cols, mean, rstd, g, dg, db)
				if g == nil {
					return [][]float32{dx}
				}
				return [][]float32{dx, dg, db}
			},
		})
	}

	for _, s := range [][2]int{{3, 7}, {2, 1}, {1, 17}, {2, 33}} {
		rows, cols := s[0], s[1]
		cases = append(cases, fdCase{
			name:   fmt.Sprintf("Softmax/%dx%d", rows, cols),
			params: [][]float64{rnd(rows*cols, 2, 0)},
			fwd:    func(p [][]float64) []float64 { return softmax64(p[0], rows, cols) },
			fwd32: func(p [][]float32) []float32 {
				y := make([]float32, rows*cols)
				Softmax(p[0], y, rows, cols)
				return y
			},
			grads: func(p [][]float32, r []float32) [][]float32 {
				y := make([]float32, rows*cols)
				Softmax(p[0], y, rows, cols)
				dx := make([]float32, rows*cols)
				SoftmaxBackward(y, r, dx, rows, cols)
				return [][]float32{dx}
			},
		})
	}

	for _, f := range []Activation{Identity, SiLU, GELU, GELUTanh, QuickGELU} {
		f := f
		cases = append(cases, fdCase{
			name:   fmt.Sprintf("Activate/%d", f),
			params: [][]float64{rnd(37, 3, 0)},
			fwd:    func(p [][]float64) []float64 { return act64(f, p[0]) },
			fwd32: func(p [][]float32) []float32 {
				y := make([]float32, len(p[0]))
				Activate(f, p[0], y)
				return y
			},
			grads: func(p [][]float32, r []float32) [][]float32 {
				dx := make([]float32, len(p[0]))
				ActivateBackward(f, p[0], r, dx)
				return [][]float32{dx}
			},
		})
	}

	{
		rows, d := 3, 11
		cases = append(cases, fdCase{
			name:   "GEGLU/3x11",
			params: [][]float64{rnd(rows*2*d, 2, 0)},
			fwd: func(p [][]float64) []float64 {
				y := make([]float64, rows*d)
				for r := 0; r < rows; r++ {
					g := act64(GELU, p[0][r*2*d+d:(r+1)*2*d])
					for j := 0; j < d; j++ {
						y[r*d+j] = p[0][r*2*d+j] * g[j]
					}
				}
				return y
			},
			fwd32: func(p [][]float32) []float32 {
				y := make([]float32, rows*d)
				GEGLU(p[0], y, rows, d)
				return y
			},
			grads: func(p [][]float32, r []float32) [][]float32 {
				dx := make([]float32, rows*2*d)
				GEGLUBackward(p[0], r, dx, rows, d)
				return [][]float32{dx}
			},
		})
	}

	{
		nc, h, w := 2, 3, 5
		cases = append(cases, fdCase{
			name:   "Upsample2x/2x3x5",
			params: [][]float64{rnd(nc*h*w, 1, 0)},
			fwd: func(p [][]float64) []float64 {
				y := make([]float64, 4*nc*h*w)
				for c := 0; c < nc; c++ {
					for i := 0; i < 2*h; i++ {
						for j := 0; j < 2*w; j++ {
							y[(c*2*h+i)*2*w+j] = p[0][(c*h+i/2)*w+j/2]
						}
					}
				}
				return y
			},
			fwd32: func(p [][]float32) []float32 {
				y := make([]float32, 4*nc*h*w)
				Upsample2x(p[0], y, nc, h, w)
				return y
			},
			grads: func(p [][]float32, r []float32) [][]float32 {
				dx := make([]float32, nc*h*w)
				Upsample2xBackward(r, dx, nc, h, w)
				return [][]float32{dx}
			},
		})
	}

	{
		ids := []int64{3, 1, 3, 6, 3, 0}
		vocab, d := 7, 5
		lookup := func(w []float64) []float64 {
			y := make([]float64, len(ids)*d)
			for p, id := range ids {
				copy(y[p*d:(p+1)*d], w[int(id)*d:(int(id)+1)*d])
			}
			return y
		}
		lookup32 := func(w []float32) []float32 {
			y := make([]float32, len(ids)*d)
			for p, id := range ids {
				copy(y[p*d:(p+1)*d], w[int(id)*d:(int(id)+1)*d])
			}
			return y
		}
		for _, sparse := range []bool{false, true} {
			sparse := sparse
			cases = append(cases, fdCase{
				name:   fmt.Sprintf("Embedding/sparse%v", sparse),
				params: [][]float64{rnd(vocab*d, 1, 0)},
				fwd:    func(p [][]float64) []float64 { return lookup(p[0]) },
				fwd32:  func(p [][]float32) []float32 { return lookup32(p[0]) },
				grads: func(p [][]float32, r []float32) [][]float32 {
					dw := make([]float32, vocab*d)
					if !sparse {
						EmbeddingBackward(ids, r, d, vocab, dw)
						return [][]float32{dw}
					}
					rows := EmbeddingGradRows(ids, vocab)
					grad := make([]float32, len(rows)*d)
					EmbeddingBackwardSparse(ids, r, d, rows, grad)
					for k, id := range rows { // scatter to dense for the check
						copy(dw[int(id)*d:(int(id)+1)*d], grad[k*d:(k+1)*d])
					}
					return [][]float32{dw}
				},
			})
		}
	}
	return cases
}

// TestBackwardFiniteDiff checks every kernel's gradient against central
// differences in float64 (h = 1e-6 relative), on both the assembly and the
// pure-Go paths. Tolerance: |grad - fd| <= 1e-5*(|fd| + rms(fd)) + 1e-6
// (float32 kernels against float64 differences); the float64 forwards agree
// with the float32 kernels within 1e-5*(|y| + rms(y)).
func TestBackwardFiniteDiff(t *testing.T) {
	actForEachPath(t, func(t *testing.T) {
		for _, c := range fdCases() {
			t.Run(c.name, func(t *testing.T) {
				p32 := make([][]float32, len(c.params))
				for i, p := range c.params {
					p32[i] = nabF32(p)
				}
				y := c.fwd(c.params)
				nabCmp(t, "forward", c.fwd32(p32), y, 1e-5, 1e-7)
				rng := rand.New(rand.NewPCG(uint64(len(y)), 5))
				r, _ := nabRand(rng, len(y), 1, 0)
				grads := c.grads(p32, r)
				for i := range c.params {
					fd := nabFD(c.params[i], 1e-6, func() float64 { return nabDot(r, c.fwd(c.params)) })
					nabCmp(t, fmt.Sprintf("grad%d", i), grads[i], fd, 1e-5, 1e-6)
				}
			})
		}
	})
}

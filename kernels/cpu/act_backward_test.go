package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// actGradScale returns the magnitude of the terms of f'(x) (the sum of their
// absolute values, the scale of the rounding errors of a float32 evaluation
// even where they cancel) and the magnitude of the argument of exp (whose
// float32 rounding, relative 6e-8 of it, bounds the accuracy any float32 code
// can reach).
func actGradScale(f Activation, x float64) (scale, u float64) {
	var k, c float64
	switch f {
	case Identity:
		return 1, 0
	case GELU:
		return 0.5*math.Erfc(-x/math.Sqrt2) + math.Abs(x)*math.Exp(-x*x/2)/math.Sqrt(2*math.Pi), x * x / 2
	case SiLU:
		k = 1
	case QuickGELU:
		k = 1.702
	case GELUTanh:
		k, c = 2*math.Sqrt(2/math.Pi), 0.044715
	}
	u = k * x * (1 + c*x*x)
	kd := k * (1 + 3*c*x*x)
	s := 1 / (1 + math.Exp(-u))
	if c != 0 {
		// u is three roundings away from its float32 inputs
		return s + math.Abs(x*kd)*s*(1-s), 3 * math.Abs(u)
	}
	return s + math.Abs(x*kd)*s*(1-s), math.Abs(u)
}

// TestActivateBackward checks ActivateBackward against the float64 derivatives
// (activationGrad64, PyTorch's formulas) over a dense grid on [-20, 20], random
// normals, special values (NaN, ±Inf, ±0, ±1e30, the exp clamps, denormals,
// ±3.4e38) with tails of 3 after multiples of 8, on both paths. Tolerance:
// |dx - dy*f'(x)| <= 1e-37 + (1.5e-6 + 1.2e-7*|u|)*|dy|*scale, with scale the
// sum of the magnitudes of f's terms and u the argument of exp (actGradScale):
// relative to the terms, since f' has roots where they cancel; 0 is accepted
// where u < -88 (the documented cut-off of the sigmoid family). NaN must give
// NaN and ±Inf the limits 0 and 1. dx aliasing x or dy gives bitwise the same.
func TestActivateBackward(t *testing.T) {
	xs := actInputs()
	rng := rand.New(rand.NewPCG(41, 42))
	dy := make([]float32, len(xs))
	for i := range dy {
		dy[i] = float32(1 + 0.5*rng.NormFloat64())
	}
	actForEachPath(t, func(t *testing.T) {
		for _, f := range []Activation{Identity, SiLU, GELU, GELUTanh, QuickGELU} {
			t.Run(fmt.Sprint(f), func(t *testing.T) {
				dx := make([]float32, len(xs))
				ActivateBackward(f, xs, dy, dx)
				ref := make([]float32, len(xs))
				ActivateBackwardRef(f, xs, dy, ref)
				bad := 0
				worst, worstX := 0.0, float32(0)
				for i, x := range xs {
					want := float64(dy[i]) * activationGrad64(f, float64(x))
					scale, u := actGradScale(f, float64(x))
					if math.IsNaN(scale) || math.IsInf(scale, 0) {
						scale = 1
					}
					if math.IsNaN(u) || math.IsInf(u, 0) {
						u = 0
					}
					tol := 1e-37 + (1.5e-6+1.2e-7*u)*math.Abs(float64(dy[i]))*scale
					g := float64(dx[i])
					// documented: 0 where u < -88 (mfSigmulGradf), |f'| < 6e-37*|x*kd| there
					cut := f != GELU && x < 0 && u > mfSigmulGradClamp*map[bool]float64{false: 1, true: 3}[f == GELUTanh] && g == 0
					ok := math.Abs(g-want) <= tol || cut
					if math.IsNaN(want) || math.IsNaN(g) {
						ok = math.IsNaN(want) && math.IsNaN(g)
					}
					if !ok {
						if bad++; bad <= 5 {
							t.Errorf("x=%g dy=%g: dx = %g, want %g (tol %.3g)", x, dy[i], g, want, tol)
						}
					} else if !math.IsNaN(want) && !cut {
						if r := math.Abs(g-want) / tol; r > worst {
							worst, worstX = r, x
						}
					}
					// the reference is the float32 rounding of want
					if r := float64(ref[i]); math.Abs(r-want) > 6e-8*math.Abs(want)+1e-45 && !(math.IsNaN(r) && math.IsNaN(want)) {
						t.Fatalf("ActivateBackwardRef(%g) = %g, want %g", x, r, want)
					}
				}
				if bad > 0 {
					t.Errorf("%d of %d out of tolerance", bad, len(xs))
				}
				t.Logf("worst err/tol %.3g at x = %g", worst, worstX)
				a := slices.Clone(xs)
				ActivateBackward(f, a, dy, a)
				nabSame(t, "dx aliasing x", a, dx)
				b := slices.Clone(dy)
				ActivateBackward(f, xs, b, b)
				nabSame(t, "dx aliasing dy", b, dx)
			})
		}
	})
	for _, c := range []struct {
		f    Activation
		x, g float32
	}{
		{SiLU, float32(math.Inf(1)), 1}, {SiLU, float32(math.Inf(-1)), 0}, {SiLU, -1e30, 0}, {SiLU, 1e30, 1},
		{GELU, float32(math.Inf(1)), 1}, {GELU, float32(math.Inf(-1)), 0}, {GELU, -1e30, 0}, {GELU, 1e30, 1},
		{GELUTanh, -1e30, 0}, {GELUTanh, 100, 1}, {QuickGELU, -100, 0}, {SiLU, 0, 0.5}, {GELU, 0, 0.5},
	} {
		dx := []float32{0}
		ActivateBackward(c.f, []float32{c.x}, []float32{1}, dx)
		if dx[0] != c.g {
			t.Errorf("%v'(%g) = %g, want %g", c.f, c.x, dx[0], c.g)
		}
	}
}

// TestGEGLUBackward checks GEGLUBackward against the float64 gradient (rows x d:
// 1x1, 3x17, 2x1023, 5x40, 2x8), on both paths, with values of a and the gate
// from N(0, 3) plus special gate values. Tolerances: da within (1.5e-6 +
// 1.2e-7*g*g/2)*|dy*gelu(g)| + 1e-37, dg within (1.5e-6 + 1.2e-7*g*g/2)*|dy*a|*
// (Phi(g) + |g|*phi(g)) + 1e-37; GEGLUBackwardRef within float32 rounding of
// the float64 values; dx aliasing x bitwise the same.
func TestGEGLUBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	special := []float32{0, 1e-30, -1e-30, 14.5, -14.5, 20, -20, 1e30, -1e30}
	actForEachPath(t, func(t *testing.T) {
		for _, s := range [][2]int{{1, 1}, {3, 17}, {2, 1023}, {5, 40}, {2, 8}} {
			rows, d := s[0], s[1]
			t.Run(fmt.Sprintf("%dx%d", rows, d), func(t *testing.T) {
				x, _ := nabRand(rng, rows*2*d, 3, 0)
				for i, v := range special {
					if j := (i*7)%d + d; j < 2*d {
						x[j] = v // a gate value of row 0
					}
				}
				dy, _ := nabRand(rng, rows*d, 1, 0)
				dx, ref := make([]float32, rows*2*d), make([]float32, rows*2*d)
				GEGLUBackward(x, dy, dx, rows, d)
				GEGLUBackwardRef(x, dy, ref, rows, d)
				for r := 0; r < rows; r++ {
					for j := 0; j < d; j++ {
						a, g, e := float64(x[r*2*d+j]), float64(x[r*2*d+d+j]), float64(dy[r*d+j])
						gelu := 0.5 * g * math.Erfc(-g/math.Sqrt2)
						wa, wg := e*gelu, e*a*activationGrad64(GELU, g)
						sc, u := actGradScale(GELU, g)
						rel := 1.5e-6 + 1.2e-7*min(u, 105)
						ia, ig := r*2*d+j, r*2*d+d+j
						if math.Abs(float64(dx[ia])-wa) > 1e-37+rel*math.Abs(wa) {
							t.Fatalf("da[%d,%d] (g=%g) = %g, want %g", r, j, g, dx[ia], wa)
						}
						if math.Abs(float64(dx[ig])-wg) > 1e-37+rel*math.Abs(e*a)*sc {
							t.Fatalf("dg[%d,%d] (a=%g, g=%g) = %g, want %g", r, j, a, g, dx[ig], wg)
						}
						if math.Abs(float64(ref[ia])-wa) > 6e-8*math.Abs(wa)+1e-45 || math.Abs(float64(ref[ig])-wg) > 6e-8*math.Abs(wg)+1e-45 {
							t.Fatalf("GEGLUBackwardRef[%d,%d] = %g, %g, want %g, %g", r, j, ref[ia], ref[ig], wa, wg)
						}
					}
				}
				in := slices.Clone(x)
				GEGLUBackward(in, dy, in, rows, d)
				nabSame(t, "dx aliasing x", in, dx)
			})
		}
	})
}

// TestActBackwardPanics checks the argument checks.
func TestActBackwardPanics(t *testing.T) {
	f := make([]float32, 16)
	for name, fn := range map[string]func(){
		"ActivateBackward dy":   func() { ActivateBackward(SiLU, f, f[:3], f) },
		"ActivateBackward dx":   func() { ActivateBackward(GELU, f, f, f[:3]) },
		"ActivateBackward kind": func() { ActivateBackward(Activation(99), f, f, f) },
		"GEGLUBackward dy":      func() { GEGLUBackward(f, f[:7], f, 2, 4) },
		"GEGLUBackward dx":      func() { GEGLUBackward(f, f, f[:15], 2, 4) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

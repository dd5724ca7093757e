package diffusion

import (
	"context"
	"math"
	"testing"

	"github.com/roentgo/roentgo/tensor"
)

// No golden case runs PNDM without skip_prk_steps (every diffusers config in
// ../shared/golden skips them), so these tests check the warm-up against
// the formulas: diffusers 0.16.1's PNDMScheduler.set_timesteps for the
// timestep list, and the pseudo Runge-Kutta and linear multistep methods of
// Liu et al. 2022 (PNDM, eq. 12-13 with the transfer phi of eq. 11),
// recomputed in float64, for the trajectory.

func prkConfig(t *testing.T) Config {
	cfg := mustConfig(t, sdConfig)
	cfg.SkipPRKSteps = false
	return cfg
}

// TestPNDMPRKTimesteps checks the timestep list against diffusers'
// set_timesteps worked by hand: for N = 10 (r = 100, h = 50, offset 1) the
// last four ascending timesteps 601..901 give prk_timesteps
// [901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601] and
// plms_timesteps = _timesteps[:-3] reversed = [601, 501, ..., 1].
func TestPNDMPRKTimesteps(t *testing.T) {
	cfg := prkConfig(t)
	for _, c := range []struct {
		n    int
		want []float64
	}{
		{10, []float64{901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1}},
		{4, []float64{751, 626, 626, 501, 501, 376, 376, 251, 251, 126, 126, 1, 1}},
		{5, []float64{801, 701, 701, 601, 601, 501, 501, 401, 401, 301, 301, 201, 201, 1}},
	} {
		s, err := New("pndm", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(c.n); err != nil {
			t.Fatal(err)
		}
		got := s.Timesteps()
		if len(got) != c.n+9 {
			t.Errorf("N=%d: %d timesteps, want N+9 = %d", c.n, len(got), c.n+9)
		}
		if len(got) != len(c.want) {
			t.Fatalf("N=%d: timesteps %v, want %v", c.n, got, c.want)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Fatalf("N=%d: timesteps %v, want %v", c.n, got, c.want)
			}
		}
	}
}

// refModel is a smooth stand-in for the U-Net: eps(x, t) = 0.3 x + 0.2
// sin(t/150 + i) elementwise (i the element's index).
func refModel(x []float64, t float64) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = 0.3*v + 0.2*math.Sin(t/150+float64(i))
	}
	return out
}

// TestPNDMPRKTrajectory runs the scheduler with the warm-up through Sample
// and compares every step with a float64 restatement of PNDM: three pseudo
// Runge-Kutta steps
//
//	e1 = eps(x, t)        x1 = phi(x, e1, t, t-h)
//	e2 = eps(x1, t-h)     x2 = phi(x, e2, t, t-h)
//	e3 = eps(x2, t-h)     x3 = phi(x, e3, t, t-r)
//	e4 = eps(x3, t-r)     x' = phi(x, (e1 + 2 e2 + 2 e3 + e4)/6, t, t-r)
//
// then linear multistep steps with e' = (55 e_0 - 59 e_1 + 37 e_2 -
// 9 e_3)/24 over the outputs at the start of the last four steps, with
// phi(x, e, t, s) = sqrt(a_s/a_t) x - (a_s - a_t) e / (a_t sqrt(1-a_s) +
// sqrt(a_t (1-a_t) a_s)) and a = alphas_cumprod (a_{-} = alphas_cumprod[0],
// set_alpha_to_one false).
func TestPNDMPRKTrajectory(t *testing.T) {
	for _, n := range []int{4, 10} {
		cfg := prkConfig(t)
		s, err := New("pndm", cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(n); err != nil {
			t.Fatal(err)
		}
		acp := s.Schedule().AlphasCumprod
		alpha := func(t int) float64 {
			if t < 0 {
				return float64(acp[0])
			}
			return float64(acp[t])
		}
		phi := func(x, e []float64, t, s int) []float64 {
			a, as := alpha(t), alpha(s)
			out := make([]float64, len(x))
			den := a*math.Sqrt(1-as) + math.Sqrt(a*(1-a)*as)
			for i := range x {
				out[i] = math.Sqrt(as/a)*x[i] - (as-a)*e[i]/den
			}
			return out
		}
		comb := func(w []float64, es ...[]float64) []float64 {
			out := make([]float64, len(es[0]))
			for k, e := range es {
				for i := range out {
					out[i] += w[k] * e[i]
				}
			}
			return out
		}
		x0 := []float64{0.5, -1, 2, 0.25, -0.75, 1.5, -2, 1}
		r, h := 1000/n, 1000/n/2
		// The reference: the sample after every model call (the PRK calls
		// move from the group's start; the group's last call gives x').
		var want [][]float64
		var hist [][]float64 // e at the start of each step, newest last
		x := x0
		start := 1 + (n-1)*r // the largest timestep (leading spacing, offset 1)
		tt := start
		for k := 0; k < 3; k++ {
			e1 := refModel(x, float64(tt))
			x1 := phi(x, e1, tt, tt-h)
			e2 := refModel(x1, float64(tt-h))
			x2 := phi(x, e2, tt, tt-h)
			e3 := refModel(x2, float64(tt-h))
			x3 := phi(x, e3, tt, tt-r)
			e4 := refModel(x3, float64(tt-r))
			next := phi(x, comb([]float64{1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 6}, e1, e2, e3, e4), tt, tt-r)
			want = append(want, x1, x2, x3, next)
			hist = append(hist, e1)
			x, tt = next, tt-r
		}
		for ; tt >= 0; tt -= r {
			e := refModel(x, float64(tt))
			hist = append(hist, e)
			l := len(hist)
			x = phi(x, comb([]float64{55.0 / 24, -59.0 / 24, 37.0 / 24, -9.0 / 24}, hist[l-1], hist[l-2], hist[l-3], hist[l-4]), tt, tt-r)
			want = append(want, x)
		}
		if len(want) != len(s.Timesteps()) {
			t.Fatalf("N=%d: reference has %d calls, scheduler %d timesteps", n, len(want), len(s.Timesteps()))
		}

		f32 := make([]float32, len(x0))
		for i, v := range x0 {
			f32[i] = float32(v)
		}
		xt := tensor.FromFloat32(f32, 1, 2, 2, 2)
		model := func(_ context.Context, in *tensor.Tensor, t float64) (*tensor.Tensor, error) {
			v := in.Float32s()
			x := make([]float64, len(v))
			for i := range v {
				x[i] = float64(v[i])
			}
			e := refModel(x, t)
			o := make([]float32, len(e))
			for i := range e {
				o[i] = float32(e[i])
			}
			return tensor.FromFloat32(o, in.Shape()...), nil
		}
		step := 0
		out, err := Sample(context.Background(), s, model, xt, SampleOptions{Callback: func(i, total int, ts float64, lat *tensor.Tensor) bool {
			got := lat.Float32s()
			for j, w := range want[i] {
				if d := math.Abs(float64(got[j]) - w); d > 1e-5*(1+math.Abs(w)) {
					t.Errorf("N=%d call %d (t=%v): element %d = %v, want %v (diff %.3g)", n, i, ts, j, got[j], w, d)
					return false
				}
			}
			step++
			return true
		}})
		if err != nil {
			t.Fatal(err)
		}
		out.Release()
		if step != len(want) {
			t.Errorf("N=%d: %d steps checked of %d", n, step, len(want))
		}
		// A second run after SetTimesteps gives the same result (state reset).
		if err := s.SetTimesteps(n); err != nil {
			t.Fatal(err)
		}
		out2, err := Sample(context.Background(), s, model, xt, SampleOptions{})
		if err != nil {
			t.Fatal(err)
		}
		last := want[len(want)-1]
		for j, v := range out2.Float32s() {
			if math.Abs(float64(v)-last[j]) > 1e-5*(1+math.Abs(last[j])) {
				t.Fatalf("N=%d: rerun element %d = %v, want %v", n, j, v, last[j])
			}
		}
		out2.Release()
	}
}

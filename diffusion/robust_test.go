package diffusion

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// runGuarded builds the scheduler name from cfg, sets n steps and samples a
// tiny latent with a trivial denoiser (output = x/2). It returns the error of
// New or SetTimesteps, if any; a panic anywhere, a denoiser call at a
// timestep outside Timesteps(), or a non-finite latent is reported through
// t.Errorf.
func runGuarded(t *testing.T, name string, cfg Config, n int) (err error) {
	t.Helper()
	what := fmt.Sprintf("%s spacing=%q steps_offset=%d skip_prk_steps=%v set_alpha_to_one=%v use_karras_sigmas=%v steps=%d",
		name, cfg.TimestepSpacing, cfg.StepsOffset, cfg.SkipPRKSteps, cfg.SetAlphaToOne, cfg.UseKarrasSigmas, n)
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: panic: %v", what, r)
			err = nil
		}
	}()
	s, err := New(name, cfg)
	if err != nil {
		return err
	}
	if err := s.SetTimesteps(n); err != nil {
		return err
	}
	ts := s.Timesteps()
	if len(ts) == 0 {
		t.Errorf("%s: no timesteps", what)
		return nil
	}
	for _, v := range ts {
		// The sigma schedulers may hand the model timesteps past the end of
		// the training schedule (leading spacing with a steps_offset, as
		// diffusers does); the others would panic in Step.
		if !(v >= 0) || math.IsInf(v, 0) {
			t.Errorf("%s: timestep %v in %v", what, v, ts[:min(len(ts), 8)])
			return nil
		}
	}
	x := tensor.FromFloat32([]float32{0.5, -1, 2, 0.25, -0.75, 1.5, -2, 1}, 1, 2, 2, 2)
	x.MulScalarInPlace(float32(s.InitNoiseSigma()))
	calls := 0
	model := func(_ context.Context, in *tensor.Tensor, _ float64) (*tensor.Tensor, error) {
		calls++
		return in.MulScalar(0.5), nil
	}
	bad := false
	out, err := Sample(context.Background(), s, model, x, SampleOptions{Noise: rng.New(7),
		Callback: func(step, total int, tt float64, lat *tensor.Tensor) bool {
			for _, v := range lat.Float32s() {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Errorf("%s: step %d of %d (t=%v): non-finite latent %v", what, step+1, total, tt, lat.Float32s())
					bad = true
					return false
				}
			}
			return true
		}})
	if err != nil {
		t.Errorf("%s: Sample: %v", what, err)
		return nil
	}
	out.Release()
	if !bad && calls != len(ts) {
		t.Errorf("%s: %d model calls for %d timesteps", what, calls, len(ts))
	}
	return nil
}

// TestSchedulersNeverPanic runs every scheduler over step counts at both
// ends of [1, num_train_timesteps] (and 61, where numpy's arange gives
// trailing spacing an extra timestep), each spacing and steps_offset 0 and 1
// (Stable Diffusion's): SetTimesteps either fails with an error that says
// why, or the whole sampling loop runs with finite latents. No panic.
func TestSchedulersNeverPanic(t *testing.T) {
	base := mustConfig(t, sdConfig)
	for _, name := range SchedulerNames {
		for _, spacing := range []string{"", SpacingLeading, SpacingTrailing, SpacingLinspace} {
			for _, offset := range []int{0, 1} {
				for _, skipPRK := range []bool{true, false} {
					for _, one := range []bool{false, true} {
						if (name != "pndm" && !skipPRK) || (name != "pndm" && name != "ddim" && one) {
							continue // settings these schedulers ignore
						}
						for _, n := range []int{1, 2, 3, 61, 999, 1000} {
							cfg := base
							cfg.TimestepSpacing = spacing
							cfg.StepsOffset = offset
							cfg.SkipPRKSteps = skipPRK
							cfg.SetAlphaToOne = one
							err := runGuarded(t, name, cfg, n)
							if err == nil {
								continue
							}
							msg := err.Error()
							switch {
							case name == "pndm" && !skipPRK && n < 4:
								// The Runge-Kutta warm-up needs 4 timesteps.
								if !strings.Contains(msg, "skip_prk_steps") {
									t.Errorf("pndm without skip_prk_steps: %v", err)
								}
							case offset > 0 && leadingFor(name, spacing):
								// The largest leading timestep reaches T (LMS: two
								// reach T-1 and share a noise level); diffusers
								// fails there too.
								t.Logf("%s %q steps_offset %d, %d steps: %v", name, spacing, offset, n, err)
								for _, w := range []string{name + ":", fmt.Sprintf("%d inference steps with steps_offset %d", n, offset),
									"training schedule [0, 1000)", "steps would"} {
									if !strings.Contains(msg, w) {
										t.Errorf("%s %q steps_offset %d, %d steps: error %q does not contain %q", name, spacing, offset, n, msg, w)
									}
								}
							default:
								t.Errorf("%s spacing=%q steps_offset=%d steps=%d: unexpected error %v", name, spacing, offset, n, err)
							}
						}
					}
				}
			}
		}
	}
}

// leadingFor says whether scheduler name uses leading spacing (with
// steps_offset) for the spacing setting, and either indexes the training
// schedule with its timesteps or (LMS) needs distinct noise levels.
func leadingFor(name, spacing string) bool {
	switch name {
	case "ddim", "pndm":
		return spacing == "" || spacing == SpacingLeading
	case "ddpm", "dpmpp_2m", "dpmpp_2m_karras", "lms":
		return spacing == SpacingLeading
	}
	return false
}

// TestLargeStepsOffset: any steps_offset Validate accepts, with any step
// count and with or without Karras sigmas, gives an error that names
// steps_offset or a finite run, never a panic.
func TestLargeStepsOffset(t *testing.T) {
	base := mustConfig(t, sdConfig)
	for _, name := range SchedulerNames {
		for _, karras := range []bool{false, true} {
			if karras && name == "euler_a" {
				continue // rejected by New
			}
			for _, spacing := range []string{"", SpacingLeading} {
				for _, offset := range []int{2, 500, 999} {
					for _, n := range []int{1, 2, 3, 500, 999, 1000} {
						cfg := base
						cfg.TimestepSpacing = spacing
						cfg.StepsOffset = offset
						cfg.UseKarrasSigmas = karras
						if err := runGuarded(t, name, cfg, n); err != nil && !strings.Contains(err.Error(), "steps_offset") {
							t.Errorf("%s %q karras=%v steps_offset %d, %d steps: error %q does not name steps_offset", name, spacing, karras, offset, n, err)
						}
					}
				}
			}
		}
	}
}

// The Stable Diffusion config (steps_offset 1) at 1000 steps: PNDM and DDIM
// would start at timestep 1000, which diffusers 0.16.1 also cannot step
// (alphas_cumprod[1000] is out of range), so SetTimesteps refuses before any
// model evaluation and leaves the scheduler as it was; 999 steps and
// steps_offset 0 work and follow diffusers.
func TestThousandSteps(t *testing.T) {
	cfg := mustConfig(t, sdConfig)
	for _, name := range []string{"pndm", "ddim"} {
		s, err := New(name, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(10); err != nil {
			t.Fatal(err)
		}
		before := append([]float64(nil), s.Timesteps()...)
		err = s.SetTimesteps(1000)
		if err == nil {
			t.Fatalf("%s: 1000 steps with steps_offset 1 accepted: timesteps start %v", name, s.Timesteps()[:3])
		}
		want := fmt.Sprintf("diffusion: %s: 1000 inference steps with steps_offset 1 would start at timestep 1000", name)
		if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "999 steps") {
			t.Errorf("%s: error %q, want it to start %q and suggest 999 steps", name, err, want)
		}
		if s.NumInferenceSteps() != 10 || len(s.Timesteps()) != len(before) || s.Timesteps()[0] != before[0] {
			t.Errorf("%s: failed SetTimesteps changed the scheduler: n = %d, timesteps %v", name, s.NumInferenceSteps(), s.Timesteps()[:3])
		}

		// 999 steps: step ratio 1, timesteps 999 ... 1 (PNDM repeats 998).
		if err := s.SetTimesteps(999); err != nil {
			t.Fatalf("%s: 999 steps: %v", name, err)
		}
		ts := s.Timesteps()
		wantLen := 999
		if name == "pndm" {
			wantLen = 1000
		}
		if len(ts) != wantLen || ts[0] != 999 || ts[1] != 998 || ts[len(ts)-1] != 1 {
			t.Errorf("%s: 999 steps: %d timesteps %v ... %v", name, len(ts), ts[:3], ts[len(ts)-1])
		}

		// steps_offset 0: 1000 steps are 999 ... 0, the last one stepping to
		// the final alpha.
		c0 := cfg
		c0.StepsOffset = 0
		s0, _ := New(name, c0)
		if err := s0.SetTimesteps(1000); err != nil {
			t.Fatalf("%s: 1000 steps, steps_offset 0: %v", name, err)
		}
		ts = s0.Timesteps()
		if ts[0] != 999 || ts[len(ts)-1] != 0 {
			t.Errorf("%s: 1000 steps, steps_offset 0: %v ... %v", name, ts[:3], ts[len(ts)-1])
		}
	}
	// DDIM's last step at steps_offset 0 goes from t = 0 to the final alpha:
	// with set_alpha_to_one and a zero noise prediction the sample becomes
	// x / sqrt(acp[0]).
	c := cfg
	c.StepsOffset = 0
	c.SetAlphaToOne = true
	s, _ := New("ddim", c)
	_ = s.SetTimesteps(1000)
	x := tensor.FromFloat32([]float32{1, -2}, 1, 2)
	zero := tensor.FromFloat32([]float32{0, 0}, 1, 2)
	got := s.Step(zero, 0, x, nil).PrevSample.Float32s()
	a := s.Schedule().AlphasCumprod[0]
	for i, v := range []float32{1, -2} {
		if want := v / sqrt32(a); math.Abs(float64(got[i]-want)) > 1e-6*math.Abs(float64(want)) {
			t.Errorf("ddim final step: %v, want %v", got, want)
		}
	}
}

// Trailing spacing: numpy.arange(T, 0, -T/n) has n+1 values for some n in
// floating point (61, 103, 121, ... for T = 1000); the last would be the
// timestep -1. The schedulers take exactly n.
func TestTrailingSpacingCount(t *testing.T) {
	for _, T := range []int{1000, 10, 999} {
		for n := 1; n <= T; n++ {
			ts := spacedTimesteps(SpacingTrailing, T, n, 0, true)
			if len(ts) != n {
				t.Fatalf("T=%d n=%d: %d trailing timesteps", T, n, len(ts))
			}
			if ts[0] != float64(T-1) || ts[n-1] < 0 {
				t.Fatalf("T=%d n=%d: trailing timesteps %v ... %v", T, n, ts[0], ts[n-1])
			}
			for i := 1; i < n; i++ {
				if ts[i] >= ts[i-1] {
					t.Fatalf("T=%d n=%d: not descending at %d: %v, %v", T, n, i, ts[i-1], ts[i])
				}
			}
		}
	}
}

package diffusion

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// sdConfig is Stable Diffusion 1.x's scheduler_config.json.
const sdConfig = `{
  "_class_name": "PNDMScheduler",
  "_diffusers_version": "0.16.1",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "clip_sample": false,
  "num_train_timesteps": 1000,
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null
}`

func mustConfig(t *testing.T, js string) Config {
	t.Helper()
	c, err := ParseSchedulerConfig([]byte(js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSchedulesAgainstTorch(t *testing.T) {
	data, err := os.ReadFile("testdata/schedules.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref map[string]json.RawMessage
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for key, raw := range ref {
		if key == "randint" {
			continue
		}
		var c struct {
			Schedule      string    `json:"schedule"`
			N             int       `json:"n"`
			BetaStart     float64   `json:"beta_start"`
			BetaEnd       float64   `json:"beta_end"`
			Betas         []float32 `json:"betas"`
			AlphasCumprod []float32 `json:"alphas_cumprod"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		cfg.BetaSchedule, cfg.NumTrainTimesteps, cfg.BetaStart, cfg.BetaEnd = c.Schedule, c.N, c.BetaStart, c.BetaEnd
		s, err := NewSchedule(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// torch's own float32 values: betas to 1 ulp-ish (2e-7; our float64
		// FMA emulation can double-round), the cumulative product to 1e-6.
		checkClose(t, key+" betas", s.Betas, c.Betas, 2e-7, 0)
		checkClose(t, key+" alphas_cumprod", s.AlphasCumprod, c.AlphasCumprod, 1e-6, 0)
	}
}

func TestSampleTimestepsMatchesTorchRandint(t *testing.T) {
	data, err := os.ReadFile("testdata/schedules.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Randint []struct {
			Seed   uint64 `json:"seed"`
			High   int    `json:"high"`
			Values []int  `json:"values"`
		} `json:"randint"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for _, r := range ref.Randint {
		cfg := DefaultConfig()
		cfg.NumTrainTimesteps = r.High
		s, err := NewSchedule(cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := s.SampleTimesteps(rng.New(r.Seed), len(r.Values))
		for i := range got {
			if got[i] != r.Values[i] {
				t.Fatalf("seed %d: %v, want %v", r.Seed, got, r.Values)
			}
		}
	}
}

func TestLoadSchedulerConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "scheduler_config.json")
	if err := os.WriteFile(p, []byte(sdConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadSchedulerConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.ClassName != "PNDMScheduler" || c.BetaSchedule != BetaScaledLinear || c.BetaStart != 0.00085 ||
		c.BetaEnd != 0.012 || c.StepsOffset != 1 || !c.SkipPRKSteps || c.SetAlphaToOne || c.ClipSample ||
		c.PredictionType != Epsilon || c.TrainedBetas != nil || c.NumTrainTimesteps != 1000 {
		t.Fatalf("parsed %+v", c)
	}
	// Class defaults: PNDM's set_alpha_to_one is false, DDIM's true.
	if c := mustConfig(t, `{"_class_name": "PNDMScheduler"}`); c.SetAlphaToOne {
		t.Error("PNDM default set_alpha_to_one should be false")
	}
	if c := mustConfig(t, `{"_class_name": "DDIMScheduler"}`); !c.SetAlphaToOne || !c.ClipSample || c.BetaSchedule != BetaLinear {
		t.Errorf("DDIM defaults: %+v", c)
	}
	if _, err := LoadSchedulerConfig(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(p, []byte(`{"beta_schedule": "cosine"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSchedulerConfig(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `"cosine"`) {
		t.Errorf("bad file: %v", err)
	}
	t.Run("golden", func(t *testing.T) {
		needGolden(t)
		c, err := LoadSchedulerConfig(filepath.Join(golden, "model/diffusers/scheduler/scheduler_config.json"))
		if err != nil || !c.SkipPRKSteps || c.StepsOffset != 1 {
			t.Errorf("golden scheduler config: %+v %v", c, err)
		}
	})
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		js   string
		want []string
	}{
		{`{"beta_schedule": "cosine"}`, []string{"beta_schedule", `"cosine"`, "linear", "scaled_linear", "squaredcos_cap_v2"}},
		{`{"prediction_type": "eps"}`, []string{"prediction_type", `"eps"`, "epsilon", "v_prediction", "sample"}},
		{`{"timestep_spacing": "even"}`, []string{"timestep_spacing", `"even"`, "leading", "trailing", "linspace"}},
		{`{"thresholding": true}`, []string{"thresholding"}},
		{`{"num_train_timesteps": 0}`, []string{"num_train_timesteps"}},
		{`{"num_train_timesteps": 3, "trained_betas": [0.1, 0.2]}`, []string{"trained_betas", "2 values", "3"}},
		{`{"beta_start": -1}`, []string{"beta_start"}},
		{`{"steps_offset": -1}`, []string{"steps_offset"}},
		{`{"beta_start": "x"}`, []string{"beta_start"}},
		{`[1, 2]`, []string{"JSON object"}},
		{`{`, []string{"JSON"}},
	} {
		_, err := ParseSchedulerConfig([]byte(tc.js))
		if err == nil {
			t.Errorf("%s: no error", tc.js)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.js, err, w)
			}
		}
	}
}

func TestNewNames(t *testing.T) {
	cfg := mustConfig(t, sdConfig)
	for _, name := range append(SchedulerNames, "euler_ancestral") {
		s, err := New(name, cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := s.SetTimesteps(20); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(s.Timesteps()) < 20 {
			t.Errorf("%s: %d timesteps", name, len(s.Timesteps()))
		}
	}
	_, err := New("eulerx", cfg)
	if err == nil {
		t.Fatal("unknown scheduler accepted")
	}
	for _, w := range append([]string{`"eulerx"`, "accepted too"}, SchedulerNames...) {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not list %s", err, w)
		}
	}
	s, _ := New("ddim", cfg)
	for _, n := range []int{0, -3, 1001} {
		if err := s.SetTimesteps(n); err == nil || !strings.Contains(err.Error(), "inference steps") {
			t.Errorf("SetTimesteps(%d): %v", n, err)
		}
	}
	bad := cfg
	bad.SkipPRKSteps = false
	if s, err := New("pndm", bad); err != nil {
		t.Errorf("pndm without skip_prk_steps: %v", err)
	} else if err := s.SetTimesteps(3); err == nil || !strings.Contains(err.Error(), "skip_prk_steps") {
		t.Errorf("pndm without skip_prk_steps, 3 steps: %v", err)
	}
	bad = cfg
	bad.VarianceType = "learned"
	if _, err := New("ddpm", bad); err == nil || !strings.Contains(err.Error(), "fixed_small") {
		t.Errorf("ddpm learned variance: %v", err)
	}
	bad = cfg
	bad.AlgorithmType = "dpmsolver"
	if _, err := New("dpmpp_2m", bad); err == nil || !strings.Contains(err.Error(), "dpmsolver++") {
		t.Errorf("dpm algorithm: %v", err)
	}
	if _, err := NewWithOptions("ddim", cfg, Options{Eta: -1}); err == nil {
		t.Error("negative eta accepted")
	}
}

// Timestep spacings, hand-derived from the formulas for T = 1000, n = 10.
func TestTimestepSpacings(t *testing.T) {
	cfg := mustConfig(t, sdConfig)
	seq := func(start, step float64) []float64 {
		out := make([]float64, 10)
		for i := range out {
			out[i] = start + step*float64(i)
		}
		return out
	}
	for _, tc := range []struct {
		name, spacing string
		want          []float64
	}{
		{"ddim", "", seq(901, -100)},
		{"ddim", SpacingLeading, seq(901, -100)},
		{"ddim", SpacingTrailing, seq(999, -100)},
		{"ddim", SpacingLinspace, seq(999, -111)},
		{"ddpm", "", seq(900, -100)},
		{"ddpm", SpacingTrailing, seq(999, -100)},
		{"euler", "", seq(999, -111)},
		{"euler", SpacingLeading, seq(901, -100)},
		{"euler", SpacingTrailing, seq(999, -100)},
		{"dpmpp_2m", SpacingTrailing, seq(999, -100)},
		// linspace(0, 999, 11) = 0, 99.9, ..., rounded: 999, 899, 799, 699, 599, 500 (499.5 to even), 400, ...
		{"dpmpp_2m", "", []float64{999, 899, 799, 699, 599, 500, 400, 300, 200, 100}},
		{"dpmpp_2m", SpacingLeading, seq(1000/11*10+1, -1000/11)},
	} {
		c := cfg
		c.TimestepSpacing = tc.spacing
		s, err := New(tc.name, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetTimesteps(10); err != nil {
			t.Fatal(err)
		}
		got := s.Timesteps()
		if len(got) != len(tc.want) {
			t.Fatalf("%s %q: %v, want %v", tc.name, tc.spacing, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("%s %q: %v, want %v", tc.name, tc.spacing, got, tc.want)
			}
		}
	}
	// PNDM: N+1 timesteps with the second repeated; one step has one timestep.
	s, _ := New("pndm", cfg)
	_ = s.SetTimesteps(5)
	if got := s.Timesteps(); len(got) != 6 || got[0] != 801 || got[1] != 601 || got[2] != 601 || got[5] != 1 {
		t.Errorf("pndm 5 steps: %v", got)
	}
	_ = s.SetTimesteps(1)
	if got := s.Timesteps(); len(got) != 1 || got[0] != 1 {
		t.Errorf("pndm 1 step: %v", got)
	}
	// Heun: 2n-1 timesteps.
	h, _ := New("heun", cfg)
	_ = h.SetTimesteps(3)
	if got := h.Timesteps(); len(got) != 5 || got[0] != 999 || got[1] != 499.5 || got[2] != 499.5 || got[3] != 0 || got[4] != 0 {
		t.Errorf("heun 3 steps: %v", got)
	}
}

func TestLMSCoefficients(t *testing.T) {
	sig := []float32{3, 2, 1.5, 1, 0}
	// Order 2 at i = 1: the Lagrange basis over the nodes 2 (cur 0) and 3
	// (cur 1), integrated from 2 to 1.5: -0.625 and 0.125 by hand.
	if c := lmsCoefficient(sig, 2, 1, 0); math.Abs(c+0.625) > 1e-14 {
		t.Errorf("c0 = %v, want -0.625", c)
	}
	if c := lmsCoefficient(sig, 2, 1, 1); math.Abs(c-0.125) > 1e-14 {
		t.Errorf("c1 = %v, want 0.125", c)
	}
	// Order 4 at i = 3 (nodes 1, 1.5, 2, 3, interval [1, 0]): the rule
	// integrates cubics exactly: sum_j c_j f(node_j) = integral of f.
	nodes := []float64{1, 1.5, 2, 3}
	for _, f := range []struct {
		f     func(float64) float64
		exact float64
	}{
		{func(x float64) float64 { return 1 }, -1},
		{func(x float64) float64 { return x * x }, -1.0 / 3},
		{func(x float64) float64 { return x*x*x - 2*x }, -0.25 + 1},
	} {
		var sum float64
		for j := 0; j < 4; j++ {
			sum += lmsCoefficient(sig, 4, 3, j) * f.f(nodes[j])
		}
		if math.Abs(sum-f.exact) > 1e-13 {
			t.Errorf("quadrature %v, want %v", sum, f.exact)
		}
	}
}

func TestImageToImageStart(t *testing.T) {
	for _, tc := range []struct {
		n        int
		strength float64
		order    int
		want     int
	}{
		{50, 0.75, 1, 13}, // int(37.5) = 37 noised steps, start at 50-37
		{50, 1, 1, 0},
		{50, 0, 1, 50},
		{10, 0.5, 2, 10}, // Heun: 5 steps skipped, two timesteps each
		{10, 0.33, 1, 7}, // int(3.3) = 3
		{75, 0.8, 1, 15}, // int(60.000000000000004) = 60
		{3, 0.999, 1, 1}, // int(2.997) = 2
	} {
		got, err := ImageToImageStart(tc.n, tc.strength, tc.order)
		if err != nil || got != tc.want {
			t.Errorf("ImageToImageStart(%d, %v, %d) = %d, %v; want %d", tc.n, tc.strength, tc.order, got, err, tc.want)
		}
	}
	for _, s := range []float64{-0.1, 1.5, math.NaN()} {
		if _, err := ImageToImageStart(10, s, 1); err == nil || !strings.Contains(err.Error(), "strength") {
			t.Errorf("strength %v: %v", s, err)
		}
	}
	if _, err := ImageToImageStart(0, 0.5, 1); err == nil {
		t.Error("0 steps accepted")
	}
}

func TestGuide(t *testing.T) {
	// [uncond; cond] for a batch of 2 rows of 2 values.
	out := tensor.FromFloat32([]float32{1, 2, -1, 0, 3, 6, 1, 4}, 4, 2)
	got := Guide(out, 7.5).Float32s()
	// 1 + 7.5 (3-1), 2 + 7.5 (6-2), -1 + 7.5 (1+1), 0 + 7.5 (4-0)
	want := []float32{16, 32, 14, 30}
	checkClose(t, "guided", got, want, 0, 0)
	if got := Guide(out, 1).Float32s(); got[0] != 3 || got[3] != 4 {
		t.Errorf("scale 1: %v", got)
	}

	// Rescale: guided row [1, 3] has unbiased std sqrt(2), cond row [0, 4]
	// std sqrt(8): ratio 2; phi 0.7 gives factor 0.7*2 + 0.3 = 1.7.
	guided := tensor.FromFloat32([]float32{1, 3, 2, 2.5}, 2, 1, 2)
	cond := tensor.FromFloat32([]float32{0, 4, 1, 2}, 2, 1, 2)
	// Row 2: std(guided) = 0.5/sqrt2, std(cond) = 1/sqrt2: ratio 2 as well.
	r := RescaleGuidance(guided, cond, 0.7).Float32s()
	checkClose(t, "rescaled", r, []float32{1.7, 5.1, 3.4, 4.25}, 1e-6, 0)
	r = RescaleGuidance(guided, cond, 0).Float32s()
	checkClose(t, "phi 0", r, []float32{1, 3, 2, 2.5}, 1e-7, 0)
}

func TestTrainingTargets(t *testing.T) {
	cfg := mustConfig(t, sdConfig)
	s, err := NewSchedule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	x0 := tensor.FromFloat32([]float32{1, -2, 0.5, 3}, 2, 2)
	eps := tensor.FromFloat32([]float32{0.3, 0.1, -1, 2}, 2, 2)
	ts := []int{10, 900}
	noisy := s.AddNoise(x0, eps, ts).Float32s()
	v := s.Velocity(x0, eps, ts).Float32s()
	x, e := x0.Float32s(), eps.Float32s()
	for i := range x {
		a := float64(s.AlphasCumprod[ts[i/2]])
		wantN := math.Sqrt(a)*float64(x[i]) + math.Sqrt(1-a)*float64(e[i])
		wantV := math.Sqrt(a)*float64(e[i]) - math.Sqrt(1-a)*float64(x[i])
		if math.Abs(float64(noisy[i])-wantN) > 1e-6 || math.Abs(float64(v[i])-wantV) > 1e-6 {
			t.Errorf("[%d]: noisy %v want %v, v %v want %v", i, noisy[i], wantN, v[i], wantV)
		}
	}
	checkClose(t, "eps target", s.Target(Epsilon, x0, eps, ts).Float32s(), e, 0, 0)
	checkClose(t, "x0 target", s.Target(SamplePrediction, x0, eps, ts).Float32s(), x, 0, 0)
	checkClose(t, "v target", s.Target(VPrediction, x0, eps, ts).Float32s(), v, 0, 0)
	// The v target and the noisy sample give back x0 = sqrt(a) x_t - sqrt(1-a) v.
	for i := range x {
		a := float64(s.AlphasCumprod[ts[i/2]])
		if d := math.Sqrt(a)*float64(noisy[i]) - math.Sqrt(1-a)*float64(v[i]) - float64(x[i]); math.Abs(d) > 1e-5 {
			t.Errorf("x0 from v at %d off by %v", i, d)
		}
	}
}

// fakeModel is the golden scheduler tests' model.
func fakeModel(calls *int) Denoiser {
	return func(ctx context.Context, x *tensor.Tensor, t float64) (*tensor.Tensor, error) {
		*calls++
		return x.MulScalar(0.1).AddScalarInPlace(float32(math.Cos(t / 100))), nil
	}
}

// seqReplay hands out saved noise tensors in order.
type seqReplay struct {
	noise []float32
	size  int
	k     int
}

func (r *seqReplay) Normal(dst []float32, mean, std float32) {
	copy(dst, r.noise[r.k*r.size:(r.k+1)*r.size])
	r.k++
}
func (r *seqReplay) Uniform(dst []float32, from, to float32) { panic("uniform") }

func TestSampleGolden(t *testing.T) {
	idx := readIndex(t)
	x0, shape := readNpy(t, "schedulers/x_T.npy")
	for _, name := range []string{"ddim_eta0.5", "pndm_plms", "heun", "euler_ancestral", "dpmpp_2m"} {
		c := idx.Schedulers.Cases[name]
		s := schedulerFor(t, c.Class, c.Config, c.StepKwargs)
		if err := s.SetTimesteps(c.StepsRequested); err != nil {
			t.Fatal(err)
		}
		var src tensor.RandSource
		if exists("schedulers/" + name + "/noise.npy") {
			nz, _ := readNpy(t, "schedulers/"+name+"/noise.npy")
			src = &seqReplay{noise: nz, size: len(x0)}
		}
		x := tensor.FromFloat32(x0, shape...).MulScalar(float32(s.InitNoiseSigma()))
		calls, steps := 0, 0
		got, err := Sample(context.Background(), s, fakeModel(&calls), x, SampleOptions{Noise: src,
			Callback: func(step, total int, ts float64, lat *tensor.Tensor) bool {
				if step != steps || total != len(c.Timesteps) || ts != s.Timesteps()[step] {
					t.Errorf("%s: callback (%d, %d, %v)", name, step, total, ts)
				}
				steps++
				return true
			}})
		if err != nil {
			t.Fatal(err)
		}
		if calls != len(c.Timesteps) || steps != calls {
			t.Errorf("%s: %d model calls, %d callbacks, want %d", name, calls, steps, len(c.Timesteps))
		}
		tr, _ := readNpy(t, "schedulers/"+name+"/trajectory.npy")
		checkClose(t, name+" final", got.Float32s(), tr[len(tr)-len(x0):], rolloutRtol, rolloutAtol)
		// The input is neither modified nor released.
		checkClose(t, name+" input", x.Float32s(), tr[:len(x0)], 0, 0)
	}
}

func TestSampleStopsAndCancels(t *testing.T) {
	cfg := mustConfig(t, sdConfig)
	s, _ := New("ddim", cfg)
	_ = s.SetTimesteps(10)
	x := tensor.Randn(rng.New(1), 1, 4, 4, 4)

	// Stopping in the callback after 3 steps equals three manual steps.
	calls := 0
	got, err := Sample(context.Background(), s, fakeModel(&calls), x, SampleOptions{
		Callback: func(step, total int, _ float64, _ *tensor.Tensor) bool { return step < 2 }})
	if err != nil || calls != 3 {
		t.Fatalf("early stop: %d calls, %v", calls, err)
	}
	ref := x
	for _, ts := range s.Timesteps()[:3] {
		out := ref.MulScalar(0.1).AddScalar(float32(math.Cos(ts / 100)))
		ref = s.Step(out, ts, ref, nil).PrevSample
	}
	checkClose(t, "early stop", got.Float32s(), ref.Float32s(), 0, 0)

	// Cancelling during step 2 stops before step 3 with ctx.Err().
	ctx, cancel := context.WithCancel(context.Background())
	calls = 0
	got, err = Sample(ctx, s, fakeModel(&calls), x, SampleOptions{
		Callback: func(step, total int, _ float64, _ *tensor.Tensor) bool {
			if step == 1 {
				cancel()
			}
			return true
		}})
	if !errors.Is(err, context.Canceled) || got != nil || calls != 2 {
		t.Fatalf("cancel: %v, %v, %d calls", got, err, calls)
	}
	// An already cancelled context runs nothing.
	calls = 0
	if _, err := Sample(ctx, s, fakeModel(&calls), x, SampleOptions{}); !errors.Is(err, context.Canceled) || calls != 0 {
		t.Fatalf("cancelled: %v, %d calls", err, calls)
	}
	// Denoiser errors are returned, wrapped.
	boom := errors.New("boom")
	_, err = Sample(context.Background(), s, func(context.Context, *tensor.Tensor, float64) (*tensor.Tensor, error) {
		return nil, boom
	}, x, SampleOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("denoiser error: %v", err)
	}
	// Start skips steps (img2img).
	calls = 0
	start, _ := ImageToImageStart(10, 0.3, s.Order())
	if _, err := Sample(context.Background(), s, fakeModel(&calls), x, SampleOptions{Start: start}); err != nil || calls != 3 {
		t.Fatalf("start %d: %d calls, %v", start, calls, err)
	}
}

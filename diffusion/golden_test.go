package diffusion

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/internal/testutil/refdata"
	"github.com/roentgo/roentgo/tensor"
)

// golden is the tiny-sd1 golden folder (../shared/golden/tiny-sd1 or
// $ROENTGO_GOLDEN_DIR); tests call needGolden before reading it.
var golden = refdata.GoldenRoot()

// goldenIndex is the part of index.json the scheduler tests read.
type goldenIndex struct {
	Schedulers struct {
		Cases map[string]struct {
			Class             string          `json:"class"`
			Config            json.RawMessage `json:"config"`
			StepsRequested    int             `json:"steps_requested"`
			Timesteps         []float64       `json:"timesteps"`
			InitNoiseSigma    float64         `json:"init_noise_sigma"`
			Order             int             `json:"order"`
			StepKwargs        map[string]any  `json:"step_kwargs"`
			NoiseDrawsPerStep []int           `json:"noise_draws_per_step"`
		} `json:"cases"`
	} `json:"schedulers"`
	AddNoise map[string]struct {
		Class        string          `json:"class"`
		Config       json.RawMessage `json:"config"`
		Timesteps    []float64       `json:"timesteps"`
		SetTimesteps *int            `json:"set_timesteps"`
	} `json:"add_noise"`
}

func needGolden(t testing.TB) {
	t.Helper()
	refdata.GoldenDir(t) // skips, or fails under ROENTGO_REQUIRE_GOLDEN=1
}

func readIndex(t testing.TB) *goldenIndex {
	t.Helper()
	needGolden(t)
	data, err := os.ReadFile(filepath.Join(golden, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx goldenIndex
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	return &idx
}

// readNpy reads a float array and its shape.
func readNpy(t testing.TB, rel string) ([]float32, []int) {
	t.Helper()
	a, err := npy.Read(filepath.Join(golden, rel))
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.Float32()
	if err != nil {
		t.Fatal(err)
	}
	return v, a.Shape
}

func exists(rel string) bool {
	_, err := os.Stat(filepath.Join(golden, rel))
	return err == nil
}

// errStats compares got with want: it returns the largest |a-r| / (atol +
// rtol |r|) (<= 1 passes) and the largest relative error |a-r|/|r| over
// elements with |r| > 1e-3.
func errStats(got, want []float32, rtol, atol float64) (worst, maxRel, maxAbs float64) {
	for i := range want {
		a, r := float64(got[i]), float64(want[i])
		d := math.Abs(a - r)
		if math.IsNaN(d) {
			return math.Inf(1), math.Inf(1), math.Inf(1)
		}
		worst = math.Max(worst, d/(atol+rtol*math.Abs(r)))
		maxAbs = math.Max(maxAbs, d)
		if math.Abs(r) > 1e-3 {
			maxRel = math.Max(maxRel, d/math.Abs(r))
		}
	}
	return
}

func checkClose(t testing.TB, what string, got, want []float32, rtol, atol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, rel, abs := errStats(got, want, rtol, atol)
	if worst > 1 {
		for i := range want {
			d := math.Abs(float64(got[i]) - float64(want[i]))
			if d > atol+rtol*math.Abs(float64(want[i])) {
				t.Errorf("%s: [%d] = %v, want %v (max rel %.3g, max abs %.3g)", what, i, got[i], want[i], rel, abs)
				break
			}
		}
	}
}

// replay is a RandSource that hands out saved noise tensors, one per draw.
type replay struct {
	t     testing.TB
	noise []float32
	size  int
	step  int // which saved tensor the next draw returns
	draws int // draws during the current step
}

func (r *replay) Normal(dst []float32, mean, std float32) {
	if mean != 0 || std != 1 || len(dst) != r.size {
		r.t.Fatalf("unexpected noise draw of %d values (mean %v std %v)", len(dst), mean, std)
	}
	if r.noise == nil {
		// Drawn but unused (Euler without churn): the golden case saves none.
		clear(dst)
	} else {
		copy(dst, r.noise[r.step*r.size:(r.step+1)*r.size])
	}
	r.draws++
}

func (r *replay) Uniform(dst []float32, from, to float32) {
	r.t.Fatal("unexpected uniform draw")
}

// schedulerFor builds the scheduler a golden case describes.
func schedulerFor(t testing.TB, class string, raw json.RawMessage, kw map[string]any) Scheduler {
	t.Helper()
	cfg, err := ParseSchedulerConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var o Options
	switch class {
	case "DDPMScheduler":
		name = "ddpm"
	case "DDIMScheduler":
		name = "ddim"
		if e, ok := kw["eta"].(float64); ok {
			o.Eta = e
		}
	case "PNDMScheduler":
		name = "pndm"
	case "EulerDiscreteScheduler":
		name = "euler"
	case "EulerAncestralDiscreteScheduler":
		name = "euler_a"
	case "HeunDiscreteScheduler":
		name = "heun"
	case "LMSDiscreteScheduler":
		name = "lms"
	case "DPMSolverMultistepScheduler":
		name = "dpmpp_2m"
	default:
		t.Fatalf("unknown class %s", class)
	}
	s, err := NewWithOptions(name, cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Tolerances of the rollouts: 1e-5 relative plus 1e-5 absolute. Most
// schedulers reproduce diffusers bit for bit (the scalar coefficients are
// computed in float32 in torch's order). The rest differ by float32
// rounding: DPM-Solver's log/exp of lambda (torch's vectorised float32 log
// and exp vs correctly rounded ones), LMS's coefficients (exact
// Gauss–Legendre vs scipy's quad over a float32 integrand) and the Karras
// timesteps of Euler (numpy's float32 log of the training sigmas) perturb
// the coefficients by ~1e-7 relative; the absolute tolerance covers
// elements where terms of order 1-15 cancel to a small result, whose
// absolute error is then a few ulp of the terms (~1e-6).
const (
	rolloutRtol = 1e-5
	rolloutAtol = 1e-5
)

func TestGoldenSchedulers(t *testing.T) {
	idx := readIndex(t)
	x0, xShape := readNpy(t, "schedulers/x_T.npy")
	names := []string{"ddpm", "ddim_eta0", "ddim_eta0.5", "ddim_vpred", "pndm_plms", "euler", "euler_ancestral",
		"euler_karras", "euler_vpred", "heun", "lms", "dpmpp_2m", "dpmpp_2m_karras"}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			c, ok := idx.Schedulers.Cases[name]
			if !ok {
				t.Fatalf("case %s not in index.json", name)
			}
			s := schedulerFor(t, c.Class, c.Config, c.StepKwargs)
			dir := "schedulers/" + name + "/"
			if err := s.SetTimesteps(c.StepsRequested); err != nil {
				t.Fatal(err)
			}
			// Timesteps: integers exactly. The fractional timesteps of Karras
			// sigmas interpolate log sigma between training sigmas whose float32
			// logs numpy computes with a SIMD routine that is not correctly
			// rounded (190 of the 1000 differ by an ulp from the rounded log);
			// an ulp of a log difference of ~0.005 moves t by ~1e-5 (1e-8
			// relative), so fractional timesteps are checked to 1e-4 absolute (1e-6
			// of a timestep changes the fake model output cos(t/100) by 1e-6).
			ts := s.Timesteps()
			if len(ts) != len(c.Timesteps) {
				t.Fatalf("timesteps %v, want %v", ts, c.Timesteps)
			}
			for i := range ts {
				tol := 0.0
				if c.Timesteps[i] != math.Trunc(c.Timesteps[i]) {
					tol = 1e-4
				}
				if math.Abs(ts[i]-c.Timesteps[i]) > tol {
					t.Fatalf("timesteps %v, want %v", ts, c.Timesteps)
				}
			}
			if s.Order() != c.Order {
				t.Errorf("order %d, want %d", s.Order(), c.Order)
			}
			if d := math.Abs(s.InitNoiseSigma() - c.InitNoiseSigma); d > 1e-7*c.InitNoiseSigma {
				t.Errorf("init_noise_sigma %v, want %v", s.InitNoiseSigma(), c.InitNoiseSigma)
			}
			betas, _ := readNpy(t, dir+"betas.npy")
			acp, _ := readNpy(t, dir+"alphas_cumprod.npy")
			checkClose(t, "betas", s.Schedule().Betas, betas, 1e-6, 0)
			checkClose(t, "alphas_cumprod", s.Schedule().AlphasCumprod, acp, 1e-6, 0)
			if exists(dir + "sigmas.npy") {
				want, _ := readNpy(t, dir+"sigmas.npy")
				sg, ok := s.(interface{ Sigmas() []float32 })
				if !ok {
					t.Fatal("scheduler has no Sigmas")
				}
				checkClose(t, "sigmas", sg.Sigmas(), want, 1e-6, 0)
			}

			atol := rolloutAtol
			n := len(x0)
			mi, _ := readNpy(t, dir+"model_input.npy")
			mo, _ := readNpy(t, dir+"model_output.npy")
			tr, _ := readNpy(t, dir+"trajectory.npy")
			var po []float32
			if exists(dir + "pred_original_sample.npy") {
				po, _ = readNpy(t, dir+"pred_original_sample.npy")
			}
			src := &replay{t: t, size: n}
			if exists(dir + "noise.npy") {
				src.noise, _ = readNpy(t, dir+"noise.npy")
			}
			x := tensor.FromFloat32(append([]float32(nil), x0...), xShape...).MulScalar(float32(s.InitNoiseSigma()))
			checkClose(t, "trajectory[0]", x.Float32s(), tr[:n], rolloutRtol, atol)
			var worst [4]float64
			for i, tv := range ts {
				in := s.ScaleModelInput(x, tv)
				cst := float32(math.Cos(tv / 100))
				out := in.MulScalar(0.1).AddScalar(cst)
				src.step, src.draws = i, 0
				so := s.Step(out, tv, x, src)
				if src.draws != c.NoiseDrawsPerStep[i] {
					t.Errorf("step %d drew %d noise tensors, want %d", i, src.draws, c.NoiseDrawsPerStep[i])
				}
				sl := func(a []float32) []float32 { return a[i*n : (i+1)*n] }
				for k, p := range []struct {
					what      string
					got, want []float32
				}{
					{"model_input", in.Float32s(), sl(mi)},
					{"model_output", out.Float32s(), sl(mo)},
					{"trajectory", so.PrevSample.Float32s(), tr[(i+1)*n : (i+2)*n]},
				} {
					checkClose(t, fmt.Sprintf("step %d (t=%v) %s", i, tv, p.what), p.got, p.want, rolloutRtol, atol)
					w, _, _ := errStats(p.got, p.want, rolloutRtol, atol)
					worst[k] = math.Max(worst[k], w)
				}
				if po != nil {
					if so.PredOriginal == nil {
						t.Fatalf("step %d: no pred_original_sample", i)
					}
					checkClose(t, fmt.Sprintf("step %d pred_original_sample", i), so.PredOriginal.Float32s(), sl(po), rolloutRtol, atol)
					w, _, _ := errStats(so.PredOriginal.Float32s(), sl(po), rolloutRtol, atol)
					worst[3] = math.Max(worst[3], w)
				}
				if in != x {
					in.Release()
				}
				out.Release()
				x.Release()
				so.PredOriginal.Release()
				x = so.PrevSample
			}
			_, rel, abs := errStats(x.Float32s(), tr[len(ts)*n:], rolloutRtol, atol)
			t.Logf("%s: worst err/tol input %.3f output %.3f trajectory %.3f x0 %.3f; final latents max rel %.2g max abs %.2g",
				name, worst[0], worst[1], worst[2], worst[3], rel, abs)
		})
	}
}

func TestGoldenAddNoise(t *testing.T) {
	idx := readIndex(t)
	orig, shape := readNpy(t, "add_noise/original_samples.npy")
	noise, _ := readNpy(t, "add_noise/noise.npy")
	for _, name := range []string{"ddpm", "ddim", "euler", "lms", "dpmpp_2m"} {
		t.Run(name, func(t *testing.T) {
			c, ok := idx.AddNoise[name]
			if !ok {
				t.Fatalf("add_noise case %s missing", name)
			}
			s := schedulerFor(t, c.Class, c.Config, nil)
			if c.SetTimesteps != nil {
				if err := s.SetTimesteps(*c.SetTimesteps); err != nil {
					t.Fatal(err)
				}
			}
			want, _ := readNpy(t, "add_noise/"+name+"/noisy.npy")
			got := s.AddNoise(tensor.FromFloat32(orig, shape...), tensor.FromFloat32(noise, shape...), c.Timesteps)
			checkClose(t, "noisy", got.Float32s(), want, 1e-5, 1e-6)
			_, rel, abs := errStats(got.Float32s(), want, 1e-5, 1e-6)
			t.Logf("%s: max rel %.2g max abs %.2g", name, rel, abs)
		})
	}
}

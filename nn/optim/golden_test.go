package optim

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// trainIndex is the part of tiny-sd1-train/index.json these tests read.
type trainIndex struct {
	Cases struct {
		AdamWEMA struct {
			MaxGradNorm float64 `json:"max_grad_norm"`
			Optimizer   struct {
				LR          float64    `json:"lr"`
				Betas       [2]float64 `json:"betas"`
				Eps         float64    `json:"eps"`
				WeightDecay float64    `json:"weight_decay"`
				StepAfter   float64    `json:"state_step_after"`
			} `json:"optimizer"`
			LRScheduler struct {
				Name          string `json:"name"`
				WarmupSteps   int    `json:"num_warmup_steps"`
				TrainingSteps int    `json:"num_training_steps"`
			} `json:"lr_scheduler"`
			EMA map[string]struct {
				State struct {
					Decay            float64 `json:"decay"`
					InvGamma         float64 `json:"inv_gamma"`
					MinDecay         float64 `json:"min_decay"`
					OptimizationStep int     `json:"optimization_step"`
					Power            float64 `json:"power"`
					UpdateAfterStep  int     `json:"update_after_step"`
					UseEMAWarmup     bool    `json:"use_ema_warmup"`
				} `json:"state"`
			} `json:"ema"`
			Probes []string `json:"probes"`
		} `json:"adamw_ema"`
		LRSchedules struct {
			BaseLR        float64 `json:"base_lr"`
			TrainingSteps int     `json:"num_training_steps"`
			WarmupSteps   int     `json:"num_warmup_steps"`
			Runs          map[string]struct {
				Name   string `json:"name"`
				Kwargs struct {
					NumCycles *float64 `json:"num_cycles"`
					Power     *float64 `json:"power"`
				} `json:"kwargs"`
			} `json:"runs"`
		} `json:"lr_schedules"`
		TextualInversion struct {
			Optimizer struct {
				LR          float64    `json:"lr"`
				Betas       [2]float64 `json:"betas"`
				Eps         float64    `json:"eps"`
				WeightDecay float64    `json:"weight_decay"`
			} `json:"optimizer"`
			LRScheduler string `json:"lr_scheduler"`
		} `json:"textual_inversion"`
	} `json:"cases"`
}

// readIndex reads tiny-sd1-train/index.json (skipping when the golden data
// is absent) and returns it with the folder.
func readIndex(t *testing.T) (trainIndex, string) {
	t.Helper()
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train")
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	var ix trainIndex
	require.NoError(t, json.Unmarshal(data, &ix))
	return ix, dir
}

// readF64 reads a float64 .npy array.
func readF64(t *testing.T, path string) []float64 {
	t.Helper()
	a, err := npy.Read(path)
	require.NoError(t, err)
	require.Equal(t, "f8", a.DType, "%s: dtype", path)
	v, err := a.Float64()
	require.NoError(t, err)
	return v
}

// readF32 reads a float32 .npy array with its shape.
func readF32(t *testing.T, path string) ([]float32, []int) {
	t.Helper()
	a, err := npy.Read(path)
	require.NoError(t, err)
	v, err := a.Float32()
	require.NoError(t, err)
	return v, a.Shape
}

// diff describes got against want: the largest |got-want|, the same relative
// to the largest |want| (the tensor's scale), and how many elements differ
// in any bit.
type diff struct {
	maxAbs, rel float64
	nDiff, n    int
}

func compare(got, want []float32) diff {
	var d diff
	var scale float64
	d.n = len(want)
	for i := range want {
		e := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		d.maxAbs = max(d.maxAbs, e)
		scale = max(scale, math.Abs(float64(want[i])))
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			d.nDiff++
		}
	}
	if scale > 0 {
		d.rel = d.maxAbs / scale
	} else if d.maxAbs > 0 {
		d.rel = math.Inf(1)
	}
	return d
}

// requireClose checks got against want within rel (relative to the largest
// |want|) and logs the comparison.
func requireClose(t *testing.T, got, want []float32, rel float64, what string) diff {
	t.Helper()
	require.Len(t, got, len(want), what)
	d := compare(got, want)
	t.Logf("%-70s max |diff| %.3g, relative %.3g, %d/%d elements not bit-identical", what, d.maxAbs, d.rel, d.nDiff, d.n)
	require.LessOrEqual(t, d.rel, rel, "%s: max |diff| %.3g relative to the largest |value| is over %g", what, d.maxAbs, rel)
	return d
}

// stepRow returns row k of a [3, ...] per-step array of n elements per step.
func stepRow(v []float32, k, n int) []float32 { return v[k*n : (k+1)*n] }

// TestGoldenAdamWClipEMA replays diffusers' train_text_to_image.py (--use_ema,
// max_grad_norm 1, linear schedule) for the four probed U-Net parameters over
// three steps from their stored gradients: the learning rates, the clip
// coefficient from the stored global norm, AdamW's parameters and moments,
// and both EMA variants' decays and shadows after every step, and at the end
// the stored state files' entries for these parameters. (The other saved
// parameters cannot be replayed: their per-step gradients are not stored.)
func TestGoldenAdamWClipEMA(t *testing.T) {
	ix, root := readIndex(t)
	c := ix.Cases.AdamWEMA
	dir := filepath.Join(root, "adamw_ema")
	require.Len(t, c.Probes, 4)

	// The learning rates: get_scheduler("linear", 0 warm-up, 3 steps).
	lrs := readF64(t, filepath.Join(dir, "lr_per_step.npy"))
	require.Len(t, lrs, 3)
	sched, err := NewSchedule(c.Optimizer.LR, ScheduleConfig{Name: c.LRScheduler.Name,
		WarmupSteps: c.LRScheduler.WarmupSteps, TrainingSteps: c.LRScheduler.TrainingSteps})
	require.NoError(t, err)
	for k, want := range lrs {
		got := sched.LR(k)
		require.InDelta(t, 0, (got-want)/want, 1e-12, "lr of step %d: got %v, want %v", k, got, want)
	}
	norms, _ := readF32(t, filepath.Join(dir, "grad_norm_per_step.npy"))

	// The EMA settings and decays.
	emaCfg := map[string]EMAConfig{}
	for _, id := range []string{"default", "warmup"} {
		st := c.EMA[id].State
		cfg := EMAConfig{Decay: st.Decay, MinDecay: st.MinDecay, UpdateAfterStep: st.UpdateAfterStep,
			UseWarmup: st.UseEMAWarmup, InvGamma: st.InvGamma, Power: st.Power}
		if id == "default" {
			require.Equal(t, DefaultEMA(), cfg, "diffusers' EMAModel defaults")
		}
		emaCfg[id] = cfg
	}

	// The parameters, as a ParamSet of F32 host tensors.
	var params []nn.Param
	shapes := map[string][]int{}
	for _, name := range c.Probes {
		v, sh := readF32(t, filepath.Join(dir, "probes", name, "initial.npy"))
		params = append(params, nn.Param{Name: name, Tensor: tensor.FromFloat32(v, sh...)})
		shapes[name] = sh
	}
	ps, err := nn.NewParamSet(nil, params)
	require.NoError(t, err)
	train, err := ps.Trainable()
	require.NoError(t, err)
	cfg := AdamWConfig{Beta1: c.Optimizer.Betas[0], Beta2: c.Optimizer.Betas[1], Eps: c.Optimizer.Eps, WeightDecay: c.Optimizer.WeightDecay}
	require.Equal(t, DefaultAdamW(), cfg)
	opt, err := NewAdamW(train, cfg)
	require.NoError(t, err)
	emas := map[string]*EMA{}
	for id, ec := range emaCfg {
		emas[id], err = NewEMA(train, ec)
		require.NoError(t, err)
	}

	probe := func(name, file string) []float32 {
		v, _ := readF32(t, filepath.Join(dir, "probes", name, file+".npy"))
		return v
	}
	var worst diff
	note := func(d diff) {
		worst.maxAbs = max(worst.maxAbs, d.maxAbs)
		worst.rel = max(worst.rel, d.rel)
		worst.nDiff += d.nDiff
		worst.n += d.n
	}
	for k := range 3 {
		coef := ClipCoefficient(norms[k], c.MaxGradNorm)
		t.Logf("step %d: lr %v, global grad norm %v, clip coefficient %v", k+1, lrs[k], norms[k], coef)
		for _, p := range train {
			n := p.Numel()
			p.Grad = tensor.FromFloat32(append([]float32(nil), stepRow(probe(p.Name, "grad"), k, n)...), shapes[p.Name]...)
		}
		require.NoError(t, ScaleGrads(train, coef))
		for _, p := range train {
			note(requireClose(t, p.Grad.F32Data(), stepRow(probe(p.Name, "grad_clipped"), k, p.Numel()), 0, "step "+itoa(k+1)+" grad_clipped "+p.Name))
		}
		require.NoError(t, opt.Step(lrs[k]))
		for _, p := range train {
			n := p.Numel()
			m, v, step, ok := opt.State(p.Name)
			require.True(t, ok)
			require.Equal(t, k+1, step)
			note(requireClose(t, p.Master.F32Data(), stepRow(probe(p.Name, "param"), k, n), 1e-6, "step "+itoa(k+1)+" param "+p.Name))
			note(requireClose(t, m.F32Data(), stepRow(probe(p.Name, "exp_avg"), k, n), 1e-6, "step "+itoa(k+1)+" exp_avg "+p.Name))
			note(requireClose(t, v.F32Data(), stepRow(probe(p.Name, "exp_avg_sq"), k, n), 1e-6, "step "+itoa(k+1)+" exp_avg_sq "+p.Name))
		}
		ps.ZeroGrad()
		for _, id := range []string{"default", "warmup"} {
			d := emas[id].Step()
			want := readF64(t, filepath.Join(dir, "ema_"+id+"_decay_per_step.npy"))[k]
			require.InDelta(t, want, d, 1e-12*max(want, 1e-300), "EMA %s decay of step %d", id, k+1)
			require.Equal(t, 3, c.EMA[id].State.OptimizationStep)
			for _, p := range train {
				note(requireClose(t, emas[id].Shadow(p.Name).F32Data(), stepRow(probe(p.Name, "ema_"+id), k, p.Numel()), 1e-6, "step "+itoa(k+1)+" ema_"+id+" "+p.Name))
			}
		}
	}
	require.Equal(t, int(c.Optimizer.StepAfter), 3)
	t.Logf("all per-step probe comparisons: max |diff| %.3g, max relative %.3g, %d of %d elements not bit-identical",
		worst.maxAbs, worst.rel, worst.nDiff, worst.n)

	// The stored end states hold the same four tensors.
	files := map[string]func(name string) []float32{
		"params_after":             func(n string) []float32 { return ps.Get(n).Master.F32Data() },
		"adamw_exp_avg":            func(n string) []float32 { m, _, _, _ := opt.State(n); return m.F32Data() },
		"adamw_exp_avg_sq":         func(n string) []float32 { _, v, _, _ := opt.State(n); return v.F32Data() },
		"ema_default_shadow_after": func(n string) []float32 { return emas["default"].Shadow(n).F32Data() },
		"ema_warmup_shadow_after":  func(n string) []float32 { return emas["warmup"].Shadow(n).F32Data() },
	}
	for file, get := range files {
		a, err := tensor.LoadSafetensors(filepath.Join(dir, file+".safetensors"))
		require.NoError(t, err)
		for _, name := range c.Probes {
			want, err := a.Get(name)
			require.NoError(t, err, "%s: %s", file, name)
			requireClose(t, get(name), want.Float32s(), 1e-6, file+".safetensors "+name)
		}
		require.NoError(t, a.Close())
	}

	// The optimiser and EMA state survive a save/load round trip.
	tmp := t.TempDir()
	require.NoError(t, opt.Save(filepath.Join(tmp, "adamw.safetensors"), map[string]string{"run": "golden"}))
	opt2, err := NewAdamW(train, DefaultAdamW())
	require.NoError(t, err)
	require.NoError(t, opt2.Load(filepath.Join(tmp, "adamw.safetensors")))
	for _, p := range train {
		m1, v1, s1, _ := opt.State(p.Name)
		m2, v2, s2, _ := opt2.State(p.Name)
		require.Equal(t, s1, s2)
		require.Equal(t, m1.Float32s(), m2.Float32s())
		require.Equal(t, v1.Float32s(), v2.Float32s())
	}
	require.NoError(t, emas["warmup"].Save(filepath.Join(tmp, "ema.safetensors"), nil))
	e2, err := NewEMA(train, DefaultEMA())
	require.NoError(t, err)
	require.NoError(t, e2.Load(filepath.Join(tmp, "ema.safetensors")))
	require.Equal(t, emaCfg["warmup"], e2.Config())
	require.Equal(t, 3, e2.OptimizationStep())
}

// TestGoldenTextualInversionAdamW replays the two AdamW steps of
// textual_inversion.py for the placeholder token's embedding row (lr 5e-4,
// constant schedule, no clipping; AdamW is row-wise, so the row alone
// behaves as in the whole 49409x32 matrix): the row after each step and the
// moments after the last.
func TestGoldenTextualInversionAdamW(t *testing.T) {
	ix, root := readIndex(t)
	c := ix.Cases.TextualInversion
	dir := filepath.Join(root, "textual_inversion")
	require.Equal(t, "constant", c.LRScheduler)
	row, sh := readF32(t, filepath.Join(dir, "initial_placeholder_rows.npy"))
	ps, err := nn.NewParamSet(nil, []nn.Param{{Name: "text_model.embeddings.token_embedding.weight[49408]", Tensor: tensor.FromFloat32(row, sh...)}})
	require.NoError(t, err)
	train, err := ps.Trainable()
	require.NoError(t, err)
	opt, err := NewAdamW(train, AdamWConfig{Beta1: c.Optimizer.Betas[0], Beta2: c.Optimizer.Betas[1], Eps: c.Optimizer.Eps, WeightDecay: c.Optimizer.WeightDecay})
	require.NoError(t, err)
	sched, err := NewSchedule(c.Optimizer.LR, ScheduleConfig{Name: "constant"})
	require.NoError(t, err)
	p := train[0]
	for k := range 2 {
		step := filepath.Join(dir, "step"+itoa(k+1))
		g, gsh := readF32(t, filepath.Join(step, "placeholder_grad.npy"))
		p.Grad = tensor.FromFloat32(g, gsh...)
		require.NoError(t, opt.Step(sched.LR(k)))
		want, _ := readF32(t, filepath.Join(step, "placeholder_rows_after.npy"))
		requireClose(t, p.Master.F32Data(), want, 1e-6, "step "+itoa(k+1)+" placeholder row")
	}
	m, v, _, _ := opt.State(p.Name)
	wm, _ := readF32(t, filepath.Join(dir, "adamw_exp_avg_placeholder.npy"))
	wv, _ := readF32(t, filepath.Join(dir, "adamw_exp_avg_sq_placeholder.npy"))
	requireClose(t, m.F32Data(), wm, 1e-6, "exp_avg of the placeholder row")
	requireClose(t, v.F32Data(), wv, 1e-6, "exp_avg_sq of the placeholder row")
}

// TestGoldenLRSchedules compares every stored get_scheduler run (100 steps,
// 10 warm-up, base lr 1e-4; cosine_with_restarts with 3 cycles, polynomial
// with power 2, and cosine given num_cycles=3, which get_scheduler does not
// forward) with Schedule.LR, to float64 rounding.
func TestGoldenLRSchedules(t *testing.T) {
	ix, root := readIndex(t)
	c := ix.Cases.LRSchedules
	require.NotEmpty(t, c.Runs)
	ids := make([]string, 0, len(c.Runs))
	for id := range c.Runs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	names := map[string]bool{}
	for _, id := range ids {
		run := c.Runs[id]
		names[run.Name] = true
		cfg := ScheduleConfig{Name: run.Name, WarmupSteps: c.WarmupSteps, TrainingSteps: c.TrainingSteps}
		if run.Kwargs.NumCycles != nil {
			cfg.NumCycles = *run.Kwargs.NumCycles
		}
		if run.Kwargs.Power != nil {
			cfg.Power = *run.Kwargs.Power
		}
		s, err := NewSchedule(c.BaseLR, cfg)
		require.NoError(t, err, id)
		want := readF64(t, filepath.Join(root, "lr_schedules", id+".npy"))
		require.Len(t, want, c.TrainingSteps, id)
		var worst float64
		for i, w := range want {
			got := s.LR(i)
			e := math.Abs(got - w)
			if w != 0 {
				e /= math.Abs(w)
			} else {
				e /= c.BaseLR // an absolute error, relative to the base rate
			}
			worst = max(worst, e)
			require.LessOrEqual(t, e, 1e-12, "%s: step %d: got %v, want %v", id, i, got, w)
		}
		t.Logf("%-32s 100 steps, max relative error %.3g", id, worst)
	}
	for _, n := range ScheduleNames() {
		require.True(t, names[n], "no golden run of schedule %s", n)
	}
}

// itoa formats an int.
func itoa(i int) string { return strconv.Itoa(i) }

package optim

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

// testParams returns prepared F32 parameters of the given sizes (one of them
// spanning several of the update loops' chunks) with values drawn from a
// seeded generator.
func testParams(t *testing.T, seed uint64, sizes ...int) []*nn.Trainable {
	t.Helper()
	g := rng.New(seed)
	var params []nn.Param
	for i, n := range sizes {
		v := make([]float32, n)
		g.Normal(v, 0, 1)
		params = append(params, nn.Param{Name: "p" + itoa(i) + ".weight", Tensor: tensor.FromFloat32(v, n)})
	}
	ps, err := nn.NewParamSet(nil, params)
	require.NoError(t, err)
	tr, err := ps.Trainable()
	require.NoError(t, err)
	return tr
}

// setGrads gives every parameter a fresh gradient drawn from g, scaled by s.
func setGrads(params []*nn.Trainable, g *rng.Generator, s float32) {
	for _, p := range params {
		v := make([]float32, p.Numel())
		g.Normal(v, 0, s)
		p.Grad = tensor.FromFloat32(v, p.Shape()...)
	}
}

// f64s returns the elements as float64.
func f64s(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// requireNear checks got against the float64 reference want: |got-want| <=
// tol * max|want|, logging the largest difference.
func requireNear(t *testing.T, got []float32, want []float64, tol float64, what string) {
	t.Helper()
	var maxAbs, scale float64
	for i := range want {
		maxAbs = max(maxAbs, math.Abs(float64(got[i])-want[i]))
		scale = max(scale, math.Abs(want[i]))
	}
	t.Logf("%s: max |diff| %.3g (relative %.3g)", what, maxAbs, maxAbs/scale)
	require.LessOrEqual(t, maxAbs, tol*scale, what)
}

// SGD against the formulas of torch.optim.SGD evaluated naively in float64,
// for plain SGD, momentum with dampening, Nesterov, and weight decay, over
// five steps with a changing learning rate.
func TestSGDAgainstFloat64(t *testing.T) {
	for _, cfg := range []SGDConfig{
		{},
		{WeightDecay: 0.1},
		{Momentum: 0.9},
		{Momentum: 0.9, Dampening: 0.3, WeightDecay: 0.01},
		{Momentum: 0.8, Nesterov: true, WeightDecay: 0.05},
	} {
		params := testParams(t, 7, 5, 70000)
		opt, err := NewSGD(params, cfg)
		require.NoError(t, err)
		ref := make([][]float64, len(params))
		buf := make([][]float64, len(params))
		for i, p := range params {
			ref[i] = f64s(p.Master.F32Data())
		}
		g := rng.New(8)
		for step := range 5 {
			lr := 0.1 / float64(step+1)
			setGrads(params, g, 1)
			for i, p := range params {
				gr := f64s(p.Grad.F32Data())
				for j := range gr {
					d := gr[j] + cfg.WeightDecay*ref[i][j]
					if cfg.Momentum != 0 {
						if buf[i] == nil {
							buf[i] = make([]float64, len(gr))
						}
						if step == 0 {
							buf[i][j] = d
						} else {
							buf[i][j] = cfg.Momentum*buf[i][j] + (1-cfg.Dampening)*d
						}
						if cfg.Nesterov {
							d += cfg.Momentum * buf[i][j]
						} else {
							d = buf[i][j]
						}
					}
					ref[i][j] -= lr * d
				}
			}
			require.NoError(t, opt.Step(lr))
		}
		for i, p := range params {
			requireNear(t, p.Master.F32Data(), ref[i], 1e-6, p.Name)
			if cfg.Momentum != 0 {
				b, ok := opt.MomentumBuffer(p.Name)
				require.True(t, ok)
				requireNear(t, b.F32Data(), buf[i], 1e-6, p.Name+" momentum buffer")
			}
		}
	}
	for _, bad := range []SGDConfig{{Momentum: -1}, {Nesterov: true}, {Momentum: 0.9, Dampening: 0.1, Nesterov: true}, {WeightDecay: -1}} {
		_, err := NewSGD(testParams(t, 1, 2), bad)
		require.Error(t, err, "%+v", bad)
	}
}

// AdamW against its formulas in float64 over five steps (the golden test
// checks the F32 rounding against PyTorch itself).
func TestAdamWAgainstFloat64(t *testing.T) {
	params := testParams(t, 9, 3, 100000)
	cfg := AdamWConfig{Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, WeightDecay: 0.1}
	opt, err := NewAdamW(params, cfg)
	require.NoError(t, err)
	ref := make([][]float64, len(params))
	m := make([][]float64, len(params))
	v := make([][]float64, len(params))
	for i, p := range params {
		ref[i] = f64s(p.Master.F32Data())
		m[i] = make([]float64, p.Numel())
		v[i] = make([]float64, p.Numel())
	}
	g := rng.New(10)
	for step := 1; step <= 5; step++ {
		lr := 1e-2 / float64(step)
		setGrads(params, g, 0.01)
		bc1 := 1 - math.Pow(cfg.Beta1, float64(step))
		bc2 := 1 - math.Pow(cfg.Beta2, float64(step))
		for i, p := range params {
			gr := f64s(p.Grad.F32Data())
			for j := range gr {
				ref[i][j] *= 1 - lr*cfg.WeightDecay
				m[i][j] = cfg.Beta1*m[i][j] + (1-cfg.Beta1)*gr[j]
				v[i][j] = cfg.Beta2*v[i][j] + (1-cfg.Beta2)*gr[j]*gr[j]
				ref[i][j] -= lr / bc1 * m[i][j] / (math.Sqrt(v[i][j])/math.Sqrt(bc2) + cfg.Eps)
			}
		}
		require.NoError(t, opt.Step(lr))
	}
	for i, p := range params {
		mm, vv, step, ok := opt.State(p.Name)
		require.True(t, ok)
		require.Equal(t, 5, step)
		requireNear(t, p.Master.F32Data(), ref[i], 1e-6, p.Name)
		requireNear(t, mm.F32Data(), m[i], 1e-5, p.Name+" exp_avg")
		requireNear(t, vv.F32Data(), v[i], 1e-5, p.Name+" exp_avg_sq")
	}
	for _, bad := range []AdamWConfig{{Beta1: 1, Beta2: 0.9}, {Beta1: 0.9, Beta2: -0.1}, {Beta1: 0.9, Beta2: 0.9, Eps: -1}, {Beta1: 0.9, Beta2: 0.9, WeightDecay: math.NaN()}} {
		_, err := NewAdamW(params, bad)
		require.Error(t, err, "%+v", bad)
	}
	require.ErrorContains(t, opt.Step(-1), "learning rate -1")
	require.ErrorContains(t, opt.Step(math.Inf(1)), "learning rate +Inf")
}

// Parameters without a gradient are skipped (no state, no step count, no
// weight decay), as torch does for p.grad None; their step counts then
// differ, and a saved state keeps them apart.
func TestAdamWSkipsMissingGradients(t *testing.T) {
	params := testParams(t, 11, 4, 6)
	opt, err := NewAdamW(params, DefaultAdamW())
	require.NoError(t, err)
	before := params[1].Master.Float32s()
	params[0].Grad = tensor.Ones(tensor.F32, 4)
	require.NoError(t, opt.Step(1e-3))
	require.Equal(t, before, params[1].Master.Float32s())
	m, _, step, _ := opt.State(params[1].Name)
	require.Nil(t, m)
	require.Zero(t, step)
	_, _, step, _ = opt.State(params[0].Name)
	require.Equal(t, 1, step)

	path := filepath.Join(t.TempDir(), "adamw.safetensors")
	require.NoError(t, opt.Save(path, nil))
	a, err := tensor.LoadSafetensors(path)
	require.NoError(t, err)
	require.JSONEq(t, `{"p0.weight": 1, "p1.weight": 0}`, a.Metadata["steps"])
	require.NoError(t, a.Close())
	opt2, err := NewAdamW(params, DefaultAdamW())
	require.NoError(t, err)
	require.NoError(t, opt2.Load(path))
	_, _, s0, _ := opt2.State(params[0].Name)
	_, _, s1, _ := opt2.State(params[1].Name)
	require.Equal(t, []int{1, 0}, []int{s0, s1})
}

// A non-finite gradient element is a *NonFiniteError naming the parameter and
// the element, and the step changes nothing.
func TestNonFiniteGradientsChangeNothing(t *testing.T) {
	params := testParams(t, 12, 10, 3*grain+5)
	opt, err := NewAdamW(params, DefaultAdamW())
	require.NoError(t, err)
	sgd, err := NewSGD(params, SGDConfig{Momentum: 0.9})
	require.NoError(t, err)
	setGrads(params, rng.New(13), 1)
	params[1].Grad.F32Data()[2*grain+7] = float32(math.Inf(-1))
	params[1].Grad.F32Data()[2*grain+9] = float32(math.NaN())
	before := [][]float32{params[0].Master.Float32s(), params[1].Master.Float32s()}
	for _, o := range []Optimizer{opt, sgd} {
		err = o.Step(1e-3)
		var nf *NonFiniteError
		require.True(t, errors.As(err, &nf), "%v", err)
		require.Equal(t, NonFiniteError{Param: "p1.weight", Index: 2*grain + 7, Value: float32(math.Inf(-1))}, *nf)
		require.EqualError(t, err, "optim: the gradient of p1.weight is not finite: element 65543 is -Inf")
		require.Equal(t, before, [][]float32{params[0].Master.Float32s(), params[1].Master.Float32s()})
	}
	m, _, step, _ := opt.State("p0.weight")
	require.Nil(t, m)
	require.Zero(t, step)
	require.Equal(t, 2*grain+7, findNonFinite(params[1].Grad.F32Data()))
	require.Equal(t, -1, findNonFinite([]float32{0, -0, 1e38, -3.4e38, float32(math.SmallestNonzeroFloat32)}))
	require.Equal(t, 2, findNonFinite([]float32{0, 1, float32(math.NaN())}))
}

// ClipGradNorm: the norm of the per-parameter norms, the coefficient
// max/(total+1e-6) capped at 1, applied to every gradient.
func TestClipGradNorm(t *testing.T) {
	params := testParams(t, 14, 2, 1, 3)
	params[0].Grad = tensor.FromFloat32([]float32{3, 4}, 2) // norm 5
	params[1].Grad = tensor.FromFloat32([]float32{12}, 1)   // norm 12
	params[2].Grad = nil                                    // left out
	total, err := ClipGradNorm(params, 1)
	require.NoError(t, err)
	require.Equal(t, float32(13), total)
	c := (1 / (float32(13) + 1e-6)) * 1
	require.Equal(t, []float32{3 * c, 4 * c}, params[0].Grad.Float32s())
	require.Equal(t, []float32{12 * c}, params[1].Grad.Float32s())
	require.InDelta(t, 1, math.Hypot(float64(3*c), math.Hypot(float64(4*c), float64(12*c))), 1e-6)

	// Below the limit: unchanged (the factor is 1).
	params[0].Grad = tensor.FromFloat32([]float32{0.3, 0.4}, 2)
	params[1].Grad = nil
	total, err = ClipGradNorm(params, 1)
	require.NoError(t, err)
	require.InDelta(t, 0.5, total, 1e-7)
	require.Equal(t, []float32{0.3, 0.4}, params[0].Grad.Float32s())
	require.Equal(t, float32(1), ClipCoefficient(0.5, 1))
	require.Equal(t, float32(0), ClipCoefficient(5, 0))
	require.Equal(t, (1/(float32(4)+1e-6))*2, ClipCoefficient(4, 2))

	// A large tensor over several chunks against a float64 sum.
	big := testParams(t, 15, 5*grain+3)
	setGrads(big, rng.New(16), 1)
	var ss float64
	for _, v := range big[0].Grad.F32Data() {
		ss += float64(v) * float64(v)
	}
	total, err = GradNorm(big)
	require.NoError(t, err)
	require.InDelta(t, math.Sqrt(ss), float64(total), 1e-6*math.Sqrt(ss))

	// Non-finite: an error naming the element; gradients untouched.
	params[0].Grad = tensor.FromFloat32([]float32{30, float32(math.NaN())}, 2)
	total, err = ClipGradNorm(params, 1)
	var nf *NonFiniteError
	require.True(t, errors.As(err, &nf))
	require.Equal(t, "p0.weight", nf.Param)
	require.Equal(t, 1, nf.Index)
	require.True(t, math.IsNaN(float64(total)))
	require.Equal(t, float32(30), params[0].Grad.F32Data()[0])

	// No gradients: 0.
	params[0].Grad = nil
	total, err = ClipGradNorm(params, 1)
	require.NoError(t, err)
	require.Zero(t, total)
	_, err = ClipGradNorm(params, -1)
	require.ErrorContains(t, err, "max norm -1")
}

// LossScaler: Unscale divides by the scale and finds the first non-finite
// element; Step skips the optimiser then, halves the scale and restarts the
// count; after GrowthInterval good steps the scale doubles (but never to
// Inf).
func TestLossScaler(t *testing.T) {
	params := testParams(t, 17, 3, 2)
	opt, err := NewSGD(params, SGDConfig{})
	require.NoError(t, err)
	s, err := NewLossScaler(LossScalerConfig{InitScale: 1024, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 3})
	require.NoError(t, err)
	require.Equal(t, float32(1024), s.Scale())
	loss := s.ScaleLoss(tensor.Scalar(0.5))
	require.Equal(t, float32(512), loss.Item())

	good := func() {
		params[0].Grad = tensor.FromFloat32([]float32{1024, -2048, 512}, 3)
		params[1].Grad = tensor.FromFloat32([]float32{0, 1024}, 2)
	}
	// A good step: unscaled gradients, stepped.
	good()
	before := params[0].Master.Float32s()
	res, err := s.Step(opt, 1)
	require.NoError(t, err)
	require.Equal(t, ScalerStep{Scale: 1024}, res)
	scale := s.Scale()
	require.Equal(t, []float32{1, -2, 0.5}, params[0].Grad.Float32s())
	require.Equal(t, []float32{before[0] - 1, before[1] + 2, before[2] - 0.5}, params[0].Master.Float32s())

	// An overflow: skipped, reported, backed off.
	good()
	params[1].Grad.F32Data()[1] = float32(math.Inf(1))
	before = params[0].Master.Float32s()
	nf := s.Unscale(params)
	require.NotNil(t, nf)
	require.Equal(t, "p1.weight", nf.Param)
	require.Equal(t, 1, nf.Index)
	res, err = s.Step(opt, 1)
	require.NoError(t, err)
	require.True(t, res.Skipped)
	require.Equal(t, nf, res.NonFinite)
	require.Equal(t, scale/2, res.Scale)
	require.Equal(t, before, params[0].Master.Float32s(), "the optimiser did not step")
	_, n := s.State()
	require.Zero(t, n)

	// Three good steps in a row: growth.
	for i := range 3 {
		good()
		res, err = s.Step(opt, 0)
		require.NoError(t, err)
		require.False(t, res.Skipped)
		if i < 2 {
			require.Equal(t, float32(512), res.Scale)
		}
	}
	require.Equal(t, float32(1024), res.Scale)

	// Growth stops below Inf.
	require.NoError(t, s.SetState(math.MaxFloat32, 2))
	good()
	res, err = s.Step(opt, 0)
	require.NoError(t, err)
	require.Equal(t, float32(math.MaxFloat32), res.Scale)

	def := DefaultLossScaler()
	require.Equal(t, LossScalerConfig{InitScale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}, def)
	for _, bad := range []LossScalerConfig{{}, {InitScale: 1, GrowthFactor: 1, BackoffFactor: 0.5, GrowthInterval: 1}, {InitScale: 1, GrowthFactor: 2, BackoffFactor: 1, GrowthInterval: 1}, {InitScale: 1, GrowthFactor: 2, BackoffFactor: 0.5}} {
		_, err := NewLossScaler(bad)
		require.Error(t, err, "%+v", bad)
	}
	require.Error(t, s.SetState(0, 0))
}

// Schedules: the formulas at hand-computed points, and the checks of
// get_scheduler and the schedule functions.
func TestSchedules(t *testing.T) {
	lr := func(name string, w, n int, step int, extra ...float64) float64 {
		cfg := ScheduleConfig{Name: name, WarmupSteps: w, TrainingSteps: n}
		if len(extra) > 0 {
			cfg.NumCycles = extra[0]
		}
		if len(extra) > 1 {
			cfg.Power = extra[1]
		}
		s, err := NewSchedule(2, cfg)
		require.NoError(t, err)
		return s.LR(step)
	}
	require.Equal(t, 2.0, lr("constant", 5, 0, 0), "constant ignores warm-up")
	require.Equal(t, 0.8, lr("constant_with_warmup", 5, 0, 2))
	require.Equal(t, 2.0, lr("constant_with_warmup", 5, 0, 9))
	require.Equal(t, 0.0, lr("linear", 4, 12, 0))
	require.Equal(t, 1.0, lr("linear", 4, 12, 2))
	require.Equal(t, 1.0, lr("linear", 4, 12, 8))
	require.Equal(t, 0.0, lr("linear", 4, 12, 20))
	require.InDelta(t, 1.0, lr("cosine", 0, 10, 5), 1e-15)
	require.InDelta(t, 1.0, lr("cosine", 0, 10, 5, 3), 1e-15, "cosine ignores num_cycles")
	require.InDelta(t, 2.0, lr("cosine_with_restarts", 0, 10, 5, 2), 1e-15, "a restart at half way")
	require.Equal(t, 0.0, lr("cosine_with_restarts", 0, 10, 10, 2))
	require.InDelta(t, (2-1e-7)*0.25+1e-7, lr("polynomial", 0, 10, 5, 0, 2), 1e-15)
	require.InDelta(t, 1e-7, lr("polynomial", 0, 10, 11), 1e-22)
	require.Equal(t, 0.0, lr("linear", 4, 12, -3), "negative steps count as 0")

	for _, c := range []struct {
		base float64
		cfg  ScheduleConfig
		want string
	}{
		{1, ScheduleConfig{Name: "cosine_annealing"}, `unknown learning-rate schedule "cosine_annealing", want one of linear, cosine`},
		{1, ScheduleConfig{Name: "linear"}, "schedule linear needs the number of training steps"},
		{1, ScheduleConfig{Name: "linear", TrainingSteps: 5, WarmupSteps: -1}, "want both >= 0"},
		{1e-8, ScheduleConfig{Name: "polynomial", TrainingSteps: 5}, "lr_end (1e-07) must be smaller than the initial lr (1e-08)"},
		{1, ScheduleConfig{Name: "polynomial", TrainingSteps: 5, WarmupSteps: 5}, "no steps to decay over"},
		{-1, ScheduleConfig{Name: "constant"}, "base learning rate -1"},
		{1, ScheduleConfig{Name: "cosine", TrainingSteps: 5, Power: math.NaN()}, "want finite values"},
	} {
		_, err := NewSchedule(c.base, c.cfg)
		require.ErrorContains(t, err, c.want)
	}
}

// EMA: EMAModel's decay rules, hand-computed, and the update on a few
// values.
func TestEMA(t *testing.T) {
	def := DefaultEMA()
	require.Equal(t, []float64{0, 0, 2.0 / 11, 3.0 / 12}, []float64{def.DecayAt(0), def.DecayAt(1), def.DecayAt(2), def.DecayAt(3)})
	require.InDelta(t, 0.9999, def.DecayAt(1_000_000), 0, "capped at decay")
	w := def
	w.UseWarmup = true
	require.InDelta(t, 1-math.Pow(2, -2.0/3), w.DecayAt(2), 1e-16)
	late := def
	late.UpdateAfterStep, late.MinDecay = 10, 0.5
	require.Equal(t, 0.0, late.DecayAt(11), "no averaging up to update_after_step+1 (min_decay does not apply)")
	require.Equal(t, 0.5, late.DecayAt(12), "then at least min_decay")
	require.Equal(t, 0.5, late.DecayAt(13), "(1+2)/(10+2) = 0.25 < min_decay")

	params := testParams(t, 18, 3)
	p := params[0]
	copy(p.Master.F32Data(), []float32{1, 2, 3})
	e, err := NewEMA(params, def)
	require.NoError(t, err)
	copy(p.Master.F32Data(), []float32{3, 2, 1})
	require.Equal(t, 0.0, e.Step())
	require.Equal(t, []float32{3, 2, 1}, e.Shadow(p.Name).Float32s(), "step 1 copies")
	copy(p.Master.F32Data(), []float32{14, 2, 12})
	d := e.Step()
	require.Equal(t, 2.0/11, d)
	omd := float32(1 - d)
	require.Equal(t, []float32{3 - omd*(3-14), 2, 1 - omd*(1-12)}, e.Shadow(p.Name).Float32s())
	require.Equal(t, 2, e.OptimizationStep())
	require.NoError(t, e.CopyTo())
	require.Equal(t, e.Shadow(p.Name).Float32s(), p.Master.Float32s())
	for _, bad := range []EMAConfig{{Decay: 1.5, InvGamma: 1, Power: 1}, {Decay: 0.9, MinDecay: 0.95, InvGamma: 1, Power: 1}, {Decay: 0.9, Power: 1}, {Decay: 0.9, InvGamma: 1}, {Decay: 0.9, InvGamma: 1, Power: 1, UpdateAfterStep: -1}} {
		_, err := NewEMA(params, bad)
		require.Error(t, err, "%+v", bad)
	}
}

// Accumulator: steps every k-th micro-batch, loss scale 1/k; AddGrad with
// it gives the mean gradient.
func TestAccumulator(t *testing.T) {
	a, err := NewAccumulator(3)
	require.NoError(t, err)
	require.Equal(t, float32(1.0/3), a.LossScale())
	var syncs []bool
	params := testParams(t, 19, 2)
	for _, g := range [][]float32{{3, 6}, {6, 0}, {0, 3}, {1, 1}} {
		require.NoError(t, params[0].AddGrad(tensor.FromFloat32(g, 2), a.LossScale()))
		syncs = append(syncs, a.Next())
	}
	require.Equal(t, []bool{false, false, true, false}, syncs)
	require.Equal(t, 1, a.Pending())
	require.InDeltaSlice(t, []float64{3 + 1.0/3, 3 + 1.0/3}, f64s(params[0].Grad.F32Data()), 1e-6)
	_, err = NewAccumulator(0)
	require.ErrorContains(t, err, "want >= 1")
}

// Save/Load round trips for every state, and state files that do not fit
// are refused with messages naming the problem, without panics and without
// changing the state.
func TestStateFiles(t *testing.T) {
	dir := t.TempDir()
	params := testParams(t, 20, 4, 3)
	adamw, err := NewAdamW(params, AdamWConfig{Beta1: 0.5, Beta2: 0.75, Eps: 1e-3, WeightDecay: 0.25})
	require.NoError(t, err)
	sgd, err := NewSGD(params, SGDConfig{Momentum: 0.9, Dampening: 0.1})
	require.NoError(t, err)
	ema, err := NewEMA(params, DefaultEMA())
	require.NoError(t, err)
	g := rng.New(21)
	for range 2 {
		setGrads(params, g, 1)
		require.NoError(t, adamw.Step(0.01))
		require.NoError(t, sgd.Step(0.01))
		ema.Step()
	}
	files := map[string]string{}
	for name, o := range map[string]interface {
		Save(string, map[string]string) error
	}{"adamw": adamw, "sgd": sgd, "ema": ema} {
		files[name] = filepath.Join(dir, name+".safetensors")
		require.NoError(t, o.Save(files[name], map[string]string{"note": "x"}))
	}
	require.ErrorContains(t, adamw.Save(filepath.Join(dir, "clash.safetensors"), map[string]string{"beta1": "1"}),
		`metadata key "beta1" is reserved`)

	// Round trips.
	a2, _ := NewAdamW(params, DefaultAdamW())
	require.NoError(t, a2.Load(files["adamw"]))
	require.Equal(t, adamw.Config(), a2.Config())
	s2, _ := NewSGD(params, SGDConfig{})
	require.NoError(t, s2.Load(files["sgd"]))
	require.Equal(t, sgd.Config(), s2.Config())
	e2, _ := NewEMA(params, DefaultEMA())
	require.NoError(t, e2.Load(files["ema"]))
	for _, p := range params {
		m1, v1, _, _ := adamw.State(p.Name)
		m2, v2, _, _ := a2.State(p.Name)
		require.Equal(t, m1.Float32s(), m2.Float32s())
		require.Equal(t, v1.Float32s(), v2.Float32s())
		b1, _ := sgd.MomentumBuffer(p.Name)
		b2, _ := s2.MomentumBuffer(p.Name)
		require.Equal(t, b1.Float32s(), b2.Float32s())
		require.Equal(t, ema.Shadow(p.Name).Float32s(), e2.Shadow(p.Name).Float32s())
	}
	// The two optimisers continue identically.
	setGrads(params, g, 1)
	snapshot := params[0].Master.Float32s()
	require.NoError(t, adamw.Step(0.01))
	after1 := params[0].Master.Float32s()
	copy(params[0].Master.F32Data(), snapshot)
	require.NoError(t, a2.Step(0.01))
	require.Equal(t, after1, params[0].Master.Float32s())

	// Files that do not fit.
	other := testParams(t, 22, 4, 5) // p1 has another shape
	renamed := testParams(t, 23, 4)  // one parameter fewer
	write := func(name string, ts map[string]*tensor.Tensor, meta map[string]string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, tensor.SaveSafetensors(p, ts, meta))
		return p
	}
	garbage := filepath.Join(dir, "garbage.safetensors")
	require.NoError(t, os.WriteFile(garbage, []byte("not a safetensors file at all"), 0o644))
	trunc, err := os.ReadFile(files["adamw"])
	require.NoError(t, err)
	truncated := filepath.Join(dir, "truncated.safetensors")
	require.NoError(t, os.WriteFile(truncated, trunc[:len(trunc)-9], 0o644))
	z4, z3 := tensor.Zeros(tensor.F32, 4), tensor.Zeros(tensor.F32, 3)
	adamMeta := map[string]string{"roentgo.state": "adamw", "beta1": "0.9", "beta2": "0.999", "eps": "1e-8", "weight_decay": "0", "step": "1"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range adamMeta {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	full := map[string]*tensor.Tensor{"adamw.exp_avg.p0.weight": z4, "adamw.exp_avg_sq.p0.weight": z4,
		"adamw.exp_avg.p1.weight": z3, "adamw.exp_avg_sq.p1.weight": z3}
	cases := []struct {
		name string
		load func() error
		want string
	}{
		{"sgd file into adamw", func() error { return adamw.Load(files["sgd"]) }, `the file holds "sgd" state, want "adamw"`},
		{"ema file into sgd", func() error { return sgd.Load(files["ema"]) }, `the file holds "ema" state, want "sgd"`},
		{"weights file into ema", func() error {
			return ema.Load(write("plain.safetensors", map[string]*tensor.Tensor{"p0.weight": z4}, nil))
		}, `no metadata "roentgo.state"`},
		{"other shapes", func() error { o, _ := NewAdamW(other, DefaultAdamW()); return o.Load(files["adamw"]) }, `tensor "adamw.exp_avg.p1.weight" (AdamW state of parameter p1.weight) has shape [3], want [5]`},
		{"fewer parameters", func() error { o, _ := NewAdamW(renamed, DefaultAdamW()); return o.Load(files["adamw"]) }, `2 unexpected tensors (not AdamW state of a parameter of this optimiser): "adamw.exp_avg.p1.weight", "adamw.exp_avg_sq.p1.weight"`},
		{"more parameters", func() error {
			e, _ := NewEMA(params, DefaultEMA())
			return e.Load(write("ema1.safetensors", map[string]*tensor.Tensor{"p0.weight": z4}, map[string]string{"roentgo.state": "ema", "decay": "0.9", "min_decay": "0", "optimization_step": "1", "update_after_step": "0", "use_ema_warmup": "false", "inv_gamma": "1", "power": "1"}))
		}, `no tensor "p1.weight" (EMA shadow, want F32 [3])`},
		{"dtype", func() error {
			return adamw.Load(write("f16.safetensors", map[string]*tensor.Tensor{"adamw.exp_avg.p0.weight": z4.To(tensor.F16), "adamw.exp_avg_sq.p0.weight": z4,
				"adamw.exp_avg.p1.weight": z3, "adamw.exp_avg_sq.p1.weight": z3}, adamMeta))
		}, `tensor "adamw.exp_avg.p0.weight" (AdamW state of parameter p0.weight) is F16, want F32`},
		{"no step", func() error { return adamw.Load(write("nostep.safetensors", full, with("step", ""))) }, `no metadata "step"`},
		{"bad number", func() error { return adamw.Load(write("badnum.safetensors", full, with("beta2", "nan"))) }, `metadata "beta2" is "nan", want a finite number`},
		{"bad beta", func() error { return adamw.Load(write("badbeta.safetensors", full, with("beta1", "1.5"))) }, "saved hyper-parameters: AdamW: beta1 1.5, want 0 <= beta1 < 1"},
		{"bad steps", func() error {
			return adamw.Load(write("badsteps.safetensors", full, with("steps", `{"p0.weight": 1}`)))
		}, `no step count for parameter "p1.weight"`},
		{"negative step", func() error { return adamw.Load(write("negstep.safetensors", full, with("step", "-2"))) }, `metadata "step" is "-2", want a non-negative integer`},
		{"sgd bad bool", func() error {
			return sgd.Load(write("sgdbool.safetensors", map[string]*tensor.Tensor{"sgd.momentum_buffer.p0.weight": z4},
				map[string]string{"roentgo.state": "sgd", "momentum": "0.9", "dampening": "0", "weight_decay": "0", "nesterov": "maybe"}))
		}, `metadata "nesterov" is "maybe", want true or false`},
		{"sgd buffer shape", func() error {
			return sgd.Load(write("sgdshape.safetensors", map[string]*tensor.Tensor{"sgd.momentum_buffer.p0.weight": z3},
				map[string]string{"roentgo.state": "sgd", "momentum": "0.9", "dampening": "0", "weight_decay": "0", "nesterov": "false"}))
		}, `tensor "sgd.momentum_buffer.p0.weight" (momentum buffer of parameter p0.weight) has shape [3], want [4]`},
		{"sgd unknown buffer", func() error {
			return sgd.Load(write("sgdextra.safetensors", map[string]*tensor.Tensor{"sgd.momentum_buffer.p9.weight": z3},
				map[string]string{"roentgo.state": "sgd", "momentum": "0.9", "dampening": "0", "weight_decay": "0", "nesterov": "false"}))
		}, `1 unexpected tensor (not the momentum buffer of a parameter of this optimiser): "sgd.momentum_buffer.p9.weight"`},
		{"garbage", func() error { return adamw.Load(garbage) }, "optim: AdamW.Load: "},
		{"truncated", func() error { return sgd.Load(truncated) }, "optim: SGD.Load: "},
		{"absent", func() error { return ema.Load(filepath.Join(dir, "absent.safetensors")) }, "optim: EMA.Load: "},
	}
	m0, _, _, _ := adamw.State("p0.weight")
	wantM := m0.Float32s()
	wantCfg := adamw.Config()
	for _, c := range cases {
		testutil.NoPanic(t, c.name, func() {
			err := c.load()
			require.ErrorContains(t, err, c.want, c.name)
			t.Logf("%-22s %v", c.name+":", err)
		})
	}
	require.Equal(t, wantM, m0.Float32s(), "failed loads changed nothing")
	require.Equal(t, wantCfg, adamw.Config())
}

// Constructors refuse unprepared, duplicated or empty parameter lists.
func TestConstructorErrors(t *testing.T) {
	_, err := NewAdamW(nil, DefaultAdamW())
	require.ErrorContains(t, err, "no parameters")
	raw := &nn.Trainable{Param: nn.Param{Name: "w", Tensor: tensor.Zeros(tensor.F32, 2)}}
	_, err = NewSGD([]*nn.Trainable{raw}, SGDConfig{})
	require.ErrorContains(t, err, `parameter "w" has no master copy`)
	params := testParams(t, 24, 2)
	_, err = NewEMA([]*nn.Trainable{params[0], params[0]}, DefaultEMA())
	require.ErrorContains(t, err, `parameter "p0.weight" appears twice`)
	params[0].Grad = tensor.Zeros(tensor.F32, 3)
	opt, err := NewAdamW(params, DefaultAdamW())
	require.NoError(t, err)
	require.ErrorContains(t, opt.Step(0.1), `the gradient of "p0.weight" is F32 [3] on cpu, want a contiguous F32 host tensor of shape [2]`)
}

// The vectorised AdamW update (AVX2/FMA on amd64) gives the pure-Go
// reference's results bit for bit, over lengths that leave tails and values
// that exercise the eps path (zero gradients and moments).
func TestAdamWSpanMatchesReference(t *testing.T) {
	g := rng.New(25)
	for _, n := range []int{1, 7, 8, 9, 31, 1000, 4099} {
		mk := func() [4][]float32 {
			var a [4][]float32
			for k := range a {
				a[k] = make([]float32, n)
			}
			g.Normal(a[0], 0, 1)
			g.Normal(a[1], 0, 1e-2)
			g.Normal(a[2], 0, 1e-3)
			g.Normal(a[3], 0, 1e-4)
			for i := range a[3] {
				a[3][i] *= a[3][i]
				if i%5 == 0 {
					a[1][i], a[2][i], a[3][i] = 0, 0, 0
				}
			}
			return a
		}
		x := mk()
		var y [4][]float32
		for k := range y {
			y[k] = append([]float32(nil), x[k]...)
		}
		for step := 1; step <= 3; step++ {
			c := DefaultAdamW().coef(1e-3*float64(step), step)
			adamwSpan(x[0], x[1], x[2], x[3], &c)
			adamwUpdate(y[0], y[1], y[2], y[3], &c)
		}
		for k, what := range []string{"param", "grad", "exp_avg", "exp_avg_sq"} {
			for i := range x[k] {
				require.Equal(t, math.Float32bits(y[k][i]), math.Float32bits(x[k][i]), "n=%d %s[%d]: %v vs %v", n, what, i, x[k][i], y[k][i])
			}
		}
	}
}

// The pieces together, as a training script uses them: an F16 linear model
// (F32 masters), autograd's gradients collected with loss scaling and
// gradient accumulation over two micro-batches, clipping, AdamW on a linear
// schedule, EMA; the loss falls and the values follow the masters, rounded.
func TestTrainingLoop(t *testing.T) {
	b := nn.NewRandomBuilder(26, tensor.F16)
	lin := nn.NewLinear(b.Sub("proj"), 4, 3, true)
	ps, err := nn.NewParamSet(lin, b.Params())
	require.NoError(t, err)
	train, err := ps.Trainable()
	require.NoError(t, err)
	opt, err := NewAdamW(train, DefaultAdamW())
	require.NoError(t, err)
	sched, err := NewSchedule(1e-1, ScheduleConfig{Name: "linear", WarmupSteps: 5, TrainingSteps: 80})
	require.NoError(t, err)
	ema, err := NewEMA(train, DefaultEMA())
	require.NoError(t, err)
	scaler, err := NewLossScaler(DefaultLossScaler())
	require.NoError(t, err)
	acc, err := NewAccumulator(2)
	require.NoError(t, err)

	g := rng.New(27)
	target := []float32{0.5, -1, 2, 0, 1, -0.5, 0.25, 1.5, -2, 1, 0, 0.75} // [3, 4]
	batch := func() (x, y *tensor.Tensor) {
		xs := make([]float32, 8*4)
		g.Normal(xs, 0, 1)
		ys := make([]float32, 8*3)
		for r := range 8 {
			for o := range 3 {
				for i := range 4 {
					ys[r*3+o] += target[o*4+i] * xs[r*4+i]
				}
			}
		}
		return tensor.FromFloat32(xs, 8, 4), tensor.FromFloat32(ys, 8, 3)
	}
	var first, last float32
	step := 0
	for micro := range 160 {
		x, y := batch()
		loss := tensor.MSELoss(lin.Forward(x).To(tensor.F32), y)
		if micro == 0 {
			first = loss.Detach().Item()
		}
		last = loss.Detach().Item()
		require.NoError(t, tensor.Backward(scaler.ScaleLoss(loss)))
		require.NoError(t, ps.CollectGrads(acc.LossScale()))
		if !acc.Next() {
			continue
		}
		require.Nil(t, scaler.Unscale(train))
		_, err := ClipGradNorm(train, 1)
		require.NoError(t, err)
		res, err := scaler.Step(opt, sched.LR(step))
		require.NoError(t, err)
		require.False(t, res.Skipped)
		ps.ZeroGrad()
		ema.Step()
		step++
	}
	t.Logf("loss %.4f -> %.4f over %d steps", first, last, step)
	require.Less(t, last, first/20)
	w := ps.Get("proj.weight")
	require.Equal(t, tensor.F16, lin.Weight.DType())
	require.Equal(t, w.Master.Detach().To(tensor.F16).Float32s(), lin.Weight.Detach().Float32s())
	require.Equal(t, 80, ema.OptimizationStep())
}

package unet

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/roentgo/roentgo/internal/npy"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// The golden training runs of testdata/train_curve (made by
// scripts/golden_train_curve.py with PyTorch 1.13 from the tiny-sd1 U-Net,
// which the script first checks against diffusers' golden outputs and
// training step): the same loop run with roentgo must give the same losses,
// gradient norms and final parameters. The inputs of every step (noisy
// latents, noise target, timesteps) are read from the folder, so nothing
// depends on random number generators.

// curveDir is the folder of the golden training runs.
const curveDir = "testdata/train_curve"

// curveIndex is testdata/train_curve/index.json.
type curveIndex struct {
	ParamNames []string `json:"param_names"`
	ZeroGrad   []string `json:"zero_true_gradient_params"`
	Probes     []string `json:"probes"`
	MaxNorm    float64  `json:"max_grad_norm"`
	Optimizer  struct {
		Betas       [2]float64 `json:"betas"`
		Eps         float64    `json:"eps"`
		WeightDecay float64    `json:"weight_decay"`
	} `json:"optimizer"`
	Runs map[string]struct {
		Steps      int    `json:"steps"`
		DType      string `json:"dtype"`
		LRSchedule struct {
			Name          string  `json:"name"`
			Peak          float64 `json:"peak"`
			LR            float64 `json:"lr"`
			WarmupSteps   int     `json:"num_warmup_steps"`
			TrainingSteps int     `json:"num_training_steps"`
		} `json:"lr_schedule"`
		LossScaler *struct {
			InitScale      float64 `json:"init_scale"`
			GrowthFactor   float64 `json:"growth_factor"`
			BackoffFactor  float64 `json:"backoff_factor"`
			GrowthInterval int     `json:"growth_interval"`
		} `json:"loss_scaler"`
	} `json:"runs"`
}

// curveTol are the tolerances of one run's comparison.
type curveTol struct {
	// loss bounds |loss - golden| / golden at every step; gradNorm the same
	// for the total gradient norm before clipping.
	loss, gradNorm float64
	// update bounds, per parameter, | ||p - p0|| - golden | / golden ||p -
	// p0|| (the norm of the change training made, p0 the initial value),
	// and the same for the EMA shadow; probe bounds ||p - golden p|| /
	// ||golden p - p0|| for the probe tensors (the whole difference vector
	// against the size of the change).
	update, probe float64
}

// curveResult is what a run produced.
type curveResult struct {
	loss, gradNorm, scale []float32
	skipped               []bool
}

// runCurve trains the tiny U-Net as the golden run `run` did and compares
// every step and the final parameters with it.
func runCurve(t *testing.T, run string, checkpointing bool, tol curveTol) curveResult {
	start := time.Now()
	var ix curveIndex
	data, err := os.ReadFile(filepath.Join(curveDir, "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &ix))
	rc, ok := ix.Runs[run]
	require.True(t, ok, "run %s", run)
	dir := filepath.Join(curveDir, run)
	f32 := func(path string) ([]float32, []int) {
		a, err := npy.Read(path)
		require.NoError(t, err)
		v, err := a.Float32()
		require.NoError(t, err)
		return v, a.Shape
	}
	f64 := func(path string) []float64 {
		a, err := npy.Read(path)
		require.NoError(t, err)
		v, err := a.Float64()
		require.NoError(t, err)
		return v
	}

	// The model, in the run's dtype (16-bit values, F32 masters).
	dt := map[string]tensor.DType{"F32": tensor.F32, "BF16": tensor.BF16, "F16": tensor.F16}[rc.DType]
	model := filepath.Join(goldenDir(t), "model", "diffusers", "unet")
	cfg, err := LoadConfig(filepath.Join(model, "config.json"))
	require.NoError(t, err)
	src, closer, err := nn.OpenComponent(model, false)
	require.NoError(t, err)
	defer closer.Close()
	m, b, err := nn.Build(src, cfg, dt, New)
	require.NoError(t, err)
	m.GradientCheckpointing = checkpointing
	ps, err := nn.NewParamSet(m, b.Params())
	require.NoError(t, err)
	train, err := ps.Trainable()
	require.NoError(t, err)
	require.Len(t, train, len(ix.ParamNames))
	initial := map[string][]float32{}
	for _, p := range train {
		initial[p.Name] = append([]float32(nil), p.Master.F32Data()...)
	}
	opt, err := optim.NewAdamW(train, optim.AdamWConfig{Beta1: ix.Optimizer.Betas[0], Beta2: ix.Optimizer.Betas[1],
		Eps: ix.Optimizer.Eps, WeightDecay: ix.Optimizer.WeightDecay})
	require.NoError(t, err)
	ema, err := optim.NewEMA(train, optim.DefaultEMA())
	require.NoError(t, err)
	ls := rc.LRSchedule
	base := ls.Peak
	if ls.Name == "constant" {
		base = ls.LR
	}
	sched, err := optim.NewSchedule(base, optim.ScheduleConfig{Name: ls.Name, WarmupSteps: ls.WarmupSteps, TrainingSteps: ls.TrainingSteps})
	require.NoError(t, err)
	var scaler *optim.LossScaler
	if c := rc.LossScaler; c != nil {
		scaler, err = optim.NewLossScaler(optim.LossScalerConfig{InitScale: float32(c.InitScale), GrowthFactor: float32(c.GrowthFactor),
			BackoffFactor: float32(c.BackoffFactor), GrowthInterval: c.GrowthInterval})
		require.NoError(t, err)
	}

	// The inputs.
	noisy, _ := f32(filepath.Join(curveDir, "noisy_latents.npy"))
	noise, shape := f32(filepath.Join(curveDir, "noise.npy"))
	ts := testutil.ReadNpy(t, filepath.Join(curveDir, "timesteps.npy")).Int64s()
	ehs := testutil.ReadNpy(t, filepath.Join(curveDir, "encoder_hidden_states.npy"))
	batch := shape[1]
	n := len(noise) / shape[0]
	spike := make([]float32, rc.Steps)
	for k := range spike {
		spike[k] = 1
	}
	if scaler != nil {
		spike, _ = f32(filepath.Join(dir, "target_scale_per_step.npy"))
	}

	wantLoss, _ := f32(filepath.Join(dir, "loss_per_step.npy"))
	wantNorm, _ := f32(filepath.Join(dir, "grad_norm_per_step.npy"))
	wantLR := f64(filepath.Join(dir, "lr_per_step.npy"))
	wantDecay := f64(filepath.Join(dir, "ema_decay_per_step.npy"))
	require.Len(t, wantLoss, rc.Steps)
	var res curveResult
	var worstLoss, worstNorm float64
	worstAt := 0
	for k := 0; k < rc.Steps; k++ {
		lr := sched.LR(k)
		require.InDelta(t, wantLR[k], lr, 1e-12*ls.Peak+1e-12*ls.LR, "lr of step %d", k)
		x := tensor.FromFloat32(noisy[k*n:(k+1)*n], shape[1:]...)
		target := tensor.FromFloat32(noise[k*n:(k+1)*n], shape[1:]...)
		if spike[k] != 1 {
			target = target.MulScalar(spike[k]) // a power of two: exact
		}
		tk := make([]float32, batch)
		for i := range tk {
			tk[i] = float32(ts[k*batch+i])
		}
		loss := tensor.MSELoss(m.Forward(x, tensor.FromFloat32(tk, batch), ehs), target)
		l := loss.Item()
		res.loss = append(res.loss, l)
		if scaler != nil {
			res.scale = append(res.scale, scaler.Scale())
			require.NoError(t, tensor.Backward(scaler.ScaleLoss(loss)))
		} else {
			require.NoError(t, tensor.Backward(loss))
		}
		require.NoError(t, ps.CollectGrads(1))
		norm := float32(math.NaN())
		skipped := false
		if scaler != nil {
			if nf := scaler.Unscale(train); nf == nil {
				norm, err = optim.ClipGradNorm(train, ix.MaxNorm)
				require.NoError(t, err)
			}
			st, err := scaler.Step(opt, lr)
			require.NoError(t, err)
			skipped = st.Skipped
		} else {
			norm, err = optim.ClipGradNorm(train, ix.MaxNorm)
			require.NoError(t, err)
			require.NoError(t, opt.Step(lr))
		}
		res.gradNorm = append(res.gradNorm, norm)
		res.skipped = append(res.skipped, skipped)
		ps.ZeroGrad()
		d := ema.Step()
		require.InDelta(t, wantDecay[k], d, 1e-15, "EMA decay of step %d", k)

		el := math.Abs(float64(l)-float64(wantLoss[k])) / float64(wantLoss[k])
		if el > worstLoss {
			worstLoss, worstAt = el, k
		}
		require.LessOrEqual(t, el, tol.loss, "step %d: loss %v, golden %v", k, l, wantLoss[k])
		if math.IsNaN(float64(wantNorm[k])) {
			require.True(t, math.IsNaN(float64(norm)), "step %d: golden step skipped (non-finite gradients), got gradient norm %v", k, norm)
		} else {
			en := math.Abs(float64(norm)-float64(wantNorm[k])) / float64(wantNorm[k])
			worstNorm = max(worstNorm, en)
			require.LessOrEqual(t, en, tol.gradNorm, "step %d: gradient norm %v, golden %v", k, norm, wantNorm[k])
		}
	}
	t.Logf("%s (checkpointing %v): %d steps, loss %.6g -> %.6g; worst loss difference %.3g relative (step %d), gradient norm %.3g",
		run, checkpointing, rc.Steps, res.loss[0], res.loss[len(res.loss)-1], worstLoss, worstAt, worstNorm)

	// The final parameters and EMA shadows.
	zero := map[string]bool{}
	for _, name := range ix.ZeroGrad {
		zero[name] = true
	}
	wantUpd, wantEMAUpd := f64(filepath.Join(dir, "update_norm.npy")), f64(filepath.Join(dir, "ema_update_norm.npy"))
	wantParam, wantEMA := f64(filepath.Join(dir, "param_norm.npy")), f64(filepath.Join(dir, "ema_norm.npy"))
	norm2 := func(a, b []float32) float64 { // ||a - b||, b may be nil
		var s float64
		for i, v := range a {
			d := float64(v)
			if b != nil {
				d -= float64(b[i])
			}
			s += d * d
		}
		return math.Sqrt(s)
	}
	var worstUpd, worstEMA, worstP float64
	var worstUpdName string
	for i, name := range ix.ParamNames {
		p := ps.Get(name)
		require.NotNil(t, p, name)
		master, shadow := p.Master.F32Data(), ema.Shadow(name).F32Data()
		if zero[name] {
			continue // roundoff-driven updates: not comparable (see index.json)
		}
		// The parameter norms themselves (dominated by the initial values).
		ep := max(math.Abs(norm2(master, nil)-wantParam[i])/wantParam[i], math.Abs(norm2(shadow, nil)-wantEMA[i])/wantEMA[i])
		worstP = max(worstP, ep)
		require.LessOrEqual(t, ep, tol.update, "%s: ||p|| = %g, golden %g", name, norm2(master, nil), wantParam[i])
		eu := math.Abs(norm2(master, initial[name])-wantUpd[i]) / wantUpd[i]
		ee := math.Abs(norm2(shadow, initial[name])-wantEMAUpd[i]) / wantEMAUpd[i]
		if eu > worstUpd {
			worstUpd, worstUpdName = eu, name
		}
		worstEMA = max(worstEMA, ee)
		require.LessOrEqual(t, eu, tol.update, "%s: ||p - p0|| = %g, golden %g", name, norm2(master, initial[name]), wantUpd[i])
		require.LessOrEqual(t, ee, tol.update, "%s: EMA ||s - p0|| = %g, golden %g", name, norm2(shadow, initial[name]), wantEMAUpd[i])
	}
	var worstProbe float64
	for i, name := range ix.Probes {
		for _, kind := range []string{"param", "ema"} {
			want, _ := f32(filepath.Join(dir, "probe"+string(rune('0'+i))+"_"+kind+".npy"))
			got := ps.Get(name).Master.F32Data()
			if kind == "ema" {
				got = ema.Shadow(name).F32Data()
			}
			e := norm2(got, want) / norm2(want, initial[name])
			worstProbe = max(worstProbe, e)
			require.LessOrEqual(t, e, tol.probe, "probe %s (%s): ||got - golden|| / ||golden - initial||", name, kind)
		}
	}
	t.Logf("%s: final parameters: worst ||p-p0|| difference %.3g relative (%s), EMA %.3g; parameter norms %.3g; probes %.3g of the update; %v",
		run, worstUpd, worstUpdName, worstEMA, worstP, worstProbe, time.Since(start).Round(time.Millisecond))
	return res
}

// TestTrainCurve100Steps: 100 training steps of the tiny U-Net in F32
// (epsilon loss, AdamW with weight decay, cosine schedule with warm-up, peak
// lr 1e-3, gradient clipping at 1, EMA) reproduce PyTorch's run step by
// step, with and without GradientCheckpointing.
//
// Tolerances. Both sides compute in float32 but sum in different orders
// (GEMM blocking, reductions), so every gradient differs by a few units of
// float32 roundoff (~1e-6 of its norm, the single-step golden tests), and
// the trajectories could drift apart as training goes on (Adam normalises
// each update by the gradient's running RMS, so a relative gradient error
// becomes a relative update error of the same order, step after step).
// Measured on amd64 (AVX2): the losses never differ by more than 4e-7
// relative over the 100 steps (no visible growth), the gradient norms by
// 7e-7, each parameter's total change ||p - p0|| (and its EMA's) by 7e-6 of
// its norm, and the probe tensors' difference vectors are 2e-5 of the change
// training made. The bounds — 1e-5 for the loss and the gradient norm at
// every step, 1e-4 for the change norms and the parameter norms, 2e-4 for
// the probes — leave a factor 10-25 for other summation orders (other CPUs,
// -tags purego, other thread counts) and still catch small mistakes:
// leaving out the weight decay (p *= 1 - 1e-5 per step) fails at step 5
// (measured). Parameters whose true gradient is zero
// (the roundoff of their gradient drives Adam, see index.json) are left out
// of the parameter comparisons; they do not affect the output.
//
// Checkpointing recomputes every block in backward with the same kernels;
// autograd hands the outer graph the recomputed contributions one by one,
// so its gradients — and here all 100 losses — are those of the plain run
// bit for bit (measured); it is held to the same tolerances.
//
// Each run takes 10-20 s on two (shared) cores; -short skips them.
func TestTrainCurve100Steps(t *testing.T) {
	if testing.Short() {
		t.Skip("100 training steps: skipped in -short")
	}
	testutil.GoldenDir(t)
	tol := curveTol{loss: 1e-5, gradNorm: 1e-5, update: 1e-4, probe: 2e-4}
	var plain curveResult
	t.Run("plain", func(t *testing.T) { plain = runCurve(t, "f32", false, tol) })
	t.Run("checkpointing", func(t *testing.T) {
		ck := runCurve(t, "f32", true, tol)
		if plain.loss == nil {
			return
		}
		var worst float64
		for k := range ck.loss {
			worst = max(worst, math.Abs(float64(ck.loss[k])-float64(plain.loss[k]))/float64(plain.loss[k]))
		}
		t.Logf("checkpointing against plain roentgo: worst loss difference %.3g relative", worst)
		require.LessOrEqual(t, worst, tol.loss)
	})
}

// TestTrainMixedPrecision: training with the weights stored in 16 bits and
// F32 masters, against PyTorch doing exactly what roentgo does on the CPU:
// the model computes with the 16-bit values widened to F32 (F32 activations
// and gradients), the gradient with respect to the values is the master's,
// AdamW updates the master, and the master rounded to nearest even becomes
// the next value.
//
//   - bf16: 10 steps, constant lr 1e-3, clipping, EMA.
//   - f16: 12 steps with dynamic loss scaling (LossScaler against
//     GradScaler's rule written out in the script: initial scale 2^100,
//     growth 2 every 2 good steps, backoff 0.5). On the CPU the gradients
//     are F32, so the scaled backward overflows only near F32's range;
//     steps 3 and 8 train on a target multiplied by 2^40 (an outlier batch),
//     whose scaled gradients overflow by 9-10 octaves, while every other
//     step stays finite even at the largest F32 scale (margins recorded by
//     the script). Those two steps must be skipped (no update, scale
//     halved, good-step count reset) and the scale must grow after every
//     two good steps.
//
// Tolerances. Both implementations round the same masters to the same 16-bit
// values, so the runs differ only by the float32 roundoff of the compute, as
// in F32 — except where a master lies within that roundoff of a rounding
// boundary of the 16-bit grid and the two sides round it to neighbouring
// values: a change of one 16-bit unit (2^-8 relative for BF16, 2^-11 for
// F16) in a handful of weights. The bounds are therefore the F32 ones plus
// the 16-bit unit roundoff u: losses and gradient norms within u/4, updates
// within 2u, probes within 4u (BF16: 9.8e-4, 7.8e-3, 1.6e-2; F16: 1.2e-4,
// 9.8e-4, 2e-3). Measured: BF16 losses 3.0e-5, gradient norms 3.5e-5,
// updates 2.5e-4, probes 6.4e-4; F16 6.8e-6, 5.9e-6, 5.6e-5, 2.1e-4. The
// bounds still tell the 16-bit runs from F32 ones: training with F32
// weights instead fails both runs at step 1 (loss off by 1.4e-3 and
// 1.6e-4 relative).
func TestTrainMixedPrecision(t *testing.T) {
	testutil.GoldenDir(t)
	const uBF16, uF16 = 1.0 / 256, 1.0 / 2048
	t.Run("bf16", func(t *testing.T) {
		runCurve(t, "bf16", false, curveTol{loss: uBF16 / 4, gradNorm: uBF16 / 4, update: 2 * uBF16, probe: 4 * uBF16})
	})
	t.Run("f16", func(t *testing.T) {
		res := runCurve(t, "f16", false, curveTol{loss: uF16 / 4, gradNorm: uF16 / 4, update: 2 * uF16, probe: 4 * uF16})
		if res.loss == nil {
			return
		}
		a, err := npy.Read(filepath.Join(curveDir, "f16", "skipped_per_step.npy"))
		require.NoError(t, err)
		skipped, err := a.Uint8()
		require.NoError(t, err)
		a, err = npy.Read(filepath.Join(curveDir, "f16", "scale_per_step.npy"))
		require.NoError(t, err)
		scales, err := a.Float32()
		require.NoError(t, err)
		nSkipped := 0
		for k := range res.loss {
			require.Equal(t, skipped[k] == 1, res.skipped[k], "step %d: skipped", k)
			require.Equal(t, scales[k], res.scale[k], "step %d: loss scale", k)
			if res.skipped[k] {
				nSkipped++
			}
		}
		require.Equal(t, 2, nSkipped, "the golden run skips two steps")
	})
}

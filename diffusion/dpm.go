package diffusion

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// dpm is diffusers' DPMSolverMultistepScheduler with algorithm_type
// "dpmsolver++" and solver_type "midpoint" (Lu et al. 2022, DPM-Solver++(2M)):
// with alpha_t = sqrt(acp), sigma_t = sqrt(1-acp), lambda = log(alpha/sigma),
// h = lambda_t - lambda_s and the data predictions D0 (this step) and D1 =
// (D0 - previous) h / h_prev,
//
//	x_t = (sigma_t/sigma_s) x - alpha_t (e^-h - 1) (D0 + D1/2)
//
// The first step, and the last one when lower_order_final applies (fewer
// than 15 steps), are first order (D1 = 0). With use_karras_sigmas the
// timesteps are the Karras noise levels rounded to integer timesteps, with
// duplicates dropped.
type dpm struct {
	base
	alphaT, sigmaT, lambdaT []float32
	prevX0                  *tensor.Tensor
	lowerOrderNums          int
}

func newDPM(cfg Config, name string) (*dpm, error) {
	if cfg.AlgorithmType != "dpmsolver++" {
		return nil, fmt.Errorf("diffusion: %s: algorithm_type %q is not supported (expected dpmsolver++)", name, cfg.AlgorithmType)
	}
	if cfg.SolverType != "midpoint" {
		return nil, fmt.Errorf("diffusion: %s: solver_type %q is not supported (expected midpoint)", name, cfg.SolverType)
	}
	if cfg.SolverOrder != 1 && cfg.SolverOrder != 2 {
		return nil, fmt.Errorf("diffusion: %s: solver_order %d is not supported (expected 1 or 2)", name, cfg.SolverOrder)
	}
	b, err := newBase(name, cfg)
	if err != nil {
		return nil, err
	}
	s := &dpm{base: b}
	n := len(b.sched.AlphasCumprod)
	s.alphaT = make([]float32, n)
	s.sigmaT = make([]float32, n)
	s.lambdaT = make([]float32, n)
	for i, a := range b.sched.AlphasCumprod {
		s.alphaT[i] = sqrt32(a)
		s.sigmaT[i] = sqrt32(1 - a)
		s.lambdaT[i] = log32(s.alphaT[i]) - log32(s.sigmaT[i])
	}
	return s, nil
}

// SetTimesteps sets DPM-Solver's timesteps (timesteps). It fails when a
// leading timestep, n (T div (n+1)) + steps_offset at most, would be T or
// more (checkIndexable).
func (s *dpm) SetTimesteps(n int) error {
	if err := checkSteps(n, s.T()); err != nil {
		return err
	}
	ts := s.timesteps(n)
	if err := checkIndexable(s.name, n, s.cfg.StepsOffset, s.T(), ts, s.timesteps); err != nil {
		return err
	}
	s.prevX0.Release()
	s.prevX0 = nil
	s.lowerOrderNums = 0
	s.ts = ts
	s.n = len(ts)
	return nil
}

// timesteps returns the timesteps of n steps, duplicates dropped.
func (s *dpm) timesteps(n int) []float64 {
	T := s.T()
	var ts []float64
	switch sp := s.spacing(SpacingLinspace); sp {
	case SpacingLinspace:
		ts = npLinspace(0, float64(T-1), n+1)
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i])
		}
		reverse(ts)
		ts = ts[:n]
	case SpacingLeading:
		ratio := T / (n + 1)
		for i := n; i >= 1; i-- {
			ts = append(ts, float64(i*ratio+s.cfg.StepsOffset))
		}
		// diffusers: arange(0, n+1)*ratio reversed, without the last (0).
	case SpacingTrailing:
		ts = spacedTimesteps(SpacingTrailing, T, n, 0, true)
	}
	if s.cfg.UseKarrasSigmas {
		sig := trainSigmas(s.sched)
		ls := logSigmas32(sig)
		// diffusers passes the ascending training sigmas, so the ramp runs
		// from sigma(0) up to sigma(T-1); the timesteps are then flipped.
		k := karrasSigmas(float64(sig[len(sig)-1]), float64(sig[0]), n)
		ts = make([]float64, n)
		for i, v := range k {
			ts[n-1-i] = math.RoundToEven(sigmaToT(v, ls))
		}
	}
	// Drop duplicates, keeping first occurrences in order (np.unique with
	// return_index, sorted back).
	seen := map[float64]bool{}
	uniq := ts[:0:0]
	for _, t := range ts {
		if !seen[t] {
			seen[t] = true
			uniq = append(uniq, t)
		}
	}
	return uniq
}

func (s *dpm) Step(out *tensor.Tensor, tf float64, x *tensor.Tensor, _ tensor.RandSource) StepOutput {
	t := intTimestep("dpm.Step", tf, s.T())
	idx := len(s.ts) - 1
	for i, v := range s.ts {
		if v == tf {
			idx = i
			break
		}
	}
	prevT := 0
	if idx < len(s.ts)-1 {
		prevT = int(s.ts[idx+1])
	}
	lowerFinal := idx == len(s.ts)-1 && s.cfg.LowerOrderFinal && len(s.ts) < 15

	// convert_model_output: the data prediction x0.
	var x0 *tensor.Tensor
	switch s.cfg.PredictionType {
	case Epsilon:
		m := out.MulScalar(s.sigmaT[t])
		x0 = x.Sub(m)
		m.Release()
		divScalarInPlace(x0, s.alphaT[t])
	case SamplePrediction:
		x0 = out.Clone()
	case VPrediction:
		x0 = lin2(s.alphaT[t], x, -s.sigmaT[t], out)
	}

	lt, ls := s.lambdaT[prevT], s.lambdaT[t]
	at := s.alphaT[prevT]
	st, ss := s.sigmaT[prevT], s.sigmaT[t]
	h := lt - ls
	c := at * (exp32(-h) - 1)
	prev := x.MulScalar(st / ss)
	if s.cfg.SolverOrder == 1 || s.lowerOrderNums < 1 || lowerFinal || s.prevX0 == nil {
		addScaledInPlace(prev, -c, x0)
	} else {
		// Second order: s1 is the previous timestep of the schedule.
		s1 := int(s.ts[idx-1])
		h0 := ls - s.lambdaT[s1]
		r0 := h0 / h
		d1 := x0.Sub(s.prevX0)
		d1.MulScalarInPlace(1 / r0)
		addScaledInPlace(prev, -c, x0)
		addScaledInPlace(prev, -(0.5 * c), d1)
		d1.Release()
	}
	if s.lowerOrderNums < s.cfg.SolverOrder {
		s.lowerOrderNums++
	}
	s.prevX0.Release()
	s.prevX0 = retain(x0)
	return StepOutput{PrevSample: prev, PredOriginal: x0}
}

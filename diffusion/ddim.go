package diffusion

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// ddim is diffusers' DDIMScheduler (Song et al. 2021, eq. 12): with a =
// acp[t], a' = acp[t - T div n] (or the final alpha: 1 with
// set_alpha_to_one, else acp[0]), predicted x0 and eps,
//
//	sigma = eta sqrt((1-a')/(1-a) (1 - a/a'))
//	x_{t'} = sqrt(a') x0 + sqrt(1 - a' - sigma^2) eps + sigma z
type ddim struct {
	base
	eta float64
}

func newDDIM(cfg Config, eta float64) (*ddim, error) {
	if eta < 0 {
		return nil, fmt.Errorf("diffusion: ddim eta is %v, expected >= 0", eta)
	}
	b, err := newBase("ddim", cfg)
	if err != nil {
		return nil, err
	}
	return &ddim{base: b, eta: eta}, nil
}

// SetTimesteps sets diffusers' DDIM timesteps (leading spacing by default:
// (n-1, ..., 1, 0) (T div n) + steps_offset). Each step goes from t to
// t - T div n, the last one to the final alpha (1 with set_alpha_to_one,
// else alphas_cumprod[0]) when that is below 0: with steps_offset 1 and
// T div n = 1 the last step goes from 1 to 0 and the final alpha is unused.
// It fails when the first timestep would be T or more (n = T with
// steps_offset 1), where diffusers fails at the first step (checkIndexable).
func (s *ddim) SetTimesteps(n int) error {
	if err := checkSteps(n, s.T()); err != nil {
		return err
	}
	ts := s.timesteps(n)
	if err := checkIndexable(s.name, n, s.cfg.StepsOffset, s.T(), ts, s.timesteps); err != nil {
		return err
	}
	s.n = n
	s.ts = ts
	return nil
}

func (s *ddim) timesteps(n int) []float64 {
	return spacedTimesteps(s.spacing(SpacingLeading), s.T(), n, s.cfg.StepsOffset, true)
}

// finalAlpha is the alphas_cumprod after the last step.
func finalAlpha(cfg Config, sc *Schedule) float32 {
	if cfg.SetAlphaToOne {
		return 1
	}
	return sc.AlphasCumprod[0]
}

func (s *ddim) Step(out *tensor.Tensor, tf float64, x *tensor.Tensor, g tensor.RandSource) StepOutput {
	t := intTimestep("ddim.Step", tf, s.T())
	ratio := 1
	if s.n > 0 {
		ratio = s.T() / s.n
	}
	prev := t - ratio
	acp := s.sched.AlphasCumprod
	a := acp[t]
	aPrev := finalAlpha(s.cfg, s.sched)
	if prev >= 0 {
		aPrev = acp[prev]
	}
	b := 1 - a
	sa, sb := sqrt32(a), sqrt32(b)

	var x0, eps *tensor.Tensor
	switch s.cfg.PredictionType {
	case Epsilon:
		x0 = predictX0(Epsilon, a, out, x)
		eps = retain(out)
	case SamplePrediction:
		x0 = out.Clone()
		eps = divScalarInPlace(lin2(1, x, -sa, x0), sb)
	case VPrediction:
		x0 = lin2(sa, x, -sb, out)
		eps = lin2(sa, out, sb, x)
	}
	if s.cfg.ClipSample {
		r := float32(s.cfg.ClipSampleRange)
		c := x0.Clamp(-r, r)
		x0.Release()
		x0 = c
	}
	bPrev := 1 - aPrev
	variance := bPrev / b * (1 - a/aPrev)
	std := float32(s.eta) * sqrt32(variance)
	dir := sqrt32(1 - aPrev - std*std)
	prevSample := lin2(sqrt32(aPrev), x0, dir, eps)
	eps.Release()
	if s.eta > 0 {
		z := noiseLike("ddim.Step", g, out)
		addScaledInPlace(prevSample, std, z)
		z.Release()
	}
	return StepOutput{PrevSample: prevSample, PredOriginal: x0}
}

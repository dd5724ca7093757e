package diffusion

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// ddpm is diffusers' DDPMScheduler (Ho et al. 2020, ancestral sampling with
// the posterior variance): from x_t and the predicted x0,
//
//	x_{t'} = sqrt(a')(1 - a/a') / (1-a) x0 + sqrt(a/a') (1-a') / (1-a) x_t + sigma z
//
// with a = acp[t], a' = acp[t'] (1 past the end), t' = t - T div n, and
// sigma^2 = (1-a')/(1-a) (1 - a/a') for fixed_small (beta_t for fixed_large);
// no noise is added at t = 0.
type ddpm struct {
	base
}

func newDDPM(cfg Config) (*ddpm, error) {
	if !oneOf(cfg.VarianceType, varianceTypes) {
		return nil, badName("variance_type", cfg.VarianceType, varianceTypes)
	}
	b, err := newBase("ddpm", cfg)
	if err != nil {
		return nil, err
	}
	return &ddpm{base: b}, nil
}

// SetTimesteps sets DDPM's timesteps: leading spacing from 0 by default
// (diffusers 0.16.1's DDPM has no steps_offset); with an explicit
// timestep_spacing, that spacing with steps_offset (later diffusers). It
// fails when a leading timestep would be T or more (checkIndexable).
func (s *ddpm) SetTimesteps(n int) error {
	if err := checkSteps(n, s.T()); err != nil {
		return err
	}
	ts := s.timesteps(n)
	if err := checkIndexable(s.name, n, s.offset(), s.T(), ts, s.timesteps); err != nil {
		return err
	}
	s.n = n
	s.ts = ts
	return nil
}

// offset is the steps_offset DDPM applies: none without an explicit
// timestep_spacing.
func (s *ddpm) offset() int {
	if s.cfg.TimestepSpacing == "" {
		return 0
	}
	return s.cfg.StepsOffset
}

func (s *ddpm) timesteps(n int) []float64 {
	return spacedTimesteps(s.spacing(SpacingLeading), s.T(), n, s.offset(), true)
}

func (s *ddpm) stepRatio() int {
	if s.n == 0 {
		return 1
	}
	return s.T() / s.n
}

func (s *ddpm) Step(out *tensor.Tensor, tf float64, x *tensor.Tensor, g tensor.RandSource) StepOutput {
	t := intTimestep("ddpm.Step", tf, s.T())
	prev := t - s.stepRatio()
	acp := s.sched.AlphasCumprod
	a := acp[t]
	aPrev := float32(1)
	if prev >= 0 {
		aPrev = acp[prev]
	}
	b := 1 - a
	bPrev := 1 - aPrev
	curAlpha := a / aPrev
	curBeta := 1 - curAlpha

	x0 := predictX0(s.cfg.PredictionType, a, out, x)
	if s.cfg.ClipSample {
		r := float32(s.cfg.ClipSampleRange)
		c := x0.Clamp(-r, r)
		x0.Release()
		x0 = c
	}
	cx0 := sqrt32(aPrev) * curBeta / b
	cx := sqrt32(curAlpha) * bPrev / b
	prevSample := lin2(cx0, x0, cx, x)
	if t > 0 {
		z := noiseLike("ddpm.Step", g, out)
		var std float32
		v := bPrev / b * curBeta
		if v < 1e-20 {
			v = 1e-20
		}
		switch s.cfg.VarianceType {
		case "fixed_small":
			std = sqrt32(v)
		case "fixed_small_log":
			std = exp32(0.5 * log32(v))
		case "fixed_large":
			std = sqrt32(curBeta)
		case "fixed_large_log":
			std = exp32(0.5 * log32(curBeta))
		default:
			panic(fmt.Sprintf("diffusion: ddpm: variance type %q", s.cfg.VarianceType))
		}
		addScaledInPlace(prevSample, std, z)
		z.Release()
	}
	return StepOutput{PrevSample: prevSample, PredOriginal: x0}
}

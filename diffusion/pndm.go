package diffusion

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// pndm is diffusers' PNDMScheduler with skip_prk_steps (Liu et al. 2022,
// pseudo linear multistep, as Stable Diffusion configures it): the model
// outputs of the last steps are combined with Adams–Bashforth weights
// (1), (3, -1)/2, (23, -16, 5)/12, (55, -59, 37, -9)/24, and the sample is
// moved with the transfer
//
//	x' = sqrt(a'/a) x - (a' - a) e / (a sqrt(1-a') + sqrt(a (1-a) a'))
//
// The first step is taken twice (N+1 timesteps with the second repeated):
// once with the first output, then again from the same sample with the
// mean of the first two outputs.
type pndm struct {
	base
	ets       []*tensor.Tensor // last model outputs, oldest first (at most 4)
	counter   int
	curSample *tensor.Tensor
}

func newPNDM(cfg Config) (*pndm, error) {
	if !cfg.SkipPRKSteps {
		return nil, fmt.Errorf("diffusion: pndm needs skip_prk_steps = true (only the PLMS steps are implemented, as Stable Diffusion configures it)")
	}
	if cfg.PredictionType == SamplePrediction {
		return nil, fmt.Errorf("diffusion: pndm supports prediction_type epsilon and v_prediction, not %q", cfg.PredictionType)
	}
	b, err := newBase("pndm", cfg)
	if err != nil {
		return nil, err
	}
	return &pndm{base: b}, nil
}

func (s *pndm) reset() {
	for _, e := range s.ets {
		e.Release()
	}
	s.ets = s.ets[:0]
	s.curSample.Release()
	s.curSample = nil
	s.counter = 0
}

// SetTimesteps sets diffusers' PLMS timesteps (leading spacing by default:
// (n-1, ..., 1, 0) (T div n) + steps_offset, with the second repeated). It
// fails when the first timestep would be T or more (n = T with steps_offset
// 1), where diffusers fails at the first step (checkIndexable).
func (s *pndm) SetTimesteps(n int) error {
	if err := checkSteps(n, s.T()); err != nil {
		return err
	}
	desc := s.descending(n)
	if err := checkIndexable(s.name, n, s.cfg.StepsOffset, s.T(), desc, s.descending); err != nil {
		return err
	}
	s.reset()
	s.n = n
	// plms: ascending _timesteps[:-1], _timesteps[-2], _timesteps[-1],
	// reversed: the second timestep appears twice.
	// With n = 1 there is nothing to repeat.
	ts := make([]float64, 0, n+1)
	ts = append(ts, desc[0])
	if n > 1 {
		ts = append(ts, desc[1])
	}
	s.ts = append(ts, desc[1:]...)
	return nil
}

// descending returns the n timesteps of the spacing, without the repeat.
func (s *pndm) descending(n int) []float64 {
	return spacedTimesteps(s.spacing(SpacingLeading), s.T(), n, s.cfg.StepsOffset, true)
}

func (s *pndm) Step(out *tensor.Tensor, tf float64, x *tensor.Tensor, _ tensor.RandSource) StepOutput {
	t := intTimestep("pndm.Step", tf, s.T())
	ratio := 1
	if s.n > 0 {
		ratio = s.T() / s.n
	}
	prev := t - ratio
	if s.counter != 1 {
		if len(s.ets) == 4 {
			s.ets[0].Release()
			copy(s.ets, s.ets[1:])
			s.ets = s.ets[:3]
		}
		s.ets = append(s.ets, retain(out))
	} else {
		prev = t
		t += ratio
	}
	var e *tensor.Tensor
	ets := s.ets
	k := len(ets)
	sample := x
	switch {
	case k == 1 && s.counter == 0:
		e = retain(out)
		s.curSample.Release()
		s.curSample = retain(x)
	case k == 1 && s.counter == 1:
		e = out.Add(ets[0])
		divScalarInPlace(e, 2)
		sample = s.curSample
	case k == 2:
		e = lin2(3, ets[1], -1, ets[0])
		divScalarInPlace(e, 2)
	case k == 3:
		e = lin2(23, ets[2], -16, ets[1])
		addScaledInPlace(e, 5, ets[0])
		divScalarInPlace(e, 12)
	default:
		e = lin2(55, ets[3], -59, ets[2])
		addScaledInPlace(e, 37, ets[1])
		addScaledInPlace(e, -9, ets[0])
		e.MulScalarInPlace(float32(1.0 / 24))
	}
	prevSample := s.prevSample(sample, t, prev, e)
	e.Release()
	if k == 1 && s.counter == 1 {
		s.curSample.Release()
		s.curSample = nil
	}
	s.counter++
	return StepOutput{PrevSample: prevSample}
}

// prevSample is PNDM's transfer from timestep t to prev with model output e.
func (s *pndm) prevSample(x *tensor.Tensor, t, prev int, e *tensor.Tensor) *tensor.Tensor {
	acp := s.sched.AlphasCumprod
	a := acp[t]
	aPrev := finalAlpha(s.cfg, s.sched)
	if prev >= 0 {
		aPrev = acp[prev]
	}
	b := 1 - a
	bPrev := 1 - aPrev
	if s.cfg.PredictionType == VPrediction {
		e = lin2(sqrt32(a), e, sqrt32(b), x)
		defer e.Release()
	}
	sampleCoeff := sqrt32(aPrev / a)
	denom := a*sqrt32(bPrev) + sqrt32(a*b*aPrev)
	r := x.MulScalar(sampleCoeff)
	m := e.MulScalar(aPrev - a)
	divScalarInPlace(m, denom)
	r.SubInPlace(m)
	m.Release()
	return r
}

package diffusion

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// pndm is diffusers' PNDMScheduler (Liu et al. 2022, "Pseudo Numerical
// Methods for Diffusion Models on Manifolds"): the model outputs of the
// last steps are combined with Adams–Bashforth weights (1), (3, -1)/2,
// (23, -16, 5)/12, (55, -59, 37, -9)/24 (pseudo linear multistep, PLMS),
// and the sample is moved with the transfer
//
//	x' = sqrt(a'/a) x - (a' - a) e / (a sqrt(1-a') + sqrt(a (1-a) a'))
//
// With skip_prk_steps (as Stable Diffusion configures it) the first step
// is taken twice (N+1 timesteps with the second repeated): once with the
// first output, then again from the same sample with the mean of the first
// two outputs.
//
// Without skip_prk_steps the first three steps are pseudo Runge-Kutta
// steps (PRK, the paper's warm-up), as diffusers 0.16.1 takes them: with
// r = T/N and h = r/2 (integer division) and the ascending timesteps
// t_0 < ... < t_{N-1}, the last four give the PRK list
// [t+h, t+h, t, t, ...] (12 entries: t_{N-1}+h is dropped, the others
// doubled, the first and last copy trimmed; descending), followed by
// t_{N-4}, ..., t_0 for PLMS (N+9 timesteps in all). Each group of four
// calls k = 0..3 from sample x at timestep t (the group's first entry)
// evaluates the model at t, t-h, t-h, t-r and moves from x with
// e_0 (to t-h), e_1 (to t-h), e_2 (to t-r), then with
// e = e_0/6 + e_1/3 + e_2/3 + e_3/6 (to t-r), the classical fourth-order
// Runge-Kutta weights; the outputs e_0 of the three groups start the PLMS
// history, so the first PLMS step is already fourth order.
type pndm struct {
	base
	ets       []*tensor.Tensor // last model outputs, oldest first (at most 4)
	counter   int
	curSample *tensor.Tensor
	prk       []float64      // the PRK timesteps (without skip_prk_steps)
	curOutput *tensor.Tensor // the PRK step's weighted sum of outputs so far
}

// prkOrder is PNDM's pndm_order: the PRK warm-up uses the last 4 timesteps.
const prkOrder = 4

func newPNDM(cfg Config) (*pndm, error) {
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
	s.curOutput.Release()
	s.curOutput = nil
	s.counter = 0
}

// SetTimesteps sets diffusers' PLMS timesteps (leading spacing by default:
// (n-1, ..., 1, 0) (T div n) + steps_offset, with the second repeated), or
// without skip_prk_steps the PRK timesteps followed by the PLMS ones (see
// pndm). It fails when the first timestep would be T or more (n = T with
// steps_offset 1), where diffusers fails at the first step
// (checkIndexable), and, without skip_prk_steps, for fewer than 4 steps,
// where diffusers' set_timesteps fails (numpy cannot broadcast the PRK
// offsets).
func (s *pndm) SetTimesteps(n int) error {
	if err := checkSteps(n, s.T()); err != nil {
		return err
	}
	if !s.cfg.SkipPRKSteps && n < prkOrder {
		return fmt.Errorf("diffusion: pndm with skip_prk_steps = false needs at least %d inference steps (its Runge-Kutta warm-up spans the last %d timesteps), got %d; use more steps or skip_prk_steps = true", prkOrder, prkOrder, n)
	}
	desc := s.descending(n)
	if err := checkIndexable(s.name, n, s.cfg.StepsOffset, s.T(), desc, s.descending); err != nil {
		return err
	}
	s.reset()
	s.n = n
	if !s.cfg.SkipPRKSteps {
		s.prk = prkTimesteps(desc, s.T()/n/2)
		s.ts = append(append([]float64{}, s.prk...), desc[prkOrder-1:]...)
		return nil
	}
	s.prk = nil
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

// prkTimesteps returns diffusers' prk_timesteps for the descending
// timesteps desc and the half step h: of the ascending last four, each t
// and t+h, without the last t+h, every entry doubled, the first and last
// copy dropped, reversed.
func prkTimesteps(desc []float64, h int) []float64 {
	var pairs []float64
	for i := prkOrder - 1; i >= 0; i-- { // ascending
		pairs = append(pairs, desc[i], desc[i]+float64(h))
	}
	pairs = pairs[:len(pairs)-1]
	var doubled []float64
	for _, t := range pairs {
		doubled = append(doubled, t, t)
	}
	doubled = doubled[1 : len(doubled)-1]
	out := make([]float64, len(doubled))
	for i, t := range doubled {
		out[len(doubled)-1-i] = t
	}
	return out
}

// descending returns the n timesteps of the spacing, without the repeat.
func (s *pndm) descending(n int) []float64 {
	return spacedTimesteps(s.spacing(SpacingLeading), s.T(), n, s.cfg.StepsOffset, true)
}

func (s *pndm) Step(out *tensor.Tensor, tf float64, x *tensor.Tensor, _ tensor.RandSource) StepOutput {
	t := intTimestep("pndm.Step", tf, s.T())
	if !s.cfg.SkipPRKSteps && s.counter < len(s.prk) {
		return s.stepPRK(out, t, x)
	}
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

// stepPRK is diffusers' step_prk: call k = counter mod 4 of a Runge-Kutta
// step that starts from the sample of its first call, at the group's first
// timestep; the history of outputs gets the first call's.
func (s *pndm) stepPRK(out *tensor.Tensor, t int, x *tensor.Tensor) StepOutput {
	half := s.T() / s.n / 2
	prev := t - half
	if s.counter%2 == 1 {
		prev = t
	}
	from := int(s.prk[s.counter/prkOrder*prkOrder])
	var e *tensor.Tensor
	switch s.counter % 4 {
	case 0:
		// cur_model_output = 0 + out/6
		s.curOutput.Release()
		s.curOutput = out.MulScalar(float32(1.0 / 6))
		if len(s.ets) == 4 {
			s.ets[0].Release()
			copy(s.ets, s.ets[1:])
			s.ets = s.ets[:3]
		}
		s.ets = append(s.ets, retain(out))
		s.curSample.Release()
		s.curSample = retain(x)
		e = retain(out)
	case 1, 2:
		addScaledInPlace(s.curOutput, float32(1.0/3), out)
		e = retain(out)
	default:
		m := out.MulScalar(float32(1.0 / 6))
		e = s.curOutput.Add(m)
		m.Release()
		s.curOutput.Release()
		s.curOutput = nil
	}
	cur := s.curSample
	if cur == nil { // not reached: every group starts at counter%4 == 0
		cur = x
	}
	prevSample := s.prevSample(cur, from, prev, e)
	e.Release()
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

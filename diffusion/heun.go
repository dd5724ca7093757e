package diffusion

import (
	"github.com/roentgo/roentgo/tensor"
)

// heun is diffusers' HeunDiscreteScheduler (Karras et al. 2022, Algorithm 1
// with s_churn = 0): every step but the last evaluates the model twice, at
// sigma and at sigma', and moves with the mean of the two slopes. The
// timesteps are t0, t1, t1, t2, t2, ..., t_{n-1}, t_{n-1} (2n-1 model
// calls); the sigmas sigma0, sigma1, sigma1, ..., sigma_{n-1}, sigma_{n-1}, 0.
// As in diffusers, the step at a repeated timestep is the first-order
// (predictor) step when the previous one completed a pair, which makes the
// last call an Euler step to 0.
type heun struct {
	sigmaBase
	prevD, sample *tensor.Tensor
	dt            float32
	first         bool
}

func newHeun(cfg Config) (*heun, error) {
	b, err := newSigmaBase("heun", cfg)
	if err != nil {
		return nil, err
	}
	return &heun{sigmaBase: b, first: true}, nil
}

func (s *heun) reset() {
	s.prevD.Release()
	s.sample.Release()
	s.prevD, s.sample = nil, nil
	s.first = true
}

func (s *heun) SetTimesteps(n int) error {
	if err := s.setSigmas(n, s.cfg.UseKarrasSigmas, s.cfg.UseKarrasSigmas); err != nil {
		return err
	}
	s.reset()
	ts := make([]float64, 0, 2*n-1)
	sig := make([]float32, 0, 2*n)
	ts = append(ts, s.ts[0])
	sig = append(sig, s.sigmas[0])
	for i := 1; i < n; i++ {
		ts = append(ts, s.ts[i], s.ts[i])
		sig = append(sig, s.sigmas[i], s.sigmas[i])
	}
	sig = append(sig, 0)
	s.ts, s.sigmas = ts, sig
	for _, v := range sig {
		s.initSig = max(s.initSig, float64(v))
	}
	return nil
}

func (s *heun) Order() int { return 2 }

// indexFor is diffusers' index_for_timestep: the last occurrence of t in a
// first-order step, the first occurrence in a second-order one.
func (s *heun) indexFor(op string, t float64) int {
	i := s.index(op, t)
	if s.first && i+1 < len(s.ts) && s.ts[i+1] == t {
		i++
	}
	return i
}

func (s *heun) ScaleModelInput(x *tensor.Tensor, t float64) *tensor.Tensor {
	return scaleBySigma(x, s.sigmas[s.indexFor("ScaleModelInput", t)])
}

func (s *heun) Step(out *tensor.Tensor, t float64, x *tensor.Tensor, _ tensor.RandSource) StepOutput {
	i := s.indexFor("Step", t)
	var sigma, next float32
	if s.first {
		sigma, next = s.sigmas[i], s.sigmas[i+1]
	} else {
		sigma, next = s.sigmas[i-1], s.sigmas[i]
	}
	sigmaIn := sigma
	if !s.first {
		sigmaIn = next
	}
	x0 := sigmaX0(s.cfg.PredictionType, sigmaIn, out, x)
	d := x.Sub(x0)
	x0.Release()
	var prev *tensor.Tensor
	if s.first {
		divScalarInPlace(d, sigma)
		s.dt = next - sigma
		s.prevD.Release()
		s.sample.Release()
		s.prevD, s.sample = d, retain(x)
		prev = d.MulScalar(s.dt)
		prev.AddInPlace(x)
		s.first = false
	} else {
		divScalarInPlace(d, next)
		d.AddInPlace(s.prevD)
		divScalarInPlace(d, 2)
		prev = d.MulScalarInPlace(s.dt)
		prev.AddInPlace(s.sample)
		s.prevD.Release()
		s.sample.Release()
		s.prevD, s.sample = nil, nil
		s.first = true
	}
	return StepOutput{PrevSample: prev}
}

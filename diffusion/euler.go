package diffusion

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// sigmaBase is what the sigma (Karras/k-diffusion) schedulers share: the
// latents are x0 + sigma eps, the model sees x / sqrt(sigma^2 + 1), and the
// timesteps index a float32 sigma table with a final 0.
type sigmaBase struct {
	base
	trainSig []float32 // sqrt((1-acp)/acp), ascending with t
	sigmas   []float32 // per timestep, plus a final 0
	initSig  float64
}

func newSigmaBase(name string, cfg Config) (sigmaBase, error) {
	if cfg.InterpolationType != "" && cfg.InterpolationType != "linear" {
		return sigmaBase{}, fmt.Errorf("diffusion: %s: interpolation_type %q is not supported (expected linear)", name, cfg.InterpolationType)
	}
	b, err := newBase(name, cfg)
	if err != nil {
		return sigmaBase{}, err
	}
	s := sigmaBase{base: b, trainSig: trainSigmas(b.sched)}
	// diffusers 0.16.1 sets init_noise_sigma = max of the training sigmas in
	// the constructor (it does not depend on the spacing).
	s.initSig = float64(s.trainSig[len(s.trainSig)-1])
	for _, v := range s.trainSig {
		s.initSig = math.Max(s.initSig, float64(v))
	}
	return s, nil
}

// setSigmas computes the timesteps and sigmas of n steps (sigmasFor); with
// distinct set (LMS, and every scheduler with Karras sigmas) it fails,
// changing nothing, when two noise levels coincide (checkDistinctSigmas).
func (s *sigmaBase) setSigmas(n int, karras, distinct bool) error {
	if err := checkSteps(n, s.T()); err != nil {
		return err
	}
	ts, sig := s.sigmasFor(n, karras)
	if distinct {
		if err := s.checkDistinctSigmas(n, karras, ts, sig); err != nil {
			return err
		}
	}
	s.n = n
	s.ts = ts
	s.sigmas = sig
	return nil
}

// checkDistinctSigmas returns an error when two of the n noise levels sig
// are equal. Timesteps at or past the end of the training schedule (leading
// spacing with a steps_offset) all get its last noise level: LMS then
// divides by the zero difference of two levels (n = T with steps_offset 1;
// diffusers gets inf and NaN), and Karras sigmas collapse to one level with
// one timestep repeated (every timestep past the end, steps_offset T-1),
// which the timestep lookups cannot tell apart. The error suggests the
// largest step count below n that avoids it.
func (s *sigmaBase) checkDistinctSigmas(n int, karras bool, ts []float64, sig []float32) error {
	i := repeatedSigma(sig[:n])
	if i < 0 {
		return nil
	}
	hint := "no step count gives distinct noise levels with this steps_offset: use a smaller one"
	for m := n - 1; m >= 1; m-- {
		if _, sm := s.sigmasFor(m, karras); repeatedSigma(sm[:m]) < 0 {
			hint = stepCount(m) + " would work"
			break
		}
	}
	return fmt.Errorf("diffusion: %s: %d inference steps with steps_offset %d give timesteps %v and %v the same noise level %v (timesteps at or past the end of the training schedule [0, %d) take its last one); %s needs distinct noise levels (diffusers gives NaN or an error here); %s",
		s.name, n, s.cfg.StepsOffset, ts[i], ts[i+1], sig[i], s.T(), s.name, hint)
}

// repeatedSigma returns the first i with sig[i] == sig[i+1], or -1.
func repeatedSigma(sig []float32) int {
	for i := 0; i+1 < len(sig); i++ {
		if sig[i] == sig[i+1] {
			return i
		}
	}
	return -1
}

// sigmasFor returns the n timesteps and the n+1 sigmas (the last 0) of n
// steps; with karras the sigmas follow Karras et al. and the timesteps are
// their fractional training timesteps. Timesteps past either end of the
// training schedule (leading spacing with a steps_offset) take the sigma of
// that end, as numpy.interp gives diffusers.
func (s *sigmaBase) sigmasFor(n int, karras bool) ([]float64, []float32) {
	ts := spacedTimesteps(s.spacing(SpacingLinspace), s.T(), n, s.cfg.StepsOffset, false)
	if s.spacing(SpacingLinspace) != SpacingLinspace {
		for i, t := range ts { // diffusers casts these to float32
			ts[i] = float64(float32(t))
		}
	}
	sig := make([]float64, n)
	for i, t := range ts {
		sig[i] = npInterp(t, s.trainSig)
	}
	if karras {
		sig = karrasSigmas(sig[n-1], sig[0], n)
		ls := logSigmas32(s.trainSig)
		for i, v := range sig {
			ts[i] = sigmaToT(v, ls)
		}
	}
	out := make([]float32, n+1)
	for i, v := range sig {
		out[i] = float32(v)
	}
	return ts, out
}

// Sigmas returns the noise level of each timestep followed by 0.
func (s *sigmaBase) Sigmas() []float32 { return s.sigmas }

func (s *sigmaBase) InitNoiseSigma() float64 { return s.initSig }

// index returns the position of t in the timesteps.
func (s *sigmaBase) index(op string, t float64) int {
	for i, v := range s.ts {
		if v == t {
			return i
		}
	}
	panic(fmt.Sprintf("diffusion: %s.%s: timestep %v is not in the schedule (call SetTimesteps and use Timesteps())", s.name, op, t))
}

// scaleBySigma returns x / sqrt(sigma^2 + 1).
func scaleBySigma(x *tensor.Tensor, sigma float32) *tensor.Tensor {
	return divScalar(x, sqrt32(sigma*sigma+1))
}

func (s *sigmaBase) ScaleModelInput(x *tensor.Tensor, t float64) *tensor.Tensor {
	return scaleBySigma(x, s.sigmas[s.index("ScaleModelInput", t)])
}

// AddNoise returns original + sigma(t) noise per batch row, t from
// Timesteps().
func (s *sigmaBase) AddNoise(original, noise *tensor.Tensor, timesteps []float64) *tensor.Tensor {
	if original.Rank() < 1 || original.Dim(0) != len(timesteps) {
		panic(fmt.Sprintf("diffusion: AddNoise: %d timesteps for a batch of shape %v", len(timesteps), original.Shape()))
	}
	sig := make([]float32, len(timesteps))
	for i, t := range timesteps {
		sig[i] = s.sigmas[s.index("AddNoise", t)]
	}
	r := noise.Mul(rowCoefs(original, sig))
	r.AddInPlace(original)
	return r
}

// sigmaX0 is the predicted x0 of the sigma schedulers: epsilon x - sigma out;
// v: out (-sigma / sqrt(sigma^2+1)) + x / (sigma^2+1); sample: out.
func sigmaX0(p Prediction, sigma float32, out, x *tensor.Tensor) *tensor.Tensor {
	switch p {
	case Epsilon:
		t := out.MulScalar(sigma)
		r := x.Sub(t)
		t.Release()
		return r
	case VPrediction:
		s2 := sigma*sigma + 1
		r := out.MulScalar(-sigma / sqrt32(s2))
		t := divScalar(x, s2)
		r.AddInPlace(t)
		t.Release()
		return r
	case SamplePrediction:
		return out.Clone()
	}
	panic(fmt.Sprintf("diffusion: unknown prediction type %q", p))
}

// euler is diffusers' EulerDiscreteScheduler (Karras et al. 2022, Algorithm
// 2 with s_churn = 0): d = (x - x0) / sigma, x' = x + d (sigma' - sigma). As
// in diffusers 0.16.1, each step draws one noise tensor even though it is
// unused without churn (so that the generator advances the same way).
// With ancestral set it is EulerAncestralDiscreteScheduler: it steps to
// sigma_down and adds noise of sigma_up, with sigma_up^2 = sigma'^2 (sigma^2
// - sigma'^2) / sigma^2 and sigma_down^2 = sigma'^2 - sigma_up^2.
type euler struct {
	sigmaBase
	ancestral bool
}

func newEuler(cfg Config, ancestral bool, name string) (*euler, error) {
	if ancestral && cfg.UseKarrasSigmas {
		return nil, fmt.Errorf("diffusion: euler_a does not support use_karras_sigmas (diffusers 0.16.1 has none for it)")
	}
	b, err := newSigmaBase(name, cfg)
	if err != nil {
		return nil, err
	}
	return &euler{sigmaBase: b, ancestral: ancestral}, nil
}

func (s *euler) SetTimesteps(n int) error {
	karras := s.cfg.UseKarrasSigmas && !s.ancestral
	return s.setSigmas(n, karras, karras)
}

func (s *euler) Order() int { return 1 }

func (s *euler) Step(out *tensor.Tensor, t float64, x *tensor.Tensor, g tensor.RandSource) StepOutput {
	i := s.index("Step", t)
	sigma, next := s.sigmas[i], s.sigmas[i+1]
	x0 := sigmaX0(s.cfg.PredictionType, sigma, out, x)
	if s.ancestral {
		up := sqrt32(next * next * (sigma*sigma - next*next) / (sigma * sigma))
		down := sqrt32(next*next - up*up)
		prev := x.Sub(x0)
		divScalarInPlace(prev, sigma)
		prev.MulScalarInPlace(down - sigma).AddInPlace(x)
		z := noiseLike("euler_a.Step", g, out)
		addScaledInPlace(prev, up, z)
		z.Release()
		return StepOutput{PrevSample: prev, PredOriginal: x0}
	}
	if g != nil {
		// diffusers draws this noise, unused with s_churn = 0; drawing it keeps
		// the generator in step with diffusers'.
		tensor.Randn(g, out.Shape()...).Release()
	}
	prev := x.Sub(x0)
	divScalarInPlace(prev, sigma)
	prev.MulScalarInPlace(next - sigma).AddInPlace(x)
	return StepOutput{PrevSample: prev, PredOriginal: x0}
}

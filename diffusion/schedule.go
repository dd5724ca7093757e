package diffusion

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/tensor"
)

// Schedule is the forward (noising) process of a Config: betas, alphas =
// 1 - betas and their cumulative product, as float32 values computed the way
// PyTorch computes diffusers' tensors (torch.linspace in float32, the
// cumulative product accumulated in float64 and rounded per element).
type Schedule struct {
	// Betas [T], Alphas [T] and AlphasCumprod [T] for T = num_train_timesteps.
	Betas, Alphas, AlphasCumprod []float32
}

// NewSchedule computes the schedule of c (its beta schedule, or its trained
// betas).
func NewSchedule(c Config) (*Schedule, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	n := c.NumTrainTimesteps
	betas := make([]float32, n)
	switch {
	case c.TrainedBetas != nil:
		for i, b := range c.TrainedBetas {
			betas[i] = float32(b)
		}
	case c.BetaSchedule == BetaLinear:
		torchLinspace32(betas, c.BetaStart, c.BetaEnd)
	case c.BetaSchedule == BetaScaledLinear:
		torchLinspace32(betas, math.Sqrt(c.BetaStart), math.Sqrt(c.BetaEnd))
		for i, b := range betas {
			betas[i] = b * b
		}
	case c.BetaSchedule == BetaSquaredCos:
		// Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = cos((t+s)/(1+s) pi/2)^2
		// with s = 0.008; beta_i = min(1 - alpha_bar((i+1)/T)/alpha_bar(i/T), 0.999),
		// computed in float64 (Python floats) and rounded to float32.
		ab := func(t float64) float64 {
			c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return c * c
		}
		for i := range betas {
			t1 := float64(i) / float64(n)
			t2 := float64(i+1) / float64(n)
			betas[i] = float32(math.Min(1-ab(t2)/ab(t1), 0.999))
		}
	}
	s := &Schedule{Betas: betas, Alphas: make([]float32, n), AlphasCumprod: make([]float32, n)}
	acc := 1.0
	for i, b := range betas {
		a := 1 - b
		s.Alphas[i] = a
		acc *= float64(a)
		s.AlphasCumprod[i] = float32(acc)
	}
	return s, nil
}

// fma32 is a float32 fused multiply-add a*b+c (the product is exact in
// float64; the sum is rounded to float64 and then to float32, which differs
// from a single rounding only in rare double-rounding cases).
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// torchLinspace32 fills dst with torch.linspace(start, end, len(dst),
// dtype=float32) as PyTorch 1.13 computes it on an x86-64 CPU: start and end
// rounded to float32, step = (end-start)/(n-1) in float32, the first half
// counted up from start and the second half down from end, in blocks of 8
// (the AVX2 kernel: block base plus k*step, with fused multiply-adds).
func torchLinspace32(dst []float32, start, end float64) {
	n := len(dst)
	if n == 0 {
		return
	}
	s, e := float32(start), float32(end)
	if n == 1 {
		dst[0] = s
		return
	}
	step := (e - s) / float32(n-1)
	half := n / 2
	at := func(idx int) float32 {
		if idx < half {
			return fma32(step, float32(idx), s)
		}
		return fma32(-step, float32(n-idx-1), e)
	}
	idx := 0
	const v = 8
	// The vectorised loop handles two vectors per iteration, the rest is scalar.
	for ; idx+2*v <= n; idx += 2 * v {
		for b := idx; b < idx+2*v; b += v {
			base := at(b)
			for k := 0; k < v; k++ {
				dst[b+k] = fma32(float32(k), step, base)
			}
		}
	}
	for ; idx < n; idx++ {
		dst[idx] = at(idx)
	}
}

// NumTrainTimesteps returns T, the number of training timesteps.
func (s *Schedule) NumTrainTimesteps() int { return len(s.Betas) }

// checkTimesteps panics unless every timestep indexes the schedule and there
// is one per batch row of x.
func (s *Schedule) checkTimesteps(op string, x *tensor.Tensor, ts []int) {
	if x.Rank() < 1 || x.Dim(0) != len(ts) {
		panic(fmt.Sprintf("diffusion: %s: %d timesteps for a batch of shape %v", op, len(ts), x.Shape()))
	}
	for _, t := range ts {
		if t < 0 || t >= len(s.AlphasCumprod) {
			panic(fmt.Sprintf("diffusion: %s: timestep %d outside [0, %d)", op, t, len(s.AlphasCumprod)))
		}
	}
}

// rowCoefs returns per-row coefficient tensors [B, 1, 1, ...] (rank of x)
// holding f(acp[t_b]).
func rowCoefs(x *tensor.Tensor, vals []float32) *tensor.Tensor {
	shape := make([]int, x.Rank())
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = len(vals)
	return tensor.FromFloat32(vals, shape...)
}

// sqrtAlphas returns sqrt(acp[t]) and sqrt(1 - acp[t]) per timestep, in
// float32 like diffusers' tensor arithmetic.
func (s *Schedule) sqrtAlphas(ts []int) (sa, sb []float32) {
	sa = make([]float32, len(ts))
	sb = make([]float32, len(ts))
	for i, t := range ts {
		a := s.AlphasCumprod[t]
		sa[i] = sqrt32(a)
		sb[i] = sqrt32(1 - a)
	}
	return sa, sb
}

// AddNoise returns the forward-process sample sqrt(acp[t]) x0 +
// sqrt(1-acp[t]) noise with one integer timestep per batch row (diffusers'
// DDPM/DDIM/PNDM/DPM-Solver add_noise): x0 and noise [B, ...].
func (s *Schedule) AddNoise(x0, noise *tensor.Tensor, timesteps []int) *tensor.Tensor {
	s.checkTimesteps("AddNoise", x0, timesteps)
	sa, sb := s.sqrtAlphas(timesteps)
	a := x0.Mul(rowCoefs(x0, sa))
	b := noise.Mul(rowCoefs(x0, sb))
	a.AddInPlace(b)
	b.Release()
	return a
}

// Velocity returns the v-prediction target sqrt(acp[t]) noise -
// sqrt(1-acp[t]) x0 (Salimans & Ho 2022; diffusers' get_velocity).
func (s *Schedule) Velocity(x0, noise *tensor.Tensor, timesteps []int) *tensor.Tensor {
	s.checkTimesteps("Velocity", x0, timesteps)
	sa, sb := s.sqrtAlphas(timesteps)
	a := noise.Mul(rowCoefs(x0, sa))
	b := x0.Mul(rowCoefs(x0, sb))
	a.SubInPlace(b)
	b.Release()
	return a
}

// Target returns what a model with prediction type p should output for the
// noised sample AddNoise(x0, noise, timesteps): the noise (epsilon), the
// velocity (v_prediction) or x0 (sample). The training loss is the mean
// squared difference between the model output and the target.
func (s *Schedule) Target(p Prediction, x0, noise *tensor.Tensor, timesteps []int) *tensor.Tensor {
	switch p {
	case Epsilon:
		return noise.Clone()
	case VPrediction:
		return s.Velocity(x0, noise, timesteps)
	case SamplePrediction:
		return x0.Clone()
	}
	panic(fmt.Sprintf("diffusion: Target: unknown prediction type %q", p))
}

// Uint32Source is a source of uniformly random 32-bit words; *rng.Generator
// implements it.
type Uint32Source interface {
	Uint32() uint32
}

// SampleTimesteps draws n training timesteps uniformly from [0, T) as
// torch.randint(0, T, (n,), generator=g) does on the CPU (one 32-bit draw
// per value, reduced modulo T), so the same seed gives diffusers' training
// script's timesteps.
func (s *Schedule) SampleTimesteps(g Uint32Source, n int) []int {
	out := make([]int, n)
	T := uint32(len(s.Betas))
	for i := range out {
		out[i] = int(g.Uint32() % T)
	}
	return out
}

func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

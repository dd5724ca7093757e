package diffusion

import (
	"github.com/roentgo/roentgo/tensor"
)

// lms is diffusers' LMSDiscreteScheduler (Karras et al. 2022's linear
// multistep in sigma, order 4): with slopes d_k = (x - x0)/sigma at the last
// steps, x' = x + sum_j c_j d_{i-j}, where c_j is the integral from sigma_i
// to sigma_{i+1} of the Lagrange basis polynomial of node sigma_{i-j} over
// the nodes sigma_i, ..., sigma_{i-order+1}. diffusers integrates with
// scipy.integrate.quad; the integrands are polynomials of degree < 4, which
// the 5-point Gauss–Legendre rule used here integrates exactly (up to
// float64 rounding).
type lms struct {
	sigmaBase
	order  int
	derivs []*tensor.Tensor // oldest first, at most order
}

func newLMS(cfg Config) (*lms, error) {
	b, err := newSigmaBase("lms", cfg)
	if err != nil {
		return nil, err
	}
	return &lms{sigmaBase: b, order: 4}, nil
}

// SetTimesteps sets the timesteps and sigmas of n steps. It fails when two
// of the sigmas are equal (checkDistinctSigmas: n = T with leading spacing
// and steps_offset 1 gives timesteps T and T-1 the last sigma), where the
// Lagrange weights would divide by zero.
func (s *lms) SetTimesteps(n int) error {
	if err := s.setSigmas(n, s.cfg.UseKarrasSigmas, true); err != nil {
		return err
	}
	for _, d := range s.derivs {
		d.Release()
	}
	s.derivs = s.derivs[:0]
	return nil
}

func (s *lms) Order() int { return 1 }

// 5-point Gauss–Legendre nodes and weights on [-1, 1].
var glNodes = [5]float64{0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640, 0.9061798459386640}
var glWeights = [5]float64{0.5688888888888889, 0.4786286704993665, 0.4786286704993665, 0.2369268850561891, 0.2369268850561891}

// lmsCoefficient is the integral over [sigma_i, sigma_{i+1}] of the Lagrange
// basis polynomial prod_{k != cur} (tau - sigma_{i-k}) / (sigma_{i-cur} -
// sigma_{i-k}), k < order.
func lmsCoefficient(sig []float32, order, i, cur int) float64 {
	f := func(tau float64) float64 {
		p := 1.0
		for k := 0; k < order; k++ {
			if k == cur {
				continue
			}
			p *= (tau - float64(sig[i-k])) / (float64(sig[i-cur]) - float64(sig[i-k]))
		}
		return p
	}
	a, b := float64(sig[i]), float64(sig[i+1])
	h, m := (b-a)/2, (a+b)/2
	var sum float64
	for j, x := range glNodes {
		sum += glWeights[j] * f(m+h*x)
	}
	return sum * h
}

func (s *lms) Step(out *tensor.Tensor, t float64, x *tensor.Tensor, _ tensor.RandSource) StepOutput {
	i := s.index("Step", t)
	sigma := s.sigmas[i]
	x0 := sigmaX0(s.cfg.PredictionType, sigma, out, x)
	d := x.Sub(x0)
	divScalarInPlace(d, sigma)
	if len(s.derivs) == s.order {
		s.derivs[0].Release()
		copy(s.derivs, s.derivs[1:])
		s.derivs = s.derivs[:s.order-1]
	}
	s.derivs = append(s.derivs, d)
	order := min(i+1, s.order)
	// sum over j of c_j * derivs[newest - j], accumulated as Python's sum().
	var acc *tensor.Tensor
	for j := 0; j < order && j < len(s.derivs); j++ {
		c := float32(lmsCoefficient(s.sigmas, order, i, j))
		term := s.derivs[len(s.derivs)-1-j].MulScalar(c)
		if acc == nil {
			acc = term
		} else {
			acc.AddInPlace(term)
			term.Release()
		}
	}
	acc.AddInPlace(x)
	return StepOutput{PrevSample: acc, PredOriginal: x0}
}

package optim

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// LossScalerConfig holds the settings of dynamic loss scaling, named and
// defaulted as torch.cuda.amp.GradScaler's.
type LossScalerConfig struct {
	// InitScale is the first scale (65536 = 2^16).
	InitScale float32
	// GrowthFactor multiplies the scale after GrowthInterval consecutive
	// steps with finite gradients (2).
	GrowthFactor float32
	// BackoffFactor multiplies the scale after a step with non-finite
	// gradients (0.5).
	BackoffFactor float32
	// GrowthInterval is the number of consecutive good steps before the
	// scale grows (2000).
	GrowthInterval int
}

// DefaultLossScaler returns GradScaler's defaults.
func DefaultLossScaler() LossScalerConfig {
	return LossScalerConfig{InitScale: 65536, GrowthFactor: 2, BackoffFactor: 0.5, GrowthInterval: 2000}
}

// LossScaler is dynamic loss scaling for F16 training, as
// torch.cuda.amp.GradScaler: the loss is multiplied by the scale before
// Backward so that small F16 gradients do not flush to zero, the gradients
// are divided by it before the optimiser sees them, and a step whose
// gradients overflowed (NaN or ±Inf anywhere) is skipped and the scale
// halved; after GrowthInterval good steps in a row the scale doubles. BF16
// training needs none of this (BF16 has F32's range).
//
//	loss = scaler.ScaleLoss(loss); tensor.Backward(loss); ps.CollectGrads(1)
//	if nf := scaler.Unscale(train); nf == nil {   // optional: to clip first
//		optim.ClipGradNorm(train, 1)
//	}
//	res, err := scaler.Step(opt, lr)             // res.Skipped, res.NonFinite
type LossScaler struct {
	cfg     LossScalerConfig
	scale   float32
	tracker int // consecutive good steps

	unscaled bool            // Unscale ran since the last Step
	found    *NonFiniteError // what Unscale found
}

// NewLossScaler returns a LossScaler; the factors must be positive and
// finite (growth > 1, backoff < 1) and the interval positive.
func NewLossScaler(cfg LossScalerConfig) (*LossScaler, error) {
	finite := func(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }
	switch {
	case !(cfg.InitScale > 0) || !finite(cfg.InitScale):
		return nil, fmt.Errorf("optim: LossScaler: initial scale %v, want a finite value > 0", cfg.InitScale)
	case !(cfg.GrowthFactor > 1) || !finite(cfg.GrowthFactor):
		return nil, fmt.Errorf("optim: LossScaler: growth factor %v, want a finite value > 1", cfg.GrowthFactor)
	case !(cfg.BackoffFactor > 0 && cfg.BackoffFactor < 1):
		return nil, fmt.Errorf("optim: LossScaler: backoff factor %v, want 0 < backoff < 1", cfg.BackoffFactor)
	case cfg.GrowthInterval < 1:
		return nil, fmt.Errorf("optim: LossScaler: growth interval %d, want >= 1", cfg.GrowthInterval)
	}
	return &LossScaler{cfg: cfg, scale: cfg.InitScale}, nil
}

// Scale returns the current scale.
func (s *LossScaler) Scale() float32 { return s.scale }

// State returns the scale and the number of consecutive good steps, for
// saving with a checkpoint (GradScaler's state_dict).
func (s *LossScaler) State() (scale float32, goodSteps int) { return s.scale, s.tracker }

// SetState restores a state returned by State.
func (s *LossScaler) SetState(scale float32, goodSteps int) error {
	if !(scale > 0) || math.IsInf(float64(scale), 0) || goodSteps < 0 {
		return fmt.Errorf("optim: LossScaler: state scale %v, good steps %d, want a finite scale > 0 and steps >= 0", scale, goodSteps)
	}
	s.scale, s.tracker = scale, goodSteps
	return nil
}

// ScaleLoss returns loss * scale (recorded by autograd like any op).
func (s *LossScaler) ScaleLoss(loss *tensor.Tensor) *tensor.Tensor { return loss.MulScalar(s.scale) }

// Unscale divides the gradients of params by the scale — it multiplies them
// by float32(1/scale), the reciprocal taken in float64 as GradScaler does —
// and checks them (before the division) for NaN and ±Inf. It returns the
// first non-finite element in the order of params, or nil; the gradients are
// divided either way. Step skips the optimiser when this found one. Call it
// at most once per step, before clipping; Step calls it when it was not
// called.
func (s *LossScaler) Unscale(params []*nn.Trainable) *NonFiniteError {
	idx, err := withGrads("LossScaler", params)
	if err != nil {
		// A malformed gradient: let the optimiser report it.
		s.unscaled, s.found = true, nil
		return nil
	}
	s.found = firstNonFinite(params, idx)
	inv := float32(1 / float64(s.scale))
	if inv != 1 {
		scaleGrads(params, idx, inv)
	}
	s.unscaled = true
	return s.found
}

// ScalerStep is what LossScaler.Step did.
type ScalerStep struct {
	// Skipped says that the optimiser did not step because a gradient was
	// not finite.
	Skipped bool
	// NonFinite is the first non-finite gradient element (when Skipped).
	NonFinite *NonFiniteError
	// Scale is the scale for the next step (after backoff or growth).
	Scale float32
}

// Step unscales the gradients of opt's parameters (unless Unscale did
// already), then either steps opt with learning rate lr or, when a gradient
// was not finite, skips it; then it updates the scale as GradScaler.update
// does: backoff and a fresh count after a skip, growth (if the grown scale
// is finite) after GrowthInterval good steps. The error is the optimiser's.
func (s *LossScaler) Step(opt Optimizer, lr float64) (ScalerStep, error) {
	if !s.unscaled {
		s.Unscale(opt.Params())
	}
	found := s.found
	s.unscaled, s.found = false, nil
	var err error
	if found == nil {
		err = opt.Step(lr)
		if nf, ok := err.(*NonFiniteError); ok {
			// Inf or NaN gradients that appeared after Unscale.
			found, err = nf, nil
		}
	}
	if found != nil {
		s.scale *= s.cfg.BackoffFactor
		s.tracker = 0
	} else if err == nil {
		s.tracker++
		if s.tracker == s.cfg.GrowthInterval {
			if g := s.scale * s.cfg.GrowthFactor; !math.IsInf(float64(g), 0) {
				s.scale = g
			}
			s.tracker = 0
		}
	}
	return ScalerStep{Skipped: found != nil, NonFinite: found, Scale: s.scale}, err
}

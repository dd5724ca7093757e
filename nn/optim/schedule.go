package optim

import (
	"fmt"
	"math"
	"strings"
)

// ScheduleConfig selects a learning-rate schedule the way diffusers 0.16.1's
// get_scheduler(name, optimizer, num_warmup_steps, num_training_steps,
// num_cycles, power) does.
type ScheduleConfig struct {
	// Name is one of ScheduleNames: constant, constant_with_warmup, linear,
	// cosine, cosine_with_restarts, polynomial.
	Name string
	// WarmupSteps is num_warmup_steps (ignored by constant).
	WarmupSteps int
	// TrainingSteps is num_training_steps (needed by linear, cosine,
	// cosine_with_restarts and polynomial; ignored by the constant ones).
	TrainingSteps int
	// NumCycles is get_scheduler's num_cycles, which it forwards only to
	// cosine_with_restarts (0 means its default, 1). cosine always runs half
	// a cosine wave (its own num_cycles=0.5), whatever NumCycles says.
	NumCycles float64
	// Power is get_scheduler's power, forwarded only to polynomial (0 means
	// its default, 1).
	Power float64
}

// ScheduleNames returns the schedule names diffusers 0.16.1's get_scheduler
// accepts, in its order.
func ScheduleNames() []string {
	return []string{"linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"}
}

// polynomialLREnd is get_polynomial_decay_schedule_with_warmup's lr_end
// (get_scheduler does not forward one).
const polynomialLREnd = 1e-7

// Schedule is a learning-rate schedule: LR(step) is the learning rate of
// optimiser step step (0-based), base * lambda(step) as torch's LambdaLR
// computes it, in float64. The training scripts log get_last_lr() after step
// i, which is LR(i+1).
type Schedule struct {
	base float64
	cfg  ScheduleConfig
}

// NewSchedule returns the schedule cfg with base learning rate base (the
// optimiser's lr). It checks what get_scheduler and the schedule functions
// check: a known name, warm-up and training steps >= 0, training steps for
// the decaying schedules, lr_end (1e-7) below base for polynomial, and
// training steps other than the warm-up steps for polynomial (which would
// divide by zero at the end of the warm-up).
func NewSchedule(base float64, cfg ScheduleConfig) (*Schedule, error) {
	if !(base >= 0) || math.IsInf(base, 0) {
		return nil, fmt.Errorf("optim: schedule: base learning rate %v, want a finite value >= 0", base)
	}
	known := false
	for _, n := range ScheduleNames() {
		known = known || n == cfg.Name
	}
	if !known {
		return nil, fmt.Errorf("optim: unknown learning-rate schedule %q, want one of %s", cfg.Name, strings.Join(ScheduleNames(), ", "))
	}
	if cfg.WarmupSteps < 0 || cfg.TrainingSteps < 0 {
		return nil, fmt.Errorf("optim: schedule %s: warm-up steps %d and training steps %d, want both >= 0", cfg.Name, cfg.WarmupSteps, cfg.TrainingSteps)
	}
	switch cfg.Name {
	case "constant", "constant_with_warmup":
	default:
		if cfg.TrainingSteps == 0 {
			return nil, fmt.Errorf("optim: schedule %s needs the number of training steps (num_training_steps > 0)", cfg.Name)
		}
	}
	if math.IsNaN(cfg.NumCycles) || math.IsInf(cfg.NumCycles, 0) || math.IsNaN(cfg.Power) || math.IsInf(cfg.Power, 0) {
		return nil, fmt.Errorf("optim: schedule %s: num_cycles %v and power %v, want finite values", cfg.Name, cfg.NumCycles, cfg.Power)
	}
	if cfg.NumCycles == 0 {
		cfg.NumCycles = 1
	}
	if cfg.Power == 0 {
		cfg.Power = 1
	}
	if cfg.Name == "polynomial" {
		if !(base > polynomialLREnd) {
			return nil, fmt.Errorf("optim: schedule polynomial: lr_end (%g) must be smaller than the initial lr (%g)", polynomialLREnd, base)
		}
		if cfg.TrainingSteps == cfg.WarmupSteps {
			return nil, fmt.Errorf("optim: schedule polynomial: training steps equal the warm-up steps (%d), which leaves no steps to decay over", cfg.TrainingSteps)
		}
	}
	return &Schedule{base: base, cfg: cfg}, nil
}

// Base returns the base learning rate.
func (s *Schedule) Base() float64 { return s.base }

// Config returns the configuration, with NumCycles and Power at their
// effective values.
func (s *Schedule) Config() ScheduleConfig { return s.cfg }

// LR returns the learning rate of optimiser step step (0-based): base *
// Factor(step).
func (s *Schedule) LR(step int) float64 { return s.base * s.Factor(step) }

// Factor returns the schedule's multiplier lambda(step) of diffusers
// 0.16.1's optimization.py, with W warm-up steps, N training steps and p =
// (step-W)/max(1, N-W):
//
//	constant              1
//	constant_with_warmup  step/max(1, W) while step < W, then 1
//	linear                warm-up, then max(0, (N-step)/max(1, N-W))
//	cosine                warm-up, then max(0, 0.5(1 + cos(π·0.5·2·p)))
//	cosine_with_restarts  warm-up, then 0 if p >= 1, else 0.5(1 + cos(π·((cycles·p) mod 1)))
//	polynomial            warm-up, then ((lr0 - lr_end)(1 - (step-W)/(N-W))^power + lr_end)/lr0,
//	                      lr_end/lr0 after N
//
// Negative steps count as 0.
func (s *Schedule) Factor(step int) float64 {
	step = max(step, 0)
	c := s.cfg
	w, n := c.WarmupSteps, c.TrainingSteps
	if c.Name == "constant" {
		return 1
	}
	if step < w {
		return float64(step) / float64(max(1, w))
	}
	switch c.Name {
	case "constant_with_warmup":
		return 1
	case "linear":
		return math.Max(0, float64(n-step)/float64(max(1, n-w)))
	case "cosine":
		const cycles = 0.5
		p := float64(step-w) / float64(max(1, n-w))
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*cycles*2.0*p)))
	case "cosine_with_restarts":
		p := float64(step-w) / float64(max(1, n-w))
		if p >= 1 {
			return 0
		}
		return math.Max(0, 0.5*(1+math.Cos(math.Pi*pyMod1(c.NumCycles*p))))
	case "polynomial":
		lr0 := s.base
		if step > n {
			return polynomialLREnd / lr0
		}
		lrRange := lr0 - polynomialLREnd
		decaySteps := n - w
		pctRemaining := 1 - float64(step-w)/float64(decaySteps)
		decay := lrRange*math.Pow(pctRemaining, c.Power) + polynomialLREnd
		return decay / lr0
	}
	panic("optim: Schedule: unknown name " + c.Name) // NewSchedule checked it
}

// pyMod1 is Python's x % 1.0: fmod, moved into [0, 1] when negative.
func pyMod1(x float64) float64 {
	m := math.Mod(x, 1)
	if m < 0 {
		m++
	}
	return m
}

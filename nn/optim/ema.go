package optim

import (
	"fmt"
	"math"
	"strings"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/internal/statefile"
	"github.com/roentgo/roentgo/tensor"
)

// EMAConfig holds the settings of diffusers 0.16.1's EMAModel.
type EMAConfig struct {
	// Decay is the largest decay (0.9999).
	Decay float64
	// MinDecay is the smallest decay once updates begin (0).
	MinDecay float64
	// UpdateAfterStep delays the averaging: decay 0 (the shadow copies the
	// parameters) until the optimisation step exceeds it by more than one.
	UpdateAfterStep int
	// UseWarmup selects the warm-up rule 1 - (1 + n/InvGamma)^-Power instead
	// of (1 + n)/(10 + n).
	UseWarmup bool
	// InvGamma and Power are the warm-up rule's parameters (1 and 2/3).
	InvGamma, Power float64
}

// DefaultEMA returns EMAModel's defaults: decay 0.9999, min_decay 0,
// update_after_step 0, use_ema_warmup False, inv_gamma 1, power 2/3.
func DefaultEMA() EMAConfig {
	return EMAConfig{Decay: 0.9999, InvGamma: 1, Power: 2.0 / 3.0}
}

// validate checks that the settings make a decay in [0, 1].
func (c EMAConfig) validate() error {
	switch {
	case !(c.Decay >= 0 && c.Decay <= 1):
		return fmt.Errorf("optim: EMA: decay %v, want 0 <= decay <= 1", c.Decay)
	case !(c.MinDecay >= 0 && c.MinDecay <= c.Decay):
		return fmt.Errorf("optim: EMA: min_decay %v, want 0 <= min_decay <= decay (%v)", c.MinDecay, c.Decay)
	case c.UpdateAfterStep < 0:
		return fmt.Errorf("optim: EMA: update_after_step %d, want >= 0", c.UpdateAfterStep)
	case !(c.InvGamma > 0) || math.IsInf(c.InvGamma, 0):
		return fmt.Errorf("optim: EMA: inv_gamma %v, want a finite value > 0", c.InvGamma)
	case !(c.Power > 0) || math.IsInf(c.Power, 0):
		return fmt.Errorf("optim: EMA: power %v, want a finite value > 0", c.Power)
	}
	return nil
}

// DecayAt returns EMAModel.get_decay(optimizationStep): with n =
// optimizationStep - UpdateAfterStep - 1, 0 when n <= 0, else (1+n)/(10+n)
// (or 1 - (1 + n/InvGamma)^-Power with UseWarmup), clamped to [MinDecay,
// Decay].
func (c EMAConfig) DecayAt(optimizationStep int) float64 {
	n := max(0, optimizationStep-c.UpdateAfterStep-1)
	if n <= 0 {
		return 0
	}
	var d float64
	if c.UseWarmup {
		d = 1 - math.Pow(1+float64(n)/c.InvGamma, -c.Power)
	} else {
		d = float64(1+n) / float64(10+n)
	}
	return math.Max(math.Min(d, c.Decay), c.MinDecay)
}

// EMA keeps exponential moving averages ("shadows") of the masters of a
// list of parameters, as diffusers' EMAModel does for
// train_text_to_image.py's --use_ema: the shadows start as copies of the
// parameters, and each Step increments the optimisation step k and sets
//
//	s = s - float32(1 - d) * (s - p)     d = DecayAt(k)
//
// in F32 (so the first step, d = 0, copies p up to a rounding of s - (s - p)).
// EMAModel copies instead of averaging for parameters that do not require a
// gradient; frozen parameters never change, so keep them out of the list.
type EMA struct {
	cfg     EMAConfig
	params  []*nn.Trainable
	shadows []*tensor.Tensor
	step    int
	decay   float64
}

// NewEMA returns an EMA over params (from nn.ParamSet.Trainable), the
// shadows copied from their masters.
func NewEMA(params []*nn.Trainable, cfg EMAConfig) (*EMA, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("optim: EMA: %w", errNoParams)
	}
	if err := checkParams("EMA", params); err != nil {
		return nil, err
	}
	e := &EMA{cfg: cfg, params: append([]*nn.Trainable(nil), params...)}
	for _, p := range params {
		d := p.Master.Detach() // the copy must not be recorded by autograd
		e.shadows = append(e.shadows, d.Clone())
		d.Release()
	}
	return e, nil
}

// Config returns the settings (after Load, the loaded ones).
func (e *EMA) Config() EMAConfig { return e.cfg }

// OptimizationStep returns the number of Steps taken (EMAModel's
// optimization_step).
func (e *EMA) OptimizationStep() int { return e.step }

// LastDecay returns the decay of the last Step (EMAModel's cur_decay_value).
func (e *EMA) LastDecay() float64 { return e.decay }

// Shadow returns the shadow of the parameter called name, or nil. It is the
// EMA's own tensor: do not modify it.
func (e *EMA) Shadow(name string) *tensor.Tensor {
	for i, p := range e.params {
		if p.Name == name {
			return e.shadows[i]
		}
	}
	return nil
}

// Step averages the current masters into the shadows and returns the decay
// it used.
func (e *EMA) Step() float64 {
	e.step++
	d := e.cfg.DecayAt(e.step)
	e.decay = d
	omd := float32(1 - d)
	n := make([]int, len(e.params))
	for i, p := range e.params {
		n[i] = p.Master.Numel()
	}
	forSpans(makeSpans(n), func(_ int, s span) {
		sh := e.shadows[s.i].F32Data()[s.lo:s.hi]
		p := e.params[s.i].Master.F32Data()[s.lo:s.hi]
		p = p[:len(sh)]
		for j := range sh {
			sh[j] -= float32(omd * (sh[j] - p[j])) // no fused multiply-add
		}
	})
	return d
}

// CopyTo writes the shadows into the parameters' masters and values
// (EMAModel.copy_to: to evaluate or save the averaged weights). Keep a copy
// of the masters first (SaveMasters, or Clone) to resume training with them.
func (e *EMA) CopyTo() error {
	for i, p := range e.params {
		copy(p.Master.F32Data(), e.shadows[i].F32Data())
		if err := p.SyncValue(); err != nil {
			return err
		}
	}
	return nil
}

// Save writes the shadows under the parameters' own names — a weights file
// in the diffusers layout (what EMAModel.save_pretrained's model holds) —
// with metadata format=pt, roentgo.state=ema and EMAModel's state_dict
// entries decay, min_decay, optimization_step, update_after_step,
// use_ema_warmup, inv_gamma and power, beside the caller's metadata. The
// file is written atomically.
func (e *EMA) Save(path string, metadata map[string]string) error {
	ts := make(map[string]*tensor.Tensor, len(e.params))
	for i, p := range e.params {
		ts[p.Name] = e.shadows[i]
	}
	meta := map[string]string{
		"format":            "pt",
		stateKind:           "ema",
		"decay":             formatFloat(e.cfg.Decay),
		"min_decay":         formatFloat(e.cfg.MinDecay),
		"optimization_step": fmt.Sprint(e.step),
		"update_after_step": fmt.Sprint(e.cfg.UpdateAfterStep),
		"use_ema_warmup":    fmt.Sprint(e.cfg.UseWarmup),
		"inv_gamma":         formatFloat(e.cfg.InvGamma),
		"power":             formatFloat(e.cfg.Power),
	}
	return statefile.Save("optim: EMA.Save", path, ts, meta, metadata)
}

// Load reads shadows and settings written by Save for parameters of the same
// names and shapes. A file that is not an EMA state, lacks a parameter, has
// a tensor of another shape or dtype, or has tensors of other parameters is
// an error naming it, and nothing changes.
func (e *EMA) Load(path string) error {
	f, mr, err := openState("optim: EMA.Load", path, "ema")
	if err != nil {
		return err
	}
	defer f.Close()
	cfg := EMAConfig{Decay: mr.float("decay"), MinDecay: mr.float("min_decay"), UpdateAfterStep: mr.int("update_after_step"),
		UseWarmup: mr.bool("use_ema_warmup"), InvGamma: mr.float("inv_gamma"), Power: mr.float("power")}
	step := mr.int("optimization_step")
	if mr.err != nil {
		return mr.err
	}
	if err := cfg.validate(); err != nil {
		return f.Errorf("saved hyper-parameters: %s", strings.TrimPrefix(err.Error(), "optim: "))
	}
	known := make(map[string]bool, len(e.params))
	for _, p := range e.params {
		if err := f.Check(p.Name, p.Master.Shape(), "EMA shadow"); err != nil {
			return err
		}
		known[p.Name] = true
	}
	if err := f.CheckNames(func(n string) bool { return known[n] }, "the shadow of a parameter of this EMA"); err != nil {
		return err
	}
	for i, p := range e.params {
		if err := f.CopyTo(p.Name, e.shadows[i]); err != nil {
			return err
		}
	}
	e.cfg, e.step = cfg, step
	return nil
}

package optim

import (
	"fmt"
	"math"
	"strings"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/internal/statefile"
	"github.com/roentgo/roentgo/tensor"
)

// SGDConfig holds torch.optim.SGD's hyper-parameters other than the
// learning rate.
type SGDConfig struct {
	// Momentum is the momentum factor (0: plain SGD, no buffers).
	Momentum float64
	// Dampening scales the gradient added to the momentum buffer by
	// 1 - Dampening (not at a buffer's first step).
	Dampening float64
	// WeightDecay is L2 regularisation added to the gradient: g + wd*p.
	WeightDecay float64
	// Nesterov uses Nesterov momentum (needs Momentum > 0, Dampening 0).
	Nesterov bool
}

// validate checks the ranges torch.optim.SGD checks.
func (c SGDConfig) validate() error {
	switch {
	case !(c.Momentum >= 0) || math.IsInf(c.Momentum, 0):
		return fmt.Errorf("optim: SGD: momentum %v, want a finite value >= 0", c.Momentum)
	case math.IsNaN(c.Dampening) || math.IsInf(c.Dampening, 0):
		return fmt.Errorf("optim: SGD: dampening %v, want a finite value", c.Dampening)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("optim: SGD: weight decay %v, want a finite value >= 0", c.WeightDecay)
	case c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0):
		return fmt.Errorf("optim: SGD: Nesterov momentum needs momentum > 0 and dampening 0, have momentum %v, dampening %v", c.Momentum, c.Dampening)
	}
	return nil
}

// SGD is torch.optim.SGD (PyTorch 1.13, maximize off) over the F32 masters
// of a list of parameters. Per parameter with a gradient g:
//
//	d = g + wd*p                                 (when wd != 0)
//	b = d                                        (the buffer's first step)
//	b = b*momentum + (1-dampening)*d             (later steps)
//	d = d + momentum*b  (Nesterov)  or  d = b    (when momentum != 0)
//	p = p - lr*d
//
// in F32, each "x + s*y" a fused multiply-add as in torch's add kernels.
type SGD struct {
	cfg    SGDConfig
	params []*nn.Trainable
	buf    []*tensor.Tensor // momentum buffers, nil until the first step
}

// NewSGD returns an SGD over params (from nn.ParamSet.Trainable).
func NewSGD(params []*nn.Trainable, cfg SGDConfig) (*SGD, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("optim: SGD: %w", errNoParams)
	}
	if err := checkParams("SGD", params); err != nil {
		return nil, err
	}
	return &SGD{cfg: cfg, params: append([]*nn.Trainable(nil), params...), buf: make([]*tensor.Tensor, len(params))}, nil
}

// Config returns the hyper-parameters (after Load, the loaded ones).
func (o *SGD) Config() SGDConfig { return o.cfg }

// Params returns the parameters the optimiser updates.
func (o *SGD) Params() []*nn.Trainable { return append([]*nn.Trainable(nil), o.params...) }

// MomentumBuffer returns the momentum buffer of the parameter called name
// (nil before its first step or without momentum); ok is false when the
// optimiser has no such parameter.
func (o *SGD) MomentumBuffer(name string) (buf *tensor.Tensor, ok bool) {
	for i, p := range o.params {
		if p.Name == name {
			return o.buf[i], true
		}
	}
	return nil, false
}

// sgdCoef holds one step's scalars, rounded to F32.
type sgdCoef struct {
	wd, mom, damp1, negLR   float32
	hasWD, hasMom, nesterov bool
}

// sgdUpdate is the fused SGD update of one span; first says that the
// momentum buffer b is new (it receives d).
func sgdUpdate(p, g, b []float32, c *sgdCoef, first bool) {
	n := len(p)
	g = g[:n]
	if c.hasMom {
		b = b[:n]
	}
	for i := range p {
		d := g[i]
		if c.hasWD {
			d = fma32(p[i], c.wd, d)
		}
		if c.hasMom {
			var bi float32
			if first {
				bi = d
			} else {
				bi = fma32(d, c.damp1, b[i]*c.mom)
			}
			b[i] = bi
			if c.nesterov {
				d = fma32(bi, c.mom, d)
			} else {
				d = bi
			}
		}
		p[i] = fma32(d, c.negLR, p[i])
	}
}

// Step performs one SGD step with learning rate lr over the parameters that
// have a gradient, then writes their masters into their values. A negative
// or non-finite lr, a gradient of the wrong shape or a non-finite gradient
// element is an error, and nothing changes.
func (o *SGD) Step(lr float64) error {
	if !(lr >= 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("optim: SGD: learning rate %v, want a finite value >= 0", lr)
	}
	idx, err := withGrads("SGD", o.params)
	if err != nil {
		return err
	}
	if nf := firstNonFinite(o.params, idx); nf != nil {
		return nf
	}
	c := sgdCoef{
		wd: float32(o.cfg.WeightDecay), mom: float32(o.cfg.Momentum), damp1: float32(1 - o.cfg.Dampening),
		negLR: float32(-lr), hasWD: o.cfg.WeightDecay != 0, hasMom: o.cfg.Momentum != 0, nesterov: o.cfg.Nesterov,
	}
	first := make([]bool, len(idx))
	n := make([]int, len(idx))
	for k, i := range idx {
		p := o.params[i]
		if c.hasMom && o.buf[i] == nil {
			o.buf[i] = tensor.Zeros(tensor.F32, p.Master.Shape()...)
			first[k] = true
		}
		n[k] = p.Master.Numel()
	}
	forSpans(makeSpans(n), func(_ int, s span) {
		i := idx[s.i]
		p := o.params[i]
		var b []float32
		if c.hasMom {
			b = o.buf[i].F32Data()[s.lo:s.hi]
		}
		sgdUpdate(p.Master.F32Data()[s.lo:s.hi], p.Grad.F32Data()[s.lo:s.hi], b, &c, first[s.i])
	})
	for _, i := range idx {
		if err := o.params[i].SyncValue(); err != nil {
			return err
		}
	}
	return nil
}

// sgdBuffer is the prefix of the momentum buffers' names.
const sgdBuffer = "sgd.momentum_buffer."

// Save writes the optimiser's state to a safetensors file:
// "sgd.momentum_buffer.<name>" for every parameter that has a buffer (none
// before its first step, as torch's state), and metadata roentgo.state=sgd,
// momentum, dampening, weight_decay, nesterov, beside the caller's metadata.
// The file is written atomically.
func (o *SGD) Save(path string, metadata map[string]string) error {
	ts := map[string]*tensor.Tensor{}
	for i, p := range o.params {
		if o.buf[i] != nil {
			ts[sgdBuffer+p.Name] = o.buf[i]
		}
	}
	meta := map[string]string{
		stateKind:      "sgd",
		"momentum":     formatFloat(o.cfg.Momentum),
		"dampening":    formatFloat(o.cfg.Dampening),
		"weight_decay": formatFloat(o.cfg.WeightDecay),
		"nesterov":     fmt.Sprint(o.cfg.Nesterov),
	}
	return statefile.Save("optim: SGD.Save", path, ts, meta, metadata)
}

// Load reads a state written by Save for parameters of the same names and
// shapes and restores the momentum buffers (parameters without one in the
// file have none, as before their first step) and the hyper-parameters. A
// file that is not an SGD state, has a buffer of another shape or dtype, or
// one for a parameter this optimiser does not have is an error naming it,
// and nothing changes.
func (o *SGD) Load(path string) error {
	f, mr, err := openState("optim: SGD.Load", path, "sgd")
	if err != nil {
		return err
	}
	defer f.Close()
	cfg := SGDConfig{Momentum: mr.float("momentum"), Dampening: mr.float("dampening"),
		WeightDecay: mr.float("weight_decay"), Nesterov: mr.bool("nesterov")}
	if mr.err != nil {
		return mr.err
	}
	if err := cfg.validate(); err != nil {
		return f.Errorf("saved hyper-parameters: %s", strings.TrimPrefix(err.Error(), "optim: "))
	}
	known := make(map[string]bool, len(o.params))
	for _, p := range o.params {
		name := sgdBuffer + p.Name
		known[name] = true
		if f.Has(name) {
			if err := f.Check(name, p.Master.Shape(), "momentum buffer of parameter "+p.Name); err != nil {
				return err
			}
		}
	}
	if err := f.CheckNames(func(n string) bool { return known[n] }, "the momentum buffer of a parameter of this optimiser"); err != nil {
		return err
	}
	buf := make([]*tensor.Tensor, len(o.params))
	for i, p := range o.params {
		name := sgdBuffer + p.Name
		if !f.Has(name) {
			continue
		}
		buf[i] = tensor.Zeros(tensor.F32, p.Master.Shape()...)
		if err := f.CopyTo(name, buf[i]); err != nil {
			return err
		}
	}
	for i := range o.buf {
		if o.buf[i] != nil {
			o.buf[i].Release()
		}
	}
	o.cfg, o.buf = cfg, buf
	return nil
}

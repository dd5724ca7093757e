package optim

import (
	"fmt"
	"math"
	"strings"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/internal/statefile"
	"github.com/roentgo/roentgo/tensor"
)

// AdamWConfig holds AdamW's hyper-parameters other than the learning rate
// (which Step takes, as a schedule gives it).
type AdamWConfig struct {
	// Beta1 and Beta2 are the decay rates of the first and second moments.
	Beta1, Beta2 float64
	// Eps is added to the bias-corrected square root of the second moment.
	Eps float64
	// WeightDecay is the decoupled weight decay: p *= 1 - lr*WeightDecay
	// before the Adam update.
	WeightDecay float64
}

// DefaultAdamW returns torch.optim.AdamW's defaults, which diffusers'
// scripts also use (--adam_beta1 0.9, --adam_beta2 0.999, --adam_epsilon
// 1e-8, --adam_weight_decay 1e-2).
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 1e-2}
}

// validate checks the ranges torch.optim.AdamW checks.
func (c AdamWConfig) validate() error {
	switch {
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("optim: AdamW: beta1 %v, want 0 <= beta1 < 1", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("optim: AdamW: beta2 %v, want 0 <= beta2 < 1", c.Beta2)
	case !(c.Eps >= 0) || math.IsInf(c.Eps, 0):
		return fmt.Errorf("optim: AdamW: eps %v, want a finite value >= 0", c.Eps)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("optim: AdamW: weight decay %v, want a finite value >= 0", c.WeightDecay)
	}
	return nil
}

// AdamW is torch.optim.AdamW (PyTorch 1.13, amsgrad off, maximize off) over
// the F32 masters of a list of parameters. Per parameter with a gradient g,
// with its own step count t (incremented first, as torch's state['step']):
//
//	p = p * float32(1 - lr*wd)
//	m = m*beta1 + (1-beta1)*g          (fused multiply-add, as torch's add_)
//	v = v*beta2 + (1-beta2)*g*g
//	p = p + (float32(-lr/(1-beta1^t)) * m) / (sqrt(v)/float32(sqrt(1-beta2^t)) + eps)
//
// in F32, with the bias corrections and the step size in float64 and each
// scalar rounded to F32 where torch's tensor ops round it. Moments are F32
// tensors of the parameter's shape, allocated (zero) at a parameter's first
// step, as torch does.
type AdamW struct {
	cfg    AdamWConfig
	params []*nn.Trainable
	m, v   []*tensor.Tensor // nil until the parameter's first step
	steps  []int
}

// NewAdamW returns an AdamW over params (from nn.ParamSet.Trainable).
func NewAdamW(params []*nn.Trainable, cfg AdamWConfig) (*AdamW, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(params) == 0 {
		return nil, fmt.Errorf("optim: AdamW: %w", errNoParams)
	}
	if err := checkParams("AdamW", params); err != nil {
		return nil, err
	}
	n := len(params)
	return &AdamW{cfg: cfg, params: append([]*nn.Trainable(nil), params...),
		m: make([]*tensor.Tensor, n), v: make([]*tensor.Tensor, n), steps: make([]int, n)}, nil
}

// Config returns the hyper-parameters (after Load, the loaded ones).
func (o *AdamW) Config() AdamWConfig { return o.cfg }

// Params returns the parameters the optimiser updates.
func (o *AdamW) Params() []*nn.Trainable { return append([]*nn.Trainable(nil), o.params...) }

// State returns the moments and the step count of the parameter called name
// (nil moments before its first step); ok is false when the optimiser has no
// such parameter. The tensors are the optimiser's own: do not modify them.
func (o *AdamW) State(name string) (expAvg, expAvgSq *tensor.Tensor, step int, ok bool) {
	for i, p := range o.params {
		if p.Name == name {
			return o.m[i], o.v[i], o.steps[i], true
		}
	}
	return nil, nil, 0, false
}

// adamwCoef holds one parameter's scalars for a step, rounded to F32 as
// torch rounds them.
type adamwCoef struct {
	decay, b1, a1, b2, a2, bc2Sqrt, eps, negStep float32
}

// coef returns the scalars of a step with learning rate lr at step count t.
func (c AdamWConfig) coef(lr float64, t int) adamwCoef {
	bc1 := 1 - math.Pow(c.Beta1, float64(t))
	bc2 := 1 - math.Pow(c.Beta2, float64(t))
	return adamwCoef{
		decay:   float32(1 - lr*c.WeightDecay),
		b1:      float32(c.Beta1),
		a1:      float32(1 - c.Beta1),
		b2:      float32(c.Beta2),
		a2:      float32(1 - c.Beta2),
		bc2Sqrt: float32(math.Sqrt(bc2)),
		eps:     float32(c.Eps),
		negStep: float32(-(lr / bc1)),
	}
}

// adamwVector lets adamwSpan use the vectorised loop where the CPU has one
// (benchmarks turn it off to time the pure-Go loop).
var adamwVector = true

// adamwUpdate is the fused AdamW update of one span in pure Go, the
// reference of the vectorised adamwSpan (F32 fused multiply-adds emulated in
// float64: the product of two F32 values is exact there, so only the final
// rounding to F32 can differ, in rare ties).
func adamwUpdate(p, g, m, v []float32, c *adamwCoef) {
	n := len(p)
	g, m, v = g[:n], m[:n], v[:n]
	for i := range p {
		gi := g[i]
		mi := fma32(gi, c.a1, m[i]*c.b1)
		vi := fma32(c.a2*gi, gi, v[i]*c.b2)
		pi := float32(p[i] * c.decay) // rounded: no fused multiply-add
		m[i], v[i] = mi, vi
		p[i] = pi + (c.negStep*mi)/(sqrt32(vi)/c.bc2Sqrt+c.eps)
	}
}

// Step performs one AdamW step with learning rate lr over the parameters
// that have a gradient, then writes their masters into their values. A
// negative or non-finite lr, a gradient of the wrong shape or a non-finite
// gradient element is an error, and nothing changes.
func (o *AdamW) Step(lr float64) error {
	if !(lr >= 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("optim: AdamW: learning rate %v, want a finite value >= 0", lr)
	}
	idx, err := withGrads("AdamW", o.params)
	if err != nil {
		return err
	}
	if nf := firstNonFinite(o.params, idx); nf != nil {
		return nf
	}
	coefs := make([]adamwCoef, len(idx))
	n := make([]int, len(idx))
	for k, i := range idx {
		p := o.params[i]
		if o.m[i] == nil {
			o.m[i] = tensor.Zeros(tensor.F32, p.Master.Shape()...)
			o.v[i] = tensor.Zeros(tensor.F32, p.Master.Shape()...)
		}
		o.steps[i]++
		coefs[k] = o.cfg.coef(lr, o.steps[i])
		n[k] = p.Master.Numel()
	}
	forSpans(makeSpans(n), func(_ int, s span) {
		i := idx[s.i]
		p := o.params[i]
		adamwSpan(p.Master.F32Data()[s.lo:s.hi], p.Grad.F32Data()[s.lo:s.hi],
			o.m[i].F32Data()[s.lo:s.hi], o.v[i].F32Data()[s.lo:s.hi], &coefs[s.i])
	})
	for _, i := range idx {
		if err := o.params[i].SyncValue(); err != nil {
			return err
		}
	}
	return nil
}

// Names of AdamW's state tensors: the prefixes before each parameter's name.
const (
	adamwExpAvg   = "adamw.exp_avg."
	adamwExpAvgSq = "adamw.exp_avg_sq."
)

// Save writes the optimiser's state to a safetensors file: for every
// parameter "adamw.exp_avg.<name>" and "adamw.exp_avg_sq.<name>" (F32, the
// parameter's shape; zero before its first step), and metadata
// roentgo.state=adamw, beta1, beta2, eps, weight_decay and the step count
// ("step", or "steps", a JSON object of per-parameter counts, when they
// differ), beside the caller's metadata (whose keys must differ). The file is
// written atomically.
func (o *AdamW) Save(path string, metadata map[string]string) error {
	ts := make(map[string]*tensor.Tensor, 2*len(o.params))
	for i, p := range o.params {
		m, v := o.m[i], o.v[i]
		if m == nil {
			m = tensor.Zeros(tensor.F32, p.Master.Shape()...)
			v = m
			defer m.Release()
		}
		ts[adamwExpAvg+p.Name] = m
		ts[adamwExpAvgSq+p.Name] = v
	}
	meta := map[string]string{
		stateKind:      "adamw",
		"beta1":        formatFloat(o.cfg.Beta1),
		"beta2":        formatFloat(o.cfg.Beta2),
		"eps":          formatFloat(o.cfg.Eps),
		"weight_decay": formatFloat(o.cfg.WeightDecay),
	}
	stepsMeta(meta, o.params, o.steps)
	return statefile.Save("optim: AdamW.Save", path, ts, meta, metadata)
}

// Load reads a state written by Save for parameters of the same names and
// shapes, and restores the moments, step counts and hyper-parameters (as
// torch's load_state_dict restores the param groups' settings; the learning
// rate is Step's argument). A file that is not an AdamW state, lacks a
// parameter, has a tensor of another shape or dtype, or holds tensors of
// parameters this optimiser does not have is an error naming it, and
// nothing changes.
func (o *AdamW) Load(path string) error {
	f, mr, err := openState("optim: AdamW.Load", path, "adamw")
	if err != nil {
		return err
	}
	defer f.Close()
	cfg := AdamWConfig{Beta1: mr.float("beta1"), Beta2: mr.float("beta2"), Eps: mr.float("eps"), WeightDecay: mr.float("weight_decay")}
	steps := readSteps(mr, o.params)
	if mr.err != nil {
		return mr.err
	}
	if err := cfg.validate(); err != nil {
		return f.Errorf("saved hyper-parameters: %s", strings.TrimPrefix(err.Error(), "optim: "))
	}
	known := make(map[string]bool, 2*len(o.params))
	for _, p := range o.params {
		for _, pre := range []string{adamwExpAvg, adamwExpAvgSq} {
			if err := f.Check(pre+p.Name, p.Master.Shape(), "AdamW state of parameter "+p.Name); err != nil {
				return err
			}
			known[pre+p.Name] = true
		}
	}
	if err := f.CheckNames(func(n string) bool { return known[n] }, "AdamW state of a parameter of this optimiser"); err != nil {
		return err
	}
	for i, p := range o.params {
		if o.m[i] == nil {
			o.m[i] = tensor.Zeros(tensor.F32, p.Master.Shape()...)
			o.v[i] = tensor.Zeros(tensor.F32, p.Master.Shape()...)
		}
		if err := f.CopyTo(adamwExpAvg+p.Name, o.m[i]); err != nil {
			return err
		}
		if err := f.CopyTo(adamwExpAvgSq+p.Name, o.v[i]); err != nil {
			return err
		}
	}
	o.cfg, o.steps = cfg, steps
	return nil
}

package optim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/internal/statefile"
	"github.com/roentgo/roentgo/tensor"
)

// Optimizer is what AdamW and SGD have in common.
type Optimizer interface {
	// Step updates every parameter that has a gradient with learning rate lr
	// and writes the new masters into the models' tensors. Non-finite
	// gradients are a *NonFiniteError and change nothing.
	Step(lr float64) error
	// Params returns the parameters the optimiser updates.
	Params() []*nn.Trainable
	// Save writes the optimiser's state to a safetensors file, with the
	// caller's metadata beside its own.
	Save(path string, metadata map[string]string) error
	// Load reads a state written by Save for the same parameters.
	Load(path string) error
}

// NonFiniteError reports a gradient element that is NaN or ±Inf: Param is
// the parameter's name, Index the element's position in row-major order,
// Value the element.
type NonFiniteError struct {
	Param string
	Index int
	Value float32
}

// Error describes the element.
func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("optim: the gradient of %s is not finite: element %d is %v", e.Param, e.Index, e.Value)
}

// grain is the number of elements the update loops give one task.
const grain = 1 << 15

// span is the elements [lo, hi) of parameter i of a list.
type span struct{ i, lo, hi int }

// makeSpans splits every list entry of n[i] elements into spans of at most
// grain elements, in order.
func makeSpans(n []int) []span {
	var out []span
	for i, k := range n {
		for lo := 0; lo < k; lo += grain {
			out = append(out, span{i, lo, min(lo+grain, k)})
		}
	}
	return out
}

// forSpans runs fn(k, spans[k]) for every span on kernels/cpu's worker
// goroutines.
func forSpans(spans []span, fn func(k int, s span)) {
	cpu.ParallelTasks(len(spans), func(k int) { fn(k, spans[k]) })
}

// checkParams verifies that params are prepared (nn.ParamSet.Trainable) and
// named uniquely.
func checkParams(who string, params []*nn.Trainable) error {
	seen := make(map[string]bool, len(params))
	for i, p := range params {
		switch {
		case p == nil:
			return fmt.Errorf("optim: %s: parameter %d is nil", who, i)
		case p.Master == nil:
			return fmt.Errorf("optim: %s: parameter %q has no master copy (get the parameters from nn.ParamSet.Trainable)", who, p.Name)
		case p.Master.DType() != tensor.F32 || !p.Master.IsContiguous() || p.Master.Device() != tensor.CPU:
			return fmt.Errorf("optim: %s: the master of %q is %v on %v, want a contiguous F32 host tensor", who, p.Name, p.Master.DType(), p.Master.Device())
		case seen[p.Name]:
			return fmt.Errorf("optim: %s: parameter %q appears twice", who, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// checkGrad verifies that p's gradient (not nil) is a contiguous F32 host
// tensor of p's shape.
func checkGrad(who string, p *nn.Trainable) error {
	g := p.Grad
	if g.DType() != tensor.F32 || !g.IsContiguous() || g.Device() != tensor.CPU || !g.Shape().Equal(p.Master.Shape()) {
		return fmt.Errorf("optim: %s: the gradient of %q is %v %v on %v, want a contiguous F32 host tensor of shape %v",
			who, p.Name, g.DType(), g.Shape(), g.Device(), p.Master.Shape())
	}
	return nil
}

// withGrads returns the indices of the parameters that have a gradient,
// after checking each gradient.
func withGrads(who string, params []*nn.Trainable) ([]int, error) {
	var idx []int
	for i, p := range params {
		if p.Grad == nil {
			continue
		}
		if err := checkGrad(who, p); err != nil {
			return nil, err
		}
		idx = append(idx, i)
	}
	return idx, nil
}

// firstNonFinite returns the first non-finite gradient element (in the order
// of idx, then of elements) of params[idx[k]], or nil.
func firstNonFinite(params []*nn.Trainable, idx []int) *NonFiniteError {
	n := make([]int, len(idx))
	for k, i := range idx {
		n[k] = params[i].Grad.Numel()
	}
	spans := makeSpans(n)
	bad := make([]int, len(spans))
	forSpans(spans, func(k int, s span) {
		bad[k] = findNonFinite(params[idx[s.i]].Grad.F32Data()[s.lo:s.hi])
	})
	for k, b := range bad {
		if b >= 0 {
			s := spans[k]
			p := params[idx[s.i]]
			return &NonFiniteError{Param: p.Name, Index: s.lo + b, Value: p.Grad.F32Data()[s.lo+b]}
		}
	}
	return nil
}

// findNonFinite returns the index of the first NaN or ±Inf of x, or -1. The
// test is on the exponent bits (all ones), branch-free over blocks.
func findNonFinite(x []float32) int {
	const block = 1024
	for lo := 0; lo < len(x); lo += block {
		hi := min(lo+block, len(x))
		var acc uint32
		for _, v := range x[lo:hi] {
			// An exponent of all ones plus one carries into the sign bit.
			acc |= math.Float32bits(v)&0x7f800000 + 0x00800000
		}
		if acc&0x80000000 != 0 {
			for i := lo; i < hi; i++ {
				if f := x[i]; f-f != 0 {
					return i
				}
			}
		}
	}
	return -1
}

// fma32 returns a*b + c rounded once to float32 (to float64 first, exactly
// for the product; the second rounding matters only in rare ties), as the
// fused multiply-adds of PyTorch's vectorised CPU kernels compute.
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// sqrt32 is the correctly rounded float32 square root.
func sqrt32(x float32) float32 { return float32(math.Sqrt(float64(x))) }

// formatFloat writes v so that parseFloat reads it back exactly.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// metaReader reads typed metadata values of a state file, remembering the
// first error.
type metaReader struct {
	get func(string) (string, bool)
	err error
	fmt func(format string, args ...any) error
}

// float returns the float64 under key.
func (m *metaReader) float(key string) float64 {
	s, ok := m.get(key)
	if !ok {
		m.fail("no metadata %q (want a number)", key)
		return 0
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		m.fail("metadata %q is %q, want a finite number", key, s)
	}
	return v
}

// int returns the non-negative int under key.
func (m *metaReader) int(key string) int {
	s, ok := m.get(key)
	if !ok {
		m.fail("no metadata %q (want an integer)", key)
		return 0
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		m.fail("metadata %q is %q, want a non-negative integer", key, s)
	}
	return v
}

// bool returns the boolean under key.
func (m *metaReader) bool(key string) bool {
	s, ok := m.get(key)
	if !ok {
		m.fail("no metadata %q (want true or false)", key)
		return false
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		m.fail("metadata %q is %q, want true or false", key, s)
	}
	return v
}

// fail records the first error.
func (m *metaReader) fail(format string, args ...any) {
	if m.err == nil {
		m.err = m.fmt(format, args...)
	}
}

// stateKind is the metadata key naming what a state file holds.
const stateKind = "roentgo.state"

// checkKind verifies that the file's stateKind is want.
// openState opens a state file and checks that it holds kind's state; the
// caller closes the file.
func openState(op, path, kind string) (*statefile.File, *metaReader, error) {
	f, err := statefile.Open(op, path)
	if err != nil {
		return nil, nil, err
	}
	mr := &metaReader{get: f.Meta, fmt: f.Errorf}
	checkKind(mr, kind)
	if mr.err != nil {
		f.Close()
		return nil, nil, mr.err
	}
	return f, mr, nil
}

func checkKind(m *metaReader, want string) {
	got, ok := m.get(stateKind)
	switch {
	case !ok:
		m.fail("no metadata %q: not a state file written by this package (want %q state)", stateKind, want)
	case got != want:
		m.fail("the file holds %q state, want %q", got, want)
	}
}

// stepsMeta encodes per-parameter step counts: "step" when all are equal,
// else "steps", a JSON object name -> count.
func stepsMeta(meta map[string]string, params []*nn.Trainable, steps []int) {
	same := true
	for _, s := range steps {
		same = same && s == steps[0]
	}
	if same {
		n := 0
		if len(steps) > 0 {
			n = steps[0]
		}
		meta["step"] = strconv.Itoa(n)
		return
	}
	m := make(map[string]int, len(steps))
	for i, p := range params {
		m[p.Name] = steps[i]
	}
	b, _ := json.Marshal(m)
	meta["steps"] = string(b)
}

// readSteps decodes stepsMeta's encoding for params.
func readSteps(m *metaReader, params []*nn.Trainable) []int {
	steps := make([]int, len(params))
	if s, ok := m.get("steps"); ok {
		var per map[string]int
		if err := json.Unmarshal([]byte(s), &per); err != nil {
			m.fail("metadata \"steps\" is not a JSON object of step counts: %v", err)
			return steps
		}
		for i, p := range params {
			n, ok := per[p.Name]
			if !ok || n < 0 {
				m.fail("metadata \"steps\" has no step count for parameter %q", p.Name)
				return steps
			}
			steps[i] = n
		}
		if len(per) != len(params) {
			m.fail("metadata \"steps\" has %d step counts for %d parameters", len(per), len(params))
		}
		return steps
	}
	n := m.int("step")
	for i := range steps {
		steps[i] = n
	}
	return steps
}

// errNoParams is returned by the constructors for an empty parameter list.
var errNoParams = errors.New("no parameters to optimise")

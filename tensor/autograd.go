package tensor

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/roentgo/roentgo/kernels/cpu"
)

// Reverse-mode automatic differentiation: a tape over the coarse ops.
//
// A leaf tensor marked with SetRequiresGrad(true) (a trainable parameter, or
// an input whose gradient is wanted) makes every op that reads it record a
// node: the op's name, its inputs' autograd state, the values its backward
// rule needs (saved as new handles on their storage, with the storage's
// version at the time), and the rule itself. Backward(loss) walks the nodes
// from the loss in reverse topological order, calls each rule with the
// gradient of the node's output, and accumulates the results into the
// inputs; leaves keep theirs in Grad. Ops on tensors that need no gradient
// record nothing and allocate nothing for autograd, so inference is
// unchanged.
//
// Safety. An in-place write bumps the version of the storage it writes
// (checkWritable); a rule whose saved value was overwritten since makes
// Backward return an error naming the op, never a wrong gradient. In-place
// writes into leaves that require a gradient panic (a programmer error:
// update parameters under NoGrad); in-place adds into recorded results are
// recorded (the graph is rebased, as PyTorch does). The graph is freed by
// Backward (its saved values released); a second Backward over it is an
// error unless the first was asked to retain it.
//
// Concurrency. Grad mode (NoGrad) is process-wide, not per goroutine: do not
// record a graph in one goroutine while another runs NoGrad code that must
// not record. Recording itself has the concurrency rules of the ops.

// gradInfo is the autograd state of a tensor handle.
type gradInfo struct {
	requires bool
	node     *node   // the op that produced the tensor; nil for a leaf
	grad     *Tensor // accumulated gradient (leaves)
	name     string  // for messages (leaves: SetName)
	// rows is the row-sparse gradient of a leaf table marked with
	// SetSparseGrad (nil when unmarked).
	rows *rowGrad
}

// describe names the tensor for messages.
func (g *gradInfo) describe() string {
	switch {
	case g.name != "":
		return g.name
	case g.node != nil:
		return "output of " + g.node.op
	}
	return "a leaf"
}

// node is one recorded op.
type node struct {
	op     string
	inputs []*gradInfo // nil entries: inputs that need no gradient
	saved  []savedValue
	// backward returns the gradient of each input (nil where not needed)
	// from the gradient g of the output; it must not keep g.
	backward func(g *Tensor) []*Tensor
	// backwardMulti, when set, replaces backward for a rule that returns
	// each input's gradient as several contributions, in the order they
	// are to be added (Checkpoint: those of the recomputed block's ops).
	backwardMulti func(g *Tensor) [][]*Tensor
	// seq orders nodes by creation; Backward runs rules in decreasing seq.
	seq   uint64
	freed bool
}

// nodeSeq numbers recorded nodes in creation order.
var nodeSeq atomic.Uint64

// savedValue is a value a backward rule reads, with the version its storage
// had when it was saved.
type savedValue struct {
	t       *Tensor
	version uint64
}

// noGrad counts the active NoGrad scopes (process-wide).
var noGrad atomic.Int32

// gradEnabled reports whether ops record (no NoGrad scope is active).
func gradEnabled() bool { return noGrad.Load() == 0 }

// NoGrad runs f with recording turned off: ops inside record nothing, even
// on tensors that require gradients (parameter updates, evaluation). It is
// process-wide (see the autograd notes in the package documentation).
func NoGrad(f func()) {
	noGrad.Add(1)
	defer noGrad.Add(-1)
	f()
}

// GradEnabled reports whether ops currently record for autograd (no NoGrad
// scope is active).
func GradEnabled() bool { return gradEnabled() }

// SetRequiresGrad marks the leaf t as needing a gradient (or not) and
// returns t. It panics on the result of a recorded op (only leaves can be
// marked; use Detach to make one).
func (t *Tensor) SetRequiresGrad(requires bool) *Tensor {
	t.s("SetRequiresGrad")
	if t.ag != nil && t.ag.node != nil {
		panic("tensor: SetRequiresGrad: " + t.ag.describe() + " is not a leaf; use Detach")
	}
	if !requires {
		t.ag = nil
		return t
	}
	if t.ag == nil {
		t.ag = &gradInfo{}
	}
	t.ag.requires = true
	return t
}

// SetName names a leaf for autograd's messages (a parameter's diffusers
// key) and returns t.
func (t *Tensor) SetName(name string) *Tensor {
	if t.ag == nil {
		t.ag = &gradInfo{}
	}
	t.ag.name = name
	return t
}

// RequiresGrad reports whether t is a leaf that needs a gradient or the
// result of an op recorded because one of its inputs did.
func (t *Tensor) RequiresGrad() bool { return t.ag != nil && t.ag.requires }

// Grad returns the gradient accumulated into the leaf t by Backward, or nil:
// a tensor of t's shape on t's device, F32 on every device (on an
// accelerator computing in F16 or BF16 the contributions are converted to F32
// as they reach the leaf and summed in F32, as PyTorch keeps an F32
// parameter's gradient in F32 under autocast; gradients of intermediate
// values, which rules pass on, stay in the compute dtype, except parameter
// gradients the training kernels produce in F32). It belongs to t: ZeroGrad
// releases it.
func (t *Tensor) Grad() *Tensor {
	if t.ag == nil {
		return nil
	}
	return t.ag.grad
}

// SetGrad replaces the leaf t's gradient by g (which t then owns; nil
// clears it), for optimisers and gradient accumulation.
func (t *Tensor) SetGrad(g *Tensor) {
	if t.ag == nil {
		t.ag = &gradInfo{}
	}
	if t.ag.grad != nil && t.ag.grad != g {
		t.ag.grad.Release()
	}
	t.ag.grad = Persist(g)
}

// ZeroGrad drops the gradient accumulated into the leaf t.
func (t *Tensor) ZeroGrad() { t.SetGrad(nil) }

// Detach returns a new handle on t's storage that is a leaf needing no
// gradient: what is computed from it is not recorded.
func (t *Tensor) Detach() *Tensor {
	return t.view(t.shape.Clone(), append([]int(nil), t.strides...), t.offset)
}

// IsLeaf reports whether t was not produced by a recorded op.
func (t *Tensor) IsLeaf() bool { return t.ag == nil || t.ag.node == nil }

// needsGrad reports whether an op over ts must record: grad mode is on and
// some input requires a gradient.
func needsGrad(ts ...*Tensor) bool {
	if !gradEnabled() {
		return false
	}
	for _, t := range ts {
		if t != nil && t.ag != nil && t.ag.requires {
			return true
		}
	}
	return false
}

// save returns the saved form of t (a new handle, so that the caller's
// Release does not free the storage, and the storage's version).
func save(t *Tensor) savedValue {
	if t == nil {
		return savedValue{}
	}
	t.st.saved.Add(1)
	d := wrapUnscoped(t.st, t.shape.Clone(), append([]int(nil), t.strides...), t.offset) // no scope frees it
	return savedValue{t: d, version: t.st.version.Load()}
}

// keep is save for a tensor the op made only for its rule: the caller's
// handle is released, the saved one stays.
func keep(t *Tensor) savedValue {
	s := save(t)
	t.Release()
	return s
}

// record makes out the result of a recorded op: op names it, inputs are the
// op's tensor operands in the order backward returns their gradients, saved
// the values backward reads (which it receives through the closure as the
// savedValue handles' t). It returns out.
func record(out *Tensor, op string, inputs []*Tensor, saved []savedValue, backward func(g *Tensor) []*Tensor) *Tensor {
	infos := make([]*gradInfo, len(inputs))
	for i, t := range inputs {
		if t != nil && t.ag != nil && t.ag.requires {
			infos[i] = t.ag
		}
	}
	return recordInfos(out, op, infos, saved, backward)
}

// recordInfos is record with the inputs' autograd states given directly
// (in-place ops, whose destination's state is replaced).
func recordInfos(out *Tensor, op string, inputs []*gradInfo, saved []savedValue, backward func(g *Tensor) []*Tensor) *Tensor {
	out.ag = &gradInfo{requires: true, node: &node{op: op, inputs: inputs, saved: saved, backward: backward, seq: nodeSeq.Add(1)}}
	return out
}

// noRule panics when an op without a backward rule would be recorded.
func noRule(op string, ts ...*Tensor) {
	if needsGrad(ts...) {
		panic("tensor: " + op + " has no backward rule: compute it on Detach()ed inputs or under NoGrad")
	}
}

// checkInPlaceRecording panics when an in-place op would be recorded on a
// destination that is not the only dense handle on its storage besides the
// values autograd saved (which the version check guards): other handles
// (views) would silently keep the old graph.
func checkInPlaceRecording(op string, dst *Tensor) {
	st := dst.st
	if st.refs.Load()-st.saved.Load() != 1 || !dst.IsContiguous() || dst.offset != 0 || dst.Numel() != st.n {
		panic("tensor: " + op + ": an in-place write into a view or shared tensor cannot be recorded for autograd; use the out-of-place op")
	}
}

// BackwardOptions tune Backward.
type BackwardOptions struct {
	// RetainGraph keeps the graph (its saved values) for another Backward.
	RetainGraph bool
}

// ErrGraphFreed is wrapped by Backward's error for a graph an earlier
// Backward freed.
var ErrGraphFreed = errors.New("the graph was freed by an earlier Backward (pass RetainGraph to the first to keep it)")

// ErrModifiedInPlace is wrapped by Backward's error when a value saved for a
// backward rule was overwritten by an in-place op after it was saved.
var ErrModifiedInPlace = errors.New("a value saved for the gradient was modified in place after it was saved")

// Backward computes the gradient of the scalar loss with respect to every
// leaf it was computed from that requires a gradient, and adds it to that
// leaf's Grad (accumulating over calls, as PyTorch does). It returns an
// error, computing nothing, when loss is not a scalar (one element), needs
// no gradient, or its graph was freed; and an error naming the op when a
// value saved for a rule was modified in place since. Rules run without
// recording (no higher-order gradients).
func Backward(loss *Tensor, opts ...BackwardOptions) error {
	if loss == nil || loss.st == nil {
		return errors.New("tensor: Backward: the loss is nil or released")
	}
	if loss.Numel() != 1 {
		return fmt.Errorf("tensor: Backward: the loss has shape %v; expected a scalar (one element): reduce it first (MeanAll, SumAll)", loss.shape)
	}
	return backward(loss, nil, opts)
}

// backward back-propagates seed (ones when nil) from loss, outside every
// scope: the gradients outlive the caller's blocks.
func backward(loss, seed *Tensor, opts []BackwardOptions) (err error) {
	Unscoped(func() { err = backwardRun(loss, seed, opts) })
	return err
}

// backwardRun is backward.
func backwardRun(loss, seed *Tensor, opts []BackwardOptions) error {
	_, err := backwardCollect(loss, seed, opts, nil)
	return err
}

// backwardCollect is backward that, for the leaves in collect, returns the
// gradient contributions each received (in the order the rules produced
// them) instead of adding them into the leaves' Grad.
//
// Summation order. Rules run in decreasing creation order of their nodes
// (a topological order), and a tensor's gradient is the left fold of its
// contributions in the order they arrive. Checkpoint hands the outer graph
// the contributions of its recomputed block one by one rather than their
// sum, so a checkpointed model adds exactly the same numbers in exactly the
// same order as the plain one: its gradients are bit-identical.
func backwardCollect(loss, seed *Tensor, opts []BackwardOptions, collect []*gradInfo) ([][]*Tensor, error) {
	var o BackwardOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if !loss.RequiresGrad() {
		return nil, errors.New("tensor: Backward: the loss does not require a gradient: no input needing one (SetRequiresGrad) reached it, or it was computed under NoGrad")
	}
	// The nodes and leaves reachable from the loss.
	var nodes, leaves []*gradInfo
	seen := map[*gradInfo]bool{loss.ag: true}
	stack := []*gradInfo{loss.ag}
	for len(stack) > 0 {
		g := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if g.node == nil {
			leaves = append(leaves, g)
			continue
		}
		nodes = append(nodes, g)
		for _, in := range g.node.inputs {
			if in != nil && !seen[in] {
				seen[in] = true
				stack = append(stack, in)
			}
		}
	}
	// Check before computing anything.
	for _, g := range nodes {
		n := g.node
		if n.freed {
			return nil, fmt.Errorf("tensor: Backward: %s: %w", n.op, ErrGraphFreed)
		}
		for i, s := range n.saved {
			if s.t != nil && s.t.st.version.Load() != s.version {
				return nil, fmt.Errorf("tensor: Backward: %s: saved value %d (shape %v): %w (version %d, saved at %d)",
					n.op, i, s.t.shape, ErrModifiedInPlace, s.t.st.version.Load(), s.version)
			}
		}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].node.seq > nodes[j].node.seq })
	noGrad.Add(1)
	defer noGrad.Add(-1)
	var first *Tensor
	if seed != nil {
		first = seed.Contiguous()
	} else {
		first = OnesOn(loss.Device(), ComputeDType(loss.Device()), loss.shape...)
	}
	collected := make(map[*gradInfo]int, len(collect))
	for i, g := range collect {
		collected[g] = i
	}
	lists := make([][]*Tensor, len(collect))
	grads := map[*gradInfo]*Tensor{loss.ag: first}
	add := func(in *gradInfo, c *Tensor) {
		if i, ok := collected[in]; ok {
			lists[i] = append(lists[i], c)
			return
		}
		if prev := grads[in]; prev != nil {
			grads[in] = accumulate(prev, c)
		} else {
			grads[in] = c
		}
	}
	if i, ok := collected[loss.ag]; ok { // the loss is itself a collected leaf
		lists[i] = append(lists[i], first)
		delete(grads, loss.ag)
	}
	for _, g := range nodes {
		gr := grads[g]
		delete(grads, g)
		if gr == nil {
			continue
		}
		n := g.node
		if n.backwardMulti != nil {
			ins := n.backwardMulti(gr)
			gr.Release()
			for k, in := range n.inputs {
				if k >= len(ins) {
					continue
				}
				for _, c := range ins[k] {
					if in == nil {
						c.Release()
					} else {
						add(in, c)
					}
				}
			}
		} else {
			ins := n.backward(gr)
			gr.Release()
			for k, in := range n.inputs {
				if k >= len(ins) || ins[k] == nil {
					continue
				}
				if in == nil {
					ins[k].Release()
					continue
				}
				add(in, ins[k])
			}
		}
		if !o.RetainGraph {
			n.free()
		}
	}
	// Leaves: their gradients own their storage.
	for _, g := range leaves {
		gr := grads[g]
		delete(grads, g)
		if gr == nil {
			continue
		}
		gr = leafF32(gr)
		if g.grad == nil {
			g.grad = own(gr)
		} else {
			g.grad = accumulate(g.grad, gr)
		}
	}
	return lists, nil
}

// exclusive reports whether t is the only live handle on its storage and
// covers it densely, so that writing into it in place changes nothing else.
func exclusive(t *Tensor) bool {
	return t.st.refs.Load() == 1 && t.IsContiguous() && t.offset == 0 && t.Numel() == t.st.n
}

// own returns t, or a copy of it when its storage is shared (gradient rules
// may return views of the incoming gradient).
func own(t *Tensor) *Tensor {
	if exclusive(t) {
		return t
	}
	c := t.Clone()
	t.Release()
	return c
}

// leafF32 returns the gradient g of a leaf as F32 (see Grad), consuming g:
// F16 and BF16 gradients (an accelerator's compute dtype) are converted.
func leafF32(g *Tensor) *Tensor {
	if dt := g.DType(); dt != F16 && dt != BF16 {
		return g
	}
	f := g.toImpl(F32)
	g.Release()
	return f
}

// accumulate returns acc + g, consuming both: in place into acc when acc
// owns its storage, else into a new tensor. The sum has the compute dtype,
// except that two F32 gradients (leaf gradients, parameter gradients of the
// training kernels) are summed in F32 on a device computing in F16 or BF16.
func accumulate(acc, g *Tensor) *Tensor {
	dev := acc.Device()
	if acc.DType() == F32 && g.DType() == F32 && ComputeDType(dev) != F32 && acc.shape.Equal(g.shape) && g.Device() == dev {
		b := backendFor(dev)
		if exclusive(acc) {
			b.binary(cpu.BAdd, acc, acc, g)
			g.Release()
			return acc
		}
		sum := newTensor(dev, F32, acc.shape, false)
		b.binary(cpu.BAdd, sum, acc, g)
		acc.Release()
		g.Release()
		return sum
	}
	if exclusive(acc) && acc.DType() == ComputeDType(acc.Device()) && acc.shape.Equal(g.shape) {
		acc.AddInPlace(g)
		g.Release()
		return acc
	}
	sum := acc.Add(g)
	acc.Release()
	g.Release()
	return sum
}

// free releases the node's saved values; a later Backward through it fails.
func (n *node) free() {
	for _, s := range n.saved {
		if s.t != nil {
			s.t.st.saved.Add(-1)
			s.t.Release()
		}
	}
	n.saved = nil
	n.freed = true
}

// OnesOn returns a tensor of ones of dtype dt on device d.
func OnesOn(d Device, dt DType, shape ...int) *Tensor {
	t := EmptyOn(d, dt, shape...)
	backendFor(d).fill(t, 1)
	return t
}

// sumTo reduces the gradient g to shape (the shape of an operand that was
// broadcast to g's shape): it sums over g's extra leading dimensions and
// over the dimensions where shape has size 1. It returns a new tensor.
func sumTo(g *Tensor, shape Shape) *Tensor {
	if g.shape.Equal(shape) {
		return g.Contiguous()
	}
	cur := g.Contiguous()
	for len(cur.shape) > len(shape) {
		next := cur.Sum(0, false)
		cur.Release()
		cur = next
	}
	for i := range shape {
		if shape[i] == 1 && cur.shape[i] != 1 {
			next := cur.Sum(i, true)
			cur.Release()
			cur = next
		}
	}
	return cur
}

// BackwardFrom is Backward for a non-scalar output: it back-propagates the
// gradient grad (out's shape) from out (torch's out.backward(grad)).
func BackwardFrom(out, grad *Tensor, opts ...BackwardOptions) error {
	if out == nil || out.st == nil || grad == nil || grad.st == nil {
		return errors.New("tensor: BackwardFrom: nil or released output or gradient")
	}
	if !grad.shape.Equal(out.shape) {
		return fmt.Errorf("tensor: BackwardFrom: gradient of shape %v for an output of shape %v", grad.shape, out.shape)
	}
	return backward(out, grad, opts)
}

// Checkpoint returns f(inputs) without keeping anything f computes for the
// gradient (gradient checkpointing): f runs once without recording, and
// Backward runs it again, recording, to get the gradients of the inputs and
// of every parameter f uses that requires one. Peak memory during the
// forward drops to the checkpointed blocks' outputs; the price is one more
// forward of each block. f must be deterministic and use the inputs only
// through its argument; its result is treated as needing a gradient while
// grad mode is on (use it for training: in inference it only costs a node).
// The gradients are bit-identical to those without checkpointing: the same
// ops run, and the recomputed block's gradient contributions reach the outer
// graph one by one, so every sum adds the same numbers in the same order
// (see backwardCollect). This holds when each parameter the block uses
// requires its gradient only inside the block (a parameter shared with code
// outside gets its two partial sums added separately).
func Checkpoint(f func(in []*Tensor) *Tensor, inputs ...*Tensor) *Tensor {
	if !gradEnabled() {
		return f(inputs)
	}
	var out *Tensor
	NoGrad(func() { out = f(inputs) })
	saved := make([]savedValue, len(inputs))
	needs := make([]bool, len(inputs))
	for i, t := range inputs {
		saved[i] = save(t)
		needs[i] = t != nil && t.ag != nil && t.ag.requires
	}
	infos := make([]*gradInfo, len(inputs))
	for i, t := range inputs {
		if needs[i] {
			infos[i] = t.ag
		}
	}
	out.ag = &gradInfo{requires: true, node: &node{op: "Checkpoint", inputs: infos, saved: saved, seq: nodeSeq.Add(1),
		backwardMulti: func(g *Tensor) [][]*Tensor {
			// Recompute with recording on (Backward runs rules without).
			in := make([]*Tensor, len(saved))
			var collect []*gradInfo
			var at []int
			for i, s := range saved {
				if s.t == nil {
					continue
				}
				in[i] = s.t.Detach()
				if needs[i] {
					in[i].SetRequiresGrad(true)
					collect = append(collect, in[i].ag)
					at = append(at, i)
				}
			}
			depth := noGrad.Swap(0)
			y := f(in)
			var lists [][]*Tensor
			var err error
			if y.RequiresGrad() {
				lists, err = backwardCollect(y, g, nil, collect)
			}
			noGrad.Store(depth)
			y.Release()
			if err != nil {
				panic(fmt.Sprintf("tensor: Checkpoint: recomputing the block: %v", err))
			}
			grads := make([][]*Tensor, len(in))
			for j, i := range at {
				if j < len(lists) {
					grads[i] = lists[j]
				}
			}
			for _, t := range in {
				if t != nil {
					t.Release()
				}
			}
			return grads
		}}}
	return out
}

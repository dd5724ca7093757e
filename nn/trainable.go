package nn

import (
	"errors"
	"fmt"
	"path"
	"reflect"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn/internal/statefile"
	"github.com/roentgo/roentgo/tensor"
)

// Trainable is one parameter of a ParamSet: the model's tensor (Param.Tensor,
// the value the forward pass computes with: F32, F16 or BF16, on any device),
// its F32 master copy in host memory, which optimisers update, and its
// gradient.
//
// Mixed precision follows PyTorch's recipe: the master is the optimiser's
// truth, and SyncValue writes it back into the value after a step, rounded
// to nearest even when the value is 16-bit. For a contiguous F32 host value
// the master is the value itself and SyncValue does nothing.
type Trainable struct {
	Param
	// Master is the F32 master copy: a contiguous F32 tensor in host memory
	// with the parameter's shape. It is Param.Tensor itself when that is a
	// contiguous F32 host tensor. Nil until the ParamSet's Trainable call
	// prepares the parameter.
	Master *tensor.Tensor
	// Grad is the gradient: a contiguous F32 host tensor of the parameter's
	// shape, or nil when there is none (an optimiser then skips the
	// parameter, as torch.optim does for p.grad None). Callers set it
	// directly, through AddGrad, or from autograd through
	// ParamSet.CollectGrads.
	Grad *tensor.Tensor

	frozen bool

	// Row-sparse embedding gradients (ParamSet.SetRowSparse): rowSparse
	// marks the parameter; sparseBuf is the gradient buffer CollectGrads
	// allocated for it, dirty the rows written into it since it was last
	// cleared and denseDirty whether anything dense was added, so that
	// ZeroGrad clears only those rows.
	rowSparse  bool
	sparseBuf  *tensor.Tensor
	dirty      []int64
	denseDirty bool
}

// Shape returns the parameter's shape.
func (p *Trainable) Shape() tensor.Shape { return p.Tensor.Shape() }

// Numel returns the parameter's number of elements.
func (p *Trainable) Numel() int { return p.Tensor.Numel() }

// Frozen reports whether the parameter is excluded from training.
func (p *Trainable) Frozen() bool { return p.frozen }

// RowSparse reports whether the parameter receives its embedding gradients
// as rows (ParamSet.SetRowSparse).
func (p *Trainable) RowSparse() bool { return p.rowSparse }

// SyncValue writes the master into the model's tensor after the master
// changed (an optimiser step, a loaded state, EMA weights), converting to
// the value's dtype (rounding to nearest even for F16 and BF16) and copying
// to its device. It does nothing when the master is the value. Device
// failures are returned as errors.
func (p *Trainable) SyncValue() error {
	if p.Master == nil || p.Master == p.Tensor {
		return nil
	}
	err := tensor.Catch(func() {
		// Detached handles: autograd does not record the copy, and the write
		// bumps the storage's version as any in-place write does.
		dst, src := p.Tensor.Detach(), p.Master.Detach()
		defer dst.Release()
		defer src.Release()
		if dev := dst.Device(); dev != tensor.CPU {
			d := src.ToDevice(dev)
			defer d.Release()
			src = d
		}
		dst.CopyFrom(src)
	})
	if err != nil {
		return errctx.Wrap("nn: parameter "+p.Name, err)
	}
	return nil
}

// AddGrad adds scale*g into the gradient (allocating it, zero, when it is
// nil). g may have any float dtype and live on any device; it must have the
// parameter's shape. The sum is computed in F32 on the host: Grad +=
// float32(scale) * g, element by element (Grad = g exactly when scale is 1
// and there was no gradient). Gradient accumulation over k micro-batches
// with scale 1/k gives the mean, as accelerate's accelerator.backward (which
// divides each micro-batch's loss by k) does. Device failures are returned
// as errors.
func (p *Trainable) AddGrad(g *tensor.Tensor, scale float32) error {
	if g == nil {
		return fmt.Errorf("nn: AddGrad: parameter %q: the gradient is nil", p.Name)
	}
	if !g.Shape().Equal(p.Shape()) {
		return fmt.Errorf("nn: parameter %q: gradient of shape %v, want %v", p.Name, g.Shape(), p.Shape())
	}
	if g.DType() == tensor.I64 {
		return fmt.Errorf("nn: parameter %q: gradient of dtype I64, want a float dtype", p.Name)
	}
	if err := p.checkHeldGrad(); err != nil {
		return err
	}
	p.denseDirty = true
	err := tensor.Catch(func() {
		d := g.Detach()
		defer d.Release()
		h := d.ToDevice(tensor.CPU)
		defer h.Release()
		f := h.To(tensor.F32)
		defer f.Release()
		c := f.Contiguous()
		defer c.Release()
		if p.Grad == nil {
			p.Grad = tensor.Persist(tensor.Zeros(tensor.F32, p.Shape()...))
		}
		// Grad += scale*g with the tensor ops' parallel kernels: each
		// element is float32(scale*v) added once, as a plain loop would.
		if scale == 1 {
			p.Grad.AddInPlace(c)
			return
		}
		sc := c.Affine(scale, 0)
		defer sc.Release()
		p.Grad.AddInPlace(sc)
	})
	return errctx.Wrap("nn: parameter "+p.Name, err)
}

// checkHeldGrad verifies that the gradient held, if any, is a contiguous F32
// host tensor of the parameter's shape.
func (p *Trainable) checkHeldGrad() error {
	if p.Grad != nil && (p.Grad.DType() != tensor.F32 || !p.Grad.IsContiguous() || p.Grad.Device() != tensor.CPU || !p.Grad.Shape().Equal(p.Shape())) {
		return fmt.Errorf("nn: parameter %q: the gradient held is %v %v on %v, want a contiguous F32 host tensor of shape %v", p.Name, p.Grad.DType(), p.Grad.Shape(), p.Grad.Device(), p.Shape())
	}
	return nil
}

// addRows adds scale*grad into the rows of the gradient (allocating it,
// zero, when it is nil): Grad[rows[k], :] += float32(scale) * grad[k*D :
// (k+1)*D], element by element as AddGrad adds a dense gradient, so the
// result is the same as adding the dense gradient whose other rows are zero.
func (p *Trainable) addRows(rows []int64, grad []float32, scale float32) error {
	sh := p.Shape()
	if len(sh) != 2 {
		return fmt.Errorf("nn: parameter %q: row gradient for a tensor of shape %v, want [rows, dim]", p.Name, sh)
	}
	d := sh[1]
	if len(grad) != len(rows)*d {
		return fmt.Errorf("nn: parameter %q: %d gradient values for %d rows of %d", p.Name, len(grad), len(rows), d)
	}
	for _, r := range rows {
		if r < 0 || r >= int64(sh[0]) {
			return fmt.Errorf("nn: parameter %q: gradient row %d out of range [0, %d)", p.Name, r, sh[0])
		}
	}
	if err := p.checkHeldGrad(); err != nil {
		return err
	}
	if p.Grad == nil {
		p.Grad = tensor.Persist(tensor.Zeros(tensor.F32, sh...))
		p.sparseBuf, p.dirty, p.denseDirty = p.Grad, nil, false
	}
	if p.Grad == p.sparseBuf {
		p.dirty = append(p.dirty, rows...)
	}
	dst := p.Grad.F32Data()
	for k, r := range rows {
		out, src := dst[int(r)*d:(int(r)+1)*d], grad[k*d:(k+1)*d]
		src = src[:len(out)]
		if scale == 1 {
			for i, v := range src {
				out[i] += v
			}
			continue
		}
		for i, v := range src {
			out[i] += scale * v
		}
	}
	return nil
}

// zeroGrad clears the gradient buffer: only the rows written since the last
// clear when only addRows wrote into the buffer it allocated, else all of it.
func (p *Trainable) zeroGrad() {
	g := p.Grad
	if p.rowSparse && g == p.sparseBuf && !p.denseDirty {
		d := g.Dim(1)
		data := g.F32Data()
		for _, r := range p.dirty {
			clear(data[int(r)*d : (int(r)+1)*d])
		}
	} else {
		clear(g.F32Data())
	}
	p.dirty, p.denseDirty = p.dirty[:0], false
}

// ParamSet is the trainable-parameter registry of a model: every named
// parameter (the Builder's, by diffusers key), which of them are frozen, and
// for the others their F32 master copies and gradients.
//
//	m, b, err := nn.Build(src, cfg, tensor.F32, unet.New)
//	ps, err := nn.NewParamSet(m, b.Params())
//	_, err = ps.Only("down_blocks.1.attentions.*", "mid_block")  // optional
//	train, err := ps.Trainable()   // masters ready, values marked for autograd
//	opt, err := optim.NewAdamW(train, optim.DefaultAdamW())
//
// Parameters start trainable; Freeze, Unfreeze and Only select them by name
// pattern (see MatchName). SetRowSparse makes embedding tables receive their
// gradients as rows (a text encoder's 49408-row token embedding). A ParamSet is not safe for concurrent use.
type ParamSet struct {
	model any
	list  []*Trainable
	index map[string]*Trainable
}

// NewParamSet returns the registry of params (usually b.Params() of the
// Builder that built model; names must be unique and non-empty, tensors
// non-nil, float and not shared between names). model is the model holding
// the tensors (a pointer, as for ToDevice) or nil: Trainable replaces a
// parameter whose memory cannot be written — a tensor memory-mapped from a
// safetensors file, which the process maps read-only — by a writable copy,
// in the set and in every field of model that holds it; without a model
// such a parameter is an error.
func NewParamSet(model any, params []Param) (*ParamSet, error) {
	if model != nil {
		v := reflect.ValueOf(model)
		if v.Kind() != reflect.Pointer || v.IsNil() {
			return nil, fmt.Errorf("nn: NewParamSet: want a non-nil pointer to the model (or nil), have %T", model)
		}
	}
	ps := &ParamSet{model: model, index: make(map[string]*Trainable, len(params))}
	owner := make(map[*tensor.Tensor]string, len(params))
	for _, p := range params {
		switch {
		case p.Name == "":
			return nil, errors.New("nn: NewParamSet: a parameter has an empty name")
		case p.Tensor == nil:
			return nil, fmt.Errorf("nn: NewParamSet: parameter %q is nil", p.Name)
		case ps.index[p.Name] != nil:
			return nil, fmt.Errorf("nn: NewParamSet: parameter %q appears twice", p.Name)
		case p.Tensor.DType() == tensor.I64:
			return nil, fmt.Errorf("nn: NewParamSet: parameter %q is I64, want F32, F16 or BF16 (leave index buffers out)", p.Name)
		}
		if o, dup := owner[p.Tensor]; dup {
			return nil, fmt.Errorf("nn: NewParamSet: parameters %q and %q are one tensor (tied weights are not supported)", o, p.Name)
		}
		owner[p.Tensor] = p.Name
		t := &Trainable{Param: p}
		ps.list = append(ps.list, t)
		ps.index[p.Name] = t
	}
	return ps, nil
}

// All returns every parameter, frozen or not, in the order given to
// NewParamSet.
func (ps *ParamSet) All() []*Trainable { return append([]*Trainable(nil), ps.list...) }

// Len returns the number of parameters, frozen or not.
func (ps *ParamSet) Len() int { return len(ps.list) }

// Get returns the parameter called name, or nil.
func (ps *ParamSet) Get(name string) *Trainable { return ps.index[name] }

// MatchName reports whether the parameter name matches pattern, which is
// one of:
//   - a glob (it contains *, ? or [): path.Match over the whole name, where *
//     matches any run of characters, dots included ("down_blocks.1.*",
//     "*.attn2.to_k.*", "up_blocks.[01].resnets.*");
//   - a name ending in "." (as training scripts list prefixes): every name
//     starting with it ("conv_in.");
//   - any other string: the parameter of that name, or every parameter of the
//     module of that path ("mid_block" matches "mid_block.resnets.0.conv1.weight"
//     but "down_blocks.1" does not match "down_blocks.10.norm.weight").
//
// A malformed glob is an error.
func MatchName(pattern, name string) (bool, error) {
	if strings.ContainsAny(pattern, "*?[") {
		ok, err := path.Match(pattern, name)
		if err != nil {
			return false, fmt.Errorf("nn: malformed name pattern %q: %v", pattern, err)
		}
		return ok, nil
	}
	if strings.HasSuffix(pattern, ".") {
		return strings.HasPrefix(name, pattern), nil
	}
	return name == pattern || strings.HasPrefix(name, pattern+"."), nil
}

// Freeze excludes the parameters matching any of patterns (MatchName) from
// training and returns how many matched. A pattern that matches nothing is
// an error (a misspelt name would otherwise train what was meant to be
// frozen); nothing changes then.
func (ps *ParamSet) Freeze(patterns ...string) (int, error) {
	return ps.setFrozen("Freeze", true, patterns)
}

// Unfreeze makes the parameters matching any of patterns trainable again and
// returns how many matched; a pattern that matches nothing is an error.
func (ps *ParamSet) Unfreeze(patterns ...string) (int, error) {
	return ps.setFrozen("Unfreeze", false, patterns)
}

// Only freezes every parameter except those matching any of patterns (which
// it makes trainable) and returns how many are trainable; a pattern that
// matches nothing is an error, and nothing changes then.
func (ps *ParamSet) Only(patterns ...string) (int, error) {
	sel, err := ps.match("Only", patterns)
	if err != nil {
		return 0, err
	}
	for i, p := range ps.list {
		p.frozen = !sel[i]
	}
	return ps.count(sel), nil
}

// setFrozen sets the frozen flag of the parameters matching patterns.
func (ps *ParamSet) setFrozen(op string, frozen bool, patterns []string) (int, error) {
	sel, err := ps.match(op, patterns)
	if err != nil {
		return 0, err
	}
	for i, p := range ps.list {
		if sel[i] {
			p.frozen = frozen
		}
	}
	return ps.count(sel), nil
}

// match returns which parameters match any of patterns, checking that each
// pattern matches something.
func (ps *ParamSet) match(op string, patterns []string) ([]bool, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("nn: %s: no name pattern given", op)
	}
	sel := make([]bool, len(ps.list))
	for _, pat := range patterns {
		hit := false
		for i, p := range ps.list {
			ok, err := MatchName(pat, p.Name)
			if err != nil {
				return nil, errctx.Wrap("nn: "+op, err)
			}
			if ok {
				sel[i], hit = true, true
			}
		}
		if !hit {
			example := ""
			if len(ps.list) > 0 {
				example = fmt.Sprintf(" (names look like %q)", ps.list[0].Name)
			}
			return nil, fmt.Errorf("nn: %s: pattern %q matches no parameter%s", op, pat, example)
		}
	}
	return sel, nil
}

// count returns the number of set entries of sel.
func (ps *ParamSet) count(sel []bool) int {
	n := 0
	for _, s := range sel {
		if s {
			n++
		}
	}
	return n
}

// Trainable returns the parameters that are not frozen, in order, each with
// its master copy ready: the value itself for a contiguous, writable F32 host
// tensor; a new F32 host copy for a 16-bit value or one on an accelerator. A
// read-only value (memory-mapped from a file) is first replaced by a writable
// copy, in the set and in the model (see NewParamSet). The values of the
// returned parameters are marked for autograd (SetRequiresGrad, SetName with
// the parameter's name); frozen ones are unmarked. It may be called again
// after Freeze or Unfreeze. On error nothing is replaced.
func (ps *ParamSet) Trainable() ([]*Trainable, error) {
	var out, fresh []*Trainable
	swap := map[*tensor.Tensor]*tensor.Tensor{} // read-only value -> writable copy
	undo := func() {
		for _, p := range fresh {
			for o, c := range swap {
				if p.Tensor == c {
					p.Tensor = o
				}
			}
			p.Master = nil
		}
	}
	for _, p := range ps.list {
		if p.frozen {
			continue
		}
		if p.Master == nil {
			var err error
			if cerr := tensor.Catch(func() { err = ps.prepare(p, swap) }); cerr != nil {
				err = errctx.Wrap("nn: parameter "+p.Name, cerr)
			}
			if err != nil {
				undo()
				return nil, err
			}
			fresh = append(fresh, p)
		}
		out = append(out, p)
	}
	if len(swap) > 0 {
		if err := ps.replaceInModel(swap); err != nil {
			undo()
			return nil, err
		}
	}
	for _, p := range ps.list {
		if p.frozen && p.Tensor.IsLeaf() {
			p.Tensor.SetRequiresGrad(false)
			if p.rowSparse {
				p.Tensor.SetSparseGrad(false)
			}
		}
	}
	for _, p := range out {
		p.Tensor.SetRequiresGrad(true).SetName(p.Name)
		if p.rowSparse {
			p.Tensor.SetSparseGrad(true)
		}
	}
	return out, nil
}

// prepare gives p its master, recording in swap a writable copy that must
// replace a read-only value.
func (ps *ParamSet) prepare(p *Trainable, swap map[*tensor.Tensor]*tensor.Tensor) error {
	if !p.Tensor.IsContiguous() {
		return fmt.Errorf("nn: parameter %q is not contiguous (strides %v); parameters must be dense tensors", p.Name, p.Tensor.Strides())
	}
	v := p.Tensor.Detach() // copies must not be recorded by autograd
	defer v.Release()
	if v.Device() != tensor.CPU {
		h := v.ToDevice(tensor.CPU) // a copy of its own
		if h.DType() == tensor.F32 {
			p.Master = h
		} else {
			p.Master = h.To(tensor.F32)
			h.Release()
		}
		return nil
	}
	if !writable(v) {
		if ps.model == nil {
			return fmt.Errorf("nn: parameter %q is read-only (memory-mapped from a file): pass the model to NewParamSet so that a writable copy can replace it", p.Name)
		}
		c := v.Clone()
		swap[p.Tensor] = c
		p.Tensor = c
	}
	if p.Tensor.DType() == tensor.F32 {
		p.Master = p.Tensor
	} else {
		p.Master = v.To(tensor.F32) // v: the read-only original has the same values
	}
	return nil
}

// replaceInModel puts the writable copies of swap into the model's fields in
// place of the read-only tensors, after checking that the model holds each
// in a settable field (otherwise it changes nothing).
func (ps *ParamSet) replaceInModel(swap map[*tensor.Tensor]*tensor.Tensor) error {
	found := map[*tensor.Tensor]bool{}
	v := reflect.ValueOf(ps.model)
	eachTensor(v, func(f reflect.Value) {
		if t := f.Interface().(*tensor.Tensor); swap[t] != nil && f.CanSet() {
			found[t] = true
		}
	})
	orig := make(map[*tensor.Tensor]*tensor.Tensor, len(swap)) // copy -> original
	for o, c := range swap {
		orig[c] = o
	}
	for _, p := range ps.list { // in order, for a deterministic message
		if o, ok := orig[p.Tensor]; ok && !found[o] {
			return fmt.Errorf("nn: parameter %q is read-only (memory-mapped from a file) and the model given to NewParamSet does not hold it in a settable field, so no writable copy can replace it", p.Name)
		}
	}
	eachTensor(v, func(f reflect.Value) {
		if c := swap[f.Interface().(*tensor.Tensor)]; c != nil && f.CanSet() {
			f.Set(reflect.ValueOf(c))
		}
	})
	return nil
}

// writable reports whether the memory of the host tensor t can be written
// (tensors of a tensor.Archive alias a read-only file mapping).
func writable(t *tensor.Tensor) bool { return !t.ReadOnly() }

// ZeroGrad sets the gradients of the trainable parameters to zero, keeping
// their buffers (torch 1.13's optimizer.zero_grad() default,
// set_to_none=False: a zero gradient still gets weight decay and momentum),
// and drops the gradients autograd accumulated into their values.
func (ps *ParamSet) ZeroGrad() {
	for _, p := range ps.list {
		if p.frozen {
			continue
		}
		if g := p.Grad; g != nil {
			if g.DType() == tensor.F32 && g.IsContiguous() && g.Device() == tensor.CPU {
				p.zeroGrad()
			} else { // not a gradient this package made: drop it
				g.Release()
				p.Grad = nil
			}
		}
		if p.Tensor.Grad() != nil {
			p.Tensor.ZeroGrad()
		}
		if p.rowSparse {
			p.Tensor.ZeroRowGrad()
		}
	}
}

// DropGrads releases the gradients of every parameter (set_to_none=True:
// optimisers then skip the parameters until they have a gradient again) and
// those autograd accumulated into their values.
func (ps *ParamSet) DropGrads() {
	for _, p := range ps.list {
		if p.Grad != nil {
			p.Grad.Release()
			p.Grad = nil
		}
		p.sparseBuf, p.dirty, p.denseDirty = nil, nil, false
		if p.Tensor.Grad() != nil {
			p.Tensor.ZeroGrad()
		}
		if p.rowSparse {
			p.Tensor.ZeroRowGrad()
		}
	}
}

// CollectGrads adds the gradients that autograd's Backward accumulated into
// the values of the trainable parameters to their Grad, converted to F32 on
// the host and multiplied by scale (Grad += scale*g, see AddGrad), and
// clears them on the values. Called after each micro-batch's Backward with
// scale 1/k, it accumulates the mean gradient of k micro-batches
// (accelerate's convention); with scale 1 after a single Backward it moves
// the gradient. Parameters without an autograd gradient are left as they
// are. For a row-sparse parameter (SetRowSparse) it also adds the rows
// Embedding's backward delivered (scale times each row into the gradient's
// rows, the same numbers as adding the dense gradient) and drops them.
func (ps *ParamSet) CollectGrads(scale float32) error {
	for _, p := range ps.list {
		if p.frozen || p.Master == nil {
			continue
		}
		if g := p.Tensor.Grad(); g != nil {
			if p.Grad == nil && scale == 1 && takeable(g, p.Shape()) {
				// Move autograd's gradient over instead of adding it to
				// zeros: the same values, no second buffer.
				p.Grad = tensor.Persist(g.Detach())
				p.denseDirty = true
			} else if err := p.AddGrad(g, scale); err != nil {
				return err
			}
			p.Tensor.ZeroGrad()
		}
		if !p.rowSparse {
			continue
		}
		if rows, rg := p.Tensor.RowGrad(); rows != nil {
			var err error
			if cerr := tensor.Catch(func() { err = p.addRows(rows, rg, scale) }); cerr != nil {
				err = errctx.Wrap("nn: parameter "+p.Name, cerr)
			}
			if err != nil {
				return err
			}
			p.Tensor.ZeroRowGrad()
		}
	}
	return nil
}

// SetRowSparse makes the parameters matching any of patterns (MatchName;
// 2-D embedding tables [V, D], such as
// "text_model.embeddings.token_embedding.weight") receive the gradients of
// their Embedding lookups as rows instead of dense [V, D] tensors, and
// returns how many matched. Backward then computes and hands over only the
// rows of the ids used (tensor.Tensor.SetSparseGrad), and CollectGrads adds
// them into the parameter's gradient buffer, which is allocated once and of
// which ZeroGrad clears only the rows written: per step, memory and time
// scale with the rows touched, not with the vocabulary. The gradient, and so
// every optimiser step, is the same, bit for bit, as with dense gradients:
// the buffer holds the full gradient (rows not looked up are zero), and
// AdamW still updates every row — weight decay and the moments' decay apply
// to all of them, as torch.optim.AdamW does with a dense gradient from
// torch's Embedding(sparse=False). The tables must stay leaves (no ops
// between the parameter and tensor.Embedding). A pattern that matches
// nothing, or a parameter that is not 2-D, is an error; nothing changes
// then. Trainable applies the mark (again after it replaces a read-only
// value); frozen parameters are unmarked.
func (ps *ParamSet) SetRowSparse(patterns ...string) (int, error) {
	sel, err := ps.match("SetRowSparse", patterns)
	if err != nil {
		return 0, err
	}
	for i, p := range ps.list {
		if sel[i] && p.Tensor.Rank() != 2 {
			return 0, fmt.Errorf("nn: SetRowSparse: parameter %q has shape %v, want a 2-D embedding table", p.Name, p.Shape())
		}
	}
	for i, p := range ps.list {
		if sel[i] {
			p.rowSparse = true
			if p.Master != nil && !p.frozen {
				p.Tensor.SetSparseGrad(true)
			}
		}
	}
	return ps.count(sel), nil
}

// Sync writes every trainable parameter's master into its value
// (SyncValue). Optimisers do this themselves after a step.
func (ps *ParamSet) Sync() error {
	for _, p := range ps.list {
		if !p.frozen {
			if err := p.SyncValue(); err != nil {
				return err
			}
		}
	}
	return nil
}

// SaveWeights writes every parameter, frozen or not, as the model holds it
// (its value's dtype) to a safetensors file under its name — the diffusers
// layout, loadable by diffusers and by this package's Builder — with
// optional metadata. The file is written atomically.
func (ps *ParamSet) SaveWeights(path string, metadata map[string]string) error {
	params := make([]Param, len(ps.list))
	for i, p := range ps.list {
		d := p.Tensor.Detach() // writing must not meet autograd
		defer d.Release()
		params[i] = Param{Name: p.Name, Tensor: d}
	}
	if _, ok := metadata["format"]; !ok {
		m := map[string]string{"format": "pt"}
		for k, v := range metadata {
			m[k] = v
		}
		metadata = m
	}
	var err error
	if cerr := tensor.Catch(func() { err = SaveSafetensors(path, params, metadata) }); cerr != nil {
		return errctx.Wrap("nn: SaveWeights", cerr)
	}
	return err
}

// SaveMasters writes the F32 masters of the trainable parameters under their
// names (for resuming a mixed-precision run without the 16-bit rounding of
// the values) with optional metadata. Trainable must have been called.
func (ps *ParamSet) SaveMasters(path string, metadata map[string]string) error {
	m := map[string]*tensor.Tensor{}
	for _, p := range ps.list {
		if p.frozen {
			continue
		}
		if p.Master == nil {
			return fmt.Errorf("nn: SaveMasters: parameter %q has no master copy yet (call Trainable first)", p.Name)
		}
		m[p.Name] = p.Master
	}
	return statefile.Save("nn: SaveMasters", path, m, nil, metadata)
}

// LoadMasters reads masters written by SaveMasters (or any safetensors file
// of F32 tensors under the parameters' names) into the trainable
// parameters' masters and syncs their values. The file must hold exactly
// the trainable parameters, each F32 with its shape; otherwise nothing is
// changed and the error names the first difference.
func (ps *ParamSet) LoadMasters(path string) error {
	const who = "nn: LoadMasters"
	f, err := statefile.Open(who, path)
	if err != nil {
		return err
	}
	defer f.Close()
	var train []*Trainable
	for _, p := range ps.list {
		if p.frozen {
			continue
		}
		if p.Master == nil {
			return fmt.Errorf("%s: parameter %q has no master copy yet (call Trainable first)", who, p.Name)
		}
		if err := f.Check(p.Name, p.Shape(), "trainable parameter"); err != nil {
			return err
		}
		train = append(train, p)
	}
	err = f.CheckNames(func(n string) bool {
		p := ps.index[n]
		return p != nil && !p.frozen
	}, "a trainable parameter of this set")
	if err != nil {
		return err
	}
	for _, p := range train {
		if err := f.CopyTo(p.Name, p.Master); err != nil {
			return err
		}
		if err := p.SyncValue(); err != nil {
			return err
		}
	}
	return nil
}

// takeable reports whether the autograd gradient g can become a Trainable's
// Grad as it is: a contiguous F32 host tensor of the parameter's shape.
func takeable(g *tensor.Tensor, shape tensor.Shape) bool {
	return g.DType() == tensor.F32 && g.Device() == tensor.CPU && g.IsContiguous() && g.Shape().Equal(shape)
}

package tensor

import (
	"fmt"
)

// This file holds the shape operations. Those documented as views share t's
// storage (writes through one show in the other); the rest copy.

// inferShape resolves one -1 in shape against numel.
func inferShape(op string, shape []int, numel int) Shape {
	out := make(Shape, len(shape))
	neg := -1
	known := 1
	for i, d := range shape {
		switch {
		case d == -1 && neg < 0:
			neg = i
		case d < 0:
			panic(fmt.Sprintf("tensor: %s: invalid shape %v", op, shape))
		default:
			known *= d
		}
		out[i] = d
	}
	if neg >= 0 {
		if known == 0 || numel%known != 0 {
			panic(fmt.Sprintf("tensor: %s: cannot infer -1 in %v for %d elements", op, shape, numel))
		}
		out[neg] = numel / known
	}
	if out.Numel() != numel {
		panic(fmt.Sprintf("tensor: %s: shape %v does not hold %d elements", op, shape, numel))
	}
	return out
}

// viewStrides returns strides that lay newShape over (oldShape, oldStrides)
// without copying, or nil when that is impossible (PyTorch's view rule: every
// group of merged or split dimensions must be contiguous within itself).
func viewStrides(oldShape Shape, oldStrides []int, newShape Shape) []int {
	if oldShape.Numel() == 0 || len(oldShape) == 0 {
		return contiguousStrides(newShape)
	}
	ns := make([]int, len(newShape))
	vd := len(newShape) - 1
	base := oldStrides[len(oldStrides)-1]
	tn, vn := 1, 1
	for td := len(oldShape) - 1; td >= 0; td-- {
		tn *= oldShape[td]
		if td == 0 || (oldShape[td-1] != 1 && oldStrides[td-1] != tn*base) {
			for vd >= 0 && (vn < tn || newShape[vd] == 1) {
				ns[vd] = vn * base
				vn *= newShape[vd]
				vd--
			}
			if vn != tn {
				return nil
			}
			if td > 0 {
				base = oldStrides[td-1]
				tn, vn = 1, 1
			}
		}
	}
	if vd != -1 {
		return nil
	}
	return ns
}

// View returns a view of t with the given shape (one size may be -1, inferred).
// It panics when the layout of t does not allow a view (use Reshape, which copies
// then).
func (t *Tensor) View(shape ...int) *Tensor {
	out := t.viewImpl(shape...)
	return recordReshape("View", t, out)
}

func (t *Tensor) viewImpl(shape ...int) *Tensor {
	ns := inferShape("View", shape, t.Numel())
	st := viewStrides(t.shape, t.strides, ns)
	if st == nil {
		panic(fmt.Sprintf("tensor: View: cannot view shape %v strides %v as %v; use Reshape", t.shape, t.strides, ns))
	}
	return t.view(ns, st, t.offset)
}

// Reshape returns t with the given shape (one size may be -1): a view when the
// layout allows it, otherwise a contiguous copy.
func (t *Tensor) Reshape(shape ...int) *Tensor {
	out := t.reshapeImpl(shape...)
	return recordReshape("Reshape", t, out)
}

func (t *Tensor) reshapeImpl(shape ...int) *Tensor {
	ns := inferShape("Reshape", shape, t.Numel())
	if st := viewStrides(t.shape, t.strides, ns); st != nil {
		return t.view(ns, st, t.offset)
	}
	c := t.Contiguous()
	r := c.view(ns, contiguousStrides(ns), c.offset)
	c.Release()
	return r
}

// Flatten merges dimensions start..end (inclusive; negative counts from the end)
// into one, like torch.flatten. It is a view when possible.
func (t *Tensor) Flatten(start, end int) *Tensor {
	if len(t.shape) == 0 {
		return t.Reshape(1)
	}
	s := normDim("Flatten", start, len(t.shape))
	e := normDim("Flatten", end, len(t.shape))
	if s > e {
		panic(fmt.Sprintf("tensor: Flatten: start %d after end %d for shape %v", start, end, t.shape))
	}
	ns := append(Shape(nil), t.shape[:s]...)
	ns = append(ns, Shape(t.shape[s:e+1]).Numel())
	ns = append(ns, t.shape[e+1:]...)
	return t.Reshape(ns...)
}

// Slice returns the view of t with indices [start, end) along dim (negative start
// and end count from the end of the dimension, as in Python).
func (t *Tensor) Slice(dim, start, end int) *Tensor {
	out := t.sliceImpl(dim, start, end)
	if !needsGrad(t) {
		return out
	}
	in, d := t.shape.Clone(), normDim("Slice", dim, len(t.shape))
	s := start
	if s < 0 {
		s += in[d]
	}
	return record(out, "Slice", []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{padInto(g, in, d, s)}
	})
}

func (t *Tensor) sliceImpl(dim, start, end int) *Tensor {
	d := normDim("Slice", dim, len(t.shape))
	n := t.shape[d]
	s, e := start, end
	if s < 0 {
		s += n
	}
	if e < 0 {
		e += n
	}
	if s < 0 || e > n || s > e {
		panic(fmt.Sprintf("tensor: Slice: [%d, %d) out of range for dim %d of shape %v", start, end, dim, t.shape))
	}
	ns := t.shape.Clone()
	ns[d] = e - s
	return t.view(ns, append([]int(nil), t.strides...), t.offset+s*t.strides[d])
}

// Narrow returns the view of t with length indices from start along dim, like
// torch.narrow.
func (t *Tensor) Narrow(dim, start, length int) *Tensor {
	d := normDim("Narrow", dim, len(t.shape))
	if start < 0 {
		start += t.shape[d]
	}
	return t.Slice(d, start, start+length)
}

// Select returns the view of t at index i along dim, with that dimension removed
// (torch.select; x.Select(0, i) is x[i]). Negative i counts from the end.
func (t *Tensor) Select(dim, i int) *Tensor {
	out := t.selectImpl(dim, i)
	if !needsGrad(t) {
		return out
	}
	in, d := t.shape.Clone(), normDim("Select", dim, len(t.shape))
	j := i
	if j < 0 {
		j += in[d]
	}
	return record(out, "Select", []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		u := g.Unsqueeze(d)
		defer u.Release()
		return []*Tensor{padInto(u, in, d, j)}
	})
}

func (t *Tensor) selectImpl(dim, i int) *Tensor {
	d := normDim("Select", dim, len(t.shape))
	n := t.shape[d]
	j := i
	if j < 0 {
		j += n
	}
	if j < 0 || j >= n {
		panic(fmt.Sprintf("tensor: Select: index %d out of range for dim %d of shape %v", i, dim, t.shape))
	}
	ns := append(t.shape[:d:d], t.shape[d+1:]...)
	st := append(t.strides[:d:d], t.strides[d+1:]...)
	return t.view(ns, st, t.offset+j*t.strides[d])
}

// Permute returns the view of t with dimensions reordered: dimension i of the
// result is dimension dims[i] of t.
func (t *Tensor) Permute(dims ...int) *Tensor {
	out := t.permuteImpl(dims...)
	if !needsGrad(t) {
		return out
	}
	inv := make([]int, len(dims))
	for i, d := range dims {
		inv[normDim("Permute", d, len(dims))] = i
	}
	return record(out, "Permute", []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{g.Permute(inv...)}
	})
}

func (t *Tensor) permuteImpl(dims ...int) *Tensor {
	r := len(t.shape)
	if len(dims) != r {
		panic(fmt.Sprintf("tensor: Permute: %d dims %v for shape %v", len(dims), dims, t.shape))
	}
	seen := make([]bool, r)
	ns := make(Shape, r)
	st := make([]int, r)
	for i, d := range dims {
		d = normDim("Permute", d, r)
		if seen[d] {
			panic(fmt.Sprintf("tensor: Permute: repeated dim in %v", dims))
		}
		seen[d] = true
		ns[i], st[i] = t.shape[d], t.strides[d]
	}
	return t.view(ns, st, t.offset)
}

// Transpose returns the view of t with dimensions d0 and d1 swapped.
func (t *Tensor) Transpose(d0, d1 int) *Tensor {
	out := t.transposeImpl(d0, d1)
	if !needsGrad(t) {
		return out
	}
	return record(out, "Transpose", []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{g.Transpose(d0, d1)}
	})
}

func (t *Tensor) transposeImpl(d0, d1 int) *Tensor {
	r := len(t.shape)
	a, b := normDim("Transpose", d0, r), normDim("Transpose", d1, r)
	ns, st := t.shape.Clone(), append([]int(nil), t.strides...)
	ns[a], ns[b] = ns[b], ns[a]
	st[a], st[b] = st[b], st[a]
	return t.view(ns, st, t.offset)
}

// Squeeze returns the view of t without the given dimensions, which must have
// size 1; with no dims, it removes every dimension of size 1.
func (t *Tensor) Squeeze(dims ...int) *Tensor {
	out := t.squeezeImpl(dims...)
	return recordReshape("Squeeze", t, out)
}

func (t *Tensor) squeezeImpl(dims ...int) *Tensor {
	drop := make([]bool, len(t.shape))
	if len(dims) == 0 {
		for i, d := range t.shape {
			drop[i] = d == 1
		}
	}
	for _, d := range dims {
		i := normDim("Squeeze", d, len(t.shape))
		if t.shape[i] != 1 {
			panic(fmt.Sprintf("tensor: Squeeze: dim %d of shape %v is not 1", d, t.shape))
		}
		drop[i] = true
	}
	var ns Shape
	var st []int
	for i := range t.shape {
		if !drop[i] {
			ns = append(ns, t.shape[i])
			st = append(st, t.strides[i])
		}
	}
	return t.view(ns, st, t.offset)
}

// Unsqueeze returns the view of t with a new dimension of size 1 at dim (dim may
// be Rank(); negative counts from the end of the result, as in PyTorch).
func (t *Tensor) Unsqueeze(dim int) *Tensor {
	out := t.unsqueezeImpl(dim)
	return recordReshape("Unsqueeze", t, out)
}

func (t *Tensor) unsqueezeImpl(dim int) *Tensor {
	d := normDim("Unsqueeze", dim, len(t.shape)+1)
	ns := append(t.shape[:d:d], append(Shape{1}, t.shape[d:]...)...)
	inner := 1
	if d < len(t.shape) {
		inner = t.strides[d] * t.shape[d]
	}
	st := append(t.strides[:d:d], append([]int{inner}, t.strides[d:]...)...)
	return t.view(ns, st, t.offset)
}

// Expand returns a broadcast view of t with the given shape: dimensions of size 1
// repeat with stride 0, new leading dimensions may be added, and -1 keeps a size.
// The result must not be written to.
func (t *Tensor) Expand(shape ...int) *Tensor {
	out := t.expandImpl(shape...)
	if !needsGrad(t) {
		return out
	}
	in := t.shape.Clone()
	return record(out, "Expand", []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{sumTo(g, in)}
	})
}

func (t *Tensor) expandImpl(shape ...int) *Tensor {
	r := len(shape)
	if r < len(t.shape) {
		panic(fmt.Sprintf("tensor: Expand: shape %v has fewer dims than %v", shape, t.shape))
	}
	off := r - len(t.shape)
	ns := make(Shape, r)
	st := make([]int, r)
	for i, d := range shape {
		if i < off {
			if d < 0 {
				panic(fmt.Sprintf("tensor: Expand: -1 in a new leading dim of %v", shape))
			}
			ns[i] = d
			continue
		}
		o := t.shape[i-off]
		switch {
		case d == -1 || d == o:
			ns[i], st[i] = o, t.strides[i-off]
		case o == 1 && d >= 0:
			ns[i] = d
		default:
			panic(fmt.Sprintf("tensor: Expand: cannot expand %v to %v", t.shape, shape))
		}
	}
	return t.view(ns, st, t.offset)
}

// broadcastTo is Expand to shape s.
func (t *Tensor) broadcastTo(s Shape) *Tensor { return t.expandImpl(s...) }

// Contiguous returns t if it is already dense in row-major order (as a new handle
// on the same storage), otherwise a contiguous copy.
func (t *Tensor) Contiguous() *Tensor {
	out := t.contiguousImpl()
	return recordIdentity("Contiguous", t, out)
}

func (t *Tensor) contiguousImpl() *Tensor {
	if t.IsContiguous() {
		return t.view(t.shape.Clone(), append([]int(nil), t.strides...), t.offset)
	}
	return t.Clone()
}

// Clone returns a contiguous copy of t with its own storage.
func (t *Tensor) Clone() *Tensor {
	out := t.cloneImpl()
	return recordIdentity("Clone", t, out)
}

func (t *Tensor) cloneImpl() *Tensor {
	st := t.s("Clone")
	out := newTensor(st.device, st.dtype, t.shape, false)
	backendFor(st.device).copy(out, t)
	return out
}

// CopyFrom copies src (broadcast to t's shape, converted to t's dtype) into t in
// place; t may be a view (e.g. a Slice of a larger tensor) but not a broadcast one.
// It returns t. It has no backward rule (Cat and padding ops do).
func (t *Tensor) CopyFrom(src *Tensor) *Tensor {
	noRule("CopyFrom", t, src)
	dev := sameDevice("CopyFrom", t, src)
	checkWritable("CopyFrom", t)
	if src.DType() != t.DType() {
		c := src.To(t.DType())
		defer c.Release()
		src = c
	}
	s := src.broadcastTo(t.shape)
	defer s.Release()
	backendFor(dev).copy(t, s)
	return t
}

// checkWritable panics if t is a broadcast view (two indices sharing one
// element), and counts the in-place write that follows in the storage's
// version (see autograd's saved values). A tensor recorded by autograd that
// needs a gradient must not be written in place.
func checkWritable(op string, t *Tensor) {
	t.s(op).version.Add(1)
	if t.ag != nil && t.ag.requires && t.ag.node == nil && gradEnabled() {
		panic(fmt.Sprintf("tensor: %s: in-place write into a leaf tensor that requires a gradient (%s); update parameters under NoGrad", op, t.ag.describe()))
	}
	for i, s := range t.strides {
		if s == 0 && t.shape[i] > 1 {
			panic(fmt.Sprintf("tensor: %s: destination of shape %v is a broadcast view (strides %v)", op, t.shape, t.strides))
		}
	}
}

// Cat concatenates tensors along dim into a new contiguous tensor. All must have
// the same dtype, device and rank, and equal sizes except along dim.
func Cat(dim int, ts ...*Tensor) *Tensor {
	if len(ts) == 0 {
		panic("tensor: Cat: no tensors")
	}
	dev := sameDevice("Cat", ts...)
	first := ts[0]
	d := normDim("Cat", dim, len(first.shape))
	ns := first.shape.Clone()
	ns[d] = 0
	for _, t := range ts {
		if t.DType() != first.DType() || len(t.shape) != len(first.shape) {
			panic(fmt.Sprintf("tensor: Cat: %v %v and %v %v differ in dtype or rank", first.DType(), first.shape, t.DType(), t.shape))
		}
		for i := range ns {
			if i != d && t.shape[i] != first.shape[i] {
				panic(fmt.Sprintf("tensor: Cat: shapes %v and %v differ outside dim %d", first.shape, t.shape, dim))
			}
		}
		ns[d] += t.shape[d]
	}
	out := newTensor(dev, first.DType(), ns, false)
	at := 0
	for _, t := range ts {
		v := out.sliceImpl(d, at, at+t.shape[d])
		backendFor(dev).copy(v, t)
		v.Release()
		at += t.shape[d]
	}
	if !needsGrad(ts...) {
		return out
	}
	sizes := make([]int, len(ts))
	for i, t := range ts {
		sizes[i] = t.shape[d]
	}
	return record(out, "Cat", ts, nil, func(g *Tensor) []*Tensor {
		gs := make([]*Tensor, len(sizes))
		at := 0
		for i, n := range sizes {
			v := g.sliceImpl(d, at, at+n)
			gs[i] = v.Contiguous()
			v.Release()
			at += n
		}
		return gs
	})
}

// Stack stacks tensors of equal shape along a new dimension dim.
func Stack(dim int, ts ...*Tensor) *Tensor {
	if len(ts) == 0 {
		panic("tensor: Stack: no tensors")
	}
	us := make([]*Tensor, len(ts))
	for i, t := range ts {
		if !t.shape.Equal(ts[0].shape) {
			panic(fmt.Sprintf("tensor: Stack: shapes %v and %v differ", ts[0].shape, t.shape))
		}
		us[i] = t.Unsqueeze(dim)
	}
	out := Cat(dim, us...)
	for _, u := range us {
		u.Release()
	}
	return out
}

// Chunk splits t along dim into n views of ceil(size/n) indices (the last may be
// smaller, and fewer than n come back when the size is small), like torch.chunk.
func (t *Tensor) Chunk(n, dim int) []*Tensor {
	if n < 1 {
		panic(fmt.Sprintf("tensor: Chunk: %d chunks", n))
	}
	d := normDim("Chunk", dim, len(t.shape))
	size := t.shape[d]
	step := (size + n - 1) / n
	if step == 0 {
		return []*Tensor{t.Narrow(d, 0, 0)}
	}
	var out []*Tensor
	for s := 0; s < size; s += step {
		out = append(out, t.Narrow(d, s, min(step, size-s)))
	}
	return out
}

// Split splits t along dim into views of the given sizes, which must add up to
// the size of dim (torch.split with a list).
func (t *Tensor) Split(sizes []int, dim int) []*Tensor {
	d := normDim("Split", dim, len(t.shape))
	sum := 0
	for _, s := range sizes {
		if s < 0 {
			panic(fmt.Sprintf("tensor: Split: negative size in %v", sizes))
		}
		sum += s
	}
	if sum != t.shape[d] {
		panic(fmt.Sprintf("tensor: Split: sizes %v do not add up to dim %d of shape %v", sizes, dim, t.shape))
	}
	out := make([]*Tensor, len(sizes))
	at := 0
	for i, s := range sizes {
		out[i] = t.Narrow(d, at, s)
		at += s
	}
	return out
}

// T2 returns the view of t with its last two dimensions swapped (the matrix
// transpose of each batch element).
func (t *Tensor) T2() *Tensor { return t.Transpose(-2, -1) }

// recordReshape records a view with another shape over the same elements in
// the same order (View, Reshape, Squeeze, Unsqueeze): the gradient is g
// reshaped back.
func recordReshape(op string, t, out *Tensor) *Tensor {
	if !needsGrad(t) {
		return out
	}
	in := t.shape.Clone()
	return record(out, op, []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{g.Reshape(in...)}
	})
}

// recordIdentity records an op whose output equals its input (Contiguous,
// Clone): the gradient is g.
func recordIdentity(op string, t, out *Tensor) *Tensor {
	if !needsGrad(t) {
		return out
	}
	return record(out, op, []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{g.Contiguous()}
	})
}

// padInto returns zeros of shape with g copied at [start, start+g's size)
// along dim d: the gradient of a slice.
func padInto(g *Tensor, shape Shape, d, start int) *Tensor {
	z := ZerosOn(g.Device(), g.DType(), shape...)
	v := z.sliceImpl(d, start, start+g.shape[d])
	v.CopyFrom(g)
	v.Release()
	return z
}

package tensor

import (
	"fmt"
	"strings"
)

// Tensor is an n-dimensional array: a view (shape, strides, offset, all in
// elements) of a flat storage buffer shared with every other view of it. Layout is
// row-major with PyTorch's dimension order. Views (Reshape, Slice, Permute,
// Expand, ...) share storage; ops allocate new contiguous outputs.
//
// A Tensor is not safe for concurrent mutation (in-place ops), like a Go slice;
// concurrent reads are fine.
type Tensor struct {
	st      *storage
	shape   Shape
	strides []int
	offset  int
	// ag is the autograd state: set on leaves marked trainable and on the
	// outputs of ops recorded while some input needed a gradient; nil for
	// everything else, so inference carries no autograd cost.
	ag *gradInfo
	// sc is the open scope that owns the handle (releases it when it
	// ends), or nil; see scope.go.
	sc *scope
}

// newTensor returns a fresh contiguous tensor over a new buffer of the given
// device (zeroed if zero is set).
func newTensor(dev Device, dt DType, shape Shape, zero bool) *Tensor {
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("tensor: negative size in shape %v", shape))
		}
	}
	st := backendFor(dev).alloc(dt, shape.Numel(), zero)
	return wrap(st, shape.Clone(), contiguousStrides(shape), 0)
}

// wrap returns a new tensor handle on st, counting it as a user of st. The
// handle belongs to the calling goroutine's innermost open scope, if any.
func wrap(st *storage, shape Shape, strides []int, offset int) *Tensor {
	st.refs.Add(1)
	t := &Tensor{st: st, shape: shape, strides: strides, offset: offset}
	if scopesOpen.Load() != 0 {
		track(t)
	}
	return t
}

// wrapUnscoped is wrap for a handle no scope may own (a value autograd
// saves for a backward rule).
func wrapUnscoped(st *storage, shape Shape, strides []int, offset int) *Tensor {
	st.refs.Add(1)
	return &Tensor{st: st, shape: shape, strides: strides, offset: offset}
}

// view returns a new handle on t's storage with the given layout.
func (t *Tensor) view(shape Shape, strides []int, offset int) *Tensor {
	return wrap(t.s("view"), shape, strides, offset)
}

// s returns t's storage, panicking if t was released.
func (t *Tensor) s(op string) *storage {
	if t == nil {
		panic("tensor: " + op + ": nil tensor")
	}
	if t.st == nil {
		panic("tensor: " + op + ": use of a released tensor")
	}
	return t.st
}

// Release marks t as no longer used and, when no other live tensor (view) shares
// its storage, returns the buffer to the CPU buffer pool for reuse by later ops.
// After Release, t must not be used (ops panic); other views of the same storage
// stay valid and keep the buffer alive. Release on a nil or already released
// tensor does nothing. Storage adopted from the caller (FromFloat32 and friends)
// or mapped from a file is never recycled.
//
// Release is optional: tensors that are simply dropped are garbage collected,
// and a Scope releases what its block made. Release remains for lifetimes that
// do not follow a block: the previous latents of a sampling loop, a value
// consumed by a callee.
func (t *Tensor) Release() {
	if t == nil || t.st == nil {
		return
	}
	st := t.st
	t.st = nil
	if st.refs.Add(-1) == 0 && st.pooled {
		backendFor(st.device).free(st)
	}
}

// Shape returns (a copy of) the sizes of t's dimensions.
func (t *Tensor) Shape() Shape { return t.shape.Clone() }

// Dim returns the size of dimension i (negative i counts from the end).
func (t *Tensor) Dim(i int) int { return t.shape[normDim("Dim", i, len(t.shape))] }

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Numel returns the number of elements.
func (t *Tensor) Numel() int { return t.shape.Numel() }

// Strides returns (a copy of) the strides in elements.
func (t *Tensor) Strides() []int { return append([]int(nil), t.strides...) }

// DType returns the element type.
func (t *Tensor) DType() DType { return t.s("DType").dtype }

// Device returns the device holding t's storage.
func (t *Tensor) Device() Device { return t.s("Device").device }

// IsContiguous reports whether t is laid out densely in row-major order (sizes 1
// may have any stride).
func (t *Tensor) IsContiguous() bool {
	acc := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] == 1 {
			continue
		}
		if t.strides[i] != acc {
			return false
		}
		acc *= t.shape[i]
	}
	return true
}

// SharesStorage reports whether t and o are views of the same buffer.
func (t *Tensor) SharesStorage(o *Tensor) bool { return t.s("SharesStorage") == o.s("SharesStorage") }

// String returns a short description, e.g. "Tensor(F32 [2, 3] cpu)", followed by
// the values when there are at most 16 of them.
func (t *Tensor) String() string {
	if t == nil {
		return "Tensor(nil)"
	}
	if t.st == nil {
		return "Tensor(released)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Tensor(%v %v %v)", t.st.dtype, t.shape, t.st.device)
	if n := t.Numel(); n <= 16 && n > 0 {
		if t.st.dtype == I64 {
			fmt.Fprint(&b, t.Int64s())
		} else {
			fmt.Fprint(&b, t.Float32s())
		}
	}
	return b.String()
}

func checkShape(op string, shape []int) Shape {
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("tensor: %s: negative size in shape %v", op, shape))
		}
	}
	return Shape(shape).Clone()
}

// FromFloat32 returns an F32 tensor of the given shape that adopts data as its
// storage without copying: later writes to data show in the tensor and vice
// versa. len(data) must equal the number of elements; with no shape, the tensor
// is 1-D of length len(data). The buffer is never returned to the pool.
func FromFloat32(data []float32, shape ...int) *Tensor {
	if len(shape) == 0 && data != nil {
		shape = []int{len(data)}
	}
	sh := checkShape("FromFloat32", shape)
	if sh.Numel() != len(data) {
		panic(fmt.Sprintf("tensor: FromFloat32: %d values for shape %v", len(data), sh))
	}
	st := &storage{dtype: F32, device: CPU, n: len(data), f32: data}
	return wrap(st, sh, contiguousStrides(sh), 0)
}

// FromHalfBits returns an F16 or BF16 tensor that adopts bits (raw 16-bit
// patterns) as its storage without copying, like FromFloat32.
func FromHalfBits(bits []uint16, dt DType, shape ...int) *Tensor {
	if !dt.IsHalf() {
		panic(fmt.Sprintf("tensor: FromHalfBits: dtype %v is not F16 or BF16", dt))
	}
	if len(shape) == 0 && bits != nil {
		shape = []int{len(bits)}
	}
	sh := checkShape("FromHalfBits", shape)
	if sh.Numel() != len(bits) {
		panic(fmt.Sprintf("tensor: FromHalfBits: %d values for shape %v", len(bits), sh))
	}
	st := &storage{dtype: dt, device: CPU, n: len(bits), u16: bits}
	return wrap(st, sh, contiguousStrides(sh), 0)
}

// FromInt64 returns an I64 tensor that adopts data without copying, like FromFloat32.
func FromInt64(data []int64, shape ...int) *Tensor {
	if len(shape) == 0 && data != nil {
		shape = []int{len(data)}
	}
	sh := checkShape("FromInt64", shape)
	if sh.Numel() != len(data) {
		panic(fmt.Sprintf("tensor: FromInt64: %d values for shape %v", len(data), sh))
	}
	st := &storage{dtype: I64, device: CPU, n: len(data), i64: data}
	return wrap(st, sh, contiguousStrides(sh), 0)
}

// Scalar returns a 0-dimensional F32 tensor holding v.
func Scalar(v float32) *Tensor { return Full(F32, float64(v)) }

// Empty returns a contiguous CPU tensor whose contents are unspecified (the buffer
// may be recycled from the pool). Use it for outputs that are fully overwritten.
func Empty(dt DType, shape ...int) *Tensor {
	return newTensor(CPU, dt, checkShape("Empty", shape), false)
}

// Zeros returns a contiguous CPU tensor of zeros.
func Zeros(dt DType, shape ...int) *Tensor {
	return newTensor(CPU, dt, checkShape("Zeros", shape), true)
}

// Ones returns a contiguous CPU tensor of ones.
func Ones(dt DType, shape ...int) *Tensor { return Full(dt, 1, shape...) }

// Full returns a contiguous CPU tensor with every element v (rounded to dt).
func Full(dt DType, v float64, shape ...int) *Tensor {
	t := newTensor(CPU, dt, checkShape("Full", shape), false)
	backendFor(CPU).fill(t, v)
	return t
}

// EmptyOn is Empty on the open device d.
func EmptyOn(d Device, dt DType, shape ...int) *Tensor {
	return newTensor(d, dt, checkShape("EmptyOn", shape), false)
}

// ZerosOn is Zeros on the open device d.
func ZerosOn(d Device, dt DType, shape ...int) *Tensor {
	return newTensor(d, dt, checkShape("ZerosOn", shape), true)
}

// ZerosLike returns zeros with t's shape, dtype and device.
func ZerosLike(t *Tensor) *Tensor { return newTensor(t.Device(), t.DType(), t.shape, true) }

// Arange returns the 1-D tensor [start, start+step, ...) of values below end
// (above end for a negative step), like torch.arange.
func Arange(dt DType, start, end, step float64) *Tensor {
	if step == 0 {
		panic("tensor: Arange: zero step")
	}
	n := 0
	if (end-start)/step > 0 {
		n = ceilDiv(start, end, step)
	}
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = start + float64(i)*step
	}
	return fromFloat64s(dt, vals, n)
}

func ceilDiv(start, end, step float64) int {
	q := (end - start) / step
	n := int(q)
	if float64(n) < q {
		n++
	}
	return n
}

// fromFloat64s returns a new tensor of dtype dt holding vals.
func fromFloat64s(dt DType, vals []float64, shape ...int) *Tensor {
	t := newTensor(CPU, dt, Shape(shape), false)
	st := t.st
	switch dt {
	case F32:
		for i, v := range vals {
			st.f32[i] = float32(v)
		}
	case I64:
		for i, v := range vals {
			st.i64[i] = int64(v)
		}
	default:
		f := make([]float32, len(vals))
		for i, v := range vals {
			f[i] = float32(v)
		}
		convertF32To(dt, st.u16, f)
	}
	return t
}

// ReadOnly reports whether t's elements live in read-only memory: tensors of
// an Archive alias the file's read-only mapping (LoadSafetensors), and any
// write into them (an in-place op, an optimiser step) would crash the
// process. Copy such a tensor (Clone) before writing.
func (t *Tensor) ReadOnly() bool { return t.s("ReadOnly").keep != nil }

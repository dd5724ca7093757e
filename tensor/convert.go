package tensor

import (
	"fmt"
)

// To returns t converted to dtype dt as a new contiguous tensor. When t already
// has dtype dt, it returns a new handle on the same storage (no copy). Float to
// I64 truncates toward zero; F32 to F16/BF16 rounds to nearest even.
func (t *Tensor) To(dt DType) *Tensor {
	out := t.toImpl(dt)
	if !needsGrad(t) {
		return out
	}
	src := t.DType()
	return record(out, "To", []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		if src == I64 {
			return []*Tensor{nil}
		}
		return []*Tensor{g.Contiguous()}
	})
}

func (t *Tensor) toImpl(dt DType) *Tensor {
	st := t.s("To")
	if st.dtype == dt {
		return t.view(t.shape.Clone(), append([]int(nil), t.strides...), t.offset)
	}
	src := t.Contiguous()
	out := newTensor(st.device, dt, t.shape, false)
	backendFor(st.device).convert(out, src)
	src.Release()
	return out
}

// ToDevice returns t on device d (which must be open): a new handle on the
// same storage when t is already there, else a contiguous copy in d's memory
// with t's dtype and shape. Copies to the CPU wait for the work queued on t's
// device.
func (t *Tensor) ToDevice(d Device) *Tensor {
	out := t.toDeviceImpl(d)
	if !needsGrad(t) {
		return out
	}
	src := t.Device()
	return record(out, "ToDevice", []*Tensor{t}, nil, func(g *Tensor) []*Tensor {
		return []*Tensor{g.ToDevice(src)}
	})
}

func (t *Tensor) toDeviceImpl(d Device) *Tensor {
	st := t.s("ToDevice")
	if st.device == d {
		return t.view(t.shape.Clone(), append([]int(nil), t.strides...), t.offset)
	}
	src := t.Contiguous()
	defer src.Release()
	if st.device != CPU && d != CPU {
		h := src.ToDevice(CPU)
		defer h.Release()
		return h.ToDevice(d)
	}
	out := newTensor(d, st.dtype, t.shape, false)
	if d == CPU {
		backendFor(st.device).download(out, src)
	} else {
		backendFor(d).upload(out, src)
	}
	return out
}

// Float32s returns a new slice holding t's elements in row-major order, converted
// to float32 whatever t's dtype.
func (t *Tensor) Float32s() []float32 {
	if t.s("Float32s").device != CPU {
		h := t.ToDevice(CPU)
		defer h.Release()
		return h.Float32s()
	}
	c := t.To(F32)
	defer c.Release()
	if !c.IsContiguous() {
		d := c.Contiguous()
		defer d.Release()
		c = d
	}
	return append([]float32(nil), f32n(c, c.Numel())...)
}

// Int64s returns a new slice holding t's elements in row-major order, converted
// to int64 (truncating floats toward zero).
func (t *Tensor) Int64s() []int64 {
	c := t.To(I64)
	defer c.Release()
	d := c.Contiguous()
	defer d.Release()
	return append([]int64(nil), d.st.i64[d.offset:d.offset+d.Numel()]...)
}

// Item returns the single element of a one-element tensor as float32.
func (t *Tensor) Item() float32 {
	if t.Numel() != 1 {
		panic(fmt.Sprintf("tensor: Item: shape %v has %d elements, want 1", t.shape, t.Numel()))
	}
	return t.Float32s()[0]
}

// F32Data returns the elements of a contiguous F32 CPU tensor without copying: the
// slice aliases t's storage (writes go into the tensor) and is valid only while t
// (or another view of its storage) is live, that is not Released. It panics for
// other dtypes or layouts. It is meant for kernels, I/O and tests; model code
// should use tensor ops.
func (t *Tensor) F32Data() []float32 {
	st := t.s("F32Data")
	if st.dtype != F32 || !t.IsContiguous() || st.device != CPU {
		panic(fmt.Sprintf("tensor: F32Data: need a contiguous F32 CPU tensor, have %v %v strides %v on %v", st.dtype, t.shape, t.strides, st.device))
	}
	return st.f32[t.offset : t.offset+t.Numel()]
}

// HalfData returns the raw bits of a contiguous F16 or BF16 CPU tensor without
// copying, with the same aliasing rules as F32Data.
func (t *Tensor) HalfData() []uint16 {
	st := t.s("HalfData")
	if !st.dtype.IsHalf() || !t.IsContiguous() || st.device != CPU {
		panic(fmt.Sprintf("tensor: HalfData: need a contiguous F16/BF16 CPU tensor, have %v %v on %v", st.dtype, t.shape, st.device))
	}
	return st.u16[t.offset : t.offset+t.Numel()]
}

// Int64Data returns the elements of a contiguous I64 CPU tensor without copying,
// with the same aliasing rules as F32Data.
func (t *Tensor) Int64Data() []int64 {
	st := t.s("Int64Data")
	if st.dtype != I64 || !t.IsContiguous() || st.device != CPU {
		panic(fmt.Sprintf("tensor: Int64Data: need a contiguous I64 CPU tensor, have %v %v on %v", st.dtype, t.shape, st.device))
	}
	return st.i64[t.offset : t.offset+t.Numel()]
}

// asF32 returns t itself when it is F32 (owned=false), else an F32 copy (owned=true).
func asF32(t *Tensor) (*Tensor, bool) { return asType(t, F32) }

// asCompute returns t in its device's compute dtype: t itself when it already
// is (owned=false), else a converted copy (owned=true).
func asCompute(t *Tensor) (*Tensor, bool) { return asType(t, ComputeDType(t.s("op").device)) }

func asType(t *Tensor, dt DType) (*Tensor, bool) {
	if t.s("op").dtype == dt {
		return t, false
	}
	return t.To(dt), true
}

// f32Contig returns t as a contiguous F32 tensor: t itself when it already is, or
// a new tensor; release must be called when done (it releases only what was made).
// Parameter vectors (bias, gamma, beta) and timesteps go to the kernels as F32
// on every device.
func f32Contig(t *Tensor) (c *Tensor, release func()) { return typedContig(t, F32) }

// computeContig is f32Contig in the compute dtype of t's device: the form in
// which activations go to the kernels.
func computeContig(t *Tensor) (c *Tensor, release func()) {
	if t == nil {
		return nil, func() {}
	}
	return typedContig(t, ComputeDType(t.s("op").device))
}

func typedContig(t *Tensor, dt DType) (c *Tensor, release func()) {
	if t == nil {
		return nil, func() {}
	}
	if t.s("op").dtype == dt && t.IsContiguous() {
		return t, func() {}
	}
	f, owned := asType(t, dt)
	if f.IsContiguous() {
		return f, func() {
			if owned {
				f.Release()
			}
		}
	}
	c = f.Contiguous()
	if owned {
		f.Release()
	}
	return c, c.Release
}

// At returns the element at the given index (one per dimension; negative counts
// from the end) as float32, whatever the dtype. It is slow and meant for tests,
// debugging and reading a few values.
func (t *Tensor) At(idx ...int) float32 {
	st := t.s("At")
	if len(idx) != len(t.shape) {
		panic(fmt.Sprintf("tensor: At: %d indices for shape %v", len(idx), t.shape))
	}
	if st.device != CPU {
		h := t.ToDevice(CPU)
		defer h.Release()
		return h.At(idx...)
	}
	off := t.offset
	for d, i := range idx {
		j := i
		if j < 0 {
			j += t.shape[d]
		}
		if j < 0 || j >= t.shape[d] {
			panic(fmt.Sprintf("tensor: At: index %v out of range for shape %v", idx, t.shape))
		}
		off += j * t.strides[d]
	}
	switch st.dtype {
	case F32:
		return st.f32[off]
	case F16, BF16:
		var f [1]float32
		convertToF32(st.dtype, f[:], st.u16[off:off+1])
		return f[0]
	case I64:
		return float32(st.i64[off])
	}
	panic("tensor: At: unknown dtype")
}

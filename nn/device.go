package nn

import (
	"fmt"
	"reflect"

	"github.com/roentgo/roentgo/tensor"
)

var tensorType = reflect.TypeFor[*tensor.Tensor]()

// eachTensor calls fn for every non-nil *tensor.Tensor value reachable from v
// through exported struct fields, pointers, slices, arrays, maps and
// interfaces; fn gets the value itself, which is settable where it is a
// struct field or a slice element. Every pointer is followed once.
func eachTensor(v reflect.Value, fn func(f reflect.Value)) {
	Walk(v, func(p reflect.Value) bool {
		if p.Type() == tensorType {
			fn(p)
			return false
		}
		return true
	})
}

// Tensors returns the tensors reachable from model (a model or layer, usually
// a pointer) through exported fields, pointers, slices, arrays, maps and
// interfaces: its parameters and buffers. A tensor held in two places is
// listed once.
func Tensors(model any) []*tensor.Tensor {
	var out []*tensor.Tensor
	seen := map[*tensor.Tensor]bool{}
	eachTensor(reflect.ValueOf(model), func(f reflect.Value) {
		t := f.Interface().(*tensor.Tensor)
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	})
	return out
}

// ToDevice moves every parameter of model (a pointer to a model or layer
// struct; every *tensor.Tensor that Tensors finds in a struct field or slice
// element) to the open device dev, in the form its kernels want: vectors
// (biases, norm scales) as F32, and matrices and filters in dev's compute
// dtype when that is 16-bit (an F32 compute dtype keeps the stored dtype, for
// checking against the CPU). Index tensors (I64) move as they are. Tensors
// shared between layers stay shared. The replaced host tensors are not
// released (other holders, such as a Builder's parameter list, may still use
// them): they go to the garbage collector, or stay in the file mapping they
// came from. Parameters already on dev are left as they are.
//
// A device failure (out of memory) is returned as an error; the model may
// then hold parameters on both devices and should be dropped.
func ToDevice(model any, dev tensor.Device) error {
	v := reflect.ValueOf(model)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("nn: ToDevice: want a non-nil pointer to a model, have %T", model)
	}
	cd := tensor.ComputeDType(dev)
	moved := map[*tensor.Tensor]*tensor.Tensor{}
	return tensor.Catch(func() {
		eachTensor(v, func(f reflect.Value) {
			if !f.CanSet() {
				return
			}
			t := f.Interface().(*tensor.Tensor)
			m, ok := moved[t]
			if !ok {
				m = tensor.Persist(paramOnDevice(t, dev, cd)) // the model keeps it: no scope frees it
				moved[t] = m
			}
			f.Set(reflect.ValueOf(m))
		})
	})
}

// paramOnDevice returns the parameter t on dev in its kernel form (see ToDevice).
func paramOnDevice(t *tensor.Tensor, dev tensor.Device, cd tensor.DType) *tensor.Tensor {
	if t.Device() == dev {
		return t
	}
	dt := t.DType()
	switch {
	case dt == tensor.I64:
	case t.Rank() <= 1:
		dt = tensor.F32
	case cd != tensor.F32:
		dt = cd
	}
	if dt == t.DType() || dt == tensor.F32 {
		// Convert on the host (vectors are small), then copy over.
		h := t.To(dt)
		defer h.Release()
		return h.ToDevice(dev)
	}
	// Copy the stored data over and convert it there.
	u := t.ToDevice(dev)
	defer u.Release()
	return u.To(dt)
}

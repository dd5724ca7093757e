package nn

import (
	"fmt"
	"reflect"

	"github.com/roentgo/roentgo/tensor"
)

// ToDevice moves every parameter of model (a pointer to a model or layer
// struct; all *tensor.Tensor fields reachable through exported struct fields,
// pointers, slices, arrays and interfaces) to the open device dev, in the form
// its kernels want: vectors (biases, norm scales) as F32, and matrices and
// filters in dev's compute dtype when that is 16-bit (an F32 compute dtype
// keeps the stored dtype, for checking against the CPU). Index tensors (I64)
// move as they are. Tensors shared between layers stay shared. The replaced
// host tensors are not released (other holders, such as a Builder's parameter
// list, may still use them): they go to the garbage collector, or stay in the
// file mapping they came from. Parameters already on dev are left as they are.
//
// A device failure (out of memory) is returned as an error; the model may
// then hold parameters on both devices and should be dropped.
func ToDevice(model any, dev tensor.Device) (err error) {
	v := reflect.ValueOf(model)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("nn: ToDevice: want a non-nil pointer to a model, have %T", model)
	}
	cd := tensor.ComputeDType(dev)
	moved := map[*tensor.Tensor]*tensor.Tensor{}
	seen := map[uintptr]bool{}
	tensorType := reflect.TypeFor[*tensor.Tensor]()
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				return
			}
			if v.Type() == tensorType {
				return // handled by the parent, which can set the field
			}
			if seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			walk(v.Elem())
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() {
					visit(v.Field(i), walk, tensorType, moved, dev, cd)
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				visit(v.Index(i), walk, tensorType, moved, dev, cd)
			}
		}
	}
	err = tensor.Catch(func() { walk(v) })
	return err
}

// visit moves f if it is a settable tensor field, or walks into it.
func visit(f reflect.Value, walk func(reflect.Value), tensorType reflect.Type, moved map[*tensor.Tensor]*tensor.Tensor, dev tensor.Device, cd tensor.DType) {
	if f.Type() != tensorType {
		walk(f)
		return
	}
	if f.IsNil() || !f.CanSet() {
		return
	}
	t := f.Interface().(*tensor.Tensor)
	if m, ok := moved[t]; ok {
		f.Set(reflect.ValueOf(m))
		return
	}
	m := paramOnDevice(t, dev, cd)
	moved[t] = m
	f.Set(reflect.ValueOf(m))
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
	var out *tensor.Tensor
	if dt == t.DType() || dt == tensor.F32 {
		// Convert on the host (vectors are small), then copy over.
		h := t.To(dt)
		out = h.ToDevice(dev)
		h.Release()
	} else {
		// Copy the stored 16-bit (or F32) data over and convert there.
		u := t.ToDevice(dev)
		out = u.To(dt)
		u.Release()
	}
	return out
}

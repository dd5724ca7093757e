package pipeline

import (
	"reflect"
	"runtime/debug"

	"github.com/roentgo/roentgo/tensor"
)

// tensorType is the type of the weights collected by modelTensors.
var tensorType = reflect.TypeFor[*tensor.Tensor]()

// modelTensors returns the tensors reachable from model through exported
// fields, pointers, slices, arrays, maps and interfaces (its weights).
func modelTensors(model any) []*tensor.Tensor {
	var out []*tensor.Tensor
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() {
				return
			}
			if seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			if v.Type() == tensorType {
				out = append(out, v.Interface().(*tensor.Tensor))
				return
			}
			walk(v.Elem())
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			t := v.Type()
			for i := 0; i < v.NumField(); i++ {
				if t.Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i))
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				walk(it.Value())
			}
		}
	}
	walk(reflect.ValueOf(model))
	return out
}

// dropResident removes the memory-mapped weights of model from the process's
// resident set until they are next used (see tensor.DropResident), unless the
// pipeline keeps its weights resident.
func (p *Pipeline) dropResident(model any) {
	if p.KeepWeightsResident || p.Device != tensor.CPU || model == nil || reflect.ValueOf(model).IsNil() {
		return
	}
	_ = tensor.DropResident(modelTensors(model)...) // a hint: failure changes nothing
}

// trimMemory hands the tensor pool's buffers and the Go heap's free memory back
// to the operating system between phases whose buffer sizes differ (the
// U-Net's activations are of no use to the VAE), unless the pipeline keeps its
// weights resident.
func (p *Pipeline) trimMemory() {
	if p.KeepWeightsResident {
		return
	}
	tensor.DrainPool()
	debug.FreeOSMemory()
}

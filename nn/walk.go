package nn

import (
	"fmt"
	"reflect"
	"sort"
)

// Walk visits what is reachable from v through exported struct fields,
// pointers, slices, arrays, maps (in the order of their keys' printed form,
// so that walks are deterministic) and interfaces: visit is called with
// every non-nil pointer each time it is reached, and when it returns true
// Walk descends into the value pointed to, the first time that pointer is
// reached only. visit gets the value itself, settable where it is a struct
// field or a slice element (so a caller can replace a layer's tensor).
// Model-wide operations (moving tensors to a device, finding the layers
// LoRA adapts) are built on it.
func Walk(v reflect.Value, visit func(p reflect.Value) bool) {
	seen := map[uintptr]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() || !visit(v) || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			walk(v.Elem())
		case reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			t := v.Type()
			for i := range v.NumField() {
				if t.Field(i).IsExported() {
					walk(v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			keys := v.MapKeys()
			sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
			for _, k := range keys {
				walk(v.MapIndex(k))
			}
		}
	}
	walk(v)
}

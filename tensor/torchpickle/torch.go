package torchpickle

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"sort"
)

// dtypeInfo is a storage element type: its safetensors name and byte size.
type dtypeInfo struct {
	name string
	size int
}

// storageTypes maps torch's legacy typed-storage classes (what torch.save
// writes in the persistent ids) to element types.
var storageTypes = map[string]dtypeInfo{
	"FloatStorage":    {"F32", 4},
	"HalfStorage":     {"F16", 2},
	"BFloat16Storage": {"BF16", 2},
	"DoubleStorage":   {"F64", 8},
	"LongStorage":     {"I64", 8},
	"IntStorage":      {"I32", 4},
	"ShortStorage":    {"I16", 2},
	"CharStorage":     {"I8", 1},
	"ByteStorage":     {"U8", 1},
	"BoolStorage":     {"BOOL", 1},
}

// torchDTypes are the dtype objects (torch.float16, ...) a pickle may name.
var torchDTypes = map[string]bool{
	"float32": true, "float": true, "float16": true, "half": true, "bfloat16": true,
	"float64": true, "double": true, "int64": true, "long": true, "int32": true,
	"int": true, "int16": true, "short": true, "int8": true, "uint8": true, "bool": true,
}

// allowed reports whether module.name is on the allow-list.
func allowed(g pyGlobal) bool {
	switch g.module {
	case "collections":
		return g.name == "OrderedDict"
	case "torch._utils":
		switch g.name {
		case "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter", "_rebuild_parameter_with_state":
			return true
		}
	case "torch":
		_, st := storageTypes[g.name]
		return st || torchDTypes[g.name]
	}
	return false
}

// maxElements bounds shapes so that element and byte counts fit an int64.
const maxElements = math.MaxInt64 / 16

// torchCall interprets the allow-listed callables. It never returns ok=false
// for an allow-listed global that is called: wrong arguments are errors.
func torchCall(g pyGlobal, args pyTuple) (any, bool) {
	switch g.String() {
	case "collections.OrderedDict":
		d := &pyDict{}
		if len(args) == 0 {
			return d, true
		}
		if len(args) != 1 {
			fail("collections.OrderedDict called with %d arguments, expected 0 or 1", len(args))
		}
		var pairs []any
		switch p := args[0].(type) {
		case *pyList:
			pairs = p.items
		case pyTuple:
			pairs = p
		case *pyDict:
			for i := range p.keys {
				d.set(p.keys[i], p.vals[i])
			}
			return d, true
		default:
			fail("collections.OrderedDict called with %s, expected a list of pairs", describe(args[0]))
		}
		for _, it := range pairs {
			kv, ok := it.(pyTuple)
			if !ok || len(kv) != 2 {
				fail("collections.OrderedDict item is %s, expected a (key, value) pair", describe(it))
			}
			d.set(kv[0], kv[1])
		}
		return d, true
	case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2":
		if len(args) < 4 {
			fail("%s called with %d arguments, expected at least 4", g, len(args))
		}
		return rebuildTensor(g, args), true
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		if len(args) < 1 {
			fail("%s called without arguments", g)
		}
		t, ok := args[0].(*pyTensor)
		if !ok {
			fail("%s: data is %s, expected a tensor%s", g, describe(args[0]), notAllowed(args[0]))
		}
		return t, true
	}
	if allowed(g) {
		fail("%s cannot be called", g)
	}
	return nil, false
}

// rebuildTensor checks the arguments of _rebuild_tensor_v2(storage, offset, size, stride, ...).
func rebuildTensor(g pyGlobal, args pyTuple) *pyTensor {
	st, ok := args[0].(*pyStorage)
	if !ok {
		fail("%s: storage is %s, expected a storage persistent id%s", g, describe(args[0]), notAllowed(args[0]))
	}
	off, ok := args[1].(int64)
	if !ok || off < 0 {
		fail("%s: storage offset is %v, expected a non-negative int", g, args[1])
	}
	shape := intTuple(g, "size", args[2])
	stride := intTuple(g, "stride", args[3])
	if len(shape) != len(stride) {
		fail("%s: size %v and stride %v have different lengths", g, shape, stride)
	}
	n := int64(1)
	for i, d := range shape {
		if d < 0 || stride[i] < 0 {
			fail("%s: size %v / stride %v have negative entries", g, shape, stride)
		}
		if d != 0 && n > maxElements/d {
			fail("%s: size %v is too large", g, shape)
		}
		n *= d
	}
	return &pyTensor{storage: st, offset: off, shape: shape, stride: stride}
}

func intTuple(g pyGlobal, what string, v any) []int64 {
	t, ok := v.(pyTuple)
	if !ok {
		fail("%s: %s is %s, expected a tuple of ints", g, what, describe(v))
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			fail("%s: %s has %s, expected ints", g, what, describe(x))
		}
		out[i] = n
	}
	return out
}

// notAllowed adds " (module.name is not allow-listed)" for opaque values.
func notAllowed(v any) string {
	switch t := v.(type) {
	case pyGlobal:
		if !allowed(t) {
			return fmt.Sprintf(" (%s is not allow-listed)", t)
		}
	case *pyObject:
		return fmt.Sprintf(" (%s is not allow-listed)", callableName(t))
	}
	return ""
}

// resolveStorage interprets a persistent id ('storage', type, key, location, numel).
func resolveStorage(pid any) any {
	t, ok := pid.(pyTuple)
	if !ok || len(t) < 5 {
		fail("persistent id is %s, expected ('storage', type, key, location, numel)", describe(pid))
	}
	if s, _ := t[0].(string); s != "storage" {
		fail("persistent id kind is %v, expected 'storage'", t[0])
	}
	g, ok := t[1].(pyGlobal)
	if !ok || g.module != "torch" {
		fail("storage type is %s, expected a torch.*Storage class%s", describe(t[1]), notAllowed(t[1]))
	}
	dt, ok := storageTypes[g.name]
	if !ok {
		fail("unsupported storage type %s (expected one of %s)", g, storageNames())
	}
	key, ok := t[2].(string)
	if !ok || key == "" {
		fail("storage key is %s, expected a non-empty str", describe(t[2]))
	}
	loc, _ := t[3].(string)
	numel, ok := t[4].(int64)
	if !ok || numel < 0 || numel > maxElements {
		fail("storage %s: element count is %v, expected a non-negative int", key, t[4])
	}
	return &pyStorage{dtype: dt, key: key, location: loc, numel: numel}
}

func storageNames() string {
	names := make([]string, 0, len(storageTypes))
	for n := range storageTypes {
		names = append(names, "torch."+n)
	}
	sort.Strings(names)
	return fmt.Sprint(names)
}

// entry is one tensor of the state dict.
type entry struct {
	name string
	t    *pyTensor
}

// maxDepth bounds the nesting of dicts walked (cycles are possible via the memo).
const maxDepth = 32

// maxNodes bounds the total number of values visited, so that shared
// sub-dicts cannot blow up the walk exponentially.
const maxNodes = 1 << 22

// parsed is the interpreted content of data.pkl.
type parsed struct {
	entries []entry
	extra   map[string]any
}

// parsePickle unpickles data.pkl and extracts the state dict's tensors and
// the other top-level entries.
func parsePickle(data []byte) (*parsed, error) {
	root, err := unpickle(data, resolveStorage, torchCall)
	if err != nil {
		return nil, err
	}
	top, ok := root.(*pyDict)
	if !ok {
		if _, ok := root.(*pyTensor); ok {
			return nil, errors.New("the checkpoint is a single tensor, expected a dict of tensors (a state dict)")
		}
		return nil, fmt.Errorf("the top-level object is %s, expected a dict of tensors%s", describe(root), notAllowed(root))
	}
	p := &parsed{extra: map[string]any{}}
	sd := top
	if v, ok := top.get("state_dict"); ok {
		if d, ok := v.(*pyDict); ok {
			sd = d
		} else {
			return nil, fmt.Errorf("\"state_dict\" is %s, expected a dict%s", describe(v), notAllowed(v))
		}
		nodes := 0
		for i, k := range top.keys {
			ks, ok := k.(string)
			if !ok || ks == "state_dict" {
				continue
			}
			p.extra[ks] = plain(top.vals[i], 0, &nodes)
		}
	}
	seen := map[string]bool{}
	nodes := 0
	if err := p.flatten(sd, "", 0, &nodes, seen); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *parsed) flatten(d *pyDict, prefix string, depth int, nodes *int, seen map[string]bool) error {
	if depth > maxDepth {
		return fmt.Errorf("state dict nested deeper than %d levels at %q", maxDepth, prefix)
	}
	for i, k := range d.keys {
		*nodes++
		if *nodes > maxNodes {
			return fmt.Errorf("state dict has more than %d entries", maxNodes)
		}
		ks, ok := k.(string)
		if !ok {
			if _, isInt := k.(int64); isInt {
				ks = fmt.Sprint(k)
			} else {
				return fmt.Errorf("state dict key %s%s is not a str", describe(k), notAllowed(k))
			}
		}
		name := prefix + ks
		switch v := d.vals[i].(type) {
		case *pyTensor:
			if seen[name] {
				return fmt.Errorf("state dict has the tensor %q twice", name)
			}
			seen[name] = true
			p.entries = append(p.entries, entry{name, v})
		case *pyDict:
			if err := p.flatten(v, name+".", depth+1, nodes, seen); err != nil {
				return err
			}
		case *pyObject, pyGlobal, *pyStorage:
			return fmt.Errorf("state dict entry %q is %s, expected a tensor%s", name, describe(v), notAllowed(v))
		}
	}
	return nil
}

// Opaque stands for a Python object this package does not construct: a
// global reference, or a call of a global that is not allow-listed. Global is
// "module.name" of the callable.
type Opaque struct {
	Global string
}

// plain converts an unpickled value to plain Go values for File.Extra.
func plain(v any, depth int, nodes *int) any {
	*nodes++
	if depth > maxDepth || *nodes > maxNodes {
		return Opaque{Global: "(too deeply nested)"}
	}
	switch t := v.(type) {
	case nil, bool, int64, float64, string, []byte:
		return t
	case *big.Int:
		return new(big.Int).Set(t)
	case pyTuple:
		return plainList(t, depth, nodes)
	case *pyList:
		return plainList(t.items, depth, nodes)
	case *pySet:
		return plainList(t.items, depth, nodes)
	case *pyDict:
		m := make(map[string]any, len(t.keys))
		for i, k := range t.keys {
			m[fmt.Sprint(plainKey(k))] = plain(t.vals[i], depth+1, nodes)
		}
		return m
	case pyGlobal:
		return Opaque{Global: t.String()}
	case *pyObject:
		return Opaque{Global: callableName(t)}
	case *pyStorage:
		return Opaque{Global: "torch storage"}
	case *pyTensor:
		return tensorInfo("", t)
	}
	return Opaque{Global: fmt.Sprintf("%T", v)}
}

func plainKey(k any) any {
	switch t := k.(type) {
	case pyGlobal:
		return t.String()
	case *pyObject:
		return callableName(t)
	}
	return k
}

func plainList(items []any, depth int, nodes *int) []any {
	out := make([]any, len(items))
	for i, it := range items {
		out[i] = plain(it, depth+1, nodes)
	}
	return out
}

// tensorInfo converts a rebuilt tensor to the exported metadata.
func tensorInfo(name string, t *pyTensor) Tensor {
	ti := Tensor{
		Name:    name,
		DType:   t.storage.dtype.name,
		Shape:   make([]int, len(t.shape)),
		Strides: make([]int, len(t.stride)),
		Offset:  int(t.offset),
		Storage: t.storage.key,
	}
	for i := range t.shape {
		ti.Shape[i] = int(t.shape[i])
		ti.Strides[i] = int(t.stride[i])
	}
	return ti
}

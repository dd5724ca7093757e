package tensor

import (
	"encoding/binary"
	"fmt"
	"math"
	"unsafe"
)

// littleEndian reports whether the host stores numbers little-endian (as the
// safetensors format does), so that file bytes can be aliased as elements.
var littleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// fromBytes returns a CPU tensor of dtype dt and the given shape over raw
// little-endian element bytes (a safetensors data region). When the host is
// little-endian and data is aligned for the element type, the tensor aliases
// data without copying and keep is retained to keep the memory (a mapping)
// alive; otherwise the elements are copied. The storage is never pooled.
// It returns an error when len(data) does not match the shape.
func fromBytes(dt DType, shape []int, data []byte, keep any) (*Tensor, error) {
	sh := Shape(shape).Clone()
	for _, d := range sh {
		if d < 0 {
			return nil, fmt.Errorf("tensor: negative size in shape %v", sh)
		}
	}
	n := sh.Numel()
	if len(data) != n*dt.Size() {
		return nil, fmt.Errorf("tensor: %d bytes for %v %v, want %d", len(data), dt, sh, n*dt.Size())
	}
	st := &storage{dtype: dt, device: CPU, n: n, keep: keep}
	aligned := n == 0 || uintptr(unsafe.Pointer(&data[0]))%uintptr(dt.Size()) == 0
	alias := littleEndian && aligned && n > 0
	switch dt {
	case F32:
		if alias {
			st.f32 = unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n)
		} else {
			st.f32 = make([]float32, n)
			for i := range st.f32 {
				st.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
		}
	case F16, BF16:
		if alias {
			st.u16 = unsafe.Slice((*uint16)(unsafe.Pointer(&data[0])), n)
		} else {
			st.u16 = make([]uint16, n)
			for i := range st.u16 {
				st.u16[i] = binary.LittleEndian.Uint16(data[2*i:])
			}
		}
	case I64:
		if alias {
			st.i64 = unsafe.Slice((*int64)(unsafe.Pointer(&data[0])), n)
		} else {
			st.i64 = make([]int64, n)
			for i := range st.i64 {
				st.i64[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
			}
		}
	default:
		return nil, fmt.Errorf("tensor: unsupported dtype %v", dt)
	}
	if !alias {
		st.keep = nil
	}
	return wrap(st, sh, contiguousStrides(sh), 0), nil
}

// appendBytes appends t's elements in row-major order as little-endian bytes of
// its dtype (for writing safetensors).
func appendBytes(b []byte, t *Tensor) []byte {
	h := t.ToDevice(CPU)
	defer h.Release()
	c := h.Contiguous()
	defer c.Release()
	st := c.st
	n := c.Numel()
	switch st.dtype {
	case F32:
		for _, v := range st.f32[c.offset : c.offset+n] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case F16, BF16:
		for _, v := range st.u16[c.offset : c.offset+n] {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
	case I64:
		for _, v := range st.i64[c.offset : c.offset+n] {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return b
}

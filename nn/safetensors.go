package nn

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/safetensors"
)

// SafetensorsSource is a Source over one or more memory-mapped safetensors files
// (e.g. a sharded checkpoint). Tensors alias the mapping: F32, F16, BF16 and I64
// data is used in place, without copies, so loading a model costs no memory
// beyond the page cache. Close unmaps the files: the model built from the source
// must not be used afterwards. A SafetensorsSource is safe for concurrent use.
type SafetensorsSource struct {
	mu    sync.Mutex // guards cache and files
	files []*safetensors.File
	where map[string]safetensors.TensorInfo
	cache map[string]*tensor.Tensor
}

// OpenSafetensors opens the safetensors files at paths as one Source. A name
// present in two files is an error.
func OpenSafetensors(paths ...string) (*SafetensorsSource, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("nn: OpenSafetensors: no files given")
	}
	s := &SafetensorsSource{where: map[string]safetensors.TensorInfo{}, cache: map[string]*tensor.Tensor{}}
	from := map[string]string{}
	for _, p := range paths {
		f, err := safetensors.Open(p)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("nn: %w", err)
		}
		s.files = append(s.files, f)
		for _, ti := range f.Tensors {
			if q, dup := from[ti.Name]; dup {
				s.Close()
				return nil, fmt.Errorf("nn: tensor %q is in both %s and %s", ti.Name, q, p)
			}
			from[ti.Name] = p
			s.where[ti.Name] = ti
		}
	}
	return s, nil
}

// Keys returns the names of all tensors of all files, sorted.
func (s *SafetensorsSource) Keys() []string {
	ks := make([]string, 0, len(s.where))
	for k := range s.where {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Info returns the stored dtype name and shape of name.
func (s *SafetensorsSource) Info(name string) (string, []int, bool) {
	ti, ok := s.where[name]
	if !ok {
		return "", nil, false
	}
	return string(ti.DType), slices.Clone(ti.Shape), true
}

// Load returns the tensor name, aliasing the file's memory when its dtype is
// F32, F16, BF16 or I64 (other dtypes are an error). Loading a name twice returns
// the same tensor.
func (s *SafetensorsSource) Load(name string) (*tensor.Tensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		return nil, fmt.Errorf("safetensors source is closed")
	}
	if t, ok := s.cache[name]; ok {
		return t, nil
	}
	ti, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("no tensor %q", name)
	}
	t, err := tensorFromInfo(ti)
	if err != nil {
		return nil, err
	}
	s.cache[name] = t
	return t, nil
}

// Close unmaps every file. Tensors loaded from the source must not be used
// afterwards.
func (s *SafetensorsSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for _, f := range s.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.files = nil
	s.cache = map[string]*tensor.Tensor{}
	return first
}

// hostLittleEndian reports whether file bytes can be aliased as elements.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// tensorFromInfo makes a tensor over a safetensors tensor's bytes: aliased when
// the host is little-endian and the bytes are aligned, copied otherwise.
// (tensor has the same logic unexported; this uses only its public adopting
// constructors.)
func tensorFromInfo(ti safetensors.TensorInfo) (*tensor.Tensor, error) {
	n := ti.NumElements()
	size := ti.DType.Size()
	if size == 0 || len(ti.Data) != n*size {
		return nil, fmt.Errorf("%d bytes for %s %v", len(ti.Data), ti.DType, ti.Shape)
	}
	alias := hostLittleEndian && n > 0 && uintptr(unsafe.Pointer(&ti.Data[0]))%uintptr(size) == 0
	shape := slices.Clone(ti.Shape)
	switch ti.DType {
	case safetensors.F32:
		var d []float32
		if alias {
			d = unsafe.Slice((*float32)(unsafe.Pointer(&ti.Data[0])), n)
		} else {
			d = make([]float32, n)
			for i := range d {
				d[i] = math.Float32frombits(binary.LittleEndian.Uint32(ti.Data[4*i:]))
			}
		}
		return tensor.FromFloat32(d, shape...), nil
	case safetensors.F16, safetensors.BF16:
		var d []uint16
		if alias {
			d = unsafe.Slice((*uint16)(unsafe.Pointer(&ti.Data[0])), n)
		} else {
			d = make([]uint16, n)
			for i := range d {
				d[i] = binary.LittleEndian.Uint16(ti.Data[2*i:])
			}
		}
		dt := tensor.F16
		if ti.DType == safetensors.BF16 {
			dt = tensor.BF16
		}
		return tensor.FromHalfBits(d, dt, shape...), nil
	case safetensors.I64:
		var d []int64
		if alias {
			d = unsafe.Slice((*int64)(unsafe.Pointer(&ti.Data[0])), n)
		} else {
			d = make([]int64, n)
			for i := range d {
				d[i] = int64(binary.LittleEndian.Uint64(ti.Data[8*i:]))
			}
		}
		return tensor.FromInt64(d, shape...), nil
	}
	return nil, fmt.Errorf("dtype %s is not supported (want F32, F16, BF16 or I64)", ti.DType)
}

// SaveSafetensors writes params (e.g. b.Params()) to path in the safetensors
// format under their names, each in its own dtype, with optional metadata. The
// file is written atomically: on error, path is left untouched.
func SaveSafetensors(path string, params []Param, metadata map[string]string) error {
	infos := make([]safetensors.TensorInfo, 0, len(params))
	for _, p := range params {
		if p.Tensor == nil {
			return fmt.Errorf("nn: SaveSafetensors: parameter %q is nil", p.Name)
		}
		infos = append(infos, safetensors.TensorInfo{
			Name: p.Name, DType: safetensors.DType(p.Tensor.DType().String()),
			Shape: p.Tensor.Shape(), Data: tensorBytes(p.Tensor),
		})
	}
	if err := safetensors.WriteFile(path, infos, metadata); err != nil {
		return fmt.Errorf("nn: SaveSafetensors: %w", err)
	}
	return nil
}

// tensorBytes returns t's elements in row-major order as little-endian bytes.
func tensorBytes(t *tensor.Tensor) []byte {
	n := t.Numel()
	b := make([]byte, 0, n*t.DType().Size())
	switch t.DType() {
	case tensor.F32:
		for _, v := range t.Float32s() {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case tensor.F16, tensor.BF16:
		c := t.Contiguous()
		for _, v := range c.HalfData() {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
		c.Release()
	case tensor.I64:
		for _, v := range t.Int64s() {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return b
}

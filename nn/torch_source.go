package nn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"unsafe"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/torchpickle"
)

// TorchSource is a Source over one or more PyTorch checkpoints written by
// torch.save in its zip format (pytorch_model.bin, diffusion_pytorch_model.bin,
// the .ckpt files of original Stable Diffusion releases), read with package
// tensor/torchpickle, which never executes the pickle. Tensors are read lazily,
// on the first Load of each name, into memory of their own (contiguous, in the
// stored dtype: F32, F16, BF16 or I64; other dtypes are an error naming the
// key); Load returns the same tensor for the same name. Unlike a
// SafetensorsSource, loaded tensors stay valid after Close. A TorchSource is
// safe for concurrent use.
type TorchSource struct {
	mu    sync.Mutex
	files []*torchpickle.File
	where map[string]int // name -> index into files
	keys  []string       // sorted
	cache map[string]*tensor.Tensor
}

// OpenTorch opens the PyTorch checkpoints at paths as one Source (e.g. the
// shards of a sharded pytorch_model.bin). A name present in two files is an
// error. Close the source when the model is built.
func OpenTorch(paths ...string) (*TorchSource, error) {
	if len(paths) == 0 {
		return nil, errors.New("nn: OpenTorch: no files")
	}
	s := &TorchSource{where: map[string]int{}, cache: map[string]*tensor.Tensor{}}
	for _, p := range paths {
		f, err := torchpickle.Open(p)
		if err != nil {
			s.Close()
			return nil, errctx.Wrap("nn", err)
		}
		s.files = append(s.files, f)
		for _, name := range f.Names() {
			if i, dup := s.where[name]; dup {
				s.Close()
				return nil, fmt.Errorf("nn: tensor %q is in both %s and %s", name, paths[i], p)
			}
			s.where[name] = len(s.files) - 1
			s.keys = append(s.keys, name)
		}
	}
	slices.Sort(s.keys)
	return s, nil
}

// Keys returns the names of all tensors of all files, sorted.
func (s *TorchSource) Keys() []string { return slices.Clone(s.keys) }

// Info returns the stored dtype name (as safetensors spells it: "F32", "F16",
// "BF16", "I64", "F64", ...) and shape of name.
func (s *TorchSource) Info(name string) (string, []int, bool) {
	i, ok := s.where[name]
	if !ok {
		return "", nil, false
	}
	t, ok := s.files[i].Info(name)
	if !ok {
		return "", nil, false
	}
	return t.DType, slices.Clone(t.Shape), true
}

// Load reads the tensor name (once; later calls return the same tensor). Stored
// dtypes other than F32, F16, BF16 and I64 are an error naming the key.
func (s *TorchSource) Load(name string) (*tensor.Tensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files == nil {
		return nil, errors.New("nn: the PyTorch checkpoint is closed")
	}
	if t, ok := s.cache[name]; ok {
		return t, nil
	}
	i, ok := s.where[name]
	if !ok {
		return nil, fmt.Errorf("nn: no tensor %q in the PyTorch checkpoint", name)
	}
	f := s.files[i]
	info, _ := f.Info(name)
	dt, err := tensor.ParseDType(info.DType)
	if err != nil {
		return nil, fmt.Errorf("nn: tensor %q: stored dtype %s is not supported (want F32, F16, BF16 or I64)", name, info.DType)
	}
	raw, err := f.Read(name)
	if err != nil {
		return nil, errctx.Wrap("nn", err)
	}
	t, err := tensorFromLE(dt, raw.Shape, raw.Data)
	if err != nil {
		return nil, fmt.Errorf("nn: tensor %q: %w", name, err)
	}
	s.cache[name] = t
	return t, nil
}

// Close closes the files. Tensors loaded before stay valid.
func (s *TorchSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	s.files = nil
	s.cache = nil
	return errors.Join(errs...)
}

// hostLE reports whether the host is little-endian, so that checkpoint bytes can
// be used as elements in place.
var hostLE = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// tensorFromLE returns a tensor of dtype dt over little-endian element bytes
// that the caller hands over (data is adopted when the host is little-endian
// and data is aligned, else copied).
func tensorFromLE(dt tensor.DType, shape []int, data []byte) (*tensor.Tensor, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return nil, fmt.Errorf("negative size in shape %v", shape)
		}
		n *= d
	}
	if len(data) != n*dt.Size() {
		return nil, fmt.Errorf("%d bytes for %v %v, want %d", len(data), dt, shape, n*dt.Size())
	}
	alias := hostLE && n > 0 && uintptr(unsafe.Pointer(&data[0]))%uintptr(dt.Size()) == 0
	switch dt {
	case tensor.F32:
		var v []float32
		if alias {
			v = unsafe.Slice((*float32)(unsafe.Pointer(&data[0])), n)
		} else {
			v = make([]float32, n)
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
		}
		return tensor.FromFloat32(v, shape...), nil
	case tensor.F16, tensor.BF16:
		var v []uint16
		if alias {
			v = unsafe.Slice((*uint16)(unsafe.Pointer(&data[0])), n)
		} else {
			v = make([]uint16, n)
			for i := range v {
				v[i] = binary.LittleEndian.Uint16(data[2*i:])
			}
		}
		return tensor.FromHalfBits(v, dt, shape...), nil
	case tensor.I64:
		var v []int64
		if alias {
			v = unsafe.Slice((*int64)(unsafe.Pointer(&data[0])), n)
		} else {
			v = make([]int64, n)
			for i := range v {
				v[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
			}
		}
		return tensor.FromInt64(v, shape...), nil
	}
	return nil, fmt.Errorf("unsupported dtype %v", dt)
}

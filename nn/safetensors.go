package nn

import (
	"fmt"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/tensor"
)

// SafetensorsSource is a Source over one or more memory-mapped safetensors files
// (e.g. a sharded checkpoint; OpenSafetensors) or one file held in memory
// (ParseSafetensors), a thin adapter over tensor.Archive. Tensors alias
// the mapping: F32, F16, BF16 and I64 data is used in place, without copies, so
// loading a model costs no memory beyond the page cache. Close unmaps the files:
// the model built from the source must not be used afterwards. A
// SafetensorsSource is safe for concurrent use.
type SafetensorsSource struct {
	a *tensor.Archive
}

// OpenSafetensors opens the safetensors files at paths as one Source. A name
// present in two files is an error.
func OpenSafetensors(paths ...string) (*SafetensorsSource, error) {
	a, err := tensor.LoadSafetensors(paths...)
	if err != nil {
		return nil, errctx.Wrap("nn", err)
	}
	return &SafetensorsSource{a: a}, nil
}

// ParseSafetensors returns a Source over the safetensors file held in buf
// (e.g. read from an fs.FS, or embedded in the program), called name in
// errors: see tensor.ParseSafetensors. The tensors alias buf (unless
// misaligned), so buf must not be modified while the model built from the
// source is used. Close releases nothing; it is safe to call, and the
// tensors stay valid after it.
func ParseSafetensors(name string, buf []byte) (*SafetensorsSource, error) {
	a, err := tensor.ParseSafetensors(name, buf)
	if err != nil {
		return nil, errctx.Wrap("nn", err)
	}
	return &SafetensorsSource{a: a}, nil
}

// Keys returns the names of all tensors of all files, sorted.
func (s *SafetensorsSource) Keys() []string { return s.a.Names() }

// Info returns the stored dtype name and shape of name.
func (s *SafetensorsSource) Info(name string) (string, []int, bool) {
	dt, sh, ok := s.a.Info(name)
	return dt, sh, ok
}

// Load returns the tensor name, aliasing the file's memory when its dtype is
// F32, F16, BF16 or I64 (other dtypes are an error). Loading a name twice returns
// the same tensor.
func (s *SafetensorsSource) Load(name string) (*tensor.Tensor, error) { return s.a.Get(name) }

// Close unmaps every file. Tensors loaded from the source must not be used
// afterwards (except those of ParseSafetensors, which has nothing to unmap).
func (s *SafetensorsSource) Close() error { return s.a.Close() }

// SaveSafetensors writes params (e.g. b.Params()) to path in the safetensors
// format under their names, each in its own dtype, with optional metadata. The
// file is written atomically: on error, path is left untouched.
func SaveSafetensors(path string, params []Param, metadata map[string]string) error {
	m := make(map[string]*tensor.Tensor, len(params))
	for _, p := range params {
		if p.Tensor == nil {
			return fmt.Errorf("nn: SaveSafetensors: parameter %q is nil", p.Name)
		}
		if _, dup := m[p.Name]; dup {
			return fmt.Errorf("nn: SaveSafetensors: parameter %q appears twice", p.Name)
		}
		m[p.Name] = p.Tensor
	}
	if err := tensor.SaveSafetensors(path, m, metadata); err != nil {
		return errctx.Wrap("nn", err)
	}
	return nil
}

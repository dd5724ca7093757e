package tensor

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/tensor/safetensors"
)

// Archive is a set of named tensors read from one or more safetensors files
// (LoadSafetensors) or from one held in memory (ParseSafetensors). The files
// are memory-mapped: F32, F16, BF16 and I64 tensors alias the mapped
// bytes (copied only when the data is misaligned for its element type), and keep
// their stored dtype, so a half-precision model costs its file size in memory,
// paged in on first use. Close unmaps the files; tensors from the archive must
// not be used after it. An Archive is safe for concurrent use.
type Archive struct {
	mu       sync.Mutex // guards cache and files
	files    []*safetensors.File
	where    map[string]safetensors.TensorInfo
	file     map[string]*safetensors.File
	cache    map[string]*Tensor
	Metadata map[string]string // the __metadata__ of every file, merged
}

// LoadSafetensors opens the given safetensors files as one archive. A tensor name
// present in two files is an error naming both files. Errors from malformed files
// name the file and the problem.
func LoadSafetensors(paths ...string) (*Archive, error) {
	if len(paths) == 0 {
		return nil, errors.New("tensor: LoadSafetensors: no file given")
	}
	a := newArchive()
	from := map[string]string{}
	for _, p := range paths {
		f, err := safetensors.Open(p)
		if err != nil {
			a.Close()
			return nil, errctx.Wrap("tensor", err)
		}
		if err := a.add(f, p, from); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// ParseSafetensors returns the archive of the safetensors file held in buf
// (e.g. read from an fs.FS or embedded in the program), called name in
// errors. The tensors alias buf as those of LoadSafetensors alias the mapped
// file (copied only when misaligned for their element type), so buf must
// not be modified while they are used (they keep it alive). Close on such an
// archive unmaps nothing: it only makes later Gets fail, and the tensors
// already returned stay valid. An error (a malformed or truncated buf) says
// what is wrong and names name.
func ParseSafetensors(name string, buf []byte) (*Archive, error) {
	f, err := safetensors.Parse(buf)
	if err != nil {
		return nil, errctx.Wrap("tensor", fmt.Errorf("%w (in %s)", err, name))
	}
	a := newArchive()
	if err := a.add(f, name, map[string]string{}); err != nil {
		return nil, err
	}
	return a, nil
}

func newArchive() *Archive {
	return &Archive{
		where:    map[string]safetensors.TensorInfo{},
		file:     map[string]*safetensors.File{},
		cache:    map[string]*Tensor{},
		Metadata: map[string]string{},
	}
}

// add adds the tensors and metadata of f, called name, to a; from maps each
// tensor name already added to the name of its file, to report duplicates.
func (a *Archive) add(f *safetensors.File, name string, from map[string]string) error {
	a.files = append(a.files, f)
	for k, v := range f.Metadata {
		a.Metadata[k] = v
	}
	for _, ti := range f.Tensors {
		if prev, dup := from[ti.Name]; dup {
			return fmt.Errorf("tensor: tensor %q is in both %s and %s", ti.Name, prev, name)
		}
		from[ti.Name] = name
		a.where[ti.Name] = ti
		a.file[ti.Name] = f
	}
	return nil
}

// Names returns the tensor names of the archive, sorted.
func (a *Archive) Names() []string {
	names := make([]string, 0, len(a.where))
	for n := range a.where {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Len returns the number of tensors in the archive.
func (a *Archive) Len() int { return len(a.where) }

// Info returns the stored dtype name (as safetensors spells it) and shape of the
// named tensor without materialising it.
func (a *Archive) Info(name string) (dtype string, shape Shape, ok bool) {
	ti, ok := a.where[name]
	if !ok {
		return "", nil, false
	}
	return string(ti.DType), Shape(ti.Shape).Clone(), true
}

// Get returns the named tensor. It returns an error when the name is absent or
// the stored dtype is not one this package computes with (F32, F16, BF16, I64).
// Repeated calls return the same tensor.
func (a *Archive) Get(name string) (*Tensor, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.files == nil {
		return nil, errors.New("tensor: the archive is closed")
	}
	if t, ok := a.cache[name]; ok {
		return t, nil
	}
	ti, ok := a.where[name]
	if !ok {
		return nil, fmt.Errorf("tensor: no tensor %q in the archive", name)
	}
	dt, err := ParseDType(string(ti.DType))
	if err != nil {
		return nil, fmt.Errorf("tensor: tensor %q: stored dtype %s is not supported (want F32, F16, BF16 or I64)", name, ti.DType)
	}
	t, err := fromBytes(dt, ti.Shape, ti.Data, a.file[name])
	if err != nil {
		return nil, fmt.Errorf("tensor: tensor %q: %w", name, err)
	}
	a.cache[name] = Persist(t) // shared by every caller: no scope frees it
	return t, nil
}

// Close unmaps every file of the archive (nothing for an archive from
// ParseSafetensors). Calling it twice is safe.
func (a *Archive) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, f := range a.files {
		errs = append(errs, f.Close())
	}
	a.files = nil
	a.cache = nil
	return errors.Join(errs...)
}

// DropResident removes the archive's memory-mapped pages from the process's
// resident set (see safetensors.File.DropResident): its tensors stay valid and
// fault their data back from the page cache on next use.
func (a *Archive) DropResident() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, f := range a.files {
		errs = append(errs, f.DropResident())
	}
	return errors.Join(errs...)
}

// DropResident removes from the process's resident set the pages of every
// memory-mapped safetensors file whose data the given tensors alias (weights
// from an Archive), for when they will not be used for a while. Nothing
// changes for the tensors: their data stays valid and is faulted back from the
// page cache on next use. Tensors that own their memory are ignored (their
// memory is never dropped). Dropping a file drops all of it, including tensors
// of the file that were not passed.
func DropResident(ts ...*Tensor) error {
	seen := map[*safetensors.File]bool{}
	var errs []error
	for _, t := range ts {
		if t == nil || t.st == nil {
			continue
		}
		f, ok := t.st.keep.(*safetensors.File)
		if !ok || seen[f] {
			continue
		}
		seen[f] = true
		errs = append(errs, f.DropResident())
	}
	return errors.Join(errs...)
}

// SaveSafetensors writes the named tensors, each in its own dtype, to path in the
// safetensors format with optional metadata. The write is atomic: on any error
// no file (and no partial file) is left at path.
func SaveSafetensors(path string, tensors map[string]*Tensor, metadata map[string]string) error {
	infos := make([]safetensors.TensorInfo, 0, len(tensors))
	for name, t := range tensors {
		if t == nil {
			return fmt.Errorf("tensor: SaveSafetensors: tensor %q is nil", name)
		}
		infos = append(infos, safetensors.TensorInfo{
			Name:  name,
			DType: safetensors.DType(t.DType().String()),
			Shape: t.Shape().Clone(),
			Data:  appendBytes(make([]byte, 0, t.Numel()*t.DType().Size()), t),
		})
	}
	if err := safetensors.WriteFile(path, infos, metadata); err != nil {
		return errctx.Wrap("tensor: SaveSafetensors", err)
	}
	return nil
}

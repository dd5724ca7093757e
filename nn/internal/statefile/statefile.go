// Package statefile reads the training-state files of packages nn and
// nn/optim (master weights, optimiser moments, EMA shadows): safetensors
// files of F32 tensors under fixed names, with string metadata. Readers are
// strict: before anything is copied into the caller's buffers, every
// expected name must be present as F32 with the expected shape, and names
// the caller does not know are an error, so a state file of another model,
// another parameter selection or another optimiser is refused with a
// message naming the first difference instead of being half loaded.
package statefile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/tensor"
)

// File is an open state file. Tensors are read from its memory mapping and
// copied out; Close unmaps it.
type File struct {
	who  string // the caller, for messages ("optim: AdamW.Load")
	path string
	a    *tensor.Archive
}

// Open opens the safetensors file at path for the caller who (used as the
// prefix of every error).
func Open(who, path string) (*File, error) {
	a, err := tensor.LoadSafetensors(path)
	if err != nil {
		return nil, errctx.Wrap(who, err)
	}
	return &File{who: who, path: path, a: a}, nil
}

// Close unmaps the file.
func (f *File) Close() error { return f.a.Close() }

// Meta returns the file's metadata value for key and whether it is present.
func (f *File) Meta(key string) (string, bool) {
	v, ok := f.a.Metadata[key]
	return v, ok
}

// Errorf returns an error prefixed by the caller and followed by the file's
// path.
func (f *File) Errorf(format string, args ...any) error {
	return fmt.Errorf("%s: %s (in %s)", f.who, fmt.Sprintf(format, args...), f.path)
}

// Has reports whether the file holds a tensor called name.
func (f *File) Has(name string) bool {
	_, _, ok := f.a.Info(name)
	return ok
}

// Check verifies that the file holds name as an F32 tensor of the given
// shape; what says what the tensor is for messages ("exp_avg of parameter
// \"conv_in.weight\"").
func (f *File) Check(name string, shape tensor.Shape, what string) error {
	dt, sh, ok := f.a.Info(name)
	if !ok {
		return f.Errorf("no tensor %q (%s, want F32 %v)", name, what, shape)
	}
	if dt != "F32" {
		return f.Errorf("tensor %q (%s) is %s, want F32", name, what, dt)
	}
	if !sh.Equal(shape) {
		return f.Errorf("tensor %q (%s) has shape %v, want %v", name, what, sh, shape)
	}
	return nil
}

// CheckNames returns an error naming the tensors of the file that known
// rejects (at most five of them, and how many there are); what describes
// what each should have been ("a trainable parameter of this set").
func (f *File) CheckNames(known func(name string) bool, what string) error {
	var extra []string
	for _, n := range f.a.Names() {
		if !known(n) {
			extra = append(extra, n)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	shown := extra[:min(5, len(extra))]
	more := ""
	if len(extra) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(extra)-len(shown))
	}
	n := fmt.Sprintf("%d unexpected tensors", len(extra))
	if len(extra) == 1 {
		n = "1 unexpected tensor"
	}
	return f.Errorf("%s (not %s): %s%s", n, what, strings.Join(quote(shown), ", "), more)
}

// CopyTo copies the F32 tensor name (checked before with Check) into dst, a
// contiguous F32 host tensor with as many elements.
func (f *File) CopyTo(name string, dst *tensor.Tensor) error {
	t, err := f.a.Get(name)
	if err != nil {
		return errctx.Wrap(f.who, err)
	}
	if t.DType() != tensor.F32 || t.Numel() != dst.Numel() {
		return f.Errorf("tensor %q is %v %v, want F32 with %d elements", name, t.DType(), t.Shape(), dst.Numel())
	}
	copy(dst.F32Data(), t.F32Data())
	return nil
}

// Save writes tensors to path with metadata (the file is written
// atomically), after checking that extra, the caller's own metadata, does not
// overwrite a key of meta.
func Save(who, path string, tensors map[string]*tensor.Tensor, meta, extra map[string]string) error {
	all := make(map[string]string, len(meta)+len(extra))
	for k, v := range extra {
		all[k] = v
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, clash := all[k]; clash {
			return fmt.Errorf("%s: metadata key %q is reserved for the state itself; choose another name", who, k)
		}
		all[k] = meta[k]
	}
	// Detached handles: writing must not meet autograd (parameters and
	// masters are leaves that require gradients).
	det := make(map[string]*tensor.Tensor, len(tensors))
	for k, t := range tensors {
		if t == nil {
			return fmt.Errorf("%s: tensor %q is nil", who, k)
		}
		d := t.Detach()
		defer d.Release()
		det[k] = d
	}
	if err := tensor.SaveSafetensors(path, det, all); err != nil {
		return errctx.Wrap(who, err)
	}
	return nil
}

// quote returns the strings quoted with %q.
func quote(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

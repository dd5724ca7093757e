package atomicfile

import (
	"io/fs"
	"os"
	"sync/atomic"
)

// The operations of a write that a Fault is asked about.
const (
	// OpCreate creates the temporary file (or CheckWritable's probe).
	OpCreate = "create"
	// OpWrite is one Write call on the temporary file.
	OpWrite = "write"
	// OpSync syncs the temporary file to the disk.
	OpSync = "sync"
	// OpRename renames the temporary file over the destination.
	OpRename = "rename"
)

// A Fault simulates a failing file system (a disk that fills up) for tests.
// Installed with SetFault, it is called before each operation of Write,
// WriteFile and CheckWritable (op: OpCreate, OpWrite, OpSync or OpRename)
// with the destination path and, for OpWrite, the length n of the write.
// It returns nil to let the operation go ahead, or the error to fail it
// with; a failing write first writes short of its n bytes (a disk that
// fills in the middle of a write), as a real one may. Programs never set
// one; see package atomicfiletest.
type Fault func(op, path string, n int) (short int, err error)

// fault is the installed Fault (nil: none, the production path).
var fault atomic.Pointer[Fault]

// SetFault installs f (nil: none) for every later write of the package in
// this process and returns a function that puts back the previous one. It
// is meant for tests, which must not run in parallel with other tests that
// write through the package while a Fault is installed.
func SetFault(f Fault) (restore func()) {
	var p *Fault
	if f != nil {
		p = &f
	}
	old := fault.Swap(p)
	return func() { fault.Store(old) }
}

// check asks the installed Fault, if any, about op on path.
func check(op, path string) error {
	if f := fault.Load(); f != nil {
		_, err := (*f)(op, path, 0)
		return err
	}
	return nil
}

// faultWriter is the temporary file as the write callback sees it while a
// Fault is installed.
type faultWriter struct {
	f     *os.File
	path  string
	fault Fault
}

func (w *faultWriter) Write(p []byte) (int, error) {
	short, err := w.fault(OpWrite, w.path, len(p))
	if err == nil {
		return w.f.Write(p)
	}
	n, _ := w.f.Write(p[:max(0, min(short, len(p)))])
	return n, &fs.PathError{Op: "write", Path: w.f.Name(), Err: err}
}

// Package atomicfiletest simulates a disk that fills up, for the tests of
// code that writes through package atomicfile: a Disk counts the
// operations of the writes (creating, writing, syncing and renaming each
// temporary file) and, from a chosen one on, fails them with
// syscall.ENOSPC, a failing write writing half of its bytes first. A test
// counts the operations of a run with FullAfter(-1), then sweeps the point
// of failure over every one of them, installing each Disk with
// atomicfile.SetFault(d.Fault). Code that writes outside atomicfile
// (an appended log) can route its writes through Disk.Fault too, so that
// one counter covers everything.
//
// On Linux, as root, Tmpfs and Fill give the real thing: a tiny tmpfs
// filled to a chosen number of free bytes.
package atomicfiletest

import (
	"fmt"
	"sync"
	"syscall"

	"github.com/roentgo/roentgo/internal/atomicfile"
)

// Op is one operation a Disk saw.
type Op struct {
	// Op is atomicfile.OpCreate, OpWrite, OpSync or OpRename.
	Op string
	// Path is the file being written (the destination, not the temporary
	// name).
	Path string
	// N is the length of a write.
	N int
	// Failed says the disk was full when the operation came.
	Failed bool
}

// String describes the operation, for test logs.
func (o Op) String() string {
	s := o.Op + " " + o.Path
	if o.Op == atomicfile.OpWrite {
		s += fmt.Sprintf(" (%d bytes)", o.N)
	}
	if o.Failed {
		s += ": no space left"
	}
	return s
}

// Disk is a simulated disk that fills up: the operations before the
// limit succeed, the others fail with syscall.ENOSPC. Its methods are safe
// for concurrent use.
type Disk struct {
	mu    sync.Mutex
	limit int // operations that succeed; negative: all
	ops   []Op
}

// FullAfter returns a Disk on which the first n operations succeed and
// every later one fails; with n < 0 none fails (a Disk that only counts).
func FullAfter(n int) *Disk { return &Disk{limit: n} }

// Fault is the Disk as an atomicfile.Fault: it records the operation and,
// when the disk is full, fails it with syscall.ENOSPC (a write after
// writing half of its n bytes).
func (d *Disk) Fault(op, path string, n int) (short int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	full := d.limit >= 0 && len(d.ops) >= d.limit
	d.ops = append(d.ops, Op{Op: op, Path: path, N: n, Failed: full})
	if full {
		return n / 2, syscall.ENOSPC
	}
	return n, nil
}

// Ops returns the operations seen so far, in order.
func (d *Disk) Ops() []Op {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Op(nil), d.ops...)
}

// Failed returns the first operation that failed (ok false when none did).
func (d *Disk) Failed() (op Op, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, o := range d.ops {
		if o.Failed {
			return o, true
		}
	}
	return Op{}, false
}

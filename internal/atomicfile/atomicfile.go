// Package atomicfile writes output files so that a reader sees either the
// old content or all of the new, never a part, and so that a write can only
// ever replace a regular file.
//
// A write goes to a temporary file in the destination's folder, which is
// synced and renamed over the destination. What the destination may be:
//
//   - a new name in an existing folder: the file is created;
//   - a regular file: it is replaced (its permission bits are kept);
//   - a symbolic link: the write goes through to the link's final target,
//     which must itself be a regular file or a new name in an existing
//     folder; the link stays a link (as a shell's "> link" would do);
//   - anything else (a folder, a device such as /dev/null, a FIFO, a
//     socket): refused with an error naming what is there, and nothing is
//     touched.
//
// When a write fails — a full disk included, at any of its steps — the
// temporary file is removed and the destination keeps its old content. The
// error names the destination and wraps the cause, so that
// errors.Is(err, syscall.ENOSPC) tells a full disk. SetFault lets tests
// make any step fail (package atomicfiletest simulates a disk that fills
// up).
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// maxLinks bounds the symbolic links followed (Linux's ELOOP limit).
const maxLinks = 40

// Target returns the file a write to path replaces or creates: path itself,
// or, when path is a symbolic link, its final target. It returns an error
// when that file exists and is not a regular file, when a link chain is too
// long, or when the folder it would be created in does not exist.
func Target(path string) (string, error) {
	cur := path
	for hops := 0; ; hops++ {
		st, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return cur, checkFolder(path, cur)
		}
		if err != nil {
			return "", fmt.Errorf("cannot write %s: %w", path, cause(err))
		}
		mode := st.Mode()
		switch {
		case mode.IsRegular():
			return cur, nil
		case mode&fs.ModeSymlink != 0:
			if hops >= maxLinks {
				return "", fmt.Errorf("cannot write %s: more than %d symbolic links to follow", path, maxLinks)
			}
			dest, err := os.Readlink(cur)
			if err != nil {
				return "", fmt.Errorf("cannot write %s: %w", path, cause(err))
			}
			if !filepath.IsAbs(dest) {
				dest = filepath.Join(filepath.Dir(cur), dest)
			}
			cur = dest
		default:
			what := Kind(mode)
			if cur != path {
				return "", fmt.Errorf("cannot write %s: it links to %s, which is %s; expected a regular file or a new file name", path, cur, what)
			}
			return "", fmt.Errorf("cannot write %s: it is %s; expected a regular file or a new file name", path, what)
		}
	}
}

// checkFolder reports whether the folder that would hold the new file target
// (reached from path) exists and is a folder.
func checkFolder(path, target string) error {
	dir := filepath.Dir(target)
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: folder %s: %w", path, dir, cause(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a folder", path, dir)
	}
	return nil
}

// Kind names the kind of file a mode describes, with an article ("a
// folder", "a character device (such as /dev/null)", ...).
func Kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsRegular():
		return "a regular file"
	}
	return "not a regular file"
}

// CheckWritable reports, before any costly work, whether a write to path
// would be allowed (see Target) and whether files can be created in the
// target's folder, by creating and removing an empty temporary file there.
func CheckWritable(path string) error {
	target, err := Target(path)
	if err != nil {
		return err
	}
	if err := check(OpCreate, path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".probe-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, cause(err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// WriteFile writes data to path atomically (see the package doc).
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// Write writes the content that write produces to path atomically (see the
// package doc): on any error, from write or from the file system, the
// temporary file is removed and path is untouched.
func Write(path string, write func(w io.Writer) error) (err error) {
	target, err := Target(path)
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o644)
	if st, err := os.Stat(target); err == nil {
		mode = st.Mode().Perm()
	}
	dir := filepath.Dir(target)
	if err := check(OpCreate, path); err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, cause(err))
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	wrap := func(e error) error { return fmt.Errorf("writing %s: %w", path, cause(e)) }
	var w io.Writer = f
	if flt := fault.Load(); flt != nil {
		w = &faultWriter{f: f, path: path, fault: *flt}
	}
	if err = write(w); err != nil {
		return wrap(err)
	}
	if err = f.Chmod(mode); err != nil {
		return wrap(err)
	}
	if err = check(OpSync, path); err != nil {
		return wrap(err)
	}
	if err = f.Sync(); err != nil {
		return wrap(err)
	}
	if err = f.Close(); err != nil {
		return wrap(err)
	}
	// The destination may have changed since Target looked: check again just
	// before the rename, so that a folder, device or FIFO put there meanwhile
	// is not replaced (a race of a few microseconds remains; rename cannot
	// be made conditional portably).
	if again, terr := Target(path); terr != nil {
		return terr
	} else if again != target {
		return fmt.Errorf("writing %s: the file changed while it was written (now %s, was %s)", path, again, target)
	}
	if err = check(OpRename, path); err != nil {
		return wrap(err)
	}
	if err = os.Rename(tmp, target); err != nil {
		return wrap(err)
	}
	// Make the rename durable; a failure here does not undo the write.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// cause strips the path from an *os.PathError or *os.LinkError (the caller
// names the path).
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

package atomicfile_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/roentgo/roentgo/internal/atomicfile"
	"github.com/roentgo/roentgo/internal/atomicfile/atomicfiletest"
)

// leftovers returns the temporary and probe files in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp-") || strings.Contains(e.Name(), ".probe-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkFull requires err to be a full disk's error naming path.
func checkFull(t *testing.T, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error on a full disk")
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("errors.Is(%q, ENOSPC) is false", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "no space left on device") {
		t.Errorf("error %q should name %s and say the disk is full", msg, path)
	}
}

// TestFullDiskAtEveryStep fills the simulated disk at every operation of a
// write (creating the temporary file, each write — the failing one writes
// half its bytes —, the sync, the rename), replacing an existing file and
// creating a new one, with one write and with many: every failure is an
// error that names the file and wraps ENOSPC, the destination keeps its old
// content (or stays absent) and no temporary file is left. Then a write
// with room succeeds.
func TestFullDiskAtEveryStep(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1000)
	writers := map[string]func(path string) error{
		"one write": func(p string) error { return atomicfile.WriteFile(p, payload) },
		"many writes": func(p string) error {
			return atomicfile.Write(p, func(w io.Writer) error {
				bw := bufio.NewWriterSize(w, 4096)
				for i := 0; i < len(payload); i += 1000 {
					if _, err := bw.Write(payload[i : i+1000]); err != nil {
						return err
					}
				}
				return bw.Flush()
			})
		},
	}
	for name, write := range writers {
		for _, existing := range []bool{true, false} {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.bin")
			count := atomicfiletest.FullAfter(-1)
			restore := atomicfile.SetFault(count.Fault)
			err := write(filepath.Join(dir, "probe.bin"))
			restore()
			if err != nil {
				t.Fatal(err)
			}
			ops := count.Ops()
			if name == "many writes" && len(ops) < 6 {
				t.Fatalf("%d operations; want several writes: %v", len(ops), ops)
			}
			for n := 0; n < len(ops); n++ {
				if existing {
					if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				disk := atomicfiletest.FullAfter(n)
				restore := atomicfile.SetFault(disk.Fault)
				err := write(path)
				restore()
				failed, ok := disk.Failed()
				if !ok {
					t.Fatalf("%s: no operation failed with the disk full after %d", name, n)
				}
				checkFull(t, err, path)
				got, rerr := os.ReadFile(path)
				switch {
				case existing && string(got) != "old":
					t.Errorf("%s, full at %v: the file holds %d bytes, want its old content", name, failed, len(got))
				case !existing && !errors.Is(rerr, fs.ErrNotExist):
					t.Errorf("%s, full at %v: the file exists (%d bytes, %v); want none", name, failed, len(got), rerr)
				}
				if l := leftovers(t, dir); len(l) > 0 {
					t.Errorf("%s, full at %v: left %v", name, failed, l)
				}
			}
			if err := write(path); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, payload) {
				t.Fatalf("%s: after the disk was freed the file holds %d bytes, want %d", name, len(got), len(payload))
			}
			if existing {
				if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
					t.Errorf("mode %v; want the old file's 0600", st.Mode().Perm())
				}
			}
		}
	}

	// CheckWritable creates a probe file: a full disk is reported too.
	dir := t.TempDir()
	disk := atomicfiletest.FullAfter(0)
	restore := atomicfile.SetFault(disk.Fault)
	err := atomicfile.CheckWritable(filepath.Join(dir, "x.json"))
	restore()
	checkFull(t, err, filepath.Join(dir, "x.json"))
	if l := leftovers(t, dir); len(l) > 0 {
		t.Errorf("left %v", l)
	}
}

// TestFullTmpfs writes to a real tiny tmpfs (root on Linux only): a file
// larger than the free space fails with an error that names it and wraps
// ENOSPC, the old file is intact and no temporary file is left; once space
// is freed the same write succeeds.
func TestFullTmpfs(t *testing.T) {
	dir := atomicfiletest.Tmpfs(t, 1<<20)
	path := filepath.Join(dir, "out.bin")
	if err := atomicfile.WriteFile(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	release := atomicfiletest.Fill(t, dir, 16<<10)
	payload := bytes.Repeat([]byte{7}, 100<<10)
	checkFull(t, atomicfile.WriteFile(path, payload), path)
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("the file holds %d bytes after the failed write; want its old content", len(got))
	}
	if l := leftovers(t, dir); len(l) > 0 {
		t.Fatalf("left %v", l)
	}
	release()
	if err := atomicfile.WriteFile(path, payload); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, payload) {
		t.Fatal("the write after freeing space did not complete")
	}
}

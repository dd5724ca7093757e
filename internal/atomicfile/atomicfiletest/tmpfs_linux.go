//go:build linux

package atomicfiletest

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on a new temporary folder and returns
// the folder; it is unmounted when t ends. It skips t, saying why, unless
// the test runs as root on Linux and the mount works.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; run the tests as root on Linux for the real full-disk test")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		t.Skipf("cannot mount a tmpfs on %s (%v); the real full-disk test needs mount(2)", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Busy (a file left open): detach it, it goes once closed.
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("unmounting the tmpfs %s: %v", dir, err)
			}
		}
	})
	return dir
}

// Fill fills the file system of dir with a file in dir, written until the
// disk is full, then truncates the file so that free bytes (rounded down to
// whole pages on a tmpfs) are free again. It returns a function that
// removes the file, freeing the space.
func Fill(t testing.TB, dir string, free int64) (release func()) {
	t.Helper()
	name := filepath.Join(dir, ".filler")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var size int64
	for {
		n, err := f.Write(buf)
		size += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	if err := f.Truncate(max(0, size-free)); err != nil {
		t.Fatalf("filling %s: %v", dir, err)
	}
	return func() {
		if err := os.Remove(name); err != nil {
			t.Errorf("freeing %s: %v", dir, err)
		}
	}
}

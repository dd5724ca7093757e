//go:build !linux

package atomicfiletest

import "testing"

// Tmpfs skips t: mounting a tmpfs needs Linux (see the Linux version).
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	t.Skip("the real full-disk test mounts a tmpfs, which needs Linux (and root)")
	return ""
}

// Fill skips t (see the Linux version).
func Fill(t testing.TB, dir string, free int64) (release func()) {
	t.Helper()
	t.Skip("the real full-disk test needs Linux")
	return func() {}
}

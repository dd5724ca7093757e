//go:build !linux

package safetensors

// dropPages is a no-op where madvise is not used.
func dropPages(b []byte) error { return nil }

//go:build (amd64 || arm64) && !purego

package tensor

// fastGoroutineID selects getg as the goroutine identifier.
const fastGoroutineID = true

// getg returns the address of the calling goroutine's runtime g, which is
// fixed for the goroutine's life and unique among live goroutines.
func getg() uintptr

//go:build !(amd64 || arm64) || purego

package tensor

// fastGoroutineID is false: goroutineID parses runtime.Stack.
const fastGoroutineID = false

// getg is not available on this architecture.
func getg() uintptr { panic("tensor: getg is not implemented on this architecture") }

//go:build !amd64 || purego

package optim

// adamwSpan updates one span (pure Go).
func adamwSpan(p, g, m, v []float32, c *adamwCoef) { adamwUpdate(p, g, m, v, c) }

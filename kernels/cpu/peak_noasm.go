//go:build !amd64 || purego

package cpu

const haveCPUID = false

func cpuidex(leaf, sub uint32) (a, b, c, d uint32) { return 0, 0, 0, 0 }

func peakLoop(kind PeakKind) (func(int), float64) { return nil, 0 }

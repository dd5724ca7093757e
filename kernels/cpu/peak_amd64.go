//go:build amd64 && !purego

package cpu

// haveCPUID reports whether cpuidex may be called.
const haveCPUID = true

// cpuidex executes CPUID with EAX = leaf and ECX = sub.
//
//go:noescape
func cpuidex(leaf, sub uint32) (a, b, c, d uint32)

//go:noescape
func peakFMA256(iters int)

//go:noescape
func peakFMA512(iters int)

//go:noescape
func peakDPBF16(iters int)

//go:noescape
func peakFMAPH(iters int)

// peakLoop returns the timing loop for kind and the flops of one of its
// iterations (a dot-product or multiply-add counts as 2 flops per product).
func peakLoop(kind PeakKind) (func(int), float64) {
	switch kind {
	case PeakF32AVX2:
		return peakFMA256, 12 * 8 * 2
	case PeakF32AVX512:
		return peakFMA512, 16 * 16 * 2
	case PeakBF16:
		return peakDPBF16, 16 * 32 * 2
	case PeakFP16:
		return peakFMAPH, 16 * 32 * 2
	}
	return nil, 0
}

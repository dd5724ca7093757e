package cuda

import "math/bits"

// sizeClass rounds an allocation request of n bytes up to the size class of the
// caching allocator: 512 B at least, powers of two up to 1 MiB, then multiples
// of an eighth of the power of two below n (at most 12.5% waste).
func sizeClass(n int64) int64 {
	if n <= 512 {
		return 512
	}
	if n <= 1<<20 {
		return int64(1) << bits.Len64(uint64(n-1))
	}
	step := (int64(1) << (bits.Len64(uint64(n)) - 1)) / 8
	return (n + step - 1) / step * step
}

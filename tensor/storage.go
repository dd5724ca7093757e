package tensor

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// storage is a flat buffer shared by a tensor and all its views. On the CPU the
// elements live in exactly one of f32, u16 (F16/BF16 bits) or i64; on an
// accelerator float elements live in device memory (dh) and I64 ones in i64.
//
// refs counts the live (not Released) tensors that use the storage. When the last
// one is released and the buffer came from the pool, it goes back to the pool;
// tensors that are dropped without Release simply leave the buffer to the garbage
// collector, so forgetting Release is never unsafe, only slower.
type storage struct {
	dtype  DType
	device Device
	n      int // number of elements

	f32 []float32
	u16 []uint16
	i64 []int64
	dh  *devHandle // accelerator memory (float dtypes on an accelerator)

	refs atomic.Int64
	// version counts the in-place writes into the buffer (checkWritable
	// bumps it), so that autograd can tell a value it saved for a backward
	// rule from one overwritten since.
	version atomic.Uint64
	// saved counts the handles autograd holds on the buffer for backward
	// rules (part of refs), which in-place ops may write through: the
	// version check then reports it at Backward.
	saved  atomic.Int64
	pooled bool // the buffer is owned by the library and may be recycled
	keep   any  // keeps external memory (a memory-mapped file) reachable
}

// Buffer pool.
//
// Buffers are kept in free lists by size class: a class is the smallest m*2^k >= n
// with 8 <= m < 16, so a recycled buffer wastes at most 1/8 of its size and a
// request is served by any buffer of its class. The pool holds at most
// poolLimit bytes; beyond that, released buffers go to the garbage collector.

var (
	poolLimit  atomic.Int64
	poolHeld   atomic.Int64
	poolHits   atomic.Int64
	poolMisses atomic.Int64
)

func init() { poolLimit.Store(2 << 30) }

type freeList[T any] struct {
	mu   sync.Mutex
	free map[int][][]T
}

var (
	poolF32 = freeList[float32]{free: map[int][][]float32{}}
	poolU16 = freeList[uint16]{free: map[int][][]uint16{}}
	poolI64 = freeList[int64]{free: map[int][][]int64{}}
)

// sizeClass returns the capacity used for a buffer of n elements.
func sizeClass(n int) int {
	if n <= 16 {
		return 16
	}
	k := bits.Len(uint(n)) - 4
	m := (n + 1<<k - 1) >> k
	return m << k
}

func (p *freeList[T]) get(n int, zero bool, elemSize int) []T {
	c := sizeClass(n)
	p.mu.Lock()
	l := p.free[c]
	if len(l) > 0 {
		s := l[len(l)-1]
		l[len(l)-1] = nil
		p.free[c] = l[:len(l)-1]
		p.mu.Unlock()
		poolHeld.Add(-int64(c * elemSize))
		poolHits.Add(1)
		s = s[:n]
		if zero {
			clear(s)
		}
		return s
	}
	p.mu.Unlock()
	poolMisses.Add(1)
	return make([]T, n, c)
}

func (p *freeList[T]) put(s []T, elemSize int) {
	c := cap(s)
	if c != sizeClass(c) || c == 0 {
		return
	}
	b := int64(c * elemSize)
	if poolHeld.Add(b) > poolLimit.Load() {
		poolHeld.Add(-b)
		return
	}
	p.mu.Lock()
	p.free[c] = append(p.free[c], s[:c])
	p.mu.Unlock()
}

func (p *freeList[T]) drain() {
	p.mu.Lock()
	p.free = map[int][][]T{}
	p.mu.Unlock()
}

// PoolStats describes the CPU buffer pool.
type PoolStats struct {
	HeldBytes int64 // bytes in free lists, ready for reuse
	Hits      int64 // allocations served from the pool
	Misses    int64 // allocations that went to the Go allocator
}

// GetPoolStats returns the current pool statistics.
func GetPoolStats() PoolStats {
	return PoolStats{HeldBytes: poolHeld.Load(), Hits: poolHits.Load(), Misses: poolMisses.Load()}
}

// SetPoolLimit sets the most bytes the CPU buffer pool keeps for reuse (0 disables
// pooling) and returns the previous limit. The default is 2 GiB.
func SetPoolLimit(bytes int64) int64 {
	old := poolLimit.Swap(bytes)
	if bytes < old {
		DrainPool()
	}
	return old
}

// DrainPool drops every buffer the pool holds, leaving them to the garbage collector.
func DrainPool() {
	poolF32.drain()
	poolU16.drain()
	poolI64.drain()
	poolHeld.Store(0)
}

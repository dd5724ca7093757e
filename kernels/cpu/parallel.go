package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
)

var maxThreads atomic.Int32

func init() { maxThreads.Store(int32(runtime.GOMAXPROCS(0))) }

// SetThreads sets the number of goroutines the kernels may run at once (at least 1).
// It returns the previous value. The default is runtime.GOMAXPROCS(0).
func SetThreads(n int) int {
	if n < 1 {
		n = 1
	}
	return int(maxThreads.Swap(int32(n)))
}

// Threads returns the number of goroutines the kernels may run at once.
func Threads() int { return int(maxThreads.Load()) }

// ParallelFor splits [0, n) into contiguous chunks of at least grain items and calls
// fn(lo, hi) for each chunk, on up to Threads() goroutines, returning when all are
// done. With one thread, or n <= grain, it calls fn(0, n) on the caller's goroutine.
func ParallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	t := Threads()
	chunks := (n + grain - 1) / grain
	if t <= 1 || chunks <= 1 {
		fn(0, n)
		return
	}
	if chunks > t {
		chunks = t
	}
	per := (n + chunks - 1) / chunks
	var wg sync.WaitGroup
	for lo := per; lo < n; lo += per {
		hi := min(lo+per, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	fn(0, min(per, n))
	wg.Wait()
}

// ParallelTasks runs fn(i) for every i in [0, n) on up to Threads() goroutines that
// take tasks dynamically (good for tasks of uneven cost). It returns when all are done.
func ParallelTasks(n int, fn func(i int)) {
	t := Threads()
	if t <= 1 || n <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	if t > n {
		t = n
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(i)
		}
	}
	for w := 1; w < t; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); work() }()
	}
	work()
	wg.Wait()
}

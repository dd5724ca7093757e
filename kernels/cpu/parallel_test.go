package cpu

import (
	"sync"
	"sync/atomic"
	"testing"
)

// ParallelTasks and ParallelFor run every task exactly once, also when calls
// nest (a task calling ParallelTasks) and when goroutines call concurrently,
// and with more threads than processors.
func TestParallelTasksEveryTaskOnce(t *testing.T) {
	defer SetThreads(SetThreads(3))
	check := func(n int) {
		counts := make([]atomic.Int32, n)
		ParallelTasks(n, func(i int) {
			counts[i].Add(1)
			if i%7 == 0 { // nested
				var inner atomic.Int32
				ParallelTasks(5, func(int) { inner.Add(1) })
				if inner.Load() != 5 {
					t.Errorf("nested call ran %d of 5 tasks", inner.Load())
				}
			}
		})
		for i := range counts {
			if c := counts[i].Load(); c != 1 {
				t.Fatalf("n=%d: task %d ran %d times", n, i, c)
			}
		}
		var sum atomic.Int64
		ParallelFor(n, 3, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				sum.Add(int64(i))
			}
		})
		if want := int64(n * (n - 1) / 2); sum.Load() != want {
			t.Fatalf("ParallelFor(%d): sum %d, want %d", n, sum.Load(), want)
		}
	}
	for round := 0; round < 200; round++ {
		check(round%40 + 1)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := 0; round < 100; round++ {
				check(round%17 + 2)
			}
		}()
	}
	wg.Wait()
}

package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
	ParallelTasks((n+per-1)/per, func(c int) { fn(c*per, min(c*per+per, n)) })
}

// ParallelTasks runs fn(i) for every i in [0, n) on up to Threads() goroutines that
// take tasks dynamically (good for tasks of uneven cost). It returns when all are done.
//
// The helpers are persistent goroutines that spin for a short while
// (helperSpin) after a call before they park, so that the next call, usually
// microseconds later, starts on every thread at once: waking a parked thread
// costs an OS scheduling delay, milliseconds on a loaded machine, during which
// the caller would run the tasks alone. A call made while another is running
// (from a task, or from another goroutine) starts goroutines of its own.
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
	if !poolBusy.CompareAndSwap(false, true) {
		spawnTasks(n, t, fn)
		return
	}
	startHelpers(t - 1)
	j := &job{n: int64(n), fn: fn}
	j.slots.Store(int64(t - 1))
	poolJob.Store(j)
	for k := 0; k < t-1; k++ {
		select {
		case poolWake <- struct{}{}:
		default:
		}
	}
	j.run()
	for spins := 0; j.done.Load() < j.n; spins++ {
		if spins%64 == 63 {
			runtime.Gosched()
		}
	}
	poolJob.Store(nil)
	poolBusy.Store(false)
}

// spawnTasks is ParallelTasks on t-1 new goroutines and the caller's.
func spawnTasks(n, t int, fn func(i int)) {
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

// job is one ParallelTasks call the helpers may join.
type job struct {
	n     int64
	next  atomic.Int64 // the next task to take
	done  atomic.Int64 // tasks finished
	slots atomic.Int64 // helpers that may still join (Threads()-1 at the call)
	fn    func(i int)
}

// run takes and runs tasks until none is left.
func (j *job) run() {
	for {
		i := j.next.Add(1) - 1
		if i >= j.n {
			return
		}
		j.fn(int(i))
		j.done.Add(1)
	}
}

// helperSpin is how long an idle helper looks for a new call before it parks.
const helperSpin = 200 * time.Microsecond

var (
	poolBusy    atomic.Bool         // a ParallelTasks call owns poolJob
	poolJob     atomic.Pointer[job] // the call helpers may join, or nil
	poolWake    = make(chan struct{}, 256)
	poolMu      sync.Mutex
	poolHelpers int // helper goroutines started
)

// startHelpers makes sure at least k helper goroutines exist.
func startHelpers(k int) {
	poolMu.Lock()
	for ; poolHelpers < k; poolHelpers++ {
		go helper()
	}
	poolMu.Unlock()
}

// helper joins the calls of ParallelTasks: it spins for helperSpin after its
// last call, then parks until a call wakes it.
func helper() {
	var last *job
	for {
		idle := time.Now()
		for spins := 0; ; spins++ {
			if j := poolJob.Load(); j != nil && j != last {
				last = j
				if j.slots.Add(-1) >= 0 {
					j.run()
				}
				idle = time.Now()
				continue
			}
			if spins%64 == 63 {
				if time.Since(idle) > helperSpin {
					break
				}
				runtime.Gosched()
			}
		}
		<-poolWake
	}
}

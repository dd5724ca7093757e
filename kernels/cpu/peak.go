package cpu

import (
	"runtime"
	"sync"
	"time"
)

// PeakKind names the multiply-add instruction whose throughput Peak measures.
type PeakKind int

const (
	// PeakF32AVX2 is VFMADD231PS on 256-bit registers (AVX2/FMA3).
	PeakF32AVX2 PeakKind = iota
	// PeakF32AVX512 is VFMADD231PS on 512-bit registers (AVX-512F).
	PeakF32AVX512
	// PeakBF16 is VDPBF16PS on 512-bit registers (AVX512_BF16): pairs of
	// BF16 products accumulated into F32, 64 flops per instruction.
	PeakBF16
	// PeakFP16 is VFMADD231PH on 512-bit registers (AVX512_FP16), 64 flops
	// per instruction.
	PeakFP16
)

// PeakKinds lists every PeakKind, for benchmarks and reports.
var PeakKinds = []PeakKind{PeakF32AVX2, PeakF32AVX512, PeakBF16, PeakFP16}

func (k PeakKind) String() string {
	switch k {
	case PeakF32AVX2:
		return "f32-avx2"
	case PeakF32AVX512:
		return "f32-avx512"
	case PeakBF16:
		return "bf16-avx512"
	case PeakFP16:
		return "fp16-avx512"
	}
	return "peak(?)"
}

// Available reports whether this machine (and this build: the loops are
// assembly) can run kind.
func (k PeakKind) Available() bool {
	if fn, _ := peakLoop(k); fn == nil {
		return false
	}
	switch k {
	case PeakF32AVX2:
		return CPU.HasAVX2FMA
	case PeakF32AVX512:
		return CPU.HasAVX512
	case PeakBF16:
		return CPU.HasAVX512BF16
	case PeakFP16:
		return CPU.HasAVX512FP16
	}
	return false
}

type peakKey struct {
	kind    PeakKind
	threads int
}

var peakCache struct {
	sync.Mutex
	m map[peakKey]float64
}

// Peak returns the throughput in GFLOP/s (2 flops per multiply-add) of kind's
// instruction on threads goroutines (Threads() when threads <= 0), each locked
// to its OS thread and running independent accumulator chains: the ceiling a
// kernel built on that instruction can reach. It returns 0 when kind is not
// Available. The first call for a (kind, threads) pair measures it (best of
// ten runs of about 20 ms; a busy machine reads low), later calls return
// the cached value.
func Peak(kind PeakKind, threads int) float64 {
	if threads <= 0 {
		threads = Threads()
	}
	if !kind.Available() {
		return 0
	}
	key := peakKey{kind, threads}
	peakCache.Lock()
	defer peakCache.Unlock()
	if v, ok := peakCache.m[key]; ok {
		return v
	}
	v := measurePeak(kind, threads)
	if peakCache.m == nil {
		peakCache.m = map[peakKey]float64{}
	}
	peakCache.m[key] = v
	return v
}

// PeakGFLOPS is Peak for the F32 multiply-add of the widest vector width the
// kernels use now (AVX-512, else AVX2); 0 for the pure-Go kernels. Benchmarks
// report their GFLOP/s as a percentage of it.
func PeakGFLOPS(threads int) float64 {
	switch level() {
	case levelAVX512:
		return Peak(PeakF32AVX512, threads)
	case levelAVX2:
		return Peak(PeakF32AVX2, threads)
	}
	return 0
}

// measurePeak times fn on threads locked goroutines started together and
// returns the best rate of several runs.
func measurePeak(kind PeakKind, threads int) float64 {
	fn, flops := peakLoop(kind)
	// Calibrate one thread's iteration count to about 20 ms.
	iters := 1 << 12
	for {
		t0 := time.Now()
		fn(iters)
		if d := time.Since(t0); d > 2*time.Millisecond || iters >= 1<<30 {
			iters = max(1, int(float64(iters)*float64(20*time.Millisecond)/float64(max(d, 1))))
			break
		}
		iters *= 4
	}
	best := 0.0
	for range 10 {
		var ready, done sync.WaitGroup
		start := make(chan struct{})
		ready.Add(threads)
		done.Add(threads)
		for range threads {
			go func() {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				ready.Done()
				<-start
				fn(iters)
				done.Done()
			}()
		}
		ready.Wait()
		t0 := time.Now()
		close(start)
		done.Wait()
		rate := float64(threads) * float64(iters) * flops / time.Since(t0).Seconds() / 1e9
		best = max(best, rate)
	}
	return best
}

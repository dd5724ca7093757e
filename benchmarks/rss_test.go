package benchmarks

import (
	"runtime"
	"testing"
)

// TestPeakRSS checks the memory probe the benchmarks report: on Linux the peak RSS
// is positive and at least what the Go runtime has obtained from the OS for its heap.
func TestPeakRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("VmHWM is Linux-only")
	}
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	got := peakRSSMiB()
	if got < float64(len(buf))/(1<<20) {
		t.Fatalf("peak RSS %.1f MiB, want at least the 64 MiB just touched", got)
	}
	if got > float64(ms.Sys)/(1<<20)+1024 {
		t.Fatalf("peak RSS %.1f MiB is implausibly above the runtime's %d MiB", got, ms.Sys>>20)
	}
	if cpuTime() <= 0 {
		t.Fatal("process CPU time not positive")
	}
	runtime.KeepAlive(buf)
}

package cpu

import (
	"fmt"
	"testing"
)

// TestCaches checks that the detected sizes are plausible and logs them
// (go test -run Caches -v).
func TestCaches(t *testing.T) {
	ci := Caches()
	t.Logf("caches: %v", ci)
	t.Logf("features: %+v", CPU)
	if ci.L1D.Size < 4<<10 || ci.L1D.Size > 4<<20 || ci.L2.Size < ci.L1D.Size {
		t.Errorf("implausible caches %v", ci)
	}
	if sc, ok := sysfsCaches("/sys/devices/system/cpu/cpu0/cache"); ok {
		t.Logf("sysfs:  %v", sc)
		if sc.L1D.Size != ci.L1D.Size {
			t.Logf("L1d differs from sysfs (hypervisors may report other sizes)")
		}
	}
}

func TestCountCPUList(t *testing.T) {
	for _, c := range []struct {
		s string
		n int
	}{{"0", 1}, {"0-1", 2}, {"0-3,8,10-11", 7}, {"", 0}} {
		if got := countCPUList(c.s); got != c.n {
			t.Errorf("countCPUList(%q) = %d, want %d", c.s, got, c.n)
		}
	}
	if got := parseSize("2048K"); got != 2<<20 {
		t.Errorf("parseSize(2048K) = %d", got)
	}
}

// BenchmarkPeak measures every available peak on one goroutine and on
// Threads(), reporting GFLOP/s (the b.N loop only re-reads the cached value;
// the measurement itself runs once per process).
func BenchmarkPeak(b *testing.B) {
	for _, k := range PeakKinds {
		if !k.Available() {
			continue
		}
		for _, th := range []int{1, Threads()} {
			b.Run(fmt.Sprintf("%v/threads=%d", k, th), func(b *testing.B) {
				v := 0.0
				for range b.N {
					v = Peak(k, th)
				}
				b.ReportMetric(v, "GFLOP/s")
			})
		}
	}
}

// reportGFLOPS reports a benchmark's rate for flops per op as "GFLOP/s" and as
// "%peak", the percentage of PeakGFLOPS(threads) (the F32 multiply-add peak of
// the instruction set the kernels use; measured once per process, outside the
// benchmark's timer).
func reportGFLOPS(b *testing.B, flops float64, threads int) {
	g := flops * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(g, "GFLOP/s")
	b.StopTimer()
	if p := PeakGFLOPS(threads); p > 0 {
		b.ReportMetric(100*g/p, "%peak")
	}
}

// TestTuneBlocking checks the blocking rule on known cache layouts: on the
// Zen 5 core the AVX-512 constants were measured on it gives those constants.
func TestTuneBlocking(t *testing.T) {
	zen5 := CacheInfo{L1D: Cache{Size: 48 << 10}, L2: Cache{Size: 1 << 20}, L3: Cache{Size: 32 << 20, SharedBy: 16}}
	k := gemmKernel{mr: 14, nr: 32, l1MaxM: 14 * 96}
	tuneBlocking(&k, zen5)
	if k.kc != 384 || k.mc != 14*24 || k.nc != 4096 || k.l1NC != 320 || k.l1MC != 14*96 {
		t.Errorf("zen5 14x32: kc %d mc %d nc %d l1NC %d l1MC %d", k.kc, k.mc, k.nc, k.l1NC, k.l1MC)
	}
	for _, kern := range append(asmKernels(), &goGemmKernel) {
		t.Logf("%s: kc %d mc %d nc %d l1MaxM %d l1MC %d l1NC %d", kern.name, kern.kc, kern.mc, kern.nc, kern.l1MaxM, kern.l1MC, kern.l1NC)
		if kern.mc%kern.mr != 0 || kern.nc%kern.nr != 0 || kern.kc <= 0 || (kern.l1MaxM > 0 && (kern.l1MC%kern.mr != 0 || kern.l1NC%kern.nr != 0)) {
			t.Errorf("%s: blocks not multiples of the micro-tile", kern.name)
		}
	}
}

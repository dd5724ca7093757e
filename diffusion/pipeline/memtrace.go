package pipeline

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/roentgo/roentgo/tensor"
)

// memTrace is set by the environment variable ROENTGO_MEMTRACE (any non-empty
// value): the pipeline then prints the process's resident memory, the Go heap
// and the tensor pool to stderr at each phase boundary of a generation.
var memTrace = os.Getenv("ROENTGO_MEMTRACE") != ""

// traceMem prints the memory figures after phase when memTrace is set.
func traceMem(phase string) {
	if !memTrace {
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fields := map[string]string{}
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if ok {
				fields[k] = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	fmt.Fprintf(os.Stderr, "memtrace %-16s VmRSS %s VmHWM %s RssFile %s RssAnon %s | heap inuse %d MiB, sys %d MiB, released %d MiB | pool %d MiB\n",
		phase, fields["VmRSS"], fields["VmHWM"], fields["RssFile"], fields["RssAnon"],
		ms.HeapInuse>>20, ms.HeapSys>>20, ms.HeapReleased>>20, tensor.GetPoolStats().HeldBytes>>20)
}

package cpu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Cache describes one level of the data cache hierarchy.
type Cache struct {
	// Size is the capacity of one instance in bytes (0 when the level is absent).
	Size int
	// LineSize is the line size in bytes.
	LineSize int
	// Ways is the associativity (0 when unknown).
	Ways int
	// SharedBy is the number of logical processors that share one instance
	// (as the hardware reports it: under a hypervisor it describes the host).
	SharedBy int
}

// Share is the capacity of the cache per logical processor sharing it.
func (c Cache) Share() int { return c.Size / max(c.SharedBy, 1) }

func (c Cache) String() string {
	return fmt.Sprintf("%s (%d-way, %d B lines, shared by %d)", fmtBytes(c.Size), c.Ways, c.LineSize, max(c.SharedBy, 1))
}

// CacheInfo is the data cache hierarchy seen from one core.
type CacheInfo struct {
	// L1D is the level 1 data cache, L2 and L3 the unified levels below it.
	L1D, L2, L3 Cache
	// Source says where the sizes came from: "cpuid-4" (Intel's deterministic
	// cache parameters leaf), "cpuid-8000001d" (AMD's), "sysfs" (Linux's
	// /sys/devices/system/cpu/cpu0/cache), or "default" (assumed sizes).
	Source string
}

func (ci CacheInfo) String() string {
	return fmt.Sprintf("L1d %v; L2 %v; L3 %v [%s]", ci.L1D, ci.L2, ci.L3, ci.Source)
}

// defaultCaches are assumed when nothing can be read: a common desktop/server
// core (32 KiB L1d, 1 MiB L2, 2 MiB of L3 per core).
var defaultCaches = CacheInfo{
	L1D:    Cache{Size: 32 << 10, LineSize: 64, Ways: 8, SharedBy: 1},
	L2:     Cache{Size: 1 << 20, LineSize: 64, Ways: 8, SharedBy: 1},
	L3:     Cache{Size: 2 << 20, LineSize: 64, Ways: 16, SharedBy: 1},
	Source: "default",
}

var caches = sync.OnceValue(detectCaches)

// Caches returns the data cache sizes of this machine, read once: from CPUID
// (leaf 4 on Intel, 0x8000001D on AMD) in assembly builds on amd64, else from
// Linux's sysfs, else defaultCaches. Levels the source leaves out (an L3 on
// some parts) are zero.
func Caches() CacheInfo { return caches() }

func detectCaches() CacheInfo {
	if ci, ok := cpuidCaches(); ok {
		return ci
	}
	if ci, ok := sysfsCaches("/sys/devices/system/cpu/cpu0/cache"); ok {
		return ci
	}
	return defaultCaches
}

// cpuidCaches walks the deterministic cache parameters leaf: 4 on Intel,
// 0x8000001D on AMD and Hygon (with the TOPOEXT feature). Both report, per
// subleaf, EAX[4:0] type (0 none, 1 data, 2 instruction, 3 unified), EAX[7:5]
// level, EAX[25:14] logical processors sharing - 1, EBX[11:0] line size - 1,
// EBX[21:12] partitions - 1, EBX[31:22] ways - 1, ECX sets - 1.
func cpuidCaches() (CacheInfo, bool) {
	if !haveCPUID {
		return CacheInfo{}, false
	}
	maxLeaf, b, c, d := cpuidex(0, 0)
	vendor := string(le32(b)) + string(le32(d)) + string(le32(c))
	var leaf uint32
	var src string
	switch vendor {
	case "GenuineIntel":
		if maxLeaf < 4 {
			return CacheInfo{}, false
		}
		leaf, src = 4, "cpuid-4"
	case "AuthenticAMD", "HygonGenuine":
		maxExt, _, _, _ := cpuidex(0x80000000, 0)
		if maxExt < 0x8000001D {
			return CacheInfo{}, false
		}
		if _, _, ecx, _ := cpuidex(0x80000001, 0); ecx&(1<<22) == 0 {
			return CacheInfo{}, false
		}
		leaf, src = 0x8000001D, "cpuid-8000001d"
	default:
		return CacheInfo{}, false
	}
	ci := CacheInfo{Source: src}
	for sub := uint32(0); sub < 16; sub++ {
		a, b, c, _ := cpuidex(leaf, sub)
		typ := a & 31
		if typ == 0 {
			break
		}
		if typ == 2 {
			continue
		}
		cc := Cache{
			LineSize: int(b&0xfff) + 1,
			Ways:     int(b>>22) + 1,
			SharedBy: int(a>>14&0xfff) + 1,
		}
		cc.Size = cc.LineSize * cc.Ways * (int(b>>12&0x3ff) + 1) * (int(c) + 1)
		ci.set(int(a>>5&7), typ == 1, cc)
	}
	return ci, ci.L1D.Size > 0 && ci.L2.Size > 0
}

func le32(x uint32) []byte { return []byte{byte(x), byte(x >> 8), byte(x >> 16), byte(x >> 24)} }

// set records cc as the given level (data or unified).
func (ci *CacheInfo) set(level int, data bool, cc Cache) {
	switch {
	case level == 1 && data:
		ci.L1D = cc
	case level == 2:
		ci.L2 = cc
	case level == 3:
		ci.L3 = cc
	}
}

// sysfsCaches reads Linux's description of cpu0's caches under dir.
func sysfsCaches(dir string) (CacheInfo, bool) {
	idx, _ := filepath.Glob(filepath.Join(dir, "index*"))
	ci := CacheInfo{Source: "sysfs"}
	for _, d := range idx {
		read := func(name string) string {
			b, err := os.ReadFile(filepath.Join(d, name))
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		typ := read("type")
		if typ != "Data" && typ != "Unified" {
			continue
		}
		level, err := strconv.Atoi(read("level"))
		size := parseSize(read("size"))
		if err != nil || size <= 0 {
			continue
		}
		line, _ := strconv.Atoi(read("coherency_line_size"))
		ways, _ := strconv.Atoi(read("ways_of_associativity"))
		ci.set(level, typ == "Data", Cache{Size: size, LineSize: line, Ways: ways, SharedBy: max(countCPUList(read("shared_cpu_list")), 1)})
	}
	return ci, ci.L1D.Size > 0 && ci.L2.Size > 0
}

// parseSize reads sysfs sizes such as "48K", "2048K", "32M".
func parseSize(s string) int {
	mul := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mul, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"):
		mul, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"):
		mul, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n * mul
}

// countCPUList counts the CPUs of a list such as "0-3,8,10-11".
func countCPUList(s string) int {
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			continue
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				continue
			}
		}
		n += b - a + 1
	}
	return n
}

func fmtBytes(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

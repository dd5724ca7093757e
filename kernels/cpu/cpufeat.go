package cpu

import (
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/cpu"
)

// Features describes the instruction-set extensions the fast paths can use on
// this machine (all false off amd64).
type Features struct {
	// HasAVX2FMA reports AVX2 with FMA3 (the 6x16 SGEMM micro-kernel).
	HasAVX2FMA bool
	// HasAVX512 reports AVX-512 F/BW/DQ/VL with operating-system support for the
	// ZMM state (the 14x32 SGEMM micro-kernel).
	HasAVX512 bool
	// HasF16C reports the F16C half-precision conversion instructions.
	HasF16C bool
	// HasAVX512BF16 reports AVX512_BF16 (VDPBF16PS: BF16 pair dot products
	// accumulated in F32) with HasAVX512.
	HasAVX512BF16 bool
	// HasAVX512FP16 reports AVX512_FP16 (half-precision arithmetic, CPUID
	// leaf 7 EDX bit 23) with HasAVX512; only detected in assembly builds.
	HasAVX512FP16 bool
	// HasAVX512VNNI reports AVX512_VNNI (8- and 16-bit integer dot products)
	// with HasAVX512.
	HasAVX512VNNI bool
}

// CPU holds the features detected at start-up. Which of them the kernels use can
// be narrowed (never widened) for tests with the unexported setSIMDLevel.
var CPU = detectFeatures()

func detectFeatures() Features {
	if runtime.GOARCH != "amd64" {
		return Features{}
	}
	x := cpu.X86
	avx2 := x.HasAVX && x.HasAVX2 && x.HasFMA && x.HasOSXSAVE
	avx512 := avx2 && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL
	fp16 := false
	if haveCPUID && avx512 {
		if maxLeaf, _, _, _ := cpuidex(0, 0); maxLeaf >= 7 {
			_, _, _, edx := cpuidex(7, 0)
			fp16 = edx&(1<<23) != 0
		}
	}
	return Features{
		HasAVX2FMA:    avx2,
		HasAVX512:     avx512,
		HasF16C:       x.HasAVX && x.HasF16C && x.HasOSXSAVE,
		HasAVX512BF16: avx512 && x.HasAVX512BF16,
		HasAVX512FP16: fp16,
		HasAVX512VNNI: avx512 && x.HasAVX512VNNI,
	}
}

// simdLevel is the widest instruction set the kernels may use.
type simdLevel int32

const (
	levelGo     simdLevel = iota // pure Go
	levelAVX2                    // AVX2 + FMA (+ F16C)
	levelAVX512                  // AVX-512
)

func (l simdLevel) String() string {
	switch l {
	case levelGo:
		return "go"
	case levelAVX2:
		return "avx2"
	case levelAVX512:
		return "avx512"
	}
	return "level(?)"
}

// maxLevel is the widest level the hardware (and this build) supports.
func maxLevel() simdLevel {
	if !haveAsm {
		return levelGo
	}
	switch {
	case CPU.HasAVX512:
		return levelAVX512
	case CPU.HasAVX2FMA:
		return levelAVX2
	}
	return levelGo
}

var curLevel atomic.Int32

func init() { curLevel.Store(int32(maxLevel())) }

// level returns the instruction-set level the kernels use now.
func level() simdLevel { return simdLevel(curLevel.Load()) }

// setSIMDLevel restricts the kernels to at most l (clamped to what the machine
// supports) and returns the previous level. It is meant for tests, which use it
// to run the same checks on the pure-Go and AVX2 paths.
func setSIMDLevel(l simdLevel) simdLevel {
	l = min(l, maxLevel())
	return simdLevel(curLevel.Swap(int32(l)))
}

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
	return Features{
		HasAVX2FMA: avx2,
		HasAVX512:  avx2 && x.HasAVX512F && x.HasAVX512BW && x.HasAVX512DQ && x.HasAVX512VL,
		HasF16C:    x.HasAVX && x.HasF16C && x.HasOSXSAVE,
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

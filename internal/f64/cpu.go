package f64

import (
	"sync/atomic"

	kcpu "github.com/roentgo/roentgo/kernels/cpu"
)

// simdLevel is an instruction-set level of the kernels.
type simdLevel int32

const (
	levelGo     simdLevel = iota // pure Go loops
	levelAVX2                    // AVX2 with FMA
	levelAVX512                  // AVX-512 F/BW/DQ/VL with OS support for ZMM state
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

// maxLevel is the widest level this machine and build support.
var maxLevel = detectLevel()

// detectLevel reads the features kernels/cpu detected at start-up.
func detectLevel() simdLevel {
	if !haveAsm {
		return levelGo
	}
	switch {
	case kcpu.CPU.HasAVX512:
		return levelAVX512
	case kcpu.CPU.HasAVX2FMA:
		return levelAVX2
	}
	return levelGo
}

var curLevel atomic.Int32

func init() { curLevel.Store(int32(maxLevel)) }

// level returns the level the kernels use now.
func level() simdLevel { return simdLevel(curLevel.Load()) }

// setLevel restricts the kernels to at most l (clamped to what the machine
// supports) and returns the previous level. Tests use it to run the same
// checks on every path the machine has.
func setLevel(l simdLevel) simdLevel {
	return simdLevel(curLevel.Swap(int32(min(l, maxLevel))))
}

// Level names the instruction set the kernels use on this machine: "avx512",
// "avx2" or "go".
func Level() string { return level().String() }

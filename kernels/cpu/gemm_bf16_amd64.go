//go:build amd64 && !purego

package cpu

import (
	"sync"
	"unsafe"
)

//go:generate go run ./internal/genbf16

// bf16Kernel14x32 is the AVX512_BF16 pair micro-kernel (generated into
// gemm_bf16_amd64.s): the 14 x 32 tile of microKernel over kp k pairs of
// packed BF16 pair words.
//
//go:noescape
func bf16Kernel14x32(kp int, a, b, c *float32, ldc int, alpha, beta float32)

// kern14x32BF16 is bf16Kernel14x32 as a microKernel (kc counts k values).
func kern14x32BF16(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	kp := (kc + 1) / 2
	_, _, _ = a[kp*14-1], b[kp*32-1], c[13*ldc+31]
	bf16Kernel14x32(kp, unsafe.SliceData(a), unsafe.SliceData(b), &c[0], ldc, alpha, beta)
}

//go:noescape
func bf16Kernel14x32m(kp int, a, b, c *float32, ldc int, alpha, beta float32, rows, mask int)

// edge14x32BF16 is the edge form of kern14x32BF16 (see gemmKernel.edge):
// masked loads and stores of the mm x nn corner.
func edge14x32BF16(mm, nn, kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	kp := (kc + 1) / 2
	_, _, _ = a[kp*14-1], b[kp*32-1], c[(mm-1)*ldc+nn-1]
	bf16Kernel14x32m(kp, unsafe.SliceData(a), unsafe.SliceData(b), &c[0], ldc, alpha, beta, mm, 1<<nn-1)
}

//go:noescape
func f32ToBF16AVX512(dst *uint16, src *float32, n int)

// f32ToBF16Asm converts with AVX-512 when allowed (bit-identical to
// F32ToBF16Scalar, NaNs included); it reports whether it did.
func f32ToBF16Asm(dst []uint16, src []float32) bool {
	if level() < levelAVX512 {
		return false
	}
	n := len(src)
	v := n &^ 15
	if v > 0 {
		_ = dst[v-1]
		f32ToBF16AVX512(&dst[0], &src[0], v)
	}
	for i := v; i < n; i++ {
		dst[i] = F32ToBF16Scalar(src[i])
	}
	return true
}

//go:noescape
func f16ToBF16AVX512(dst *uint16, src *uint16, n int)

// pairScratch is one goroutine's scratch for packPairRowsAsm.
type pairScratch struct {
	u16 []uint16
}

var pairPool = sync.Pool{New: func() any { return new(pairScratch) }}

// packPairRowsAsm is packPairRows for a pair panel of width 14 or 32 from
// rows (<= w) stored rows running along k: each row is rounded to BF16 into a
// scratch block (padded to an even length with a zero), and the block, read
// as 32-bit pair words, is transposed into the panel with the AVX-512
// transposes. It reports false when it does not apply.
func packPairRowsAsm(dst []float32, x Mat, off, kc, rows, w int) bool {
	if level() < levelAVX512 || (w != 14 && w != 32) || rows > w {
		return false
	}
	if kc == 0 {
		return true
	}
	kp := (kc + 1) / 2
	s := pairPool.Get().(*pairScratch)
	defer pairPool.Put(s)
	if cap(s.u16) < rows*2*kp+1 {
		s.u16 = make([]uint16, rows*2*kp+1)
	}
	buf := s.u16[:max(rows*2*kp, 1)]
	for r := 0; r < rows; r++ {
		d := buf[r*2*kp : r*2*kp+kc]
		o := off + r*x.Stride
		switch x.DType {
		case F32:
			F32ToBF16(d, x.F32[o:o+kc])
		case BF16:
			copy(d, x.U16[o:o+kc])
		default: // F16: one rounding, 16 values an instruction
			src := x.U16[o : o+kc]
			v := kc &^ 15
			if v > 0 {
				f16ToBF16AVX512(&d[0], &src[0], v)
			}
			for i := v; i < kc; i++ {
				d[i] = F32ToBF16Scalar(F16ToF32Scalar(src[i]))
			}
		}
		if kc&1 != 0 {
			buf[r*2*kp+kc] = 0
		}
	}
	words := F32Mat(unsafe.Slice((*float32)(unsafe.Pointer(&buf[0])), max(rows*kp, 1)), kp, false)
	if w == 14 {
		return packTAsm(dst, words, 0, kp, rows, 14, 14)
	}
	return packTAsm(dst, words, 0, kp, min(rows, 16), 16, 32) &&
		packTAsm(dst[16:], words, 16*kp, kp, max(rows-16, 0), 16, 32)
}

//go:noescape
func packB32PairsF32(dst *float32, src *float32, ldb, kc, mask int)

// packB32Pairs packs one 32-wide pair panel of a non-transposed F32 B of nn
// columns with the assembly loop; other dtypes go through the generic path.
func packB32Pairs(dst []float32, b Mat, off, kc, nn int) bool {
	if b.DType != F32 {
		return false
	}
	if kc == 0 {
		return true
	}
	_ = dst[pairWords(kc, 32)-1]
	_ = b.F32[off+(kc-1)*b.Stride+nn-1]
	packB32PairsF32(&dst[0], &b.F32[off], b.Stride, kc, 1<<nn-1)
	return true
}

// avx512BF16GemmKernel is the BF16 compute kernel: the F32 AVX-512 kernel's
// tile and loop orders, with KC doubled (a pair word holds two k values, so
// the same bytes of L1 hold twice the depth).
var avx512BF16GemmKernel = gemmKernel{name: "avx512bf16-14x32", mr: 14, nr: 32, kc: 768, mc: 14 * 24, nc: 4096,
	fn: kern14x32BF16, edge: edge14x32BF16, pairs: true,
	l1MaxM: 14 * 96, l1MC: 14 * 96, l1NC: 320, l1AllK: 1 << 21,
	packB: packB32Pairs,
	packA: func(dst []float32, a Mat, off, kc, rows int) bool {
		return packPairRowsAsm(dst, a, off, kc, rows, 14)
	},
	packBT: func(dst []float32, b Mat, off, kc, nn int) bool {
		return packPairRowsAsm(dst, b, off, kc, nn, 32)
	},
}

// bf16Kernel returns the BF16 pair micro-kernel when this CPU has
// AVX512_BF16 and the AVX-512 level is allowed, else nil.
func bf16Kernel() *gemmKernel {
	if !CPU.HasAVX512BF16 || level() < levelAVX512 {
		return nil
	}
	return &avx512BF16GemmKernel
}

package cpu

import (
	"errors"
	"sync/atomic"
	"unsafe"
)

// BF16 compute.
//
// With SetCompute(BF16), the matrix products (Gemm, GemmSerial, GemmBatched,
// PackA/GemmPacked, and so Conv2d and every linear layer built on them) round
// both operands to bfloat16 (round to nearest even) while packing and multiply
// them with VDPBF16PS (AVX512_BF16), which adds the two products of a pair of
// BF16 values to an F32 accumulator: twice the multiply-adds of an F32 FMA per
// instruction. Accumulation, alpha/beta and C stay F32. Attention's two
// products (scores and probabilities times values) go through GemmPackedSerial
// and so multiply in BF16 too; its softmax and the elementwise and
// normalisation kernels are unchanged (F32).
//
// Pair layout: a pair kernel (gemmKernel.pairs) reads K two values at a time.
// Its packed micro-panels keep the F32 kernels' offsets (panel q of a K block
// kc deep starts at float32 q*kc*MR, so every loop of gemm.go runs unchanged)
// but hold ceil(kc/2)*MR 32-bit words, one per row and k pair:
//
//	word(h, r) = bf16(op(A)(r, 2h)) | bf16(op(A)(r, 2h+1)) << 16
//
// (and likewise NR words per k pair for B), the odd k of an odd kc paired
// with zero. Rounding is to nearest even; VDPBF16PS itself treats BF16
// subnormal inputs as zero and flushes subnormal results.

// curCompute is the DType the products multiply in (F32 or BF16).
var curCompute atomic.Int32

// ErrBF16Unsupported is returned by SetCompute(BF16) on a CPU (or build)
// without AVX512_BF16.
var ErrBF16Unsupported = errors.New("cpu: BF16 compute needs AVX512_BF16 (VDPBF16PS), which this CPU or build lacks")

// SetCompute selects the type the matrix products multiply in, process-wide:
// F32 (the default and the reference) or BF16 (operands rounded to bfloat16,
// F32 accumulation; see the BF16 compute notes in gemm_bf16.go). It returns the
// previous setting. BF16 needs AVX512_BF16 (ErrBF16Unsupported otherwise); F16
// compute is not implemented. Products already running keep the type they
// started with; a PackedA keeps the layout it was packed in.
func SetCompute(dt DType) (DType, error) {
	switch dt {
	case F32:
	case BF16:
		if !BF16ComputeSupported() {
			return Compute(), ErrBF16Unsupported
		}
	default:
		return Compute(), errors.New("cpu: SetCompute: " + dt.String() + " compute is not implemented (F32 or BF16)")
	}
	return DType(curCompute.Swap(int32(dt))), nil
}

// Compute returns the type the matrix products multiply in (see SetCompute).
func Compute() DType { return DType(curCompute.Load()) }

// BF16ComputeSupported reports whether SetCompute(BF16) can be used here.
func BF16ComputeSupported() bool { return bf16Kernel() != nil }

// u16s views the float32 words of w as twice as many uint16 halves (little
// endian: half 2i is the low half of word i).
func u16s(w []float32) []uint16 {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(&w[0])), 2*len(w))
}

// pairWords returns the 32-bit words a pair micro-panel of kc k values and w
// lanes occupies.
func pairWords(kc, w int) int { return (kc + 1) / 2 * w }

// packPairRows packs rows values (rows <= w) of stored rows that run along k
// (row r starts at element off+r*x.Stride, kc values) into a pair panel of
// width w: dst word h*w+r holds the row's values 2h and 2h+1 as BF16; lanes
// from rows to w and the odd k's partner are zero.
func packPairRows(dst []float32, x Mat, off, kc, rows, w int, scratch []float32) {
	words := pairWords(kc, w)
	d := u16s(dst[:words])
	for r := 0; r < rows; r++ {
		src := rowOf(x, off+r*x.Stride, kc, scratch)
		o := 2 * r
		p := 0
		for ; p+1 < kc; p += 2 {
			d[o] = F32ToBF16Scalar(src[p])
			d[o+1] = F32ToBF16Scalar(src[p+1])
			o += 2 * w
		}
		if p < kc {
			d[o] = F32ToBF16Scalar(src[p])
			d[o+1] = 0
		}
	}
	if rows < w {
		for h := 0; h < words/w; h++ {
			clear(dst[h*w+rows : h*w+w])
		}
	}
}

// packPairCols packs a pair panel of width w whose lanes run along the stored
// rows: for p < kc, stored row p (from element off+p*x.Stride) holds the
// values of lanes 0..n-1 (n <= w) at k = p. Lanes from n to w and the odd k's
// partner are zero.
func packPairCols(dst []float32, x Mat, off, kc, n, w int, scratch []float32) {
	words := pairWords(kc, w)
	clear(dst[:words])
	d := u16s(dst[:words])
	for p := 0; p < kc; p++ {
		src := rowOf(x, off+p*x.Stride, n, scratch)
		o := (p>>1)*2*w + p&1
		for j, v := range src {
			d[o+2*j] = F32ToBF16Scalar(v)
		}
	}
}

// packAPairs is packA for a pair kernel.
func packAPairs(kern *gemmKernel, dst []float32, a Mat, i0, mc, p0, kc int, scratch []float32) {
	mr := kern.mr
	for q := 0; q*mr < mc; q++ {
		pan := dst[q*kc*mr:]
		rows := min(mr, mc-q*mr)
		if a.Trans {
			// op(A)(i, p) = stored(p, i): stored row p holds the panel's rows.
			off := (p0)*a.Stride + i0 + q*mr
			if kern.packAT == nil || !kern.packAT(pan, a, off, kc, rows) {
				packPairCols(pan, a, off, kc, rows, mr, scratch)
			}
			continue
		}
		off := (i0+q*mr)*a.Stride + p0
		if kern.packA == nil || !kern.packA(pan, a, off, kc, rows) {
			packPairRows(pan, a, off, kc, rows, mr, scratch)
		}
	}
}

// packBPairs is packB for a pair kernel.
func packBPairs(kern *gemmKernel, dst []float32, b Mat, p0, kc, j0, nc int, scratch []float32) {
	nr := kern.nr
	for q := 0; q*nr < nc; q++ {
		pan := dst[q*kc*nr:]
		nn := min(nr, nc-q*nr)
		if b.Trans {
			// op(B)(p, j) = stored(j, p): stored row j runs along k.
			off := (j0+q*nr)*b.Stride + p0
			if kern.packBT == nil || !kern.packBT(pan, b, off, kc, nn) {
				packPairRows(pan, b, off, kc, nn, nr, scratch)
			}
			continue
		}
		off := p0*b.Stride + j0 + q*nr
		if kern.packB == nil || !kern.packB(pan, b, off, kc, nn) {
			packPairCols(pan, b, off, kc, nn, nr, scratch)
		}
	}
}

// goPairKernel is a pure-Go 4x4 pair micro-kernel: each k pair adds
// lo(a)*lo(b) + hi(a)*hi(b) to the F32 accumulator as VDPBF16PS does (without
// its flushing of subnormals). Tests use it to check the pair packing on any
// machine.
func goPairKernel(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	kp := (kc + 1) / 2
	au, bu := u16s(a[:kp*4]), u16s(b[:kp*4])
	var acc [4][4]float32
	for h := 0; h < kp; h++ {
		for r := 0; r < 4; r++ {
			a0 := BF16ToF32Scalar(au[2*(h*4+r)])
			a1 := BF16ToF32Scalar(au[2*(h*4+r)+1])
			for j := 0; j < 4; j++ {
				b0 := BF16ToF32Scalar(bu[2*(h*4+j)])
				b1 := BF16ToF32Scalar(bu[2*(h*4+j)+1])
				acc[r][j] += a0*b0 + a1*b1
			}
		}
	}
	for r := 0; r < 4; r++ {
		cr := c[r*ldc : r*ldc+4 : r*ldc+4]
		for j := 0; j < 4; j++ {
			if beta == 0 {
				cr[j] = alpha * acc[r][j]
			} else {
				cr[j] = alpha*acc[r][j] + beta*cr[j]
			}
		}
	}
}

// goPairGemmKernel wraps goPairKernel for tests.
var goPairGemmKernel = gemmKernel{name: "go-bf16-4x4", mr: 4, nr: 4, kc: 256, mc: 128, nc: 2048, fn: goPairKernel, pairs: true}

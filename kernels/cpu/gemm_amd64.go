//go:build amd64 && !purego

package cpu

import "unsafe"

const haveAsm = true

// sgemmKernel14x32 is the AVX-512 micro-kernel (see microKernel) for a 14 x 32 tile.
//
//go:noescape
func sgemmKernel14x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

// sgemmKernel6x16 is the AVX2/FMA micro-kernel (see microKernel) for a 6 x 16 tile.
//
//go:noescape
func sgemmKernel6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func f16ToF32F16C(dst *float32, src *uint16, n int)

//go:noescape
func f32ToF16F16C(dst *uint16, src *float32, n int)

//go:noescape
func bf16ToF32AVX2(dst *float32, src *uint16, n int)

// The slices are checked by the driver (gemmSerial); the bounds expressions here
// make an out-of-range call panic instead of touching foreign memory.
func kern14x32(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_, _, _ = a[kc*14-1], b[kc*32-1], c[13*ldc+31]
	sgemmKernel14x32(kc, unsafe.SliceData(a), unsafe.SliceData(b), &c[0], ldc, alpha, beta)
}

//go:noescape
func sgemmKernel14x32m(kc int, a, b, c *float32, ldc int, alpha, beta float32, rows, mask int)

//go:noescape
func sgemmKernel14x16m(kc int, a, b, c *float32, ldc int, alpha, beta float32, rows, mask int)

// edge14x32 is the edge form of kern14x32 (see gemmKernel.edge): masked stores
// of the mm x nn corner, with the 16-wide kernel when nn <= 16.
func edge14x32(mm, nn, kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_, _, _ = a[kc*14-1], b[kc*32-1], c[(mm-1)*ldc+nn-1]
	mask := 1<<nn - 1
	if nn <= 16 {
		sgemmKernel14x16m(kc, unsafe.SliceData(a), unsafe.SliceData(b), &c[0], ldc, alpha, beta, mm, mask)
		return
	}
	sgemmKernel14x32m(kc, unsafe.SliceData(a), unsafe.SliceData(b), &c[0], ldc, alpha, beta, mm, mask)
}

func kern6x16(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	_, _, _ = a[kc*6-1], b[kc*16-1], c[5*ldc+15]
	sgemmKernel6x16(kc, unsafe.SliceData(a), unsafe.SliceData(b), &c[0], ldc, alpha, beta)
}

//go:noescape
func packB32F32(dst *float32, src *float32, ldb, kc, mask int)

//go:noescape
func packB32F16(dst *float32, src *uint16, ldb, kc, mask int)

//go:noescape
func packB16F32(dst *float32, src *float32, ldb, kc int)

//go:noescape
func packB16F16(dst *float32, src *uint16, ldb, kc int)

// packBPanelAsm packs one nr-wide panel (nr 32 or 16) of a non-transposed B
// of nn columns (nn < nr only when nr is 32; zero-padded) with the assembly
// copy/convert loops; BF16 is left to the generic path.
func packBPanelAsm(nr int, dst []float32, b Mat, off, kc, nn int) bool {
	if kc == 0 {
		return true
	}
	last := off + (kc-1)*b.Stride + nn - 1
	_ = dst[kc*nr-1]
	mask := 1<<nn - 1
	switch b.DType {
	case F32:
		_ = b.F32[last]
		if nr == 32 {
			packB32F32(&dst[0], &b.F32[off], b.Stride, kc, mask)
		} else {
			packB16F32(&dst[0], &b.F32[off], b.Stride, kc)
		}
		return true
	case F16:
		if !CPU.HasF16C {
			return false
		}
		_ = b.U16[last]
		if nr == 32 {
			packB32F16(&dst[0], &b.U16[off], b.Stride, kc, mask)
		} else {
			packB16F16(&dst[0], &b.U16[off], b.Stride, kc)
		}
		return true
	}
	return false
}

//go:noescape
func packT8F32(dst *float32, src *float32, lds, kb int)

//go:noescape
func packT8F16(dst *float32, src *uint16, lds, kb int)

// packBT16AVX2 packs one full 16-wide panel of a transposed B (stored row j
// from element off+j*Stride) for the 6x16 kernel: the 8-column blocks with the
// AVX2 transposes, the last kc%8 columns in Go.
func packBT16AVX2(dst []float32, b Mat, off, kc, nn int) bool {
	if nn != 16 || (b.DType != F32 && (b.DType != F16 || !CPU.HasF16C)) {
		return false
	}
	if kc == 0 {
		return true
	}
	_ = dst[kc*16-1]
	kb := kc / 8
	if b.DType == F32 {
		src := b.F32[off : off+15*b.Stride+kc]
		if kb > 0 {
			packT8F32(&dst[0], &src[0], b.Stride, kb)
			packT8F32(&dst[8], &src[8*b.Stride], b.Stride, kb)
		}
		for j := 0; j < 16; j++ {
			for p := kb * 8; p < kc; p++ {
				dst[p*16+j] = src[j*b.Stride+p]
			}
		}
		return true
	}
	src := b.U16[off : off+15*b.Stride+kc]
	if kb > 0 {
		packT8F16(&dst[0], &src[0], b.Stride, kb)
		packT8F16(&dst[8], &src[8*b.Stride], b.Stride, kb)
	}
	for j := 0; j < 16; j++ {
		for p := kb * 8; p < kc; p++ {
			dst[p*16+j] = F16ToF32Scalar(src[j*b.Stride+p])
		}
	}
	return true
}

//go:noescape
func packA6F32(dst *float32, src *float32, lds, kb int)

// packA6AVX2 packs one full 6-row panel of a row-major F32 A for the 6x16
// kernel: the 8-column blocks with the AVX2 transposes, the last kc%8 in Go.
func packA6AVX2(dst []float32, a Mat, off, kc, rows int) bool {
	if rows != 6 || a.DType != F32 {
		return false
	}
	if kc == 0 {
		return true
	}
	_ = dst[kc*6-1]
	src := a.F32[off : off+5*a.Stride+kc]
	kb := kc / 8
	if kb > 0 {
		packA6F32(&dst[0], &src[0], a.Stride, kb)
	}
	for r := 0; r < 6; r++ {
		for p := kb * 8; p < kc; p++ {
			dst[p*6+r] = src[r*a.Stride+p]
		}
	}
	return true
}

//go:noescape
func packA14TF32(dst *float32, src *float32, lds, kc, rows int)

//go:noescape
func packT16F32(dst *float32, src *float32, lds, kc, nrows, lanes, dstw int)

//go:noescape
func packT16F16(dst *float32, src *uint16, lds, kc, nrows, lanes, dstw int)

// packTAsm packs, for p < kc and r < nrows (at most 16), dst[p*dstw+r] = stored
// element off + r*x.Stride + p of x as float32, and zeroes the lanes
// r in [nrows, lanes) of every row p, with the AVX-512 transposes. It reports
// false when it does not handle x's dtype.
func packTAsm(dst []float32, x Mat, off, kc, nrows, lanes, dstw int) bool {
	if kc == 0 {
		return true
	}
	if x.DType != F32 && x.DType != F16 {
		return false
	}
	_ = dst[(kc-1)*dstw+lanes-1]
	if nrows == 0 {
		for p := 0; p < kc; p++ {
			clear(dst[p*dstw : p*dstw+lanes])
		}
		return true
	}
	if x.DType == F32 {
		src := x.F32[off : off+(nrows-1)*x.Stride+kc]
		packT16F32(&dst[0], &src[0], x.Stride, kc, nrows, lanes, dstw)
	} else {
		src := x.U16[off : off+(nrows-1)*x.Stride+kc]
		packT16F16(&dst[0], &src[0], x.Stride, kc, nrows, lanes, dstw)
	}
	return true
}

var (
	avx512GemmKernel = gemmKernel{name: "avx512-14x32", mr: 14, nr: 32, kc: 384, mc: 14 * 24, nc: 4096, fn: kern14x32,
		edge:   edge14x32,
		l1MaxM: 14 * 96, l1MC: 14 * 96, l1NC: 320, l1AllK: 1 << 20,
		packB: func(dst []float32, b Mat, off, kc, nn int) bool {
			return packBPanelAsm(32, dst, b, off, kc, nn)
		},
		packA: func(dst []float32, a Mat, off, kc, rows int) bool {
			return packTAsm(dst, a, off, kc, rows, 14, 14)
		},
		packAT: func(dst []float32, a Mat, off, kc, rows int) bool {
			if a.DType != F32 || kc == 0 {
				return a.DType == F32
			}
			_ = dst[kc*14-1]
			src := a.F32[off : off+(kc-1)*a.Stride+rows]
			packA14TF32(&dst[0], &src[0], a.Stride, kc, rows)
			return true
		},
		packBT: func(dst []float32, b Mat, off, kc, nn int) bool {
			return packTAsm(dst, b, off, kc, min(nn, 16), 16, 32) &&
				packTAsm(dst[16:], b, off+16*b.Stride, kc, max(nn-16, 0), 16, 32)
		}}
	avx2GemmKernel = gemmKernel{name: "avx2-6x16", mr: 6, nr: 16, kc: 256, mc: 6 * 32, nc: 4096, fn: kern6x16,
		packB: func(dst []float32, b Mat, off, kc, nn int) bool {
			return nn == 16 && packBPanelAsm(16, dst, b, off, kc, nn)
		},
		packBT: packBT16AVX2,
		packA:  packA6AVX2}
)

// asmKernels lists the assembly micro-kernels, whose blocking init tunes.
func asmKernels() []*gemmKernel {
	return []*gemmKernel{&avx512GemmKernel, &avx2GemmKernel, &avx512BF16GemmKernel}
}

// activeKernel returns the micro-kernel for the current level.
func activeKernel() *gemmKernel {
	if Compute() == BF16 {
		if k := bf16Kernel(); k != nil {
			return k
		}
	}
	switch level() {
	case levelAVX512:
		return &avx512GemmKernel
	case levelAVX2:
		return &avx2GemmKernel
	}
	return &goGemmKernel
}

// useF16C reports whether the F16C conversions may be used now.
func useF16C() bool { return level() >= levelAVX2 && CPU.HasF16C }

// f16ToF32Asm converts with F16C when allowed; it reports whether it did.
func f16ToF32Asm(dst []float32, src []uint16) bool {
	if !useF16C() {
		return false
	}
	n := len(src)
	v := n &^ 7
	if v > 0 {
		f16ToF32F16C(&dst[0], &src[0], v)
	}
	for i := v; i < n; i++ {
		dst[i] = F16ToF32Scalar(src[i])
	}
	return true
}

// f32ToF16Asm converts with F16C when allowed; it reports whether it did.
func f32ToF16Asm(dst []uint16, src []float32) bool {
	if !useF16C() {
		return false
	}
	n := len(src)
	v := n &^ 7
	if v > 0 {
		f32ToF16F16C(&dst[0], &src[0], v)
	}
	for i := v; i < n; i++ {
		dst[i] = F32ToF16Scalar(src[i])
	}
	return true
}

// bf16ToF32Asm converts with AVX2 when allowed; it reports whether it did.
func bf16ToF32Asm(dst []float32, src []uint16) bool {
	if level() < levelAVX2 {
		return false
	}
	n := len(src)
	v := n &^ 7
	if v > 0 {
		bf16ToF32AVX2(&dst[0], &src[0], v)
	}
	for i := v; i < n; i++ {
		dst[i] = BF16ToF32Scalar(src[i])
	}
	return true
}

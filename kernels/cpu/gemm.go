package cpu

import (
	"sync"
	"unsafe"
)

// The matrix product follows the BLIS loop structure (Van Zee & van de Geijn,
// "BLIS: A Framework for Rapidly Instantiating BLAS Functionality", 2015):
//
//	for jc in steps of NC over n:            // B block in L3
//	  for pc in steps of KC over k:          // pack B[pc:pc+kc, jc:jc+nc] into NR-wide micro-panels
//	    for ic in steps of MC over m:        // pack A[ic:ic+mc, pc:pc+kc] into MR-tall micro-panels (L2)
//	      for jr in steps of NR over nc:     // one B micro-panel stays in L1
//	        for ir in steps of MR over mc:   // micro-kernel: MR x NR tile of C += A panel * B panel
//
// Packed A micro-panels are k-major with MR values per k (pa[p*MR+r]); packed B
// micro-panels are k-major with NR values per k (pb[p*NR+j]); both are zero-padded
// at the edges. Packing reads any operand layout (transposed or not, F32, F16 or
// BF16), so the micro-kernels only ever see float32. Tiles that stick out of C go
// through the kernel's masked edge form when it has one (AVX-512), else are
// computed into a small scratch tile and merged. For small m the AVX-512 kernel
// runs the loops in another order (gemmSerialAL1: A micro-panel in L1, B block
// in L2), and with the assembly packs (gemm_pack*_amd64.s) no operand layout
// goes through the scalar scatter loops below except BF16 and edge leftovers.
// An A that meets several B is packed once with PackA and multiplied with
// GemmPacked (gemm_packed.go), through the same loops.

// microKernel computes the full mr x nr tile
//
//	c[r*ldc+j] = alpha * sum_p a[p*mr+r]*b[p*nr+j] + beta*c[r*ldc+j]
//
// reading c only when beta != 0. a and b hold at least kc*mr and kc*nr values.
type microKernel func(kc int, a, b, c []float32, ldc int, alpha, beta float32)

// gemmKernel is a micro-kernel with its tile and cache-block sizes.
type gemmKernel struct {
	name       string
	mr, nr     int // micro-tile
	kc, mc, nc int // cache blocks (mc multiple of mr, nc multiple of nr)
	fn         microKernel
	// packB, when not nil, packs one NR-wide micro-panel of a non-transposed
	// B of nn <= NR columns (zero-padded) whose stored row p starts at element
	// off+p*Stride; it reports false when it does not handle b's dtype or nn.
	packB func(dst []float32, b Mat, off, kc, nn int) bool
	// packA, when not nil, packs one MR-tall micro-panel of a non-transposed
	// A of rows <= MR rows (zero-padded) whose stored row r starts at element
	// off+r*Stride; it reports false when it does not handle a's dtype.
	packA func(dst []float32, a Mat, off, kc, rows int) bool
	// packAT, when not nil, is packA for a transposed A: stored row p (column
	// p of op(A)) holds the panel's rows from element off+p*Stride on.
	packAT func(dst []float32, a Mat, off, kc, rows int) bool
	// packBT, when not nil, packs one NR-wide micro-panel of a transposed B
	// of nn <= NR columns (zero-padded) whose stored row j (column j of
	// op(B)) starts at element off+j*Stride; it reports false when it does not
	// handle b's dtype.
	packBT func(dst []float32, b Mat, off, kc, nn int) bool
	// For 0 < m <= l1MaxM, gemmSerialAL1's loop order is used: one A
	// micro-panel stays in L1 while a B block of kc x l1NC (sized for L2)
	// streams past it, A blocks of l1MC rows; otherwise the BLIS order keeps a
	// B micro-panel in L1 and the A block (mc x kc) in L2.
	l1MaxM, l1MC, l1NC int
	// l1AllK: in that order, when A's mc x k block has at most l1AllK values,
	// A is packed for all of K up front and the K passes run innermost.
	l1AllK int
	// edge, when not nil, computes the mm x nn corner (mm <= MR, nn <= NR, one
	// of them short) of a micro-tile straight into C, like fn on full tiles;
	// without it the tile goes through a scratch tile.
	edge func(mm, nn, kc int, a, b, c []float32, ldc int, alpha, beta float32)
	// pairs marks a BF16 pair kernel (see gemm_bf16.go): its packed panels
	// hold BF16 pairs and its pack hooks fill that layout.
	pairs bool
}

// gemmScratch holds one goroutine's packing buffers.
type gemmScratch struct {
	a, b, row, tile []float32
}

var gemmPool = sync.Pool{New: func() any { return new(gemmScratch) }}

// grow returns a 64-byte aligned slice of n float32s reusing *buf when it is large enough.
func grow(buf *[]float32, n int) []float32 {
	if cap(*buf) < n+16 {
		*buf = make([]float32, n+16)
	}
	s := (*buf)[:cap(*buf)]
	off := 0
	if r := uintptr(unsafe.Pointer(&s[0])) & 63; r != 0 {
		off = int((64 - r) / 4)
	}
	return s[off : off+n]
}

// Gemm computes C = alpha*op(A)*op(B) + beta*C (see GemmRef) on up to Threads()
// goroutines. op(A) is m x k, op(B) is k x n, C is m x n with row stride ldc.
// 16-bit operands are converted to float32 while packing. When beta is 0, C is
// not read.
func Gemm(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int) {
	checkGemm(m, n, k, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	gemmSplit(pickKernel(), m, n, k, alpha, a, nil, b, beta, c, ldc)
}

// gemmSplit runs a product on up to Threads() goroutines, each on a block of
// C, with A as a (or, when pa is set, pre-packed in pa).
func gemmSplit(kern *gemmKernel, m, n, k int, alpha float32, a Mat, pa *PackedA, b Mat, beta float32, c []float32, ldc int) {
	t := Threads()
	// Below about 2^20 multiply-adds the goroutine start-up is not worth it.
	if t <= 1 || m*n*k < 1<<20 {
		gemmSerial(kern, m, n, k, alpha, a, pa, b, beta, c, ldc)
		return
	}
	// Split C into independent blocks along the larger dimension, so that the
	// operand packed redundantly by every block is the smaller one.
	if m >= n {
		tiles := (m + kern.mr - 1) / kern.mr
		chunks := min(t, tiles)
		per := (tiles + chunks - 1) / chunks * kern.mr
		chunks = (m + per - 1) / per
		ParallelTasks(chunks, func(i int) {
			i0 := i * per
			mm := min(per, m-i0)
			if pa != nil {
				sub := *pa
				sub.i0 += i0
				gemmSerial(kern, mm, n, k, alpha, Mat{}, &sub, b, beta, c[i0*ldc:], ldc)
				return
			}
			gemmSerial(kern, mm, n, k, alpha, subRows(a, i0), nil, b, beta, c[i0*ldc:], ldc)
		})
		return
	}
	tiles := (n + kern.nr - 1) / kern.nr
	chunks := min(t, tiles)
	per := (tiles + chunks - 1) / chunks * kern.nr
	chunks = (n + per - 1) / per
	ParallelTasks(chunks, func(i int) {
		j0 := i * per
		nn := min(per, n-j0)
		gemmSerial(kern, m, nn, k, alpha, a, pa, subCols(b, j0), beta, c[j0:], ldc)
	})
}

// GemmSerial is Gemm on the calling goroutine only, for callers that parallelise
// over independent products themselves (batched matmul, attention tiles). It
// allocates nothing in the steady state (packing buffers come from a pool).
func GemmSerial(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int) {
	checkGemm(m, n, k, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	gemmSerial(pickKernel(), m, n, k, alpha, a, nil, b, beta, c, ldc)
}

// testKernel, when set (by tests only, never concurrently with products), replaces
// the kernel choice; tests use it to shrink the cache blocks so that every
// blocking loop runs more than once on small shapes.
var testKernel *gemmKernel

func pickKernel() *gemmKernel {
	if k := testKernel; k != nil {
		return k
	}
	return activeKernel()
}

// Sgemm is the BLAS-style float32 entry point: C = alpha*op(A)*op(B) + beta*C, with
// op(X) = X^T when transX is set, A stored with row stride lda, B with ldb.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	Gemm(m, n, k, alpha, F32Mat(a, lda, transA), F32Mat(b, ldb, transB), beta, c, ldc)
}

// GemmBatched computes batch independent products: for i < batch, the operands
// start at element offsets i*strideA, i*strideB, i*strideC of a, b and c (a stride
// of 0 broadcasts one operand over the batch). It parallelises over the batch and
// within products as the sizes call for.
func GemmBatched(batch, m, n, k int, alpha float32, a Mat, strideA int, b Mat, strideB int, beta float32, c []float32, ldc, strideC int) {
	if batch < 0 {
		panic("cpu: GemmBatched: negative batch")
	}
	checkGemm(m, n, k, ldc)
	t := Threads()
	// Parallel over the batch when there are enough products to keep every
	// goroutine busy, or when each product is too small to split well.
	if t > 1 && batch > 1 && (batch >= 2*t || m*n*k < 1<<20) {
		ParallelTasks(batch, func(i int) {
			GemmSerial(m, n, k, alpha, offsetMat(a, i*strideA), offsetMat(b, i*strideB), beta, c[i*strideC:], ldc)
		})
		return
	}
	for i := 0; i < batch; i++ {
		Gemm(m, n, k, alpha, offsetMat(a, i*strideA), offsetMat(b, i*strideB), beta, c[i*strideC:], ldc)
	}
}

// offsetMat returns m with its data advanced by off elements.
func offsetMat(m Mat, off int) Mat {
	if m.DType == F32 {
		m.F32 = m.F32[off:]
	} else {
		m.U16 = m.U16[off:]
	}
	return m
}

// subRows returns the operand whose logical row 0 is row i0 of x.
func subRows(x Mat, i0 int) Mat {
	if x.Trans {
		return offsetMat(x, i0)
	}
	return offsetMat(x, i0*x.Stride)
}

// subCols returns the operand whose logical column 0 is column j0 of x.
func subCols(x Mat, j0 int) Mat {
	if x.Trans {
		return offsetMat(x, j0*x.Stride)
	}
	return offsetMat(x, j0)
}

func checkGemm(m, n, k, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic("cpu: Gemm: negative dimension")
	}
	if n > 0 && ldc < n {
		panic("cpu: Gemm: ldc < n")
	}
}

// scaleC sets C = beta*C (C = 0 without reading it when beta is 0).
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		switch beta {
		case 0:
			clear(row)
		case 1:
		default:
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// blockK returns the K-block for k: at most kern.kc, with the passes balanced so
// that no short last pass is left (k = 320 with kc 256 runs as one pass of 320
// when it fits in 1.25*kc, else as two of 160).
func blockK(k, kc int) int {
	if k <= kc+kc/4 {
		return k
	}
	passes := (k + kc - 1) / kc
	return ((k+passes-1)/passes + 7) &^ 7
}

// blockN returns the block of n for a block size of at most nc (a multiple of
// q), with the blocks balanced so that no short last block is left.
func blockN(n, nc, q int) int {
	if n <= nc {
		return (n + q - 1) / q * q
	}
	blocks := (n + nc - 1) / nc
	per := (n + blocks - 1) / blocks
	return (per + q - 1) / q * q
}

// gemmSerialAL1 is gemmSerial for m <= kern.l1MaxM (wide NR, where a B
// micro-panel of kc x NR would fill L1; measured faster than the BLIS order on
// Zen 5 for m up to about 1344 with the 14x32 kernel, slower for larger m):
//
//	for pc in steps of KC over k:
//	  for ic in steps of MC over m:          // pack A[ic:ic+mc, pc:pc+kc] (L3)
//	    for jc in steps of NC over n:        // pack B[pc:pc+kc, jc:jc+nc] (L2)
//	      for ir in steps of MR over mc:     // one A micro-panel stays in L1
//	        for jr in steps of NR over nc:   // B micro-panels stream from L2
func gemmSerialAL1(kern *gemmKernel, m, n, k int, alpha float32, a Mat, pre *PackedA, b Mat, beta float32, c []float32, ldc int) {
	mr, nr := kern.mr, kern.nr
	kcMax := blockK(k, kern.kc)
	ncMax := blockN(n, kern.l1NC, nr)
	mcMax := blockN(m, kern.l1MC, mr)
	s := gemmPool.Get().(*gemmScratch)
	defer gemmPool.Put(s)
	pb := grow(&s.b, kcMax*ncMax)
	row := grow(&s.row, max(kcMax, ncMax, mcMax))
	tile := grow(&s.tile, mr*nr)
	if k > kcMax && mcMax*k <= kern.l1AllK {
		// Several K passes and A small enough to pack whole: with the K
		// passes innermost, the mc x nc block of C stays in L2 between them
		// instead of making a round trip to L3 per pass.
		var pa []float32
		if pre == nil {
			pa = grow(&s.a, mcMax*k)
		}
		for ic := 0; ic < m; ic += mcMax {
			mc := min(mcMax, m-ic)
			mcPad := (mc + mr - 1) / mr * mr
			if pre == nil {
				for pc := 0; pc < k; pc += kcMax {
					packA(kern, pa[pc*mcPad:], a, ic, mc, pc, min(kcMax, k-pc), row)
				}
			}
			for jc := 0; jc < n; jc += ncMax {
				nc := min(ncMax, n-jc)
				for pc := 0; pc < k; pc += kcMax {
					kc := min(kcMax, k-pc)
					bet := beta
					if pc > 0 {
						bet = 1
					}
					packB(kern, pb, b, pc, kc, jc, nc, row)
					var ap []float32
					if pre != nil {
						ap = pre.block(ic, pc, kc)
					} else {
						ap = pa[pc*mcPad:]
					}
					blockAL1(kern, mc, nc, kc, alpha, ap, pb, bet, c[ic*ldc+jc:], ldc, tile)
				}
			}
		}
		return
	}
	var pa []float32
	if pre == nil {
		pa = grow(&s.a, kcMax*mcMax)
	}
	for pc := 0; pc < k; pc += kcMax {
		kc := min(kcMax, k-pc)
		bet := beta
		if pc > 0 {
			bet = 1
		}
		for ic := 0; ic < m; ic += mcMax {
			mc := min(mcMax, m-ic)
			ap := pa
			if pre != nil {
				ap = pre.block(ic, pc, kc)
			} else {
				packA(kern, pa, a, ic, mc, pc, kc, row)
			}
			for jc := 0; jc < n; jc += ncMax {
				nc := min(ncMax, n-jc)
				packB(kern, pb, b, pc, kc, jc, nc, row)
				blockAL1(kern, mc, nc, kc, alpha, ap, pb, bet, c[ic*ldc+jc:], ldc, tile)
			}
		}
	}
}

// blockAL1 runs the micro-kernel over an mc x nc block of C from packed A (pa,
// mc rows) and packed B (pb, nc columns), A micro-panels in the outer loop.
func blockAL1(kern *gemmKernel, mc, nc, kc int, alpha float32, pa, pb []float32, beta float32, c []float32, ldc int, tile []float32) {
	mr, nr := kern.mr, kern.nr
	for ir := 0; ir < mc; ir += mr {
		mm := min(mr, mc-ir)
		ap := pa[ir*kc : ir*kc+kc*mr]
		co := ir * ldc
		for jr := 0; jr < nc; jr += nr {
			nn := min(nr, nc-jr)
			bp := pb[jr*kc : jr*kc+kc*nr]
			if mm == mr && nn == nr {
				kern.fn(kc, ap, bp, c[co+jr:co+jr+(mr-1)*ldc+nr], ldc, alpha, beta)
				continue
			}
			edgeTile(kern, mm, nn, kc, alpha, ap, bp, beta, c[co+jr:], ldc, tile)
		}
	}
}

// edgeTile computes the mm x nn corner (mm <= MR, nn <= NR) of one micro-tile
// through the scratch tile.
func edgeTile(kern *gemmKernel, mm, nn, kc int, alpha float32, ap, bp []float32, beta float32, c []float32, ldc int, tile []float32) {
	nr := kern.nr
	if kern.edge != nil {
		kern.edge(mm, nn, kc, ap, bp, c, ldc, alpha, beta)
		return
	}
	kern.fn(kc, ap, bp, tile, nr, 1, 0)
	for r := 0; r < mm; r++ {
		cr := c[r*ldc : r*ldc+nn]
		tr := tile[r*nr : r*nr+nn]
		if beta == 0 {
			for j, v := range tr {
				cr[j] = alpha * v
			}
		} else {
			for j, v := range tr {
				cr[j] = alpha*v + beta*cr[j]
			}
		}
	}
}

// gemmSerial runs the blocked product on the calling goroutine. A is read from
// pre when it is not nil (already packed for this kernel and k), else packed
// from a block by block.
func gemmSerial(kern *gemmKernel, m, n, k int, alpha float32, a Mat, pre *PackedA, b Mat, beta float32, c []float32, ldc int) {
	if m <= kern.l1MaxM {
		gemmSerialAL1(kern, m, n, k, alpha, a, pre, b, beta, c, ldc)
		return
	}
	mr, nr := kern.mr, kern.nr
	kcMax := blockK(k, kern.kc)
	ncMax := min(kern.nc, (n+nr-1)/nr*nr)
	mcMax := min(kern.mc, (m+mr-1)/mr*mr)
	s := gemmPool.Get().(*gemmScratch)
	defer gemmPool.Put(s)
	pb := grow(&s.b, kcMax*ncMax)
	var pa []float32
	if pre == nil {
		pa = grow(&s.a, kcMax*mcMax)
	}
	row := grow(&s.row, max(kcMax, ncMax, mcMax))
	tile := grow(&s.tile, mr*nr)
	if m <= mcMax {
		// One A block: pack it once per K pass and pack each B micro-panel
		// right before its use, so packed B never leaves L1.
		for jc := 0; jc < n; jc += ncMax {
			nc := min(ncMax, n-jc)
			for pc := 0; pc < k; pc += kcMax {
				kc := min(kcMax, k-pc)
				pa := pa
				if pre != nil {
					pa = pre.block(0, pc, kc)
				} else {
					packA(kern, pa, a, 0, m, pc, kc, row)
				}
				bet := beta
				if pc > 0 {
					bet = 1
				}
				bp := pb[:kc*nr]
				for jr := 0; jr < nc; jr += nr {
					nn := min(nr, nc-jr)
					packB(kern, bp, b, pc, kc, jc+jr, nn, row)
					macroTile(kern, m, nn, kc, alpha, pa, bp, bet, c[jc+jr:], ldc, tile)
				}
			}
		}
		return
	}
	for jc := 0; jc < n; jc += ncMax {
		nc := min(ncMax, n-jc)
		for pc := 0; pc < k; pc += kcMax {
			kc := min(kcMax, k-pc)
			packB(kern, pb, b, pc, kc, jc, nc, row)
			bet := beta
			if pc > 0 {
				bet = 1
			}
			for ic := 0; ic < m; ic += mcMax {
				mc := min(mcMax, m-ic)
				pa := pa
				if pre != nil {
					pa = pre.block(ic, pc, kc)
				} else {
					packA(kern, pa, a, ic, mc, pc, kc, row)
				}
				for jr := 0; jr < nc; jr += nr {
					nn := min(nr, nc-jr)
					macroTile(kern, mc, nn, kc, alpha, pa, pb[jr*kc:jr*kc+kc*nr], bet, c[ic*ldc+jc+jr:], ldc, tile)
				}
			}
		}
	}
}

// macroTile runs the micro-kernel down one B micro-panel bp (kc x nr, of which nn
// columns are real) against the mc rows of packed A in pa, updating the mc x nn
// block of C at c.
func macroTile(kern *gemmKernel, mc, nn, kc int, alpha float32, pa, bp []float32, beta float32, c []float32, ldc int, tile []float32) {
	mr, nr := kern.mr, kern.nr
	for ir := 0; ir < mc; ir += mr {
		mm := min(mr, mc-ir)
		ap := pa[ir*kc : ir*kc+kc*mr]
		co := ir * ldc
		if mm == mr && nn == nr {
			kern.fn(kc, ap, bp, c[co:co+(mr-1)*ldc+nr], ldc, alpha, beta)
			continue
		}
		edgeTile(kern, mm, nn, kc, alpha, ap, bp, beta, c[co:], ldc, tile)
	}
}

// rowOf returns n consecutive stored elements of x starting at element off, as
// float32: a view for F32 data, else converted into scratch.
func rowOf(x Mat, off, n int, scratch []float32) []float32 {
	switch x.DType {
	case F32:
		return x.F32[off : off+n]
	case F16:
		F16ToF32(scratch[:n], x.U16[off:off+n])
	case BF16:
		BF16ToF32(scratch[:n], x.U16[off:off+n])
	default:
		panic("cpu: Gemm: unknown dtype")
	}
	return scratch[:n]
}

// packA packs op(A)[i0:i0+mc, p0:p0+kc] into MR-tall micro-panels: panel q holds
// dst[q*kc*mr + p*mr + r] = op(A)(i0+q*mr+r, p0+p), zero beyond mc.
func packA(kern *gemmKernel, dst []float32, a Mat, i0, mc, p0, kc int, scratch []float32) {
	if kern.pairs {
		packAPairs(kern, dst, a, i0, mc, p0, kc, scratch)
		return
	}
	mr := kern.mr
	panels := (mc + mr - 1) / mr
	if a.Trans {
		q := 0
		if kern.packAT != nil {
			for ; q < panels; q++ {
				rows := min(mr, mc-q*mr)
				if !kern.packAT(dst[q*kc*mr:(q+1)*kc*mr], a, p0*a.Stride+i0+q*mr, kc, rows) {
					break
				}
			}
			if q == panels {
				return
			}
		}
		// op(A)(i, p) = stored(p, i): row p of the storage holds the mc values.
		for p := 0; p < kc; p++ {
			src := rowOf(a, (p0+p)*a.Stride+i0, mc, scratch)
			for q := 0; q < panels; q++ {
				d := dst[q*kc*mr+p*mr : q*kc*mr+p*mr+mr]
				n := copy(d, src[q*mr:min(q*mr+mr, mc)])
				clear(d[n:])
			}
		}
		return
	}
	for q := 0; q < panels; q++ {
		pan := dst[q*kc*mr : (q+1)*kc*mr]
		rows := min(mr, mc-q*mr)
		if kern.packA != nil && kern.packA(pan, a, (i0+q*mr)*a.Stride+p0, kc, rows) {
			continue
		}
		for r := 0; r < rows; r++ {
			src := rowOf(a, (i0+q*mr+r)*a.Stride+p0, kc, scratch)
			scatter(pan[r:], src, mr)
		}
		for r := rows; r < mr; r++ {
			for p := 0; p < kc; p++ {
				pan[p*mr+r] = 0
			}
		}
	}
}

// packB packs op(B)[p0:p0+kc, j0:j0+nc] into NR-wide micro-panels: panel q holds
// dst[q*kc*nr + p*nr + j] = op(B)(p0+p, j0+q*nr+j), zero beyond nc. Full panels
// of a non-transposed B go through the kernel's packB when it has one.
func packB(kern *gemmKernel, dst []float32, b Mat, p0, kc, j0, nc int, scratch []float32) {
	if kern.pairs {
		packBPairs(kern, dst, b, p0, kc, j0, nc, scratch)
		return
	}
	nr := kern.nr
	full := 0
	switch {
	case !b.Trans && kern.packB != nil:
		for ; full*nr < nc; full++ {
			nn := min(nr, nc-full*nr)
			if !kern.packB(dst[full*kc*nr:(full+1)*kc*nr], b, p0*b.Stride+j0+full*nr, kc, nn) {
				break
			}
		}
	case b.Trans && kern.packBT != nil:
		for ; full*nr < nc; full++ {
			nn := min(nr, nc-full*nr)
			if !kern.packBT(dst[full*kc*nr:(full+1)*kc*nr], b, (j0+full*nr)*b.Stride+p0, kc, nn) {
				break
			}
		}
	}
	if full*nr < nc {
		packBGeneric(dst[full*kc*nr:], b, p0, kc, j0+full*nr, nc-full*nr, nr, scratch)
	}
}

// packBGeneric is packB for any operand, one row or column at a time.
func packBGeneric(dst []float32, b Mat, p0, kc, j0, nc, nr int, scratch []float32) {
	panels := (nc + nr - 1) / nr
	if !b.Trans {
		for p := 0; p < kc; p++ {
			src := rowOf(b, (p0+p)*b.Stride+j0, nc, scratch)
			for q := 0; q < panels; q++ {
				d := dst[q*kc*nr+p*nr : q*kc*nr+p*nr+nr]
				n := copy(d, src[q*nr:min(q*nr+nr, nc)])
				clear(d[n:])
			}
		}
		return
	}
	for q := 0; q < panels; q++ {
		pan := dst[q*kc*nr : (q+1)*kc*nr]
		cols := min(nr, nc-q*nr)
		for j := 0; j < cols; j++ {
			src := rowOf(b, (j0+q*nr+j)*b.Stride+p0, kc, scratch)
			scatter(pan[j:], src, nr)
		}
		for j := cols; j < nr; j++ {
			for p := 0; p < kc; p++ {
				pan[p*nr+j] = 0
			}
		}
	}
}

// scatter sets dst[p*stride] = src[p] for every p.
func scatter(dst, src []float32, stride int) {
	n := len(src)
	if n == 0 {
		return
	}
	_ = dst[(n-1)*stride] // the bounds check for all stores below
	// Only in-range addresses are formed (o stays below len(dst)*4).
	d := unsafe.Pointer(unsafe.SliceData(dst))
	s := unsafe.Pointer(unsafe.SliceData(src))
	st := uintptr(stride) * 4
	o := uintptr(0)
	p := 0
	for ; p+4 <= n; p += 4 {
		v0 := *(*float32)(unsafe.Add(s, p*4))
		v1 := *(*float32)(unsafe.Add(s, p*4+4))
		v2 := *(*float32)(unsafe.Add(s, p*4+8))
		v3 := *(*float32)(unsafe.Add(s, p*4+12))
		*(*float32)(unsafe.Add(d, o)) = v0
		*(*float32)(unsafe.Add(d, o+st)) = v1
		*(*float32)(unsafe.Add(d, o+2*st)) = v2
		*(*float32)(unsafe.Add(d, o+3*st)) = v3
		o += 4 * st
	}
	for ; p < n; p++ {
		*(*float32)(unsafe.Add(d, o)) = *(*float32)(unsafe.Add(s, p*4))
		o += st
	}
}

// goKernel is the pure-Go 4x4 micro-kernel.
func goKernel(kc int, a, b, c []float32, ldc int, alpha, beta float32) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for p := 0; p < kc; p++ {
		av := a[p*4 : p*4+4 : p*4+4]
		bv := b[p*4 : p*4+4 : p*4+4]
		a0, a1, a2, a3 := av[0], av[1], av[2], av[3]
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	acc := [4][4]float32{{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}}
	for r := 0; r < 4; r++ {
		cr := c[r*ldc : r*ldc+4 : r*ldc+4]
		if beta == 0 {
			for j := 0; j < 4; j++ {
				cr[j] = alpha * acc[r][j]
			}
		} else {
			for j := 0; j < 4; j++ {
				cr[j] = alpha*acc[r][j] + beta*cr[j]
			}
		}
	}
}

// goGemmKernel is the portable kernel, also used when assembly is switched off.
var goGemmKernel = gemmKernel{name: "go4x4", mr: 4, nr: 4, kc: 256, mc: 128, nc: 2048, fn: goKernel}

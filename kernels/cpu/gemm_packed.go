package cpu

// Products with a pre-packed left operand.
//
// When the same A meets several B (the weights of a convolution against each
// tile of its im2col matrix, the keys of an attention head against each query
// tile), packing A once and reusing it saves the repeated packing (for 16-bit
// A, the conversion to float32) of every product. The packed layout is the one
// gemmSerial builds block by block (see packA), for all of A at once:
//
//	for each K block [pc, pc+kc) (kc = blockK(k, KC), the passes of the product):
//	  for each MR-row micro-panel q of the MPad = ceil(m/MR)*MR rows:
//	    data[pc*MPad + q*kc*MR + p*MR + r] = op(A)(q*MR + r, pc + p)   (0 past m)
//
// so a product reading it runs the same blocking and the same accumulation
// order as Gemm on the unpacked operand, and gives bit-identical results.

// PackedA is the left operand op(A) (m x k) of a matrix product, packed once
// by PackA or PackASerial for several products (GemmPacked, GemmPackedSerial).
// It belongs to the micro-kernel chosen when it was packed and holds
// PackedAFloats(m, k) float32s of the caller's buffer.
type PackedA struct {
	kern *gemmKernel
	m, k int
	mPad int // m rounded up to the micro-panel height
	i0   int // first row of this view (a multiple of the panel height)
	data []float32
}

// M returns the number of rows of op(A) the packed operand holds.
func (p PackedA) M() int { return p.m - p.i0 }

// K returns the inner dimension of the packed operand.
func (p PackedA) K() int { return p.k }

// block returns the packed rows from ic on (a multiple of MR, relative to the
// view) of the K block that starts at pc and is kc deep.
func (p *PackedA) block(ic, pc, kc int) []float32 {
	return p.data[pc*p.mPad+(p.i0+ic)*kc:]
}

// PackedAFloats returns the number of float32s PackA needs for an m x k op(A)
// with the current micro-kernel.
func PackedAFloats(m, k int) int {
	return packedAFloats(pickKernel(), m, k)
}

func packedAFloats(kern *gemmKernel, m, k int) int {
	if m < 0 || k < 0 {
		panic("cpu: PackA: negative dimension")
	}
	return (m + kern.mr - 1) / kern.mr * kern.mr * k
}

// PackA packs op(A) (m x k; any dtype and layout Gemm reads) into dst (at least
// PackedAFloats(m, k) long) on up to Threads() goroutines, for the products of
// GemmPacked and GemmPackedSerial. 16-bit operands are converted to float32
// here, once. The result refers to dst, which must outlive its use.
func PackA(dst []float32, m, k int, a Mat) PackedA {
	kern := pickKernel()
	pa := newPackedA(kern, dst, m, k)
	panels := pa.mPad / kern.mr
	// At least about 1M values per goroutine: starting the goroutines took
	// 50 to 100 us on a 2-core VM, as long as packing 200K values serially.
	grain := max(1, (1<<20)/max(1, kern.mr*k))
	ParallelFor(panels, grain, func(q0, q1 int) { packARows(&pa, a, q0, q1) })
	return pa
}

// PackASerial is PackA on the calling goroutine.
func PackASerial(dst []float32, m, k int, a Mat) PackedA {
	pa := newPackedA(pickKernel(), dst, m, k)
	packARows(&pa, a, 0, pa.mPad/pa.kern.mr)
	return pa
}

func newPackedA(kern *gemmKernel, dst []float32, m, k int) PackedA {
	n := packedAFloats(kern, m, k)
	if len(dst) < n {
		panic("cpu: PackA: dst shorter than PackedAFloats(m, k)")
	}
	return PackedA{kern: kern, m: m, k: k, mPad: (m + kern.mr - 1) / kern.mr * kern.mr, data: dst[:n]}
}

// packARows packs the micro-panels [q0, q1) of pa from a, for every K block.
func packARows(pa *PackedA, a Mat, q0, q1 int) {
	kern := pa.kern
	mr := kern.mr
	i0, i1 := q0*mr, min(q1*mr, pa.m)
	if i1 <= i0 || pa.k == 0 {
		return
	}
	kcMax := blockK(pa.k, kern.kc)
	s := gemmPool.Get().(*gemmScratch)
	defer gemmPool.Put(s)
	row := grow(&s.row, max(kcMax, i1-i0))
	for pc := 0; pc < pa.k; pc += kcMax {
		kc := min(kcMax, pa.k-pc)
		packA(kern, pa.data[pc*pa.mPad+i0*kc:], a, i0, i1-i0, pc, kc, row)
	}
}

// checkPacked panics unless pa can serve as the m x k left operand.
func checkPacked(name string, m, n, k int, pa *PackedA, ldc int) {
	checkGemm(m, n, k, ldc)
	if pa.kern == nil && (pa.m > 0 || pa.k > 0) {
		panic("cpu: " + name + ": PackedA not made by PackA")
	}
	if k != pa.k {
		panic("cpu: " + name + ": k differs from the packed operand's")
	}
	if m > pa.M() {
		panic("cpu: " + name + ": m larger than the packed operand's rows")
	}
}

// GemmPackedSerial computes C = alpha*op(A)*op(B) + beta*C (see GemmRef) on the
// calling goroutine with op(A) taken from pa: its first m rows (m <= pa.M()),
// k == pa.K(). The results are those of GemmSerial on the unpacked operand.
func GemmPackedSerial(m, n, k int, alpha float32, pa PackedA, b Mat, beta float32, c []float32, ldc int) {
	checkPacked("GemmPackedSerial", m, n, k, &pa, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	gemmSerial(pa.kern, m, n, k, alpha, Mat{}, &pa, b, beta, c, ldc)
}

// GemmPacked is GemmPackedSerial on up to Threads() goroutines (split like Gemm).
func GemmPacked(m, n, k int, alpha float32, pa PackedA, b Mat, beta float32, c []float32, ldc int) {
	checkPacked("GemmPacked", m, n, k, &pa, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	gemmSplit(pa.kern, m, n, k, alpha, Mat{}, &pa, b, beta, c, ldc)
}

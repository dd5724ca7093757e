package cpu

import "sync"

// Gradients of the convolution (see conv.go for the forward and its im2col
// notation: y_n [K, OH*OW] = W [K, C*R*S] * cols_n [C*R*S, OH*OW] + bias).
//
// Data gradient: dcols_n [C*R*S, OH*OW] = W^T [C*R*S, K] * dy_n [K, OH*OW], and
// dx_n = col2im(dcols_n), which adds each element of dcols_n into the input
// position its im2col element was read from. A task is a group of input
// channels (its rows (c, r, s) of W^T, about convBwdDataRows of them, a
// multiple of the micro-kernel's panel height where the channel count allows)
// for all the images, or for a range of them when there are too few groups to
// keep every goroutine busy; it packs its rows of W^T once (PackASerial,
// 16-bit weights converted there; at 4x4 positions per image this packing
// costs as much as the products), then for each image and each tile of at
// most convBwdDataCols output positions multiplies them by that tile of dy_n
// into a scratch block and adds the block into its channels of dx_n. The
// channels of a task are its own, so col2im needs no synchronisation, and the
// scratch is convBwdDataRows x convBwdDataCols floats per goroutine. A
// pointwise convolution (1x1, stride 1, no padding) has dx_n = W^T dy_n: one
// product per image with W^T packed once.
//
// Weight gradient: dW [K, C*R*S] = sum_n dy_n [K, OH*OW] * cols_n^T. The
// columns of dW (rows of the im2col matrix) are cut into blocks of at most
// convBwdWeightRows (a multiple of the micro-kernel's panel width), and, when
// there are fewer blocks than goroutines, the rows of dW into chunks; a task
// owns one (block, chunk) piece of dW and accumulates into it over every image
// and every tile of at most convBwdWeightCols output positions: im2col of its
// rows of the tile into a scratch block (as in the forward; a pointwise
// convolution reads x in place), and a product with the block read transposed.
// Each piece of dW has one writer, so no partial sums are needed, and the
// scratch is convBwdWeightRows x convBwdWeightCols floats per goroutine.
//
// When there are fewer tasks than goroutines, the tasks run one after another
// and their products are parallel instead.

const (
	convBwdDataRows   = 256  // rows (c, r, s) of W^T per data-gradient task (upper bound)
	convBwdDataCols   = 1024 // output positions per data-gradient product (upper bound)
	convBwdWeightRows = 256  // columns of dW per weight-gradient task (upper bound)
	convBwdWeightCols = 2048 // output positions per weight-gradient product (upper bound)
)

// convBwdCheck panics unless p describes a convolution the kernels support.
func convBwdCheck(name string, p ConvParams) {
	if p.N < 0 || p.C < 1 || p.H < 1 || p.W < 1 || p.K < 1 || p.R < 1 || p.S < 1 {
		panic("cpu: " + name + ": non-positive size in ConvParams")
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		panic("cpu: " + name + ": stride must be >= 1 and padding >= 0")
	}
	if p.OutH() < 1 || p.OutW() < 1 || p.H+2*p.PadH < p.R || p.W+2*p.PadW < p.S {
		panic("cpu: " + name + ": kernel larger than the padded input")
	}
}

// convBwdCheckW panics unless w holds K rows of C*R*S weights (not transposed).
func convBwdCheckW(name string, p ConvParams, w Mat) {
	crs := p.C * p.R * p.S
	if w.Trans {
		panic("cpu: " + name + ": transposed weight matrix not supported")
	}
	if w.Stride < crs {
		panic("cpu: " + name + ": weight row stride smaller than C*R*S")
	}
	need := (p.K-1)*w.Stride + crs
	switch w.DType {
	case F32:
		if len(w.F32) < need {
			panic("cpu: " + name + ": weights shorter than K rows of C*R*S")
		}
	case F16, BF16:
		if len(w.U16) < need {
			panic("cpu: " + name + ": weights shorter than K rows of C*R*S")
		}
	default:
		panic("cpu: " + name + ": unknown weight dtype")
	}
}

// convBwdBufs holds packed operands of the backward convolutions (a
// *[]float32 each, sized by grow).
var convBwdBufs = sync.Pool{New: func() any { return new([]float32) }}

// convBwdScratch holds the col2im and im2col blocks of the backward
// convolutions (a *[]float32 each), apart from the forward's convScratch so
// that alternating forward and backward passes reuse their buffers.
var convBwdScratch sync.Pool

func convBwdGetScratch(n int) *[]float32 {
	if b, ok := convBwdScratch.Get().(*[]float32); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]float32, n)
	return &b
}

// convBwdTiles returns the width of balanced tiles of at most maxCols of n
// positions, and their number.
func convBwdTiles(n, maxCols int) (cols, tiles int) {
	tiles = (n + maxCols - 1) / maxCols
	cols = (n + tiles - 1) / tiles
	return cols, (n + cols - 1) / cols
}

// Conv2dBackwardData computes dx [N, C, H, W], the gradient of the convolution p
// with respect to its input (see Conv2dBackwardDataRef), from dy
// [N, K, OutH, OutW] and the weights w [K, C*R*S] (F32, F16 or BF16, not
// transposed). dx is overwritten and must not overlap dy.
func Conv2dBackwardData(p ConvParams, dy []float32, w Mat, dx []float32) {
	const name = "Conv2dBackwardData"
	convBwdCheck(name, p)
	convBwdCheckW(name, p, w)
	oh, ow := p.OutH(), p.OutW()
	ohw, hw := oh*ow, p.H*p.W
	if len(dy) < p.N*p.K*ohw {
		panic("cpu: Conv2dBackwardData: dy shorter than N*K*OutH*OutW")
	}
	if len(dx) < p.N*p.C*hw {
		panic("cpu: Conv2dBackwardData: dx shorter than N*C*H*W")
	}
	if p.N == 0 {
		return
	}
	wt := w
	wt.Trans = true // op(wt) = W^T [C*R*S, K]
	abuf := convBwdBufs.Get().(*[]float32)
	defer convBwdBufs.Put(abuf)
	if convIsPointwise(p) { // dx_n [C, HW] = W^T [C, K] dy_n [K, HW]
		pa := PackA(grow(abuf, PackedAFloats(p.C, p.K)), p.C, p.K, wt)
		for n := 0; n < p.N; n++ {
			GemmPacked(p.C, hw, p.K, 1, pa, F32Mat(dy[n*p.K*ohw:], ohw, false), 0, dx[n*p.C*hw:], hw)
		}
		return
	}
	rs := p.R * p.S
	// Channels per group: about convBwdDataRows rows of W^T, a multiple of unit
	// channels so that the rows fill whole micro-panels (unit*rs is a
	// multiple of MR), and enough groups to keep every goroutine busy.
	mr := pickKernel().mr
	unit := mr / convGCD(mr, rs)
	cg := max(1, convBwdDataRows/rs)
	if cg >= unit {
		cg = cg / unit * unit
	}
	t := Threads()
	for p.N*((p.C+cg-1)/cg) < 2*t && cg > 1 {
		if cg > unit {
			cg -= unit
		} else {
			cg--
		}
	}
	cg = min(cg, p.C)
	groups := (p.C + cg - 1) / cg
	// Images per task: all of them (W^T packed once) unless the groups alone
	// are too few.
	chunks := 1
	if groups < 2*t {
		chunks = min(p.N, (2*t+groups-1)/groups)
	}
	imgs := (p.N + chunks - 1) / chunks
	chunks = (p.N + imgs - 1) / imgs
	cols, tiles := convBwdTiles(ohw, convBwdDataCols)
	tasks := groups * chunks
	run := func(task int, parallel bool) {
		g, n0 := task/chunks, task%chunks*imgs
		n1 := min(n0+imgs, p.N)
		c0 := g * cg
		c1 := min(c0+cg, p.C)
		rows := (c1 - c0) * rs
		pbuf := abuf
		if !parallel {
			pbuf = convBwdBufs.Get().(*[]float32)
			defer convBwdBufs.Put(pbuf)
		}
		var pa PackedA
		if parallel {
			pa = PackA(grow(pbuf, PackedAFloats(rows, p.K)), rows, p.K, subRows(wt, c0*rs))
		} else {
			pa = PackASerial(grow(pbuf, PackedAFloats(rows, p.K)), rows, p.K, subRows(wt, c0*rs))
		}
		buf := convBwdGetScratch(rows * cols)
		defer convBwdScratch.Put(buf)
		for n := n0; n < n1; n++ {
			dxn := dx[n*p.C*hw : (n+1)*p.C*hw]
			clear(dxn[c0*hw : c1*hw])
			dyn := dy[n*p.K*ohw : (n+1)*p.K*ohw]
			for tile := 0; tile < tiles; tile++ {
				j0 := tile * cols
				j1 := min(j0+cols, ohw)
				blk := (*buf)[:rows*(j1-j0)]
				if parallel {
					GemmPacked(rows, j1-j0, p.K, 1, pa, F32Mat(dyn[j0:], ohw, false), 0, blk, j1-j0)
				} else {
					GemmPackedSerial(rows, j1-j0, p.K, 1, pa, F32Mat(dyn[j0:], ohw, false), 0, blk, j1-j0)
				}
				convCol2im(p, dxn, blk, c0*rs, c1*rs, j0, j1)
			}
		}
	}
	if tasks >= t {
		ParallelTasks(tasks, func(i int) { run(i, false) })
		return
	}
	for i := 0; i < tasks; i++ {
		run(i, true)
	}
}

// ConvBackwardScratchFloats returns the number of float32 scratch elements
// Conv2dBackwardData and Conv2dBackwardWeight use per goroutine for p (the
// larger of the two; col2im and im2col blocks and packed rows of W^T), for
// memory reports. The packing buffers of the products come on top.
func ConvBackwardScratchFloats(p ConvParams) int {
	ohw := p.OutH() * p.OutW()
	crs := p.C * p.R * p.S
	data := 0
	if !convIsPointwise(p) {
		rows := min(crs, max(p.R*p.S, convBwdDataRows))
		cols, _ := convBwdTiles(ohw, convBwdDataCols)
		data = rows*cols + PackedAFloats(rows, p.K)
	}
	cols, _ := convBwdTiles(ohw, convBwdWeightCols)
	weight := min(crs, convBwdWeightRows) * cols
	if convIsPointwise(p) {
		weight = 0
	}
	return max(data, weight)
}

// convGCD returns the greatest common divisor of positive a and b.
func convGCD(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// convCol2im adds rows [r0, r1) and columns [j0, j1) of an im2col-shaped block
// src (row-major, row length j1-j0) into the image dxn [C, H, W]: element
// (row (c*R+r)*S+s, column oh*OW+ow) goes to dxn[c, oh*sh-ph+r, ow*sw-pw+s]
// when that is inside the image (the adjoint of convIm2col).
func convCol2im(p ConvParams, dxn, src []float32, r0, r1, j0, j1 int) {
	ow := p.OutW()
	cols := j1 - j0
	rs := p.R * p.S
	sw := p.StrideW
	oy0 := j0 / ow
	a0 := j0 - oy0*ow
	for row := r0; row < r1; row++ {
		c := row / rs
		r := row % rs / p.S
		s := row % p.S
		sr := src[(row-r0)*cols : (row-r0+1)*cols]
		xc := dxn[c*p.H*p.W : (c+1)*p.H*p.W]
		// Input column iw = ox*sw + off; it is inside the image for ox in [vlo, vhi).
		off := s - p.PadW
		vlo, vhi := convCeilDiv(-off, sw), convCeilDiv(p.W-off, sw)
		oy, a := oy0, a0
		for pos := 0; pos < cols; oy, a = oy+1, 0 {
			b := min(ow, a+cols-pos) // output columns [a, b) of output row oy
			seg := sr[pos : pos+b-a]
			pos += b - a
			ih := oy*p.StrideH - p.PadH + r
			lo, hi := max(a, vlo), min(b, vhi)
			if ih < 0 || ih >= p.H || hi <= lo {
				continue
			}
			xr := xc[ih*p.W : (ih+1)*p.W]
			mid := seg[lo-a : hi-a]
			if sw == 1 {
				convAddTo(xr[lo+off:hi+off], mid)
				continue
			}
			dst := xr[lo*sw+off : (hi-1)*sw+off+1]
			for i, v := range mid {
				dst[i*sw] += v
			}
		}
	}
}

// convAddTo sets dst[i] += src[i] (len(src) == len(dst)).
func convAddTo(dst, src []float32) {
	if len(src) >= 16 && convAddAsm(dst, src) {
		return
	}
	src = src[:len(dst)]
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		d := dst[i : i+4 : i+4]
		s := src[i : i+4 : i+4]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
	}
	for ; i < len(dst); i++ {
		dst[i] += src[i]
	}
}

// Conv2dBackwardWeight computes dw [K, C*R*S] (dense rows, float32), the
// gradient of the convolution p with respect to its weights summed over the
// batch (see Conv2dBackwardWeightRef), from x [N, C, H, W] and dy
// [N, K, OutH, OutW]. dw is overwritten.
func Conv2dBackwardWeight(p ConvParams, x, dy, dw []float32) {
	const name = "Conv2dBackwardWeight"
	convBwdCheck(name, p)
	crs := p.C * p.R * p.S
	ohw, chw := p.OutH()*p.OutW(), p.C*p.H*p.W
	if len(x) < p.N*chw {
		panic("cpu: Conv2dBackwardWeight: x shorter than N*C*H*W")
	}
	if len(dy) < p.N*p.K*ohw {
		panic("cpu: Conv2dBackwardWeight: dy shorter than N*K*OutH*OutW")
	}
	if len(dw) < p.K*crs {
		panic("cpu: Conv2dBackwardWeight: dw shorter than K*C*R*S")
	}
	if p.N == 0 {
		clear(dw[:p.K*crs])
		return
	}
	pointwise := convIsPointwise(p)
	kern := pickKernel()
	t := Threads()
	// Column blocks of dW (a multiple of NR wide when there are several).
	rb := min(crs, convBwdWeightRows)
	blocks := (crs + rb - 1) / rb
	if blocks > 1 {
		rb = ((crs+blocks-1)/blocks + kern.nr - 1) / kern.nr * kern.nr
		blocks = (crs + rb - 1) / rb
	}
	// Row chunks of dW (multiples of MR) when the blocks alone are too few.
	kper := p.K
	if blocks < 2*t {
		panels := (p.K + kern.mr - 1) / kern.mr
		chunks := min(panels, (2*t+blocks-1)/blocks)
		kper = (panels + chunks - 1) / chunks * kern.mr
	}
	kchunks := (p.K + kper - 1) / kper
	cols, tiles := convBwdTiles(ohw, convBwdWeightCols)
	tasks := blocks * kchunks
	run := func(task int, gemm func(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int)) {
		blk, kc := task/kchunks, task%kchunks
		r0 := blk * rb
		r1 := min(r0+rb, crs)
		k0 := kc * kper
		kk := min(kper, p.K-k0)
		rows := r1 - r0
		var buf *[]float32
		if !pointwise {
			buf = convBwdGetScratch(rows * cols)
			defer convBwdScratch.Put(buf)
		}
		beta := float32(0)
		for n := 0; n < p.N; n++ {
			xn := x[n*chw : (n+1)*chw]
			dyk := dy[(n*p.K+k0)*ohw:]
			for tile := 0; tile < tiles; tile++ {
				j0 := tile * cols
				j1 := min(j0+cols, ohw)
				var bm Mat // op(bm) = cols_n^T [j1-j0, rows]
				if pointwise {
					bm = F32Mat(xn[r0*ohw+j0:], ohw, true)
				} else {
					blkBuf := (*buf)[:rows*(j1-j0)]
					convIm2col(p, xn, blkBuf, r0, r1, j0, j1, nil)
					bm = F32Mat(blkBuf, j1-j0, true)
				}
				gemm(kk, rows, j1-j0, 1, F32Mat(dyk[j0:], ohw, false), bm, beta, dw[k0*crs+r0:], crs)
				beta = 1
			}
		}
	}
	if tasks >= t {
		ParallelTasks(tasks, func(i int) { run(i, GemmSerial) })
		return
	}
	for i := 0; i < tasks; i++ {
		run(i, Gemm)
	}
}

// Conv2dBackwardBias computes db [K], the gradient of the convolution p with
// respect to its bias (see Conv2dBackwardBiasRef), from dy [N, K, OutH, OutW].
// db is overwritten.
func Conv2dBackwardBias(p ConvParams, dy, db []float32) {
	convBwdCheck("Conv2dBackwardBias", p)
	ohw := p.OutH() * p.OutW()
	if len(dy) < p.N*p.K*ohw {
		panic("cpu: Conv2dBackwardBias: dy shorter than N*K*OutH*OutW")
	}
	if len(db) < p.K {
		panic("cpu: Conv2dBackwardBias: db shorter than K")
	}
	ParallelFor(p.K, max(1, (1<<16)/max(1, p.N*ohw)), func(k0, k1 int) {
		for k := k0; k < k1; k++ {
			var s float64
			for n := 0; n < p.N; n++ {
				s += float64(convSum(dy[(n*p.K+k)*ohw : (n*p.K+k+1)*ohw]))
			}
			db[k] = float32(s)
		}
	})
}

// convSum returns the sum of x, in float32 over eight interleaved partial
// sums (pairwise-like error growth for long rows).
func convSum(x []float32) float32 {
	var s [8]float32
	i := 0
	for ; i+8 <= len(x); i += 8 {
		v := x[i : i+8 : i+8]
		s[0] += v[0]
		s[1] += v[1]
		s[2] += v[2]
		s[3] += v[3]
		s[4] += v[4]
		s[5] += v[5]
		s[6] += v[6]
		s[7] += v[7]
	}
	for ; i < len(x); i++ {
		s[i&7] += x[i]
	}
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
}

package cpu

import "sync"

// Convolution as matrix products.
//
// y_n [K, OH*OW] = W [K, C*R*S] * cols_n [C*R*S, OH*OW] + bias, where cols_n is the
// im2col expansion of image n: row (c*R+r)*S+s, column oh*OW+ow holds
// x[n, c, oh*sh-ph+r, ow*sw-pw+s] (zero outside the image).
//
// A 1x1 convolution with stride 1 and no padding needs no expansion: cols_n is
// x_n, and each tile is a single product reading x in place. Otherwise cols_n is
// never formed whole (512 channels at 128x128 would be 302 MiB): the output
// columns are cut into tiles of at most convTileCols positions and the C*R*S rows
// into blocks (convBlockRows rows for full-width tiles, up to convMaxBlockRows for
// narrower ones, so a block holds at most convBlockRows*convTileCols floats), and
// each (column tile, row block) piece is expanded into a per-goroutine scratch
// buffer and multiplied into the output columns of the tile, accumulating over
// the row blocks (beta = 1). The bias is written into the tile of y just before
// its first product, so it rides along as the initial C.
//
// The weights are the same for every tile, so each row block of W (the columns
// [r0, r1) of w) is packed once (PackA: the F16/BF16 conversion and the
// micro-panel layout, on all goroutines) and then multiplied into every tile
// (GemmPackedSerial): the loops run
//
//	for each wave of column tiles (their tiles of y together at most convWaveFloats)
//	  for each row block of W:   pack it (shared, K x at most convMaxBlockRows floats)
//	    for each tile of the wave, in parallel:   im2col piece, product into y's tile
//
// rather than packing all of W per tile: with one tile per image of 64
// columns (8x8 outputs) that packing took about a quarter of the time, and
// a whole packed W can be large (59 MB for K = 1280, C*R*S = 11520). Column tiles of all images are spread over the
// goroutines, each running the serial product; when a wave has fewer tiles
// than goroutines, the tiles run one after another and the product itself is
// parallel. A pointwise convolution runs the same loops with row blocks of
// W of the product's own K passes (so its sums are those of one product over
// all C). When C*R*S is small (one row block, below convBiasRowMaxCRS) and
// there is a bias, convBiasRow folds the bias into the product instead (see
// there), so y is written once and never read.

const (
	convTileCols     = 2048 // output positions per tile (upper bound)
	convMinCols      = 128  // do not split tiles below this many columns for parallelism
	convBlockRows    = 256  // rows of the im2col matrix per block for full-width tiles
	convMaxBlockRows = 512  // rows per block for narrow tiles (upper bound)
)

// convScratch holds reusable im2col buffers (a *[]float32 each).
var convScratch sync.Pool

func convGetScratch(n int) *[]float32 {
	if b, ok := convScratch.Get().(*[]float32); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]float32, n)
	return &b
}

// ConvScratchFloats returns the number of float32 scratch elements Conv2d uses per
// goroutine for p (0 when the convolution is a plain product), for memory reports.
// The packed row block of W that the goroutines share (K x at most
// convMaxBlockRows floats, or K x the product's KC for a pointwise convolution)
// comes on top, once per call.
func ConvScratchFloats(p ConvParams) int {
	if convIsPointwise(p) {
		return 0
	}
	plan := convMakePlan(p)
	if plan.blocks == 1 && plan.crs < convBiasRowMaxCRS {
		return (plan.crs + 1) * plan.colsPerTile // convBiasRow's row of ones
	}
	return plan.rowsPerBlock * plan.colsPerTile
}

func convIsPointwise(p ConvParams) bool {
	return p.R == 1 && p.S == 1 && p.StrideH == 1 && p.StrideW == 1 && p.PadH == 0 && p.PadW == 0
}

// convPlan is the tiling of one convolution.
type convPlan struct {
	crs, ohw     int
	colsPerTile  int // output positions per tile
	tilesPerImg  int
	rowsPerBlock int // im2col rows per block
	blocks       int
}

func convMakePlan(p ConvParams) convPlan {
	crs := p.C * p.R * p.S
	ohw := p.OutH() * p.OutW()
	pl := convPlan{crs: crs, ohw: ohw}
	pl.tilesPerImg = (ohw + convTileCols - 1) / convTileCols
	// Enough tiles to keep every goroutine busy, if the tiles stay large enough.
	t := Threads()
	for p.N*pl.tilesPerImg < t && ohw/(pl.tilesPerImg+1) >= convMinCols {
		pl.tilesPerImg++
	}
	pl.colsPerTile = (ohw + pl.tilesPerImg - 1) / pl.tilesPerImg
	pl.tilesPerImg = (ohw + pl.colsPerTile - 1) / pl.colsPerTile
	// Narrow tiles take taller row blocks (fewer passes over the tile of y), within
	// the same scratch budget.
	maxRows := max(convBlockRows, convBlockRows*convTileCols/pl.colsPerTile/64*64)
	maxRows = min(maxRows, convMaxBlockRows)
	pl.blocks = (crs + maxRows - 1) / maxRows
	pl.rowsPerBlock = (crs + pl.blocks - 1) / pl.blocks
	pl.blocks = (crs + pl.rowsPerBlock - 1) / pl.rowsPerBlock
	return pl
}

func convCheck(p ConvParams, x []float32, w Mat, bias []float32, y []float32) {
	if p.N < 0 || p.C < 1 || p.H < 1 || p.W < 1 || p.K < 1 || p.R < 1 || p.S < 1 {
		panic("cpu: Conv2d: non-positive size in ConvParams")
	}
	if p.StrideH < 1 || p.StrideW < 1 || p.PadH < 0 || p.PadW < 0 {
		panic("cpu: Conv2d: stride must be >= 1 and padding >= 0")
	}
	if p.OutH() < 1 || p.OutW() < 1 || p.H+2*p.PadH < p.R || p.W+2*p.PadW < p.S {
		panic("cpu: Conv2d: kernel larger than the padded input")
	}
	if len(x) < p.N*p.C*p.H*p.W {
		panic("cpu: Conv2d: x shorter than N*C*H*W")
	}
	if len(y) < p.N*p.K*p.OutH()*p.OutW() {
		panic("cpu: Conv2d: y shorter than N*K*OutH*OutW")
	}
	if bias != nil && len(bias) < p.K {
		panic("cpu: Conv2d: bias shorter than K")
	}
	crs := p.C * p.R * p.S
	if w.Trans {
		panic("cpu: Conv2d: transposed weight matrix not supported")
	}
	if w.Stride < crs {
		panic("cpu: Conv2d: weight row stride smaller than C*R*S")
	}
	need := (p.K-1)*w.Stride + crs
	switch w.DType {
	case F32:
		if len(w.F32) < need {
			panic("cpu: Conv2d: weights shorter than K rows of C*R*S")
		}
	case F16, BF16:
		if len(w.U16) < need {
			panic("cpu: Conv2d: weights shorter than K rows of C*R*S")
		}
	default:
		panic("cpu: Conv2d: unknown weight dtype")
	}
}

// Conv2d computes the convolution described by p (see Conv2dRef): x [N, C, H, W],
// w [K, C*R*S] (F32, F16 or BF16, not transposed), bias [K] or nil,
// y [N, K, OutH, OutW]. y must not overlap x.
func Conv2d(p ConvParams, x []float32, w Mat, bias []float32, y []float32) {
	convCheck(p, x, w, bias, y)
	if p.N == 0 {
		return
	}
	oh, ow := p.OutH(), p.OutW()
	ohw := oh * ow
	beta := float32(0)
	if bias != nil {
		beta = 1
	}
	// fillBias writes the bias into columns [j0, j1) of every channel of y_n.
	fillBias := func(yn []float32, j0, j1 int) {
		for k := 0; k < p.K; k++ {
			convFill(yn[k*ohw+j0:k*ohw+j1], bias[k])
		}
	}

	pointwise := convIsPointwise(p)
	pl := convMakePlan(p)
	tasks := p.N * pl.tilesPerImg
	if !pointwise && bias != nil && pl.blocks == 1 && pl.crs < convBiasRowMaxCRS {
		convBiasRow(p, pl, x, w, bias, y)
		return
	}
	// Row blocks of W (columns of w): the im2col blocks, or for a pointwise
	// convolution the K passes the product over all C would make (so that the
	// sums are formed in the same order as by one product).
	rowsPerBlock := pl.rowsPerBlock
	if pointwise {
		rowsPerBlock = blockK(p.C, pickKernel().kc)
	}
	abuf := convPackBufs.Get().(*[]float32)
	defer convPackBufs.Put(abuf)
	pbuf := grow(abuf, PackedAFloats(p.K, min(rowsPerBlock, pl.crs)))
	// task runs the product of row block [r0, r1) (packed in pa) for one
	// column tile of one image.
	task := func(i, r0, r1 int, pa PackedA, gemm func(m, n, k int, alpha float32, pa PackedA, b Mat, beta float32, c []float32, ldc int)) {
		n, tile := i/pl.tilesPerImg, i%pl.tilesPerImg
		j0 := tile * pl.colsPerTile
		j1 := min(j0+pl.colsPerTile, ohw)
		cols := j1 - j0
		xn := x[n*p.C*p.H*p.W : (n+1)*p.C*p.H*p.W]
		yn := y[n*p.K*ohw:]
		bb := float32(1)
		if r0 == 0 {
			bb = beta
			if bias != nil {
				fillBias(yn, j0, j1)
			}
		}
		if pointwise { // y_n = W x_n: x_n is the im2col matrix already
			gemm(p.K, cols, r1-r0, 1, pa, F32Mat(xn[r0*ohw+j0:], ohw, false), bb, yn[j0:], ohw)
			return
		}
		buf := convGetScratch((r1 - r0) * cols)
		convIm2col(p, xn, (*buf)[:(r1-r0)*cols], r0, r1, j0, j1)
		gemm(p.K, cols, r1-r0, 1, pa, F32Mat(*buf, cols, false), bb, yn[j0:], ohw)
		convScratch.Put(buf)
	}
	// The tasks run in waves whose tiles of y fit in the last-level cache
	// together; in each, every row block of W is packed once (shared by all
	// goroutines) and multiplied into every tile of the wave before the next.
	perWave := max(Threads(), convWaveFloats/max(1, p.K*pl.colsPerTile))
	for w0 := 0; w0 < tasks; w0 += perWave {
		w1 := min(w0+perWave, tasks)
		for r0 := 0; r0 < pl.crs; r0 += rowsPerBlock {
			r1 := min(r0+rowsPerBlock, pl.crs)
			pa := PackA(pbuf, p.K, r1-r0, offsetMat(w, r0))
			if w1-w0 >= Threads() {
				ParallelTasks(w1-w0, func(i int) { task(w0+i, r0, r1, pa, GemmPackedSerial) })
				continue
			}
			for i := w0; i < w1; i++ {
				task(i, r0, r1, pa, GemmPacked)
			}
		}
	}
}

// convWaveFloats bounds the floats of y that the tiles of one wave of Conv2d
// write (16 MiB), so that they stay in the last-level cache across the row
// blocks of W. Tests lower it to get several waves from small shapes.
var convWaveFloats = 1 << 22

// convPackBufs holds the buffers of W's packed row blocks (a *[]float32 each,
// sized by grow). A block is K x at most convMaxBlockRows floats (2.6 MB for
// K = 1280), or K x KC for a pointwise convolution, shared by all goroutines
// of a call: unlike the whole packed W (59 MB for K = 1280, C*R*S = 11520),
// it stays small.
var convPackBufs = sync.Pool{New: func() any { return new([]float32) }}

// convBiasRowMaxCRS bounds C*R*S for convBiasRow: below it the bias pass over y
// and the read-modify-write of y by a product of so few terms cost more than the
// product itself.
const convBiasRowMaxCRS = 128

// convBiasRow is Conv2d for a small C*R*S with a bias (one row block): the bias
// joins the product as an extra column of W ([W | bias], converted to float32
// once) against an extra row of ones under the im2col tile, so every tile of y
// is written once by a product with beta = 0 and never read.
func convBiasRow(p ConvParams, pl convPlan, x []float32, w Mat, bias []float32, y []float32) {
	crs, ohw := pl.crs, pl.ohw
	ka := crs + 1
	wbuf := convGetScratch(p.K * ka)
	wa := *wbuf
	for k := 0; k < p.K; k++ {
		dst := wa[k*ka : k*ka+crs]
		off := k * w.Stride
		switch w.DType {
		case F32:
			copy(dst, w.F32[off:off+crs])
		case F16:
			F16ToF32(dst, w.U16[off:off+crs])
		case BF16:
			BF16ToF32(dst, w.U16[off:off+crs])
		}
		wa[k*ka+crs] = bias[k]
	}
	abuf := convPackBufs.Get().(*[]float32)
	defer convPackBufs.Put(abuf)
	wm := PackA(grow(abuf, PackedAFloats(p.K, ka)), p.K, ka, F32Mat(wa, ka, false))
	tasks := p.N * pl.tilesPerImg
	run := func(task int, gemm func(m, n, k int, alpha float32, pa PackedA, b Mat, beta float32, c []float32, ldc int)) {
		n, tile := task/pl.tilesPerImg, task%pl.tilesPerImg
		j0 := tile * pl.colsPerTile
		j1 := min(j0+pl.colsPerTile, ohw)
		cols := j1 - j0
		xn := x[n*p.C*p.H*p.W : (n+1)*p.C*p.H*p.W]
		buf := convGetScratch(ka * cols)
		convIm2col(p, xn, (*buf)[:crs*cols], 0, crs, j0, j1)
		convFill((*buf)[crs*cols:ka*cols], 1)
		gemm(p.K, cols, ka, 1, wm, F32Mat(*buf, cols, false), 0, y[n*p.K*ohw+j0:], ohw)
		convScratch.Put(buf)
	}
	if tasks >= Threads() {
		ParallelTasks(tasks, func(i int) { run(i, GemmPackedSerial) })
	} else {
		for i := 0; i < tasks; i++ {
			run(i, GemmPacked)
		}
	}
	convScratch.Put(wbuf)
}

// convIm2col writes rows [r0, r1) and columns [j0, j1) of the im2col matrix of one
// image xn [C, H, W] into dst (row-major, row length j1-j0).
func convIm2col(p ConvParams, xn, dst []float32, r0, r1, j0, j1 int) {
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
		d := dst[(row-r0)*cols : (row-r0+1)*cols]
		xc := xn[c*p.H*p.W : (c+1)*p.H*p.W]
		// Input column iw = ox*sw + off; it is inside the image for ox in [vlo, vhi).
		off := s - p.PadW
		vlo, vhi := convCeilDiv(-off, sw), convCeilDiv(p.W-off, sw)
		oy, a := oy0, a0
		for pos := 0; pos < cols; oy, a = oy+1, 0 {
			b := min(ow, a+cols-pos) // output columns [a, b) of output row oy
			seg := d[pos : pos+b-a]  // go to dst columns [pos, pos+b-a)
			pos += b - a
			ih := oy*p.StrideH - p.PadH + r
			lo, hi := max(a, vlo), min(b, vhi)
			if ih < 0 || ih >= p.H || hi <= lo {
				clear(seg)
				continue
			}
			xr := xc[ih*p.W : (ih+1)*p.W]
			clear(seg[:lo-a])
			mid := seg[lo-a : hi-a]
			switch sw {
			case 1:
				copy(mid, xr[lo+off:hi+off])
			case 2:
				convGather2(mid, xr[lo*2+off:(hi-1)*2+off+1])
			default:
				src := xr[lo*sw+off : (hi-1)*sw+off+1]
				for i := range mid {
					mid[i] = src[i*sw]
				}
			}
			clear(seg[hi-a:])
		}
	}
}

// convFill sets every element of dst to v (by doubling copies, which run as
// vectorised memmoves).
func convFill(dst []float32, v float32) {
	if len(dst) == 0 {
		return
	}
	dst[0] = v
	for n := 1; n < len(dst); n *= 2 {
		copy(dst[n:], dst[:n])
	}
}

// convCeilDiv returns ceil(a/b) for b > 0 and any a.
func convCeilDiv(a, b int) int {
	if a >= 0 {
		return (a + b - 1) / b
	}
	return -(-a / b)
}

// convGather2 sets dst[i] = src[2*i] (len(src) >= 2*len(dst)-1).
func convGather2(dst, src []float32) {
	i := 0
	if convUseAVX512 {
		// Whole 16-float chunks whose 32-float source window lies inside src.
		i = min(len(dst), len(src)/2) &^ 15
		if i > 0 {
			convGather2AVX512(dst[:i], src[:2*i])
		}
	}
	for ; i+8 <= len(dst); i += 8 {
		s := src[2*i : 2*i+15]
		d := dst[i : i+8]
		d[0], d[1], d[2], d[3] = s[0], s[2], s[4], s[6]
		d[4], d[5], d[6], d[7] = s[8], s[10], s[12], s[14]
	}
	for ; i < len(dst); i++ {
		dst[i] = src[2*i]
	}
}

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
// Column tiles of all images are spread over the goroutines, each running the
// serial product; when there are fewer tiles than goroutines, the tiles run
// one after another and the product itself is parallel. Each tile's products
// pack their row block of W themselves, which costs little while the tiles
// are wide. Narrow tiles (convSplitKRatio or more output channels per column,
// e.g. the 8x8 and 4x4 levels of a U-Net) would pack W, much larger than their
// im2col pieces, once per tile: there convSplitK splits the output channels over the
// goroutines instead, and each packs its rows of W once for all the tiles
// (with one 64-column tile per image at 8x8, the packing of W per tile took
// about a quarter of the time). When C*R*S is small (one row block, below
// convBiasRowMaxCRS) and there is a bias, convBiasRow folds the bias into the
// product instead (see there), so y is written once and never read.

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
// The packing buffers of the products come on top (for convSplitK, the
// goroutine's rows of W x at most convMaxBlockRows floats).
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
	Conv2dFused(p, x, w, bias, y, ConvFusion{})
}

// ConvFusion is elementwise work that Conv2dFused does inside the
// convolution instead of in passes of its own over memory, and the layout
// of its input (see Conv2dFusedRef for the exact definition).
type ConvFusion struct {
	// InScale and InShift ([C] each, or nil for 1 and 0) map every input
	// value to x*InScale[c] + InShift[c], followed by max(., 0) when InReLU
	// is set, before the convolution sees it: an eval-mode BatchNorm and
	// ReLU in front of the convolution. The zero padding is added after the
	// map (padding stays zero, as when the map runs as its own layer).
	InScale, InShift []float32
	InReLU           bool
	// OutReLU replaces every output value v (bias included) by max(v, 0),
	// NaN staying NaN.
	OutReLU bool
	// XStride is the distance in elements between consecutive samples of
	// x (0: C*H*W, x contiguous), so that x may be the first channels of a
	// wider tensor.
	XStride int
}

// inMap reports whether f maps the input.
func (f *ConvFusion) inMap() bool { return f.InScale != nil || f.InShift != nil || f.InReLU }

// mapInto sets dst to f's input map of channel c applied to src (dst may
// be src).
func (f *ConvFusion) mapInto(dst, src []float32, c int) {
	a, b := float32(1), float32(0)
	if f.InScale != nil {
		a = f.InScale[c]
	}
	if f.InShift != nil {
		b = f.InShift[c]
	}
	convAffineRow(src, dst, a, b, f.InReLU)
}

// reluRows applies max(v, 0) to columns [j0, j1) of rows [0, rows) of y
// (row length ld).
func reluRows(y []float32, rows, ld, j0, j1 int) {
	for k := 0; k < rows; k++ {
		r := y[k*ld+j0 : k*ld+j1]
		convAffineRow(r, r, 1, 0, true)
	}
}

// Conv2dFused is Conv2d with the fused work and input layout of f.
func Conv2dFused(p ConvParams, x []float32, w Mat, bias []float32, y []float32, f ConvFusion) {
	xs := p.C * p.H * p.W
	if f.XStride != 0 {
		if f.XStride < xs {
			panic("cpu: Conv2dFused: XStride smaller than C*H*W")
		}
		xs = f.XStride
	}
	if f.InScale != nil && len(f.InScale) < p.C || f.InShift != nil && len(f.InShift) < p.C {
		panic("cpu: Conv2dFused: InScale or InShift shorter than C")
	}
	if p.N > 0 && len(x) < (p.N-1)*xs+p.C*p.H*p.W {
		panic("cpu: Conv2dFused: x shorter than its N samples")
	}
	convCheck(p, x[:min(len(x), p.N*p.C*p.H*p.W)], w, bias, y)
	if p.N == 0 {
		return
	}
	fu := &f
	f.XStride = xs
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

	// A mapped input is expanded (and mapped) like an im2col piece even for
	// a 1x1 convolution, instead of being read in place.
	pointwise := convIsPointwise(p) && !fu.inMap()
	pl := convMakePlan(p)
	tasks := p.N * pl.tilesPerImg
	// (Not with a BF16 pair kernel: the bias would be rounded to BF16 with W.)
	if !convIsPointwise(p) && bias != nil && pl.blocks == 1 && pl.crs < convBiasRowMaxCRS && !pickKernel().pairs {
		convBiasRow(p, pl, x, w, bias, y, fu)
		return
	}
	if p.K >= convSplitKRatio*pl.colsPerTile {
		convSplitK(p, pl, pointwise, x, w, bias, y, fu)
		return
	}
	run := func(task int, gemm func(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int)) {
		n, tile := task/pl.tilesPerImg, task%pl.tilesPerImg
		j0 := tile * pl.colsPerTile
		j1 := min(j0+pl.colsPerTile, ohw)
		cols := j1 - j0
		xn := x[n*fu.XStride : n*fu.XStride+p.C*p.H*p.W]
		yn := y[n*p.K*ohw:]
		if bias != nil {
			fillBias(yn, j0, j1)
		}
		if pointwise { // y_n = W x_n: x_n is the im2col matrix already
			gemm(p.K, cols, p.C, 1, w, F32Mat(xn[j0:], ohw, false), beta, yn[j0:], ohw)
		} else {
			buf := convGetScratch(pl.rowsPerBlock * cols)
			for blk := 0; blk < pl.blocks; blk++ {
				r0 := blk * pl.rowsPerBlock
				r1 := min(r0+pl.rowsPerBlock, pl.crs)
				rows := r1 - r0
				convIm2col(p, xn, (*buf)[:rows*cols], r0, r1, j0, j1, fu)
				bb := beta
				if blk > 0 {
					bb = 1
				}
				gemm(p.K, cols, rows, 1, offsetMat(w, r0), F32Mat(*buf, cols, false), bb, yn[j0:], ohw)
			}
			convScratch.Put(buf)
		}
		if fu.OutReLU {
			reluRows(yn, p.K, ohw, j0, j1)
		}
	}
	if tasks >= Threads() {
		ParallelTasks(tasks, func(i int) { run(i, GemmSerial) })
		return
	}
	for i := 0; i < tasks; i++ {
		run(i, Gemm)
	}
}

// convSplitKRatio: Conv2d uses convSplitK when there are at least this many
// output channels per column of a tile. Below it, the im2col pieces and
// packed B panels that every goroutine makes for every tile under convSplitK
// cost about what packing W once per tile does (measured on 2 cores: 2% faster
// at K = 1280 with 64-column tiles, 4% slower with 256-column tiles).
const convSplitKRatio = 8

// convSplitK is Conv2d for narrow column tiles: each goroutine takes a range
// of the output channels (rows of W) for all the tiles, and packs its rows of
// each row block of W once for all of them:
//
//	for each range of channels [k0, k1), in parallel:
//	  for each row block of W:   pack W[k0:k1, block] (PackASerial)
//	    for each column tile:   im2col piece, product into y[n, k0:k1, tile]
//
// Each goroutine expands the im2col pieces of every tile, but these are
// smaller than the packed weights here, and the goroutines need no other
// synchronisation. A pointwise convolution uses row blocks of the product's
// own K passes, so that its sums are those of one product over all C. The
// results are those of the per-tile products bit for bit.
func convSplitK(p ConvParams, pl convPlan, pointwise bool, x []float32, w Mat, bias, y []float32, fu *ConvFusion) {
	ohw := pl.ohw
	kern := pickKernel()
	rowsPerBlock := pl.rowsPerBlock
	if pointwise {
		rowsPerBlock = blockK(p.C, kern.kc)
	}
	rowsPerBlock = min(rowsPerBlock, pl.crs)
	beta := float32(0)
	if bias != nil {
		beta = 1
	}
	panels := (p.K + kern.mr - 1) / kern.mr
	chunks := min(Threads(), panels)
	per := (panels + chunks - 1) / chunks * kern.mr
	chunks = (p.K + per - 1) / per
	tasks := p.N * pl.tilesPerImg
	ParallelTasks(chunks, func(ci int) {
		k0 := ci * per
		kk := min(per, p.K-k0)
		wk := subRows(w, k0)
		abuf := convPackBufs.Get().(*[]float32)
		pbuf := grow(abuf, PackedAFloats(kk, rowsPerBlock))
		var buf *[]float32
		if !pointwise {
			buf = convGetScratch(rowsPerBlock * pl.colsPerTile)
		}
		for r0 := 0; r0 < pl.crs; r0 += rowsPerBlock {
			r1 := min(r0+rowsPerBlock, pl.crs)
			pa := PackASerial(pbuf, kk, r1-r0, offsetMat(wk, r0))
			for task := 0; task < tasks; task++ {
				n, tile := task/pl.tilesPerImg, task%pl.tilesPerImg
				j0 := tile * pl.colsPerTile
				j1 := min(j0+pl.colsPerTile, ohw)
				cols := j1 - j0
				xn := x[n*fu.XStride : n*fu.XStride+p.C*p.H*p.W]
				yk := y[(n*p.K+k0)*ohw:]
				bb := float32(1)
				if r0 == 0 {
					bb = beta
					for k := 0; bias != nil && k < kk; k++ {
						convFill(yk[k*ohw+j0:k*ohw+j1], bias[k0+k])
					}
				}
				if pointwise { // y_n = W x_n: x_n is the im2col matrix already
					GemmPackedSerial(kk, cols, r1-r0, 1, pa, F32Mat(xn[r0*ohw+j0:], ohw, false), bb, yk[j0:], ohw)
				} else {
					convIm2col(p, xn, (*buf)[:(r1-r0)*cols], r0, r1, j0, j1, fu)
					GemmPackedSerial(kk, cols, r1-r0, 1, pa, F32Mat(*buf, cols, false), bb, yk[j0:], ohw)
				}
				if fu.OutReLU && r1 == pl.crs {
					reluRows(yk, kk, ohw, j0, j1)
				}
			}
		}
		if buf != nil {
			convScratch.Put(buf)
		}
		convPackBufs.Put(abuf)
	})
}

// convPackBufs holds the buffers of packed row blocks of W (a *[]float32 each,
// sized by grow): per goroutine, its channels x at most convMaxBlockRows
// floats (or x KC for a pointwise convolution).
var convPackBufs = sync.Pool{New: func() any { return new([]float32) }}

// convBiasRowMaxCRS bounds C*R*S for convBiasRow: below it the bias pass over y
// and the read-modify-write of y by a product of so few terms cost more than the
// product itself.
const convBiasRowMaxCRS = 128

// convBiasRow is Conv2d for a small C*R*S with a bias (one row block): the bias
// joins the product as an extra column of W ([W | bias], converted to float32
// once) against an extra row of ones under the im2col tile, so every tile of y
// is written once by a product with beta = 0 and never read.
func convBiasRow(p ConvParams, pl convPlan, x []float32, w Mat, bias []float32, y []float32, fu *ConvFusion) {
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
		xn := x[n*fu.XStride : n*fu.XStride+p.C*p.H*p.W]
		buf := convGetScratch(ka * cols)
		convIm2col(p, xn, (*buf)[:crs*cols], 0, crs, j0, j1, fu)
		convFill((*buf)[crs*cols:ka*cols], 1)
		gemm(p.K, cols, ka, 1, wm, F32Mat(*buf, cols, false), 0, y[n*p.K*ohw+j0:], ohw)
		if fu.OutReLU {
			reluRows(y[n*p.K*ohw:], p.K, ohw, j0, j1)
		}
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
// image xn [C, H, W] into dst (row-major, row length j1-j0), with fu's input
// map applied to the values from the image (not to the padding).
func convIm2col(p ConvParams, xn, dst []float32, r0, r1, j0, j1 int, fu *ConvFusion) {
	mapped := fu != nil && fu.inMap()
	if convIsPointwise(p) { // (only mapped ones come here) row = channel, one span
		hw := p.H * p.W
		for row := r0; row < r1; row++ {
			d := dst[(row-r0)*(j1-j0) : (row-r0+1)*(j1-j0)]
			src := xn[row*hw+j0 : row*hw+j1]
			if mapped {
				fu.mapInto(d, src, row)
			} else {
				copy(d, src)
			}
		}
		return
	}
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
			switch {
			case sw == 1 && mapped: // copy and map in one pass
				fu.mapInto(mid, xr[lo+off:hi+off], c)
			case sw == 1:
				copy(mid, xr[lo+off:hi+off])
			case sw == 2:
				convGather2(mid, xr[lo*2+off:(hi-1)*2+off+1])
			default:
				src := xr[lo*sw+off : (hi-1)*sw+off+1]
				for i := range mid {
					mid[i] = src[i*sw]
				}
			}
			if mapped && sw != 1 {
				fu.mapInto(mid, mid, c)
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

// convAffineRow sets y[i] = x[i]*a + b, then 0 where that is below 0 when
// relu is set (NaN stays NaN), as ChannelAffineRef does for one row (with
// the vector kernel of affineSpan).
func convAffineRow(x, y []float32, a, b float32, relu bool) {
	lo := poolNegInf
	if relu {
		lo = 0
	}
	affineSpan(x, y, a, b, lo)
}

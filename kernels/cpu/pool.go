package cpu

import "math"

// Pooling and per-channel affine kernels (forward only), used by the
// feature extractors of package metrics/features (Inception-v3, DenseNet).
// Images are planes: x holds nc = N*C planes of h x w floats, row-major, and
// y the nc output planes. Each function has a naive ...Ref beside it whose doc
// comment is the loop it computes; the fast versions split the planes across
// goroutines and run the row kernels of pool_vec.go (AVX2 assembly on amd64,
// pure Go elsewhere or with -tags purego).

// PoolParams describes a 2-D pooling window: kernel kh x kw, strides and
// zero (or -inf, for max pooling) paddings; ceil mode is not supported
// (PyTorch's default ceil_mode=False).
type PoolParams struct {
	NC, H, W         int // planes and their size
	KH, KW           int // window
	StrideH, StrideW int
	PadH, PadW       int
}

// OutH is the output height floor((H + 2 PadH - KH)/StrideH) + 1.
func (p PoolParams) OutH() int { return (p.H+2*p.PadH-p.KH)/p.StrideH + 1 }

// OutW is the output width floor((W + 2 PadW - KW)/StrideW) + 1.
func (p PoolParams) OutW() int { return (p.W+2*p.PadW-p.KW)/p.StrideW + 1 }

// MaxPool2dRef is torch.nn.functional.max_pool2d (padding counts as -inf):
//
//	for c < NC, i < OutH, j < OutW:
//	  y[c,i,j] = max over 0 <= a < KH, 0 <= b < KW of x[c, i*StrideH-PadH+a, j*StrideW-PadW+b],
//	             taking only positions inside the plane (a NaN input propagates)
func MaxPool2dRef(p PoolParams, x, y []float32) {
	oh, ow := p.OutH(), p.OutW()
	for c := 0; c < p.NC; c++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				m := float32(math.Inf(-1))
				for a := 0; a < p.KH; a++ {
					r := i*p.StrideH - p.PadH + a
					if r < 0 || r >= p.H {
						continue
					}
					for b := 0; b < p.KW; b++ {
						q := j*p.StrideW - p.PadW + b
						if q < 0 || q >= p.W {
							continue
						}
						v := x[(c*p.H+r)*p.W+q]
						if v > m || v != v {
							m = v
						}
					}
				}
				y[(c*oh+i)*ow+j] = m
			}
		}
	}
}

// AvgPool2dRef is torch.nn.functional.avg_pool2d: the mean of the window's
// elements inside the plane, divided by the window's size clipped to the
// padded plane when countIncludePad is set (zeros of the padding count), else
// by the number of elements inside the plane:
//
//	for c < NC, i < OutH, j < OutW:
//	  r0 = i*StrideH-PadH, r1 = min(r0+KH, H+PadH); likewise q0, q1 for columns
//	  den = (r1-r0)*(q1-q0) if countIncludePad
//	  r0, r1 = max(r0, 0), min(r1, H); likewise q0, q1
//	  den = (r1-r0)*(q1-q0) otherwise
//	  y[c,i,j] = sum over r0 <= r < r1, q0 <= q < q1 of x[c,r,q] / den
func AvgPool2dRef(p PoolParams, countIncludePad bool, x, y []float32) {
	oh, ow := p.OutH(), p.OutW()
	for c := 0; c < p.NC; c++ {
		for i := 0; i < oh; i++ {
			for j := 0; j < ow; j++ {
				r0, q0 := i*p.StrideH-p.PadH, j*p.StrideW-p.PadW
				r1, q1 := min(r0+p.KH, p.H+p.PadH), min(q0+p.KW, p.W+p.PadW)
				den := (r1 - r0) * (q1 - q0)
				r0, q0, r1, q1 = max(r0, 0), max(q0, 0), min(r1, p.H), min(q1, p.W)
				if !countIncludePad {
					den = (r1 - r0) * (q1 - q0)
				}
				var s float64
				for r := r0; r < r1; r++ {
					for q := q0; q < q1; q++ {
						s += float64(x[(c*p.H+r)*p.W+q])
					}
				}
				y[(c*oh+i)*ow+j] = float32(s / float64(den))
			}
		}
	}
}

// AdaptiveAvgPool2dRef is torch.nn.functional.adaptive_avg_pool2d of nc planes
// h x w to oh x ow:
//
//	for c < nc, i < oh, j < ow:
//	  r0, r1 = floor(i*h/oh), ceil((i+1)*h/oh); q0, q1 = floor(j*w/ow), ceil((j+1)*w/ow)
//	  y[c,i,j] = sum over r0 <= r < r1, q0 <= q < q1 of x[c,r,q] / ((r1-r0)*(q1-q0))
func AdaptiveAvgPool2dRef(nc, h, w, oh, ow int, x, y []float32) {
	for c := 0; c < nc; c++ {
		for i := 0; i < oh; i++ {
			r0, r1 := i*h/oh, ((i+1)*h+oh-1)/oh
			for j := 0; j < ow; j++ {
				q0, q1 := j*w/ow, ((j+1)*w+ow-1)/ow
				var s float64
				for r := r0; r < r1; r++ {
					for q := q0; q < q1; q++ {
						s += float64(x[(c*h+r)*w+q])
					}
				}
				y[(c*oh+i)*ow+j] = float32(s / float64((r1-r0)*(q1-q0)))
			}
		}
	}
}

// ChannelAffineRef applies a per-channel scale and shift (an eval-mode
// BatchNorm folded to y = x*scale + shift), optionally followed by ReLU, to
// x [n, c, hw]; a nil scale means 1 and a nil shift 0:
//
//	for i < n, k < c, s < hw:
//	  v = x[i,k,s]*scale[k] + shift[k]  (the product rounded to float32, then the sum)
//	  y[i,k,s] = relu && v < 0 ? 0 : v  (NaN stays NaN, -0 stays -0)
func ChannelAffineRef(n, c, hw int, x, scale, shift []float32, relu bool, y []float32) {
	for i := 0; i < n; i++ {
		for k := 0; k < c; k++ {
			a, b := float32(1), float32(0)
			if scale != nil {
				a = scale[k]
			}
			if shift != nil {
				b = shift[k]
			}
			for s := 0; s < hw; s++ {
				v := float32(x[(i*c+k)*hw+s]*a) + b // rounded product, no FMA
				if relu && v < 0 {
					v = 0
				}
				y[(i*c+k)*hw+s] = v
			}
		}
	}
}

// MaxPool2d computes MaxPool2dRef, planes in parallel: per output row the
// maximum over the window's rows (vectorised down the columns) into a
// -inf-padded scratch row, then over the window's columns at the stride
// (vectorised for strides 1 and 2). Unit strides take the separable passes
// of pool2dStride1. The values equal the reference's; where a window's
// maximum is a tie of -0 and +0 either may be returned (they compare equal),
// and of several NaNs any one.
func MaxPool2d(p PoolParams, x, y []float32) {
	if p.StrideH == 1 && p.StrideW == 1 {
		pool2dStride1(p, false, false, x, y)
		return
	}
	oh, ow := p.OutH(), p.OutW()
	if oh <= 0 || ow <= 0 {
		return
	}
	wp := max(p.W+2*p.PadW, (ow-1)*p.StrideW+p.KW)
	ParallelFor(p.NC, max(1, 16384/max(oh*ow*p.KH*p.KW, 1)), func(lo, hi int) {
		buf := make([]float32, wp) // [PadW -inf | column maxima | -inf ...]
		poolFill(buf, poolNegInf)
		mid := buf[p.PadW : p.PadW+p.W]
		for c := lo; c < hi; c++ {
			xp, yp := x[c*p.H*p.W:(c+1)*p.H*p.W], y[c*oh*ow:(c+1)*oh*ow]
			for i := 0; i < oh; i++ {
				r0 := i*p.StrideH - p.PadH
				r1 := min(r0+p.KH, p.H)
				r0 = max(r0, 0)
				yr := yp[i*ow : (i+1)*ow]
				if r0 >= r1 { // the window lies in the padding
					poolFill(yr, poolNegInf)
					continue
				}
				colMax(mid, xp[r0*p.W:], p.W, r1-r0)
				rowMax(yr, buf, p.KW, p.StrideW)
			}
		}
	})
}

// AvgPool2d computes AvgPool2dRef, planes in parallel (unit strides: two
// separable passes, see pool2dStride1). Each window is summed in float32 in
// the window's row-major order starting from +0 (the padding's zeros, when
// columns are padded, add exactly nothing), vectorised over the outputs of a
// row for column stride 2, which differs from the reference's float64 sums
// by rounding only.
func AvgPool2d(p PoolParams, countIncludePad bool, x, y []float32) {
	if p.StrideH == 1 && p.StrideW == 1 {
		pool2dStride1(p, true, countIncludePad, x, y)
		return
	}
	oh, ow := p.OutH(), p.OutW()
	if oh <= 0 || ow <= 0 {
		return
	}
	den := poolDen(p, countIncludePad)
	// Padded columns: the window's rows are copied into zero-padded scratch rows.
	wp := max(p.W+2*p.PadW, (ow-1)*p.StrideW+p.KW)
	direct := p.PadW == 0 && wp == p.W
	ParallelFor(p.NC, max(1, 16384/max(oh*ow*p.KH*p.KW, 1)), func(lo, hi int) {
		var buf []float32
		if !direct {
			buf = make([]float32, p.KH*wp)
		}
		for c := lo; c < hi; c++ {
			xp, yp := x[c*p.H*p.W:(c+1)*p.H*p.W], y[c*oh*ow:(c+1)*oh*ow]
			for i := 0; i < oh; i++ {
				r0 := i*p.StrideH - p.PadH
				r1 := min(r0+p.KH, p.H)
				r0 = max(r0, 0)
				rows := max(r1-r0, 0)
				var src []float32
				ld := p.W
				if rows > 0 {
					src = xp[r0*p.W:]
					if !direct {
						for r := 0; r < rows; r++ {
							copy(buf[r*wp+p.PadW:], xp[(r0+r)*p.W:(r0+r+1)*p.W])
						}
						src, ld = buf, wp
					}
				}
				rowsAvg(yp[i*ow:(i+1)*ow], src, den[i*ow:], ld, rows, p.KW, p.StrideW)
			}
		}
	})
}

// poolDen returns the divisors of AvgPool2dRef, [OutH, OutW] as float32.
func poolDen(p PoolParams, countIncludePad bool) []float32 {
	oh, ow := p.OutH(), p.OutW()
	den := make([]float32, oh*ow)
	for i := 0; i < oh; i++ {
		r0 := i*p.StrideH - p.PadH
		r1 := min(r0+p.KH, p.H+p.PadH)
		rd := r1 - r0
		if !countIncludePad {
			rd = min(r1, p.H) - max(r0, 0)
		}
		for j := 0; j < ow; j++ {
			q0 := j*p.StrideW - p.PadW
			q1 := min(q0+p.KW, p.W+p.PadW)
			qd := q1 - q0
			if !countIncludePad {
				qd = min(q1, p.W) - max(q0, 0)
			}
			den[i*ow+j] = float32(rd * qd)
		}
	}
	return den
}

// AdaptiveAvgPool2d computes AdaptiveAvgPool2dRef, planes in parallel (the
// global average, oh = ow = 1, sums each plane in float64 as the reference
// does).
func AdaptiveAvgPool2d(nc, h, w, oh, ow int, x, y []float32) {
	ParallelFor(nc, max(1, 65536/max(h*w, 1)), func(lo, hi int) {
		AdaptiveAvgPool2dRef(hi-lo, h, w, oh, ow, x[lo*h*w:hi*h*w], y[lo*oh*ow:hi*oh*ow])
	})
}

// ChannelAffine computes ChannelAffineRef, bit for bit (the same product
// then sum, the same ReLU, so NaN and -0 come out as there), rows of
// channels in parallel; when one map serves every element (c = 1, or no
// scale and no shift, as tensor.ReLU calls it) the whole span is split
// instead, so short rows cost nothing extra.
func ChannelAffine(n, c, hw int, x, scale, shift []float32, relu bool, y []float32) {
	floor := poolNegInf
	if relu {
		floor = 0
	}
	if c == 1 || (scale == nil && shift == nil) {
		a, b := float32(1), float32(0)
		if scale != nil {
			a = scale[0]
		}
		if shift != nil {
			b = shift[0]
		}
		ParallelFor(n*c*hw, 32768, func(lo, hi int) {
			affineSpan(x[lo:hi], y[lo:hi], a, b, floor)
		})
		return
	}
	ParallelFor(n*c, max(1, 32768/max(hw, 1)), func(lo, hi int) {
		for row := lo; row < hi; row++ {
			k := row % c
			a, b := float32(1), float32(0)
			if scale != nil {
				a = scale[k]
			}
			if shift != nil {
				b = shift[k]
			}
			affineSpan(x[row*hw:(row+1)*hw], y[row*hw:(row+1)*hw], a, b, floor)
		}
	})
}

// pool2dStride1 is max (avg false) or average pooling with unit strides (the
// 3x3 pools of Inception's blocks) as two separable passes per plane: each
// row, copied into a scratch row padded with the padding's value (0, or -inf
// for max) when columns are padded, reduced over its window of columns into
// a scratch plane, then each column of that over its window of rows (and
// divided by the window's size). Both passes are vectorised over a row; the
// sums run from +0 in column then row order, the order of the scalar loops
// this replaced, and the padding's zeros add exactly nothing.
func pool2dStride1(p PoolParams, avg, countIncludePad bool, x, y []float32) {
	oh, ow := p.OutH(), p.OutW()
	if oh <= 0 || ow <= 0 {
		return
	}
	var den []float32
	padv := poolNegInf
	if avg {
		den = poolDen(p, countIncludePad)
		padv = 0
	}
	wp := max(p.W+2*p.PadW, ow-1+p.KW)
	direct := p.PadW == 0 && wp == p.W
	ParallelFor(p.NC, max(1, 16384/max(oh*ow*p.KH*p.KW, 1)), func(lo, hi int) {
		tmp := make([]float32, p.H*ow)
		buf := make([]float32, wp) // [PadW padv | row | padv ...]
		poolFill(buf, padv)
		mid := buf[p.PadW : p.PadW+p.W]
		for c := lo; c < hi; c++ {
			xp, yp := x[c*p.H*p.W:(c+1)*p.H*p.W], y[c*oh*ow:(c+1)*oh*ow]
			for r := 0; r < p.H; r++ {
				src := xp[r*p.W : (r+1)*p.W]
				if !direct {
					copy(mid, src)
					src = buf
				}
				if avg {
					rowSum1(tmp[r*ow:(r+1)*ow], src, p.KW)
				} else {
					rowMax(tmp[r*ow:(r+1)*ow], src, p.KW, 1)
				}
			}
			for i := 0; i < oh; i++ {
				r0 := i - p.PadH
				r1 := min(r0+p.KH, p.H)
				r0 = max(r0, 0)
				rows := max(r1-r0, 0)
				var src []float32
				if rows > 0 {
					src = tmp[r0*ow:]
				}
				if avg {
					colAvg(yp[i*ow:(i+1)*ow], src, den[i*ow:], ow, rows)
				} else {
					colMax(yp[i*ow:(i+1)*ow], src, ow, rows)
				}
			}
		}
	})
}

package cpu

import (
	"math"
)

// Strided elementwise and reduction loops.
//
// Every operand is a buffer plus one stride per dimension of a common iteration
// shape: the element at multi-index (i_0, ..., i_{r-1}) of operand x lives at
// x[sum_d i_d*xs[d]]. A stride of 0 repeats (broadcasts) the operand along that
// dimension. Strides are never negative. Callers pass buffers that start at the
// operand's first element.
//
// Before iterating, the loops drop dimensions of size 1 and merge neighbouring
// dimensions that are contiguous in every operand, so that a dense tensor becomes
// one flat run. The innermost run then goes to a contiguous loop directly when all
// its strides are 1 (or 0 for a broadcast scalar operand), and through a small
// gather/scatter buffer otherwise. Large iteration spaces are split over up to
// Threads() goroutines.

// offsetOf returns sum_d idx[d]*st[d].
func offsetOf(idx, st []int) int {
	o := 0
	for d, i := range idx {
		o += i * st[d]
	}
	return o
}

// forEachIndex calls fn for every multi-index of shape in row-major order.
func forEachIndex(shape []int, fn func(idx []int)) {
	n := 1
	for _, s := range shape {
		n *= s
	}
	if n == 0 {
		return
	}
	idx := make([]int, len(shape))
	for e := 0; e < n; e++ {
		fn(idx)
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
}

// UnaryRef is the reference strided unary loop:
//
//	for every index i of shape: y[i·ys] = op(alpha, beta, x[i·xs])
func UnaryRef(op UnaryOp, alpha, beta float32, shape []int, y []float32, ys []int, x []float32, xs []int) {
	forEachIndex(shape, func(idx []int) {
		y[offsetOf(idx, ys)] = op.UnaryScalar(alpha, beta, x[offsetOf(idx, xs)])
	})
}

// BinaryRef is the reference strided binary loop:
//
//	for every index i of shape: y[i·ys] = op(a[i·as], b[i·bs])
func BinaryRef(op BinaryOp, shape []int, y []float32, ys []int, a []float32, as []int, b []float32, bs []int) {
	forEachIndex(shape, func(idx []int) {
		y[offsetOf(idx, ys)] = op.BinaryScalar(a[offsetOf(idx, as)], b[offsetOf(idx, bs)])
	})
}

// ReduceDimRef is the reference reduction along dimension dim of shape: for every
// index i of shape with i[dim] = 0,
//
//	y[i·ys] = op over j < shape[dim] of x[(i + j*e_dim)·xs]
//
// (ys[dim] is ignored). A reduction over zero elements gives 0 for RSum, NaN for
// RMean and RVar, and -Inf / +Inf for RMax / RMin.
func ReduceDimRef(op ReduceOp, shape []int, dim int, y []float32, ys []int, x []float32, xs []int) {
	outShape := append([]int(nil), shape...)
	outShape[dim] = 1
	n := shape[dim]
	forEachIndex(outShape, func(idx []int) {
		base := offsetOf(idx, xs)
		vals := make([]float64, n)
		for j := range vals {
			vals[j] = float64(x[base+j*xs[dim]])
		}
		var r float64
		switch op {
		case RSum, RMean, RVar:
			var s float64
			for _, v := range vals {
				s += v
			}
			r = s
			if op != RSum {
				r = s / float64(n)
			}
			if op == RVar {
				var q float64
				for _, v := range vals {
					q += (v - r) * (v - r)
				}
				r = q / float64(n)
			}
		case RMax:
			r = math.Inf(-1)
			for _, v := range vals {
				if v != v || v > r {
					r = v
				}
				if r != r {
					break
				}
			}
		case RMin:
			r = math.Inf(1)
			for _, v := range vals {
				if v != v || v < r {
					r = v
				}
				if r != r {
					break
				}
			}
		}
		y[offsetOf(idx, ys)] = float32(r)
	})
}

func checkStrided(name string, shape []int, strides ...[]int) int {
	n := 1
	for _, s := range shape {
		if s < 0 {
			panic("cpu: " + name + ": negative size")
		}
		n *= s
	}
	for _, st := range strides {
		if len(st) != len(shape) {
			panic("cpu: " + name + ": strides and shape differ in length")
		}
		for _, v := range st {
			if v < 0 {
				panic("cpu: " + name + ": negative stride")
			}
		}
	}
	return n
}

// elemGrain is the number of elements below which a loop stays on one goroutine.
const elemGrain = 1 << 15

// walk splits the flat index range [0, total) of the collapsed shape over
// goroutines and calls run(n, offs) for each innermost run of n elements, with
// offs[k] the starting offset of operand k. Each goroutine gets its own offs.
func walk(shape []int, strides [][]int, total int, run func(n int, offs []int)) {
	walkGrain(shape, strides, total, elemGrain, run)
}

const gatherBlock = 256

// Unary computes y = op(alpha, beta, x) elementwise over shape (see UnaryRef).
// y may be x itself (same strides) for an in-place update; otherwise y must not
// overlap x.
func Unary(op UnaryOp, alpha, beta float32, shape []int, y []float32, ys []int, x []float32, xs []int) {
	total := checkStrided("Unary", shape, ys, xs)
	if total == 0 {
		return
	}
	cs, cst := MergeDims(shape, ys, xs)
	yst, xst := cst[0], cst[1]
	r := len(cs)
	yi, xi := yst[r-1], xst[r-1]
	walk(cs, cst, total, func(n int, offs []int) {
		oy, ox := offs[0], offs[1]
		if yi == 1 && xi == 1 {
			unaryContig(op, alpha, beta, y[oy:oy+n], x[ox:ox+n])
			return
		}
		var buf [gatherBlock]float32
		for j0 := 0; j0 < n; j0 += gatherBlock {
			m := min(gatherBlock, n-j0)
			b := buf[:m]
			for j := range b {
				b[j] = x[ox+(j0+j)*xi]
			}
			unaryContig(op, alpha, beta, b, b)
			if yi == 1 {
				copy(y[oy+j0:oy+j0+m], b)
			} else {
				for j, v := range b {
					y[oy+(j0+j)*yi] = v
				}
			}
		}
	})
}

// unaryContig applies op to contiguous x into y (same length; y may be x).
func unaryContig(op UnaryOp, alpha, beta float32, y, x []float32) {
	y = y[:len(x)]
	switch op {
	case UCopy:
		copy(y, x)
	case UAffine:
		for i, v := range x {
			y[i] = alpha*v + beta
		}
	case UAbs:
		for i, v := range x {
			y[i] = math.Float32frombits(math.Float32bits(v) &^ (1 << 31))
		}
	case USquare:
		for i, v := range x {
			y[i] = v * v
		}
	case URecip:
		for i, v := range x {
			y[i] = 1 / v
		}
	case USqrt:
		for i, v := range x {
			y[i] = float32(math.Sqrt(float64(v)))
		}
	case URsqrt:
		for i, v := range x {
			y[i] = float32(1 / math.Sqrt(float64(v)))
		}
	case UClamp:
		for i, v := range x {
			if v == v {
				v = min(max(v, alpha), beta)
			}
			y[i] = v
		}
	default:
		for i, v := range x {
			y[i] = op.UnaryScalar(alpha, beta, v)
		}
	}
}

// Binary computes y = op(a, b) elementwise over shape (see BinaryRef). Broadcast
// operands have stride 0 along the broadcast dimensions. y may be a or b itself
// (same strides) for an in-place update; otherwise y must not overlap them.
func Binary(op BinaryOp, shape []int, y []float32, ys []int, a []float32, as []int, b []float32, bs []int) {
	total := checkStrided("Binary", shape, ys, as, bs)
	if total == 0 {
		return
	}
	cs, cst := MergeDims(shape, ys, as, bs)
	r := len(cs)
	yi, ai, bi := cst[0][r-1], cst[1][r-1], cst[2][r-1]
	walk(cs, cst, total, func(n int, offs []int) {
		oy, oa, ob := offs[0], offs[1], offs[2]
		if yi == 1 && (ai == 1 || ai == 0) && (bi == 1 || bi == 0) && !(ai == 0 && bi == 0) {
			ys := y[oy : oy+n]
			switch {
			case ai == 1 && bi == 1:
				binaryContig(op, ys, a[oa:oa+n], b[ob:ob+n])
			case bi == 0:
				binaryScalarB(op, ys, a[oa:oa+n], b[ob])
			default:
				binaryScalarA(op, ys, a[oa], b[ob:ob+n])
			}
			return
		}
		var ba, bb [gatherBlock]float32
		for j0 := 0; j0 < n; j0 += gatherBlock {
			m := min(gatherBlock, n-j0)
			pa, pb := ba[:m], bb[:m]
			for j := range pa {
				pa[j] = a[oa+(j0+j)*ai]
			}
			for j := range pb {
				pb[j] = b[ob+(j0+j)*bi]
			}
			binaryContig(op, pa, pa, pb)
			if yi == 1 {
				copy(y[oy+j0:oy+j0+m], pa)
			} else {
				for j, v := range pa {
					y[oy+(j0+j)*yi] = v
				}
			}
		}
	})
}

func binaryContig(op BinaryOp, y, a, b []float32) {
	y = y[:len(a)]
	b = b[:len(a)]
	switch op {
	case BAdd:
		for i := range y {
			y[i] = a[i] + b[i]
		}
	case BSub:
		for i := range y {
			y[i] = a[i] - b[i]
		}
	case BMul:
		for i := range y {
			y[i] = a[i] * b[i]
		}
	case BDiv:
		for i := range y {
			y[i] = a[i] / b[i]
		}
	default:
		for i := range y {
			y[i] = op.BinaryScalar(a[i], b[i])
		}
	}
}

func binaryScalarB(op BinaryOp, y, a []float32, s float32) {
	y = y[:len(a)]
	switch op {
	case BAdd:
		for i, v := range a {
			y[i] = v + s
		}
	case BSub:
		for i, v := range a {
			y[i] = v - s
		}
	case BMul:
		for i, v := range a {
			y[i] = v * s
		}
	case BDiv:
		for i, v := range a {
			y[i] = v / s
		}
	default:
		for i, v := range a {
			y[i] = op.BinaryScalar(v, s)
		}
	}
}

func binaryScalarA(op BinaryOp, y []float32, s float32, b []float32) {
	y = y[:len(b)]
	switch op {
	case BAdd:
		for i, v := range b {
			y[i] = s + v
		}
	case BSub:
		for i, v := range b {
			y[i] = s - v
		}
	case BMul:
		for i, v := range b {
			y[i] = s * v
		}
	case BDiv:
		for i, v := range b {
			y[i] = s / v
		}
	default:
		for i, v := range b {
			y[i] = op.BinaryScalar(s, v)
		}
	}
}

// CopyStrided copies src into dst elementwise over shape, for any element type:
//
//	for every index i of shape: dst[i·ds] = src[i·ss]
//
// dst must not overlap src.
func CopyStrided[T any](shape []int, dst []T, ds []int, src []T, ss []int) {
	total := checkStrided("CopyStrided", shape, ds, ss)
	if total == 0 {
		return
	}
	cs, cst := MergeDims(shape, ds, ss)
	r := len(cs)
	di, si := cst[0][r-1], cst[1][r-1]
	if useTransTiles && r >= 2 && di == 1 && si > 1 && cs[r-1] >= transTile/2 {
		// A transposing copy (e.g. NCHW -> NHWC): go tile by tile through the
		// dimension that is contiguous in src, so both sides stay in cache.
		for j := r - 2; j >= 0; j-- {
			if cst[1][j] == 1 && cs[j] >= transTile/2 {
				copyTransposed(cs, cst[0], cst[1], j, dst, src)
				return
			}
		}
	}
	walk(cs, cst, total, func(n int, offs []int) {
		od, os := offs[0], offs[1]
		switch {
		case di == 1 && si == 1:
			copy(dst[od:od+n], src[os:os+n])
		case di == 1 && si == 0:
			v := src[os]
			d := dst[od : od+n]
			for j := range d {
				d[j] = v
			}
		default:
			for j := 0; j < n; j++ {
				dst[od+j*di] = src[os+j*si]
			}
		}
	})
}

const transTile = 32

// useTransTiles enables copyTransposed (benchmarks switch it off for comparison).
var useTransTiles = true

// copyTransposed copies over shape where dim j is contiguous in src and the last
// dim is contiguous in dst, in transTile x transTile tiles of (j, last).
func copyTransposed[T any](shape, ds, ss []int, j int, dst, src []T) {
	r := len(shape)
	nj, nl := shape[j], shape[r-1]
	dj, sl := ds[j], ss[r-1]
	var outer, od, os []int
	for d := 0; d < r-1; d++ {
		if d != j {
			outer = append(outer, shape[d])
			od = append(od, ds[d])
			os = append(os, ss[d])
		}
	}
	nOuter := 1
	for _, v := range outer {
		nOuter *= v
	}
	jBlocks := (nj + transTile - 1) / transTile
	tasks := nOuter * jBlocks
	grain := max(1, elemGrain/(transTile*nl))
	ParallelFor(tasks, grain, func(lo, hi int) {
		for task := lo; task < hi; task++ {
			o, jb := task/jBlocks, task%jBlocks
			offD, offS := 0, 0
			for d := len(outer) - 1; d >= 0; d-- {
				i := o % outer[d]
				o /= outer[d]
				offD += i * od[d]
				offS += i * os[d]
			}
			j0 := jb * transTile
			j1 := min(j0+transTile, nj)
			for l0 := 0; l0 < nl; l0 += transTile {
				l1 := min(l0+transTile, nl)
				for jj := j0; jj < j1; jj++ {
					drow := dst[offD+jj*dj+l0 : offD+jj*dj+l1]
					sp := offS + jj + l0*sl
					for l := range drow {
						drow[l] = src[sp+l*sl]
					}
				}
			}
		}
	})
}

// ReduceDim reduces x along dimension dim of shape into y (see ReduceDimRef; ys[dim]
// is ignored). y must not overlap x.
func ReduceDim(op ReduceOp, shape []int, dim int, y []float32, ys []int, x []float32, xs []int) {
	checkStrided("ReduceDim", shape, ys, xs)
	if dim < 0 || dim >= len(shape) {
		panic("cpu: ReduceDim: dim out of range")
	}
	n, step := shape[dim], xs[dim]
	outer, yst, xst := reduceOuter(shape, dim, ys, xs)
	total := 1
	for _, s := range outer {
		total *= s
	}
	if total == 0 {
		return
	}
	cs, cst := MergeDims(outer, yst, xst)
	r := len(cs)
	yi, xi := cst[0][r-1], cst[1][r-1]
	// Parallel grain in output elements: aim for elemGrain input elements per chunk.
	walkGrain(cs, cst, total, max(1, elemGrain/max(n, 1)), func(m int, offs []int) {
		oy, ox := offs[0], offs[1]
		for e := 0; e < m; e++ {
			y[oy+e*yi] = reduce1(op, x[ox+e*xi:], n, step)
		}
	})
}

// reduceOuter returns shape and strides with dim dropped.
func reduceOuter(shape []int, dim int, ys, xs []int) (outer, yst, xst []int) {
	for d := range shape {
		if d == dim {
			continue
		}
		outer = append(outer, shape[d])
		yst = append(yst, ys[d])
		xst = append(xst, xs[d])
	}
	if len(outer) == 0 {
		outer, yst, xst = []int{1}, []int{0}, []int{0}
	}
	return
}

// walkGrain is walk with an explicit parallel grain (in flat elements).
func walkGrain(shape []int, strides [][]int, total, grain int, run func(n int, offs []int)) {
	r := len(shape)
	inner := shape[r-1]
	ParallelFor(total, grain, func(lo, hi int) {
		idx := make([]int, r)
		offs := make([]int, len(strides))
		rem := lo
		for d := r - 1; d >= 0; d-- {
			idx[d] = rem % shape[d]
			rem /= shape[d]
		}
		for k, st := range strides {
			offs[k] = offsetOf(idx, st)
		}
		for e := lo; e < hi; {
			n := min(inner-idx[r-1], hi-e)
			run(n, offs)
			e += n
			idx[r-1] += n
			for k, st := range strides {
				offs[k] += n * st[r-1]
			}
			for d := r - 1; d > 0 && idx[d] == shape[d]; d-- {
				idx[d] = 0
				idx[d-1]++
				for k, st := range strides {
					offs[k] += st[d-1] - shape[d]*st[d]
				}
			}
		}
	})
}

// reduce1 reduces the n elements x[0], x[step], ... x[(n-1)*step].
func reduce1(op ReduceOp, x []float32, n, step int) float32 {
	switch op {
	case RSum, RMean, RVar:
		var s float64
		if step == 1 {
			for _, v := range x[:n] {
				s += float64(v)
			}
		} else {
			for j := 0; j < n; j++ {
				s += float64(x[j*step])
			}
		}
		if op == RSum {
			return float32(s)
		}
		mean := s / float64(n)
		if op == RMean {
			return float32(mean)
		}
		var q float64
		for j := 0; j < n; j++ {
			d := float64(x[j*step]) - mean
			q += d * d
		}
		return float32(q / float64(n))
	case RMax:
		r := float32(math.Inf(-1))
		for j := 0; j < n; j++ {
			v := x[j*step]
			if v != v {
				return v
			}
			if v > r {
				r = v
			}
		}
		return r
	case RMin:
		r := float32(math.Inf(1))
		for j := 0; j < n; j++ {
			v := x[j*step]
			if v != v {
				return v
			}
			if v < r {
				r = v
			}
		}
		return r
	}
	panic("cpu: unknown ReduceOp")
}

// ArgMaxDim writes into y the index along dim of the first maximum of x (see
// ReduceDimRef for the layout; a NaN counts as the maximum, as in PyTorch):
//
//	y[i·ys] = argmax_j x[(i + j*e_dim)·xs]
func ArgMaxDim(shape []int, dim int, y []int64, ys []int, x []float32, xs []int) {
	checkStrided("ArgMaxDim", shape, ys, xs)
	if dim < 0 || dim >= len(shape) {
		panic("cpu: ArgMaxDim: dim out of range")
	}
	n, step := shape[dim], xs[dim]
	if n == 0 {
		panic("cpu: ArgMaxDim: empty dimension")
	}
	outer, yst, xst := reduceOuter(shape, dim, ys, xs)
	total := 1
	for _, s := range outer {
		total *= s
	}
	if total == 0 {
		return
	}
	cs, cst := MergeDims(outer, yst, xst)
	r := len(cs)
	yi, xi := cst[0][r-1], cst[1][r-1]
	walkGrain(cs, cst, total, max(1, elemGrain/n), func(m int, offs []int) {
		oy, ox := offs[0], offs[1]
		for e := 0; e < m; e++ {
			xr := x[ox+e*xi:]
			best, bi := xr[0], 0
			for j := 1; j < n && best == best; j++ {
				v := xr[j*step]
				if v > best || v != v {
					best, bi = v, j
				}
			}
			y[oy+e*yi] = int64(bi)
		}
	})
}

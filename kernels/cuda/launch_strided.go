//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/kernels"
)

// Launchers of the strided kernels over views (elementwise.cu): the semantics
// of kernels/cpu.CopyStrided, UnaryRef and BinaryRef. Strides count elements
// from each buffer's first element; a stride of 0 broadcasts an input. The
// dimensions are merged where every operand is contiguous (see kernels.MergeDims), and
// at most 6 may remain.

// addStrided appends rank, n, the sizes and every operand's strides to a.
func (a *args) addStrided(p stridedDims) *args {
	a.i32(p.rank).i64(p.n)
	for _, s := range p.sizes {
		a.i64(s)
	}
	for _, st := range p.strides {
		for _, v := range st {
			a.i64(v)
		}
	}
	return a
}

// needStrided panics unless b holds every element that strides st reach over shape.
func needStrided(op, what string, b *Buffer, shape, st []int) {
	if b == nil {
		panic(fmt.Sprintf("cuda: %s: %s is nil", op, what))
	}
	if e := kernels.Span(shape, st); b.n < e {
		panic(fmt.Sprintf("cuda: %s: %s has %d elements, shape %v with strides %v needs %d",
			op, what, b.n, shape, st, e))
	}
}

// noOutputBroadcast panics when an output stride is 0 along a dimension of
// size > 1 (several threads would write one element).
func noOutputBroadcast(op string, shape, st []int) {
	for d, s := range shape {
		if s > 1 && st[d] == 0 {
			panic(fmt.Sprintf("cuda: %s: output stride 0 along dimension %d of size %d (shape %v, strides %v)",
				op, d, s, shape, st))
		}
	}
}

// CopyStrided copies src into dst elementwise over shape; both buffers of one
// dtype; strides in elements from each buffer's first element (src strides may
// be 0). See kernels/cpu.CopyStrided:
//
//	for every index i of shape: dst[i·dstStrides] = src[i·srcStrides]
//
// dst must not overlap src.
func (d *Device) CopyStrided(shape []int, dst *Buffer, dstStrides []int, src *Buffer, srcStrides []int) error {
	const op = "CopyStrided"
	n := checkStrided(op, shape, dstStrides, srcStrides)
	needStrided(op, "dst", dst, shape, dstStrides)
	needStrided(op, "src", src, shape, srcStrides)
	dt := sameDType(op, dst, src)
	noOutputBroadcast(op, shape, dstStrides)
	if n == 0 {
		return nil
	}
	p := packStrided(op, shape, dstStrides, srcStrides)
	name := "copy_strided_b32"
	if elemSize(dt) == 2 {
		name = "copy_strided_b16"
	}
	a := new(args).ptr(dst).ptr(src).addStrided(p)
	return d.queue(func() error { return d.launch("elementwise", name, d.ewGrid(n), 256, a) })
}

// Unary computes y = op(alpha, beta, x) elementwise over shape (see
// kernels/cpu.UnaryRef): y and x may each be F32, F16 or BF16; the arithmetic
// is in float32 (transcendentals in float64, as UnaryScalar), rounded once to
// y's dtype. y may be x itself (same strides) for an in-place update;
// otherwise y must not overlap x.
//
//	for every index i of shape: y[i·ys] = op(alpha, beta, x[i·xs])
func (d *Device) Unary(op kernels.UnaryOp, alpha, beta float32, shape []int, y *Buffer, ys []int, x *Buffer, xs []int) error {
	const name = "Unary"
	if op > kernels.URecip {
		panic(fmt.Sprintf("cuda: Unary: unknown op %d", op))
	}
	n := checkStrided(name, shape, ys, xs)
	needStrided(name, "y", y, shape, ys)
	needStrided(name, "x", x, shape, xs)
	noOutputBroadcast(name, shape, ys)
	if n == 0 {
		return nil
	}
	p := packStrided(name, shape, ys, xs)
	a := new(args).i32(int(op)).f32(alpha).f32(beta).ptr(y).dtype(y.dtype).ptr(x).dtype(x.dtype).addStrided(p)
	return d.queue(func() error { return d.launch("elementwise", "unary_strided", d.ewGrid(n), 256, a) })
}

// Binary computes y = op(a, b) elementwise over shape (see kernels/cpu.BinaryRef);
// y, a and b may each be F32, F16 or BF16 (float32 arithmetic, one rounding to
// y's dtype). Broadcast operands have stride 0 along the broadcast dimensions.
// y may be a or b itself (same strides) for an in-place update; otherwise y
// must not overlap them.
//
//	for every index i of shape: y[i·ys] = op(a[i·as], b[i·bs])
func (d *Device) Binary(op kernels.BinaryOp, shape []int, y *Buffer, ys []int, a *Buffer, as []int, b *Buffer, bs []int) error {
	const name = "Binary"
	if op > kernels.BMin {
		panic(fmt.Sprintf("cuda: Binary: unknown op %d", op))
	}
	n := checkStrided(name, shape, ys, as, bs)
	needStrided(name, "y", y, shape, ys)
	needStrided(name, "a", a, shape, as)
	needStrided(name, "b", b, shape, bs)
	noOutputBroadcast(name, shape, ys)
	if n == 0 {
		return nil
	}
	p := packStrided(name, shape, ys, as, bs)
	ar := new(args).i32(int(op)).ptr(y).dtype(y.dtype).ptr(a).dtype(a.dtype).ptr(b).dtype(b.dtype).addStrided(p)
	return d.queue(func() error { return d.launch("elementwise", "binary_strided", d.ewGrid(n), 256, ar) })
}

// Fill sets the first n elements of b (n <= b.Len()) to v converted to b's
// dtype (round to nearest even, as kernels.F32ToF16Scalar and F32ToBF16Scalar).
func (d *Device) Fill(b *Buffer, n int, v float32) error {
	if n < 0 {
		panic(fmt.Sprintf("cuda: Fill: negative count %d", n))
	}
	need("Fill", "b", b, n)
	if n == 0 {
		return nil
	}
	var bits uint32
	name := "fill_b16"
	switch b.dtype {
	case kernels.F32:
		bits, name = math.Float32bits(v), "fill_b32"
	case kernels.F16:
		bits = uint32(kernels.F32ToF16Scalar(v))
	case kernels.BF16:
		bits = uint32(kernels.F32ToBF16Scalar(v))
	default:
		panic(fmt.Sprintf("cuda: Fill: unsupported dtype %v", b.dtype))
	}
	a := new(args).ptr(b).i64(n).i32(int(int32(bits)))
	return d.queue(func() error { return d.launch("elementwise", name, d.ewGrid(n), 256, a) })
}

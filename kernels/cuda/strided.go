package cuda

import (
	"fmt"

	"github.com/roentgo/roentgo/kernels"
)

// Shape and stride handling of the strided kernels (copy_strided_*,
// unary_strided, binary_strided in elementwise.cu). It needs no GPU, so it is
// built without the cuda tag and unit-tested on any machine.

// maxStridedDims is the most dimensions the strided kernels take after merging.
const maxStridedDims = 6

// checkStrided validates a strided call (non-negative sizes, one stride per
// dimension for every operand, non-negative strides) and returns the number of
// elements of shape. It panics with "cuda: op: ..." on misuse.
func checkStrided(op string, shape []int, strides ...[]int) int {
	n := 1
	for _, s := range shape {
		if s < 0 {
			panic(fmt.Sprintf("cuda: %s: negative size in shape %v", op, shape))
		}
		n *= s
	}
	for k, st := range strides {
		if len(st) != len(shape) {
			panic(fmt.Sprintf("cuda: %s: operand %d has %d strides for the %d dimensions of shape %v",
				op, k, len(st), len(shape), shape))
		}
		for _, v := range st {
			if v < 0 {
				panic(fmt.Sprintf("cuda: %s: negative stride in %v", op, st))
			}
		}
	}
	return n
}

// stridedDims is the kernel form of a strided iteration: rank <= 6, then the
// sizes and each operand's strides innermost first (index 0 is the last,
// fastest-varying dimension of the shape), unused dimensions size 1, stride 0.
type stridedDims struct {
	rank    int
	n       int
	sizes   [maxStridedDims]int
	strides [][maxStridedDims]int // one per operand
}

// packStrided merges the dimensions of shape (see kernels.MergeDims) and lays them out
// for the kernels. It panics when more than 6 dimensions remain.
func packStrided(op string, shape []int, strides ...[]int) stridedDims {
	ms, mst := kernels.MergeDims(shape, strides...)
	if len(ms) > maxStridedDims {
		panic(fmt.Sprintf("cuda: %s: more than %d dimensions after merging (shape %v, strides %v merge to %v)",
			op, maxStridedDims, shape, strides, ms))
	}
	p := stridedDims{rank: len(ms), n: 1, strides: make([][maxStridedDims]int, len(strides))}
	for k := range p.sizes {
		p.sizes[k] = 1
	}
	r := len(ms)
	for d, s := range ms {
		p.n *= s
		p.sizes[r-1-d] = s
		for k := range mst {
			p.strides[k][r-1-d] = mst[k][d]
		}
	}
	return p
}

// offsets computes what the kernels' strided_offsets does for flat index i:
// the offset of element i (row-major over the packed shape) in each operand.
// Used by the tests to check the packed layout.
func (p stridedDims) offsets(i int) []int {
	off := make([]int, len(p.strides))
	for k := 0; k < maxStridedDims; k++ {
		if k >= p.rank-1 {
			for o := range off {
				off[o] += i * p.strides[o][k]
			}
			break
		}
		q, r := i/p.sizes[k], i%p.sizes[k]
		for o := range off {
			off[o] += r * p.strides[o][k]
		}
		i = q
	}
	return off
}

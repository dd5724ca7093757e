package cuda

import "fmt"

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

// stridedExtent returns the number of elements an operand with strides st
// spans over shape: its largest offset plus one (0 for an empty shape).
func stridedExtent(shape, st []int) int {
	e := 1
	for d, s := range shape {
		if s == 0 {
			return 0
		}
		e += (s - 1) * st[d]
	}
	return e
}

// mergeDims drops dimensions of size 1 and merges dimension d into d+1 where
// every operand is contiguous across them (stride[d] == stride[d+1]*size[d+1]),
// so that the merged shape visits the same offsets in the same (row-major)
// order. It returns at least one dimension (size 1, strides 0 when every
// dimension had size 1). The inputs are not modified.
func mergeDims(shape []int, strides ...[]int) ([]int, [][]int) {
	ms := make([]int, 0, len(shape))
	mst := make([][]int, len(strides))
	for k := range mst {
		mst[k] = make([]int, 0, len(shape))
	}
	for d, s := range shape {
		if s == 1 {
			continue
		}
		if last := len(ms) - 1; last >= 0 {
			ok := true
			for k, st := range strides {
				if mst[k][last] != st[d]*s {
					ok = false
					break
				}
			}
			if ok {
				ms[last] *= s
				for k, st := range strides {
					mst[k][last] = st[d]
				}
				continue
			}
		}
		ms = append(ms, s)
		for k, st := range strides {
			mst[k] = append(mst[k], st[d])
		}
	}
	if len(ms) == 0 {
		ms = append(ms, 1)
		for k := range mst {
			mst[k] = append(mst[k], 0)
		}
	}
	return ms, mst
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

// packStrided merges the dimensions of shape (see mergeDims) and lays them out
// for the kernels. It panics when more than 6 dimensions remain.
func packStrided(op string, shape []int, strides ...[]int) stridedDims {
	ms, mst := mergeDims(shape, strides...)
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

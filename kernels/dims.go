package kernels

// Strided operands: an operand of an iteration shape is a buffer plus one
// stride per dimension; the element at multi-index (i_0, ..., i_{r-1}) lives at
// x[sum_d i_d*xs[d]]. A stride of 0 repeats (broadcasts) the operand along that
// dimension. Strides are never negative, and buffers start at the operand's
// first element.

// Span returns how many elements a strided operand covers from its first one:
// the largest offset of an index of shape with strides st, plus one (0 when
// shape has no elements). Strides must be non-negative.
func Span(shape, st []int) int {
	e := 1
	for d, s := range shape {
		if s == 0 {
			return 0
		}
		e += (s - 1) * st[d]
	}
	return e
}

// MergeDims drops size-1 dimensions and merges dimension d into d+1 where every
// operand is contiguous across them (strides[d] == strides[d+1]*shape[d+1]), so
// that the merged shape visits the same offsets in the same row-major order
// with fewer, longer loops. It returns the new shape and strides, with at
// least one dimension (size 1, strides 0 when every size was 1); the inputs
// are not modified. The strided loops of kernels/cpu and the CUDA launchers
// use it.
func MergeDims(shape []int, strides ...[]int) ([]int, [][]int) {
	cs := make([]int, 0, len(shape))
	cst := make([][]int, len(strides))
	for k := range cst {
		cst[k] = make([]int, 0, len(shape))
	}
	for d, s := range shape {
		if s == 1 {
			continue
		}
		if len(cs) > 0 {
			last := len(cs) - 1
			ok := true
			for k, st := range strides {
				if cst[k][last] != st[d]*s {
					ok = false
					break
				}
			}
			if ok {
				cs[last] *= s
				for k, st := range strides {
					cst[k][last] = st[d]
				}
				continue
			}
		}
		cs = append(cs, s)
		for k, st := range strides {
			cst[k] = append(cst[k], st[d])
		}
	}
	if len(cs) == 0 {
		cs = append(cs, 1)
		for k := range cst {
			cst[k] = append(cst[k], 0)
		}
	}
	return cs, cst
}

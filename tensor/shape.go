package tensor

import (
	"fmt"
	"strings"
)

// Shape is the size of each dimension of a tensor, outermost first (PyTorch
// order: [N, C, H, W] for images). A Shape of length 0 is a scalar.
type Shape []int

// Numel returns the number of elements, the product of the sizes (1 for a scalar).
func (s Shape) Numel() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Rank returns the number of dimensions.
func (s Shape) Rank() int { return len(s) }

// Equal reports whether s and o have the same sizes.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Clone returns a copy of s.
func (s Shape) Clone() Shape { return append(Shape(nil), s...) }

// String formats s like "[2, 3, 4]".
func (s Shape) String() string {
	var b strings.Builder
	b.WriteByte('[')
	for i, d := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, d)
	}
	b.WriteByte(']')
	return b.String()
}

// contiguousStrides returns the row-major strides of s.
func contiguousStrides(s Shape) []int {
	st := make([]int, len(s))
	acc := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = acc
		acc *= s[i]
	}
	return st
}

// BroadcastShapes returns the NumPy/PyTorch broadcast of the shapes (aligned at
// the last dimension; sizes must match or be 1). It panics if they do not
// broadcast.
func BroadcastShapes(shapes ...Shape) Shape {
	r := 0
	for _, s := range shapes {
		r = max(r, len(s))
	}
	out := make(Shape, r)
	for i := range out {
		out[i] = 1
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := out[off+i]
			switch {
			case d == o || d == 1:
			case o == 1:
				out[off+i] = d
			default:
				panic(fmt.Sprintf("tensor: broadcast: shapes %v do not broadcast (dim %d: %d vs %d)", shapes, off+i-r, o, d))
			}
		}
	}
	return out
}

// normDim maps a possibly negative dim (counted from the end) to [0, rank) or panics.
func normDim(op string, dim, rank int) int {
	d := dim
	if d < 0 {
		d += rank
	}
	if d < 0 || d >= rank {
		panic(fmt.Sprintf("tensor: %s: dim %d out of range for rank %d", op, dim, rank))
	}
	return d
}

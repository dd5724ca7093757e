//go:build !cuda

package cuda

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/kernels"
)

// rowMajorOffsets lists, for every multi-index of shape in row-major order, the
// offset of that element in each operand (flattened: len(strides) per index).
func rowMajorOffsets(shape []int, strides ...[]int) []int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	var out []int
	idx := make([]int, len(shape))
	for e := 0; e < n; e++ {
		for _, st := range strides {
			o := 0
			for d, i := range idx {
				o += i * st[d]
			}
			out = append(out, o)
		}
		for d := len(shape) - 1; d >= 0; d-- {
			idx[d]++
			if idx[d] < shape[d] {
				break
			}
			idx[d] = 0
		}
	}
	return out
}

// randomLayout returns strides of an operand viewing shape: a contiguous buffer
// in a random dimension order (a transpose), with random dimensions broadcast
// (stride 0) and an occasional gap (padded rows).
func randomLayout(r *rand.Rand, shape []int) []int {
	perm := r.Perm(len(shape))
	st := make([]int, len(shape))
	acc := 1
	for i := len(perm) - 1; i >= 0; i-- {
		d := perm[i]
		st[d] = acc
		acc *= max(shape[d], 1)
		if r.IntN(5) == 0 {
			acc += r.IntN(3) // padding after this dimension
		}
	}
	for d := range st {
		if r.IntN(6) == 0 {
			st[d] = 0
		}
	}
	return st
}

func TestMergeDims(t *testing.T) {
	fixed := []struct {
		shape   []int
		strides [][]int
		want    []int
	}{
		{[]int{2, 3, 4, 5}, [][]int{{60, 20, 5, 1}, {60, 20, 5, 1}}, []int{120}},
		{[]int{2, 3, 4, 5}, [][]int{{60, 20, 5, 1}, {60, 20, 5, 1}, {0, 1, 0, 0}}, []int{2, 3, 20}}, // channel bias
		{[]int{4, 5}, [][]int{{5, 1}, {1, 4}}, []int{4, 5}},                                         // transpose
		{[]int{1, 1, 1}, [][]int{{7, 7, 7}}, []int{1}},
		{[]int{3, 1, 4}, [][]int{{4, 99, 1}}, []int{12}},
		{[]int{0, 5}, [][]int{{5, 1}}, []int{0}},
	}
	for _, c := range fixed {
		got, _ := kernels.MergeDims(c.shape, c.strides...)
		if !slices.Equal(got, c.want) {
			t.Errorf("kernels.MergeDims(%v, %v) shape %v, want %v", c.shape, c.strides, got, c.want)
		}
		got2, gst := kernels.MergeDims(c.shape, c.strides...)
		if !slices.Equal(rowMajorOffsets(got2, gst...), rowMajorOffsets(c.shape, c.strides...)) {
			t.Errorf("kernels.MergeDims(%v, %v): merged offsets differ", c.shape, c.strides)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for it := 0; it < 3000; it++ {
		rank := r.IntN(9)
		shape := make([]int, rank)
		for d := range shape {
			shape[d] = []int{1, 1, 2, 3, 4, 5}[r.IntN(6)]
		}
		if r.IntN(50) == 0 && rank > 0 {
			shape[r.IntN(rank)] = 0
		}
		nop := 1 + r.IntN(3)
		strides := make([][]int, nop)
		for k := range strides {
			strides[k] = randomLayout(r, shape)
		}
		keepShape, keepSt := slices.Clone(shape), make([][]int, nop)
		for k := range strides {
			keepSt[k] = slices.Clone(strides[k])
		}
		ms, mst := kernels.MergeDims(shape, strides...)
		name := fmt.Sprintf("shape %v strides %v -> %v %v", shape, strides, ms, mst)
		if !slices.Equal(shape, keepShape) || !slices.EqualFunc(strides, keepSt, slices.Equal[[]int]) {
			t.Fatalf("%s: inputs modified", name)
		}
		if len(ms) == 0 || len(mst) != nop {
			t.Fatalf("%s: empty result or wrong operand count", name)
		}
		for d, s := range ms {
			if s == 1 && len(ms) > 1 {
				t.Errorf("%s: size-1 dimension %d kept", name, d)
			}
			if d > 0 {
				all := true
				for k := range mst {
					all = all && mst[k][d-1] == mst[k][d]*s
				}
				if all {
					t.Errorf("%s: dimensions %d and %d could still merge", name, d-1, d)
				}
			}
		}
		want := rowMajorOffsets(shape, strides...)
		if got := rowMajorOffsets(ms, mst...); !slices.Equal(got, want) {
			t.Fatalf("%s: merged offsets %v, want %v", name, got, want)
		}
		if len(ms) > maxStridedDims {
			continue
		}
		p := packStrided("Test", shape, strides...)
		if p.n != len(want)/nop {
			t.Fatalf("%s: packed n %d, want %d", name, p.n, len(want)/nop)
		}
		for k := p.rank; k < maxStridedDims; k++ {
			for o := range p.strides {
				if p.sizes[k] != 1 || p.strides[o][k] != 0 {
					t.Fatalf("%s: unused packed dimension %d is size %d stride %d", name, k, p.sizes[k], p.strides[o][k])
				}
			}
		}
		var got []int
		for i := 0; i < p.n; i++ {
			got = append(got, p.offsets(i)...)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: packed (rank %d sizes %v strides %v) offsets %v, want %v", name, p.rank, p.sizes, p.strides, got, want)
		}
		for k, st := range strides {
			mx := -1
			for i := k; i < len(want); i += nop {
				mx = max(mx, want[i])
			}
			if e := kernels.Span(shape, st); e != mx+1 {
				t.Fatalf("%s: stridedExtent of operand %d = %d, max offset + 1 = %d", name, k, e, mx+1)
			}
		}
	}
}

func mustPanic(t *testing.T, want string, fn func()) {
	t.Helper()
	defer func() {
		t.Helper()
		r := recover()
		if r == nil {
			t.Errorf("no panic, want one containing %q", want)
			return
		}
		if s := fmt.Sprint(r); !strings.HasPrefix(s, "cuda: ") || !strings.Contains(s, want) {
			t.Errorf("panic %q, want one starting with \"cuda: \" and containing %q", s, want)
		}
	}()
	fn()
}

func TestStridedMisuse(t *testing.T) {
	// 7 dimensions that cannot merge (every operand transposed against the next).
	shape := []int{2, 2, 2, 2, 2, 2, 2}
	st := []int{1, 2, 4, 8, 16, 32, 64}
	mustPanic(t, "Op: more than 6 dimensions after merging", func() { packStrided("Op", shape, st) })
	// The same 7 dims but contiguous: merges to 1.
	if p := packStrided("Op", shape, []int{64, 32, 16, 8, 4, 2, 1}); p.rank != 1 || p.n != 128 {
		t.Errorf("contiguous 7-d shape packed to rank %d n %d, want 1, 128", p.rank, p.n)
	}
	mustPanic(t, "negative stride", func() { checkStrided("Op", []int{2, 3}, []int{3, 1}, []int{-1, 1}) })
	mustPanic(t, "negative size", func() { checkStrided("Op", []int{2, -3}, []int{3, 1}) })
	mustPanic(t, "operand 1 has 1 strides", func() { checkStrided("Op", []int{2, 3}, []int{3, 1}, []int{1}) })
	if n := checkStrided("Op", []int{2, 3, 4}, []int{12, 4, 1}, []int{0, 0, 1}); n != 24 {
		t.Errorf("checkStrided count %d, want 24", n)
	}
	if n := checkStrided("Op", nil, nil); n != 1 {
		t.Errorf("checkStrided of a scalar: %d elements, want 1", n)
	}
	if p := packStrided("Op", nil, nil, nil); p.rank != 1 || p.n != 1 || p.sizes[0] != 1 || p.strides[1][0] != 0 {
		t.Errorf("scalar packed to %+v", p)
	}
}

package cpu

import (
	"fmt"
	"slices"
	"sort"
)

// Upsample2xBackward computes the gradient of Upsample2x: dx [nc, h, w] is dy
// [nc, 2h, 2w] summed over each 2x2 block (see Upsample2xBackwardRef), as
// (dy[2i][2j] + dy[2i][2j+1]) + (dy[2i+1][2j] + dy[2i+1][2j+1]) in float32.
// Rows of dx are split over ParallelFor.
func Upsample2xBackward(dy, dx []float32, nc, h, w int) {
	checkLen("Upsample2xBackward", "dy", len(dy), nc*h*w*4)
	checkLen("Upsample2xBackward", "dx", len(dx), nc*h*w)
	if w == 0 {
		return
	}
	ParallelFor(nc*h, max(1, actGrain/(4*w)), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			// input rows 2t and 2t+1 (c*2h + 2i = 2(c*h + i))
			d0 := dy[2*t*2*w : (2*t+1)*2*w]
			d1 := dy[(2*t+1)*2*w : (2*t+2)*2*w]
			out := dx[t*w : (t+1)*w]
			d0, d1 = d0[:2*len(out)], d1[:2*len(out)]
			for j := range out {
				out[j] = (d0[2*j] + d0[2*j+1]) + (d1[2*j] + d1[2*j+1])
			}
		}
	})
}

// EmbeddingGradRows returns the sorted distinct ids, the rows of the sparse
// gradient of an embedding lookup with these ids (the layout of the golden
// data: rows, then rows_grad [len(rows), d] from EmbeddingBackwardSparse). It
// panics if an id is outside [0, vocab).
func EmbeddingGradRows(ids []int64, vocab int) []int64 {
	for _, id := range ids {
		if id < 0 || id >= int64(vocab) {
			panic(fmt.Sprintf("cpu: EmbeddingGradRows: id %d out of range [0, %d)", id, vocab))
		}
	}
	rows := slices.Clone(ids)
	slices.Sort(rows)
	return slices.Compact(rows)
}

// EmbeddingBackwardSparse computes the gradient rows of an embedding lookup
// (out[p, :] = table[ids[p], :]): for each k, grad[k, :] [len(rows), d] is the
// sum of dy[p, :] [len(ids), d] over the positions p with ids[p] == rows[k]
// (see EmbeddingBackwardSparseRef), rows sorted and distinct as
// EmbeddingGradRows returns them. Duplicate ids are summed in position order in
// float32; the columns are split over ParallelFor, so the result does not depend
// on the number of threads. It panics if an id is not among rows.
func EmbeddingBackwardSparse(ids []int64, dy []float32, d int, rows []int64, grad []float32) {
	checkLen("EmbeddingBackwardSparse", "dy", len(dy), len(ids)*d)
	checkLen("EmbeddingBackwardSparse", "grad", len(grad), len(rows)*d)
	slot := make([]int, len(ids))
	for p, id := range ids {
		k := sort.Search(len(rows), func(i int) bool { return rows[i] >= id })
		if k == len(rows) || rows[k] != id {
			panic(fmt.Sprintf("cpu: EmbeddingBackwardSparse: id %d not among the rows", id))
		}
		slot[p] = k
	}
	embeddingScatter(slot, dy, d, grad[:len(rows)*d])
}

// EmbeddingBackward computes the dense gradient of an embedding lookup: dw
// [vocab, d] is zeroed and dy[p, :] [len(ids), d] added to row ids[p] for every
// p (see EmbeddingBackwardRef), in position order in float32, the columns split
// over ParallelFor. It panics if an id is outside [0, vocab).
func EmbeddingBackward(ids []int64, dy []float32, d, vocab int, dw []float32) {
	checkLen("EmbeddingBackward", "dy", len(dy), len(ids)*d)
	checkLen("EmbeddingBackward", "dw", len(dw), vocab*d)
	slot := make([]int, len(ids))
	for p, id := range ids {
		if id < 0 || id >= int64(vocab) {
			panic(fmt.Sprintf("cpu: EmbeddingBackward: id %d out of range [0, %d)", id, vocab))
		}
		slot[p] = int(id)
	}
	embeddingScatter(slot, dy, d, dw[:vocab*d])
}

// embeddingScatter zeroes out and adds dy[p, :] to out[slot[p], :] for every p,
// in position order, splitting out's columns (and its zeroing) over ParallelFor.
func embeddingScatter(slot []int, dy []float32, d int, out []float32) {
	if d == 0 {
		return
	}
	nrows := len(out) / d
	// columns per task: enough work per goroutine, and whole cache lines
	grain := max(16, (actGrain/max(1, len(slot)+nrows/8)+15)&^15)
	ParallelFor(d, grain, func(lo, hi int) {
		for r := 0; r < nrows; r++ {
			clear(out[r*d+lo : r*d+hi])
		}
		for p, k := range slot {
			dst, src := out[k*d+lo:k*d+hi], dy[p*d+lo:p*d+hi]
			for j := range dst {
				dst[j] += src[j]
			}
		}
	})
}

package tensor

import (
	"fmt"
	"sync"
)

// Row-sparse gradients of embedding tables.
//
// The gradient of Embedding with respect to its table [V, D] is zero except
// in the rows of the ids looked up: a few dozen of CLIP's 49408 rows per
// batch. Autograd accumulates dense gradients, which for such a table means
// allocating, zeroing and adding V×D floats per step (150 MB for SD's text
// encoder) to move a few kilobytes. A leaf table marked with SetSparseGrad
// instead receives Embedding's contributions as rows: Backward stores the
// sorted distinct ids and their gradient rows beside the leaf (RowGrad), and
// adds nothing to Grad() for them. Contributions of other ops that use the
// table (a tied output projection) still accumulate densely into Grad(); the
// gradient is Grad() plus the rows. nn.ParamSet.CollectGrads folds both into
// a parameter's gradient.

// rowGrad is a leaf's accumulated row-sparse gradient: rows sorted and
// distinct, grad [len(rows)*d] F32.
type rowGrad struct {
	rows []int64
	grad []float32
	d    int
}

// sparseMu guards the row gradients: backward passes of different graphs
// may run on different goroutines.
var sparseMu sync.Mutex

// SetSparseGrad marks the leaf table t [V, D] so that Embedding's backward
// delivers its gradient as rows (see RowGrad) instead of a dense [V, D]
// contribution to Grad(), or (on false) unmarks it and drops the rows held.
// The mark belongs to this handle (the one passed to Embedding). It panics if t is not a 2-D float leaf.
// It returns t.
func (t *Tensor) SetSparseGrad(on bool) *Tensor {
	if !t.IsLeaf() || t.Rank() != 2 || t.DType() == I64 {
		panic(fmt.Sprintf("tensor: SetSparseGrad: want a 2-D float leaf table, have %v %v (leaf %v)", t.DType(), t.shape, t.IsLeaf()))
	}
	sparseMu.Lock()
	defer sparseMu.Unlock()
	if t.ag == nil {
		if !on {
			return t
		}
		t.ag = &gradInfo{}
	}
	switch {
	case !on:
		t.ag.rows = nil
	case t.ag.rows == nil:
		t.ag.rows = &rowGrad{d: t.Dim(1)}
	}
	return t
}

// SparseGrad reports whether t is marked with SetSparseGrad.
func (t *Tensor) SparseGrad() bool {
	sparseMu.Lock()
	defer sparseMu.Unlock()
	return t.ag != nil && t.ag.rows != nil
}

// RowGrad returns the row-sparse gradient that Backward accumulated into the
// marked table t through Embedding since the last ZeroRowGrad: the sorted
// distinct row indices and their gradient rows, F32 [len(rows)*D] row-major
// (every other row of that part of the gradient is zero). Both are nil when
// there is none. The slices are t's: do not modify them, and do not keep
// them past ZeroRowGrad.
func (t *Tensor) RowGrad() (rows []int64, grad []float32) {
	sparseMu.Lock()
	defer sparseMu.Unlock()
	if r := t.rowGrad(); r != nil && len(r.rows) > 0 {
		return r.rows, r.grad
	}
	return nil, nil
}

// ZeroRowGrad drops the row-sparse gradient held for t (t stays marked).
func (t *Tensor) ZeroRowGrad() {
	sparseMu.Lock()
	defer sparseMu.Unlock()
	if r := t.rowGrad(); r != nil {
		r.rows, r.grad = nil, nil
	}
}

// addRowGrad adds the gradient rows (rows sorted and distinct, grad
// [len(rows)*d]) into the row gradient of the marked table w and reports
// true, or reports false when w is not marked. Rows present on both sides
// are summed elementwise in float32 (held + new); the others are merged in
// order. Within one Backward this is how autograd sums a dense gradient's
// contributions (first + second + ...); across Backward calls autograd adds
// the new pass's sum to the held gradient, held + (c1 + c2), where this adds
// (held + c1) + c2 — the same numbers unless the table is looked up more
// than once per graph and the rows are not taken (nn.ParamSet.CollectGrads)
// between passes, and then within float32 rounding.
func addRowGrad(w *Tensor, rows []int64, grad []float32) bool {
	sparseMu.Lock()
	defer sparseMu.Unlock()
	r := w.rowGrad()
	if r == nil {
		return false
	}
	d := r.d
	if len(r.rows) == 0 {
		r.rows, r.grad = rows, grad
		return true
	}
	outRows := make([]int64, 0, len(r.rows)+len(rows))
	out := make([]float32, 0, (len(r.rows)+len(rows))*d)
	i, j := 0, 0
	for i < len(r.rows) || j < len(rows) {
		switch {
		case j == len(rows) || (i < len(r.rows) && r.rows[i] < rows[j]):
			outRows = append(outRows, r.rows[i])
			out = append(out, r.grad[i*d:(i+1)*d]...)
			i++
		case i == len(r.rows) || rows[j] < r.rows[i]:
			outRows = append(outRows, rows[j])
			out = append(out, grad[j*d:(j+1)*d]...)
			j++
		default: // the same row
			outRows = append(outRows, rows[j])
			a, b := r.grad[i*d:(i+1)*d], grad[j*d:(j+1)*d]
			for k := range a {
				out = append(out, a[k]+b[k])
			}
			i++
			j++
		}
	}
	r.rows, r.grad = outRows, out
	return true
}

// rowGrad returns the leaf's row gradient state, or nil when t is not marked.
func (t *Tensor) rowGrad() *rowGrad {
	if t.ag == nil {
		return nil
	}
	return t.ag.rows
}

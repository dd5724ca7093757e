package f64

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	gonumblas "gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack/gonum"
)

// sytrdBlock is the panel width of Dsytrd.
const sytrdBlock = 48

// Dsytrd reduces the n×n symmetric matrix A, whose lower triangle is stored
// row-major in a (leading dimension lda), to symmetric tridiagonal form
// T = Qᵀ A Q by Householder reflections, as LAPACK's dsytrd with uplo Lower:
// d (length n) receives the diagonal of T and e (length n-1) its
// off-diagonal. Q is not kept: the lower triangle of a is overwritten with
// intermediate values, and only the eigenvalues of T are meaningful to the
// caller (see EigenvaluesSym). The strict upper triangle is not touched.
//
// Panels of 48 columns are reduced as LAPACK's dlatrd does (each column's
// reflector needs A·v, a DsymvLower over the trailing matrix, corrected for
// the panel's earlier reflectors), and the trailing matrix is then updated
// with the rank-2·48 Dsyr2k-type product A ← A - V Wᵀ - W Vᵀ through
// Dgemmt. Half the flops are in the memory-bound DsymvLower.
func Dsytrd(n int, a []float64, lda int, d, e []float64) {
	if n < 0 {
		panic(fmt.Sprintf("f64: Dsytrd: negative n %d", n))
	}
	if n == 0 {
		return
	}
	checkMatrix("Dsytrd", "A", n, n, a, lda)
	if len(d) < n || len(e) < n-1 {
		panic(fmt.Sprintf("f64: Dsytrd: d has %d and e %d elements, want %d and %d", len(d), len(e), n, n-1))
	}
	const nb = sytrdBlock
	var (
		bl  gonumblas.Implementation
		lap gonum.Implementation
	)
	// Panel vectors as rows of length n, indexed by the row of A:
	// rows 0..nb-1 are the reflectors V, nb..2nb-1 the vectors W, and
	// 2nb..3nb-1 V again, so that [V; W] and [W; V] are both strided
	// matrices for the trailing update.
	pw := make([]float64, 3*nb*n)
	vrow := func(q int) []float64 { return pw[q*n : (q+1)*n] }
	wrow := func(q int) []float64 { return pw[(nb+q)*n : (nb+q+1)*n] }
	u := make([]float64, n) // current column, then w
	t := make([]float64, 2*nb)
	coef := make([]float64, 2*nb)
	scratch := make([]float64, n)
	for k := 0; k < n; k += nb {
		jb := min(nb, n-k)
		for i := 0; i < jb; i++ {
			c := k + i
			m := n - c // length of column c from the diagonal down
			col := u[:m]
			for r := range col {
				col[r] = a[(c+r)*lda+c]
			}
			// Column c less the panel's earlier updates:
			// A[c:n][c] -= V[c:n]·W[c]ᵀ + W[c:n]·V[c]ᵀ.
			for q := 0; q < i; q++ {
				coef[q] = -wrow(q)[c]
				coef[nb+q] = -vrow(q)[c]
			}
			axpyRows(i, m, pw[c:], n, coef[:i], col)
			axpyRows(i, m, pw[nb*n+c:], n, coef[nb:nb+i], col)
			d[c] = col[0]
			if m == 1 {
				break
			}
			// Reflector H = I - tau·v·vᵀ with H·col[1:] = (beta, 0, ..., 0).
			v := vrow(i)[c+1 : n]
			copy(v, col[1:])
			beta, tau := lap.Dlarfg(m-1, v[0], v[1:], 1)
			e[c] = beta
			v[0] = 1
			// w = tau·(A22 - V Wᵀ - W Vᵀ)·v, A22 = A[c+1:n][c+1:n] as of
			// the start of the panel.
			w := wrow(i)[c+1 : n]
			DsymvLower(m-1, a[(c+1)*lda+c+1:], lda, v, w)
			dotRows(i, m-1, pw[nb*n+c+1:], n, v, t[:i], scratch)
			dotRows(i, m-1, pw[c+1:], n, v, t[nb:nb+i], scratch)
			for q := 0; q < i; q++ {
				coef[q], coef[nb+q] = -t[q], -t[nb+q]
			}
			axpyRows(i, m-1, pw[c+1:], n, coef[:i], w)
			axpyRows(i, m-1, pw[nb*n+c+1:], n, coef[nb:nb+i], w)
			bl.Dscal(m-1, tau, w, 1)
			alpha := -0.5 * tau * bl.Ddot(m-1, w, 1, v, 1)
			bl.Daxpy(m-1, alpha, v, 1, w, 1)
			copy(pw[(2*nb+i)*n+c+1:(2*nb+i+1)*n], v)
		}
		if s := k + jb; s < n {
			// A[s:n][s:n] -= V Wᵀ + W Vᵀ (lower triangle), as one product of
			// [V; W]ᵀ (n-s × 2nb) and [W; V] (2nb × n-s).
			Dgemmt(blas.Lower, blas.Trans, blas.NoTrans, n-s, 2*nb, -1,
				pw[s:], n, pw[nb*n+s:], n, 1, a[s*lda+s:], lda)
		}
	}
}

// axpyRows does y[j] += Σ_{q<k} alpha[q]·a[q*lda+j] for j < m, four rows
// at a time.
func axpyRows(k, m int, a []float64, lda int, alpha, y []float64) {
	q := 0
	for ; q+4 <= k; q += 4 {
		al := [4]float64{alpha[q], alpha[q+1], alpha[q+2], alpha[q+3]}
		axpyDot4(m, a[q*lda:], lda, &al, y, y) // the dot products are not used
	}
	for ; q < k; q++ {
		axpyDot(alpha[q], a[q*lda:q*lda+m], y, y)
	}
}

// dotRows sets t[q] = Σ_{j<m} a[q*lda+j]·v[j] for q < k, four rows at a
// time; scratch (length m) is overwritten.
func dotRows(k, m int, a []float64, lda int, v, t, scratch []float64) {
	q := 0
	var zero [4]float64
	for ; q+4 <= k; q += 4 {
		d := axpyDot4(m, a[q*lda:], lda, &zero, v, scratch)
		copy(t[q:q+4], d[:])
	}
	for ; q < k; q++ {
		t[q] = axpyDot(0, a[q*lda:q*lda+m], v, scratch)
	}
}

// EigenvaluesSym returns in w (length n, ascending) the eigenvalues of the
// n×n symmetric matrix whose lower triangle is stored row-major in a, as
// LAPACK's dsyev without eigenvectors (gonum's mat.EigenSym with vectors
// false): reduction to tridiagonal form by Dsytrd, then gonum's Dsterf
// (Pal–Walker–Kahan QL/QR). The matrix is first scaled by the power of two
// that brings its largest element into [1/2, 1) (exact, so the rounding is
// that of the unscaled matrix, without its overflow and underflow; dsyev
// scales only outside [√(safmin/ε), √(ε/safmin)]); this also keeps
// gonum v0.17's Dsterf off its own rescaling path, which panics. The lower
// triangle of a is overwritten. It returns false if the matrix has a NaN or
// the iteration did not converge (w is then unspecified).
func EigenvaluesSym(n int, a []float64, lda int, w []float64) (ok bool) {
	if n < 0 {
		panic(fmt.Sprintf("f64: EigenvaluesSym: negative n %d", n))
	}
	if n == 0 {
		return true
	}
	checkMatrix("EigenvaluesSym", "A", n, n, a, lda)
	if len(w) < n {
		panic(fmt.Sprintf("f64: EigenvaluesSym: w has %d elements, want %d", len(w), n))
	}
	var anrm float64
	for i := 0; i < n; i++ {
		for _, v := range a[i*lda : i*lda+i+1] {
			if v != v {
				return false // NaN
			}
			if v < 0 {
				v = -v
			}
			if v > anrm {
				anrm = v
			}
		}
	}
	if math.IsInf(anrm, 0) {
		return false
	}
	if anrm == 0 {
		clear(w[:n])
		return true
	}
	_, exp := math.Frexp(anrm) // anrm = f·2^exp, f in [1/2, 1)
	scale(n, a, lda, -exp)
	e := make([]float64, max(n-1, 1))
	Dsytrd(n, a, lda, w, e)
	defer func() {
		if recover() != nil { // gonum's Dsterf on a badly scaled block
			ok = false
		}
	}()
	if !(gonum.Implementation{}).Dsterf(n, w[:n], e[:n-1]) {
		return false
	}
	scale(n, w, 0, exp)
	return true
}

// scale multiplies the lower triangle of the n×n row-major matrix a by 2^e
// (or, with lda 0, the n-vector a), exactly unless the results underflow.
func scale(n int, a []float64, lda, e int) {
	if e == 0 {
		return
	}
	row := func(i int) []float64 {
		if lda == 0 {
			return a[:n]
		}
		return a[i*lda : i*lda+i+1]
	}
	rows := n
	if lda == 0 {
		rows = 1
	}
	if f := math.Ldexp(1, e); e > -1022 && e < 1023 {
		for i := 0; i < rows; i++ {
			r := row(i)
			for j := range r {
				r[j] *= f
			}
		}
		return
	}
	for i := 0; i < rows; i++ {
		r := row(i)
		for j := range r {
			r[j] = math.Ldexp(r[j], e)
		}
	}
}

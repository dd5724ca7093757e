package metrics

import (
	"errors"
	"fmt"
	"math"
	"math/cmplx"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack"
	lapackgonum "gonum.org/v1/gonum/lapack/gonum"
	"gonum.org/v1/gonum/mat"
)

// errSqrtmSingular is the failure scipy's sqrtm reports as "failed to find
// the matrix square root": a zero denominator R[i,i]+R[j,j] with a non-zero
// numerator in the triangular recurrence (two zero eigenvalues that are not
// semisimple).
var errSqrtmSingular = errors.New("metrics: sqrtm: no square root (singular Schur factor)")

// rotation is one complex Givens rotation applied by the real-to-complex
// Schur conversion (scipy's rsf2csf) to rows and columns p, p+1:
//
//	T ← G T,  T ← T Gᴴ,  Z ← Z Gᴴ,  with G = [[g00, g01], [g10, g11]].
type rotation struct {
	p                  int
	g00, g01, g10, g11 complex128
}

// schurSqrt is the principal square root of an n×n real matrix A in factored
// form, as scipy.linalg.sqrtm computes it:
//
//	A = Z T Zᴴ (complex Schur form), R upper triangular with R² = T,
//	sqrtm(A) = Z R Zᴴ,  Z = Q G, Q real orthogonal, G = product of rotations.
type schurSqrt struct {
	n    int
	q    []float64    // Q: [n, n] row-major, real Schur vectors
	rots []rotation   // rotations of rsf2csf, in the order applied
	cplx bool         // R is complex (rc); otherwise real (rr)
	rr   []float64    // R: [n, n] column-major, upper triangle
	rc   []complex128 // R: [n, n] column-major, upper triangle
}

// realSchur computes the real Schur decomposition A = Q T Qᵀ of the n×n
// row-major matrix a (Hessenberg reduction, then Francis QR iterations), as
// LAPACK's dgees does without sorting. It returns T (row-major,
// quasi-upper-triangular, 2×2 blocks in standard form) and Q (row-major).
func realSchur(a []float64, n int) (t, q []float64, err error) {
	impl := lapackgonum.Implementation{}
	t = append([]float64(nil), a...)
	if n == 0 {
		return t, nil, nil
	}
	tau := make([]float64, max(n-1, 1))
	work := make([]float64, 1)
	impl.Dgehrd(n, 0, n-1, t, n, tau[:n-1], work, -1)
	lwork := max(int(work[0]), n)
	impl.Dorghr(n, 0, n-1, t, n, tau[:n-1], work, -1)
	lwork = max(lwork, int(work[0]))
	work = make([]float64, lwork)
	impl.Dgehrd(n, 0, n-1, t, n, tau[:n-1], work, lwork)
	q = append([]float64(nil), t...)
	impl.Dorghr(n, 0, n-1, q, n, tau[:n-1], work, lwork)
	for i := 2; i < n; i++ { // drop the reflectors below the subdiagonal
		clear(t[i*n : i*n+i-1])
	}
	wr := make([]float64, n)
	wi := make([]float64, n)
	impl.Dhseqr(lapack.EigenvaluesAndSchur, lapack.SchurOrig, n, 0, n-1, t, n, wr, wi, q, n, work, -1)
	if int(work[0]) > len(work) {
		work = make([]float64, int(work[0]))
	}
	if un := impl.Dhseqr(lapack.EigenvaluesAndSchur, lapack.SchurOrig, n, 0, n-1, t, n, wr, wi, q, n, work, len(work)); un > 0 {
		return nil, nil, fmt.Errorf("metrics: sqrtm: Schur decomposition did not converge (%d eigenvalues left)", un)
	}
	return t, q, nil
}

// newSchurSqrt factors the principal square root of the n×n row-major real
// matrix a the way scipy.linalg.sqrtm (scipy 1.10) does:
//
//  1. real Schur form A = Q T Qᵀ;
//  2. if T has 2×2 blocks, convert to complex Schur form with one Givens
//     rotation per block (rsf2csf; a subdiagonal entry t is treated as zero
//     when |t| <= eps*(|T[m-1,m-1]|+|T[m,m]|));
//  3. R[i,i] = sqrt(T[i,i]) (principal branch; complex if T is complex or has
//     a negative diagonal entry, real otherwise), and column by column
//     R[i,j] = (T[i,j] - sum_{i<k<j} R[i,k] R[k,j]) / (R[i,i] + R[j,j]),
//     i = j-1 down to 0 (Björck–Hammarling); a 0/0 gives 0, x/0 with x != 0
//     fails with errSqrtmSingular.
//
// scipy evaluates step 3 in blocks of 64 with a Sylvester solver between
// blocks; that is the same recurrence with different rounding.
func newSchurSqrt(a []float64, n int) (*schurSqrt, error) {
	if len(a) != n*n {
		panic("metrics: sqrtm: matrix size mismatch")
	}
	for _, v := range a {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("metrics: sqrtm: matrix has non-finite entries")
		}
	}
	t, q, err := realSchur(a, n)
	if err != nil {
		return nil, err
	}
	s := &schurSqrt{n: n, q: q}
	triangular, nonneg := true, true
	for i := 0; i < n; i++ {
		if i > 0 && t[i*n+i-1] != 0 {
			triangular = false
		}
		if t[i*n+i] < 0 {
			nonneg = false
		}
	}
	if triangular && nonneg {
		s.rr, err = sqrtTriuReal(t, n)
		return s, err
	}
	tc := make([]complex128, n*n)
	for i, v := range t {
		tc[i] = complex(v, 0)
	}
	if !triangular {
		s.rots = rsf2csf(tc, n)
	}
	s.cplx = true
	s.rc, err = sqrtTriuComplex(tc, n)
	return s, err
}

// rsf2csf turns the real quasi-triangular Schur form tc (row-major, stored as
// complex) into a complex triangular one in place and returns the rotations
// applied, in order (scipy.linalg.rsf2csf, without the update of Z, which
// the caller keeps as the rotation list).
func rsf2csf(tc []complex128, n int) []rotation {
	var rots []rotation
	eps := math.Nextafter(1, 2) - 1
	for m := n - 1; m > 0; m-- {
		sub := tc[m*n+m-1]
		if cmplx.Abs(sub) > eps*(cmplx.Abs(tc[(m-1)*n+m-1])+cmplx.Abs(tc[m*n+m])) {
			a, b := tc[(m-1)*n+m-1], tc[(m-1)*n+m]
			c, d := sub, tc[m*n+m]
			// Eigenvalue of the 2×2 block with the larger imaginary part
			// (the one LAPACK lists first for a conjugate pair).
			half := (a + d) / 2
			disc := cmplx.Sqrt((a-d)*(a-d)/4 + b*c)
			l1, l2 := half+disc, half-disc
			if imag(l2) > imag(l1) {
				l1 = l2
			}
			mu := l1 - d
			r := math.Hypot(cmplx.Abs(mu), cmplx.Abs(sub))
			cs := mu / complex(r, 0)
			sn := sub / complex(r, 0)
			rot := rotation{p: m - 1, g00: cmplx.Conj(cs), g01: sn, g10: -sn, g11: cs}
			// Rows m-1, m, columns m-1..n-1: T ← G T.
			for j := m - 1; j < n; j++ {
				x, y := tc[(m-1)*n+j], tc[m*n+j]
				tc[(m-1)*n+j] = rot.g00*x + rot.g01*y
				tc[m*n+j] = rot.g10*x + rot.g11*y
			}
			// Rows 0..m, columns m-1, m: T ← T Gᴴ.
			for i := 0; i <= m; i++ {
				x, y := tc[i*n+m-1], tc[i*n+m]
				tc[i*n+m-1] = x*cmplx.Conj(rot.g00) + y*cmplx.Conj(rot.g01)
				tc[i*n+m] = x*cmplx.Conj(rot.g10) + y*cmplx.Conj(rot.g11)
			}
			rots = append(rots, rot)
		}
		tc[m*n+m-1] = 0
	}
	return rots
}

// sqrtTriuReal is the recurrence of newSchurSqrt for a real upper-triangular
// t (row-major) with a non-negative diagonal; R is returned column-major.
func sqrtTriuReal(t []float64, n int) ([]float64, error) {
	r := make([]float64, n*n)
	for i := 0; i < n; i++ {
		r[i*n+i] = math.Sqrt(t[i*n+i])
	}
	for j := 1; j < n; j++ {
		col := r[j*n : j*n+j] // R[0:j, j], first holding the right-hand side
		for i := range col {
			col[i] = t[i*n+j]
		}
		rjj := r[j*n+j]
		for k := j - 1; k >= 0; k-- {
			den := r[k*n+k] + rjj
			num := col[k]
			switch {
			case den != 0:
				col[k] = num / den
			case num == 0:
				col[k] = 0
			default:
				return nil, errSqrtmSingular
			}
			if x := col[k]; x != 0 && k > 0 {
				// col[0:k] -= R[0:k, k] * R[k, j]
				blas64.Implementation().Daxpy(k, -x, r[k*n:k*n+k], 1, col[:k], 1)
			}
		}
	}
	return r, nil
}

// sqrtTriuComplex is the recurrence of newSchurSqrt for a complex
// upper-triangular t (row-major); R is returned column-major.
func sqrtTriuComplex(t []complex128, n int) ([]complex128, error) {
	r := make([]complex128, n*n)
	for i := 0; i < n; i++ {
		r[i*n+i] = cmplx.Sqrt(t[i*n+i])
	}
	for j := 1; j < n; j++ {
		col := r[j*n : j*n+j]
		for i := range col {
			col[i] = t[i*n+j]
		}
		rjj := r[j*n+j]
		for k := j - 1; k >= 0; k-- {
			den := r[k*n+k] + rjj
			num := col[k]
			switch {
			case den != 0:
				col[k] = num / den
			case num == 0:
				col[k] = 0
			default:
				return nil, errSqrtmSingular
			}
			x := col[k]
			if x == 0 || k == 0 {
				continue
			}
			rk := r[k*n : k*n+k]
			dst := col[:k]
			if imag(x) == 0 {
				xr := real(x)
				for i, v := range rk {
					dst[i] -= complex(real(v)*xr, imag(v)*xr)
				}
				continue
			}
			for i, v := range rk {
				dst[i] -= v * x
			}
		}
	}
	return r, nil
}

// finite reports whether every entry of R is finite.
func (s *schurSqrt) finite() bool {
	n := s.n
	for j := 0; j < n; j++ {
		if s.cplx {
			for _, v := range s.rc[j*n : j*n+j+1] {
				if cmplx.IsNaN(v) || cmplx.IsInf(v) {
					return false
				}
			}
			continue
		}
		for _, v := range s.rr[j*n : j*n+j+1] {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return false
			}
		}
	}
	return true
}

// y returns Y = G R Gᴴ (so that sqrtm(A) = Q Y Qᵀ) as real and imaginary
// parts, row-major. For a real R, im is nil.
func (s *schurSqrt) y() (re, im []float64) {
	n := s.n
	if !s.cplx {
		re = make([]float64, n*n)
		for j := 0; j < n; j++ {
			for i := 0; i <= j; i++ {
				re[i*n+j] = s.rr[j*n+i]
			}
		}
		return re, nil
	}
	yc := make([]complex128, n*n)
	for j := 0; j < n; j++ {
		for i := 0; i <= j; i++ {
			yc[i*n+j] = s.rc[j*n+i]
		}
	}
	// Z = Q G₁ᴴ G₂ᴴ … Gₖᴴ, so Y = G₁ᴴ(…(Gₖᴴ R Gₖ)…)G₁: last rotation first.
	for k := len(s.rots) - 1; k >= 0; k-- {
		g := s.rots[k]
		p := g.p
		h00, h01 := cmplx.Conj(g.g00), cmplx.Conj(g.g10) // Gᴴ
		h10, h11 := cmplx.Conj(g.g01), cmplx.Conj(g.g11)
		for j := 0; j < n; j++ { // rows p, p+1: Y ← Gᴴ Y
			x, z := yc[p*n+j], yc[(p+1)*n+j]
			yc[p*n+j] = h00*x + h01*z
			yc[(p+1)*n+j] = h10*x + h11*z
		}
		for i := 0; i < n; i++ { // columns p, p+1: Y ← Y G
			x, z := yc[i*n+p], yc[i*n+p+1]
			yc[i*n+p] = x*g.g00 + z*g.g10
			yc[i*n+p+1] = x*g.g01 + z*g.g11
		}
	}
	re = make([]float64, n*n)
	im = make([]float64, n*n)
	for i, v := range yc {
		re[i], im[i] = real(v), imag(v)
	}
	return re, im
}

// trace returns Tr(sqrtm(A)) = Tr(R), real and imaginary parts.
func (s *schurSqrt) trace() (re, im float64) {
	n := s.n
	for i := 0; i < n; i++ {
		if s.cplx {
			re += real(s.rc[i*n+i])
			im += imag(s.rc[i*n+i])
		} else {
			re += s.rr[i*n+i]
		}
	}
	return re, im
}

// diagImag returns the imaginary parts of the diagonal of sqrtm(A) = Q Y Qᵀ,
// or nil when sqrtm(A) is real.
func (s *schurSqrt) diagImag() []float64 {
	if !s.cplx {
		return nil
	}
	n := s.n
	_, im := s.y()
	// P = Q · Im(Y); diag(Q Im(Y) Qᵀ)_i = Σ_k P[i,k] Q[i,k].
	p := make([]float64, n*n)
	qm := blas64.General{Rows: n, Cols: n, Stride: n, Data: s.q}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, qm,
		blas64.General{Rows: n, Cols: n, Stride: n, Data: im}, 0,
		blas64.General{Rows: n, Cols: n, Stride: n, Data: p})
	d := make([]float64, n)
	for i := 0; i < n; i++ {
		d[i] = blas64.Implementation().Ddot(n, p[i*n:i*n+n], 1, s.q[i*n:i*n+n], 1)
	}
	return d
}

// full returns sqrtm(A) = Q Y Qᵀ: its real part, and its imaginary part (nil
// when the root is real).
func (s *schurSqrt) full() (re, im *mat.Dense) {
	n := s.n
	yr, yi := s.y()
	q := mat.NewDense(n, n, s.q)
	conj := func(y []float64) *mat.Dense {
		var tmp, out mat.Dense
		tmp.Mul(q, mat.NewDense(n, n, y))
		out.Mul(&tmp, q.T())
		return &out
	}
	re = conj(yr)
	if yi != nil {
		im = conj(yi)
	}
	return re, im
}

// Sqrtm returns the principal square root X of the square matrix a, X·X = a,
// computed as scipy.linalg.sqrtm does (see the package documentation): the
// real part and, when the root is complex (a has negative or complex
// eigenvalues, or its Schur form has 2×2 blocks), the imaginary part, else
// nil. It fails for non-finite input, a Schur decomposition that does not
// converge, or a matrix with no square root of this form (scipy then prints
// "Failed to find a square root" and returns NaNs).
func Sqrtm(a mat.Matrix) (re, im *mat.Dense, err error) {
	r, c := a.Dims()
	if r != c {
		return nil, nil, fmt.Errorf("metrics: sqrtm: matrix is %d×%d, want square", r, c)
	}
	if r == 0 {
		return nil, nil, errors.New("metrics: sqrtm: empty matrix")
	}
	s, err := newSchurSqrt(rowMajor(a), r)
	if err != nil {
		return nil, nil, err
	}
	re, im = s.full()
	return re, im, nil
}

// rowMajor copies a into a new row-major slice.
func rowMajor(a mat.Matrix) []float64 {
	r, c := a.Dims()
	out := make([]float64, r*c)
	for i := 0; i < r; i++ {
		for j := 0; j < c; j++ {
			out[i*c+j] = a.At(i, j)
		}
	}
	return out
}

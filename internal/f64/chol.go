package f64

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	gonumblas "gonum.org/v1/gonum/blas/gonum"
)

// dlamchE is LAPACK's relative machine epsilon dlamch('E') = 2⁻⁵³ (the
// value gonum's Dpstrf uses for its default tolerance).
const dlamchE = 1.0 / (1 << 53)

// pstrfBlock is the panel width of Dpstrf.
const pstrfBlock = 64

// Dpstrf computes the Cholesky factorisation with complete pivoting of the
// n×n symmetric positive semidefinite matrix A whose lower triangle is stored
// row-major in a (leading dimension lda),
//
//	Pᵀ A P = L Lᵀ,   P[piv[k], k] = 1,
//
// as LAPACK's dpstrf (and gonum's Dpstrf) with uplo Lower: at step j the
// largest remaining diagonal element of the Schur complement is pivoted to
// position j, and the factorisation stops when it is at most tol (or NaN),
// returning the number of columns done as rank and ok false; a negative tol
// means n·2⁻⁵³·max_i A[i][i]. On return the first rank columns of the lower
// triangle of a hold L (rows 0..n-1), the strict upper triangle is
// untouched, and ok reports rank == n. If the largest diagonal element is not
// positive, rank is 0. piv must have length n.
//
// The columns of a panel of 64 are computed one by one (dot products with the
// panel's earlier columns), and the trailing matrix is updated once per panel
// with Dsyrk, so almost all the work is in the fast triangular GEMM.
func Dpstrf(n int, a []float64, lda int, piv []int, tol float64) (rank int, ok bool) {
	if n < 0 {
		panic(fmt.Sprintf("f64: Dpstrf: negative n %d", n))
	}
	if n == 0 {
		return 0, true
	}
	checkMatrix("Dpstrf", "A", n, n, a, lda)
	if len(piv) != n {
		panic(fmt.Sprintf("f64: Dpstrf: piv has length %d, want %d", len(piv), n))
	}
	for i := range piv {
		piv[i] = i
	}
	pvt, ajj := 0, a[0]
	for i := 1; i < n; i++ {
		if v := a[i*lda+i]; v > ajj {
			pvt, ajj = i, v
		}
	}
	if ajj <= 0 || math.IsNaN(ajj) {
		return 0, false
	}
	dstop := tol
	if dstop < 0 {
		dstop = float64(n) * dlamchE * ajj
	}
	var impl gonumblas.Implementation
	// diag holds the diagonal of the Schur complement as of the start of the
	// panel, dots the sums of squares of the panel's finished columns of L,
	// so that avail = diag - dots is the current diagonal (contiguous copies:
	// the diagonal of a is a strided, cache-unfriendly walk).
	diag := make([]float64, n)
	dots := make([]float64, n)
	avail := make([]float64, n)
	var t [4]float64
	scratch := make([]float64, pstrfBlock)
	for k := 0; k < n; k += pstrfBlock {
		jb := min(pstrfBlock, n-k)
		for i := k; i < n; i++ {
			diag[i] = a[i*lda+i]
		}
		clear(dots[k:])
		for j := k; j < k+jb; j++ {
			for i := j; i < n; i++ {
				avail[i] = diag[i] - dots[i]
			}
			if j > 0 {
				pvt, ajj = j, avail[j]
				for l := j + 1; l < n; l++ {
					if avail[l] > ajj {
						pvt, ajj = l, avail[l]
					}
				}
				if ajj <= dstop || math.IsNaN(ajj) {
					a[j*lda+j] = ajj
					return j, false
				}
			}
			if pvt != j {
				// Symmetric swap of rows/columns j and pvt in the lower triangle.
				a[pvt*lda+pvt] = a[j*lda+j]
				impl.Dswap(j, a[j*lda:], 1, a[pvt*lda:], 1)
				if pvt < n-1 {
					impl.Dswap(n-pvt-1, a[(pvt+1)*lda+j:], lda, a[(pvt+1)*lda+pvt:], lda)
				}
				if pvt-j-1 > 0 {
					impl.Dswap(pvt-j-1, a[(j+1)*lda+j:], lda, a[pvt*lda+j+1:], 1)
				}
				diag[j], diag[pvt] = diag[pvt], diag[j]
				dots[j], dots[pvt] = dots[pvt], dots[j]
				piv[j], piv[pvt] = piv[pvt], piv[j]
			}
			ajj = math.Sqrt(ajj)
			a[j*lda+j] = ajj
			// L[i][j] = (A[i][j] - Σ_{k<=q<j} L[i][q] L[j][q]) / L[j][j], i > j,
			// four rows at a time.
			rj := a[j*lda+k : j*lda+j]
			inv := 1 / ajj
			i := j + 1
			if j > k {
				for ; i+4 <= n; i += 4 {
					t = axpyDot4(j-k, a[i*lda+k:], lda, &[4]float64{}, rj, scratch)
					for r := 0; r < 4; r++ {
						l := (a[(i+r)*lda+j] - t[r]) * inv
						a[(i+r)*lda+j] = l
						dots[i+r] += l * l
					}
				}
			}
			for ; i < n; i++ {
				v := a[i*lda+j]
				if j > k {
					v -= axpyDot(0, a[i*lda+k:i*lda+j], rj, scratch)
				}
				l := v * inv
				a[i*lda+j] = l
				dots[i] += l * l
			}
		}
		if j := k + jb; j < n {
			Dsyrk(blas.Lower, blas.NoTrans, n-j, jb, -1, a[j*lda+k:], lda, 1, a[j*lda+j:], lda)
		}
	}
	return n, true
}

// Package f64 holds the float64 dense linear algebra that package metrics
// needs for the Frechet distance of 2048-dimensional feature statistics, fast
// enough for it on a few CPU cores:
//
//   - Dgemm, Dgemmt and Dsyrk: level-3 BLAS on row-major matrices (the
//     conventions of gonum's blas64), computed by a cache-blocked, packed
//     GEMM that splits large products over runtime.GOMAXPROCS goroutines;
//   - DsymvLower: the symmetric matrix-vector product (lower triangle), the
//     memory-bound core of the tridiagonal reduction;
//   - Dpstrf: Cholesky factorisation with complete (diagonal) pivoting, as
//     LAPACK's dpstrf, blocked over Dgemmt;
//   - Dsytrd and EigenvaluesSym: Householder tridiagonal reduction (LAPACK's
//     dsytrd, lower) and the eigenvalues of a symmetric matrix (dsyev without
//     eigenvectors, finishing with gonum's Dsterf).
//
// On amd64 the GEMM micro-kernel and the fused axpy/dot of DsymvLower are Go
// assembly, AVX-512 (14×16 tile) or AVX2 with FMA (6×8), chosen at run time
// from the features kernels/cpu detects (cpu.CPU); other architectures and
// builds tagged purego or noasm use pure Go loops with the same blocking. Results agree with the
// plain loops to rounding (summation order differs), not bit for bit.
//
// The routines do not touch gonum's global blas64 implementation.
package f64

//go:generate go run gen_amd64.go

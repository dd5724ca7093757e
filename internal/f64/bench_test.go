package f64

import (
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	gonumblas "gonum.org/v1/gonum/blas/gonum"
	"gonum.org/v1/gonum/lapack/gonum"
)

func benchGemm(b *testing.B, n int, f func(a, bb, c []float64)) {
	rng := rand.New(rand.NewPCG(1, 1))
	a, bb, c := randMat(rng, n, n, n), randMat(rng, n, n, n), make([]float64, n*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f(a, bb, c)
	}
	b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkDgemm2048 times a 2048³ product (f64.Dgemm).
func BenchmarkDgemm2048(b *testing.B) {
	benchGemm(b, 2048, func(a, bb, c []float64) {
		Dgemm(blas.NoTrans, blas.NoTrans, 2048, 2048, 2048, 1, a, 2048, bb, 2048, 0, c, 2048)
	})
}

// BenchmarkDgemm2048Gonum is the same product with gonum's blas/gonum.
func BenchmarkDgemm2048Gonum(b *testing.B) {
	benchGemm(b, 2048, func(a, bb, c []float64) {
		gonumblas.Implementation{}.Dgemm(blas.NoTrans, blas.NoTrans, 2048, 2048, 2048, 1, a, 2048, bb, 2048, 0, c, 2048)
	})
}

// BenchmarkDsyrk2048x512 times C (2048×2048, upper) += Aᵀ·A with A 512×2048:
// one chunk of the covariance accumulation of 2048-d features.
func BenchmarkDsyrk2048x512(b *testing.B) {
	const n, k = 2048, 512
	rng := rand.New(rand.NewPCG(1, 1))
	a, c := randMat(rng, k, n, n), make([]float64, n*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Dsyrk(blas.Upper, blas.Trans, n, k, 1, a, n, 1, c, n)
	}
	b.ReportMetric(float64(n)*float64(n+1)*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkDsymvLower2048 times the symmetric matrix-vector product at 2048.
func BenchmarkDsymvLower2048(b *testing.B) {
	const n = 2048
	rng := rand.New(rand.NewPCG(1, 1))
	a, x, y := randMat(rng, n, n, n), randMat(rng, 1, n, n), make([]float64, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		DsymvLower(n, a, n, x, y)
	}
	b.ReportMetric(float64(n)*float64(n+1)/2*8*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

func benchPSD(b *testing.B, n int) []float64 {
	rng := rand.New(rand.NewPCG(2, 2))
	g := randMat(rng, n, n, n)
	a := make([]float64, n*n)
	Dsyrk(blas.Lower, blas.NoTrans, n, n, 1, g, n, 0, a, n)
	for i := 0; i < n; i++ {
		a[i*n+i] += float64(n)
		for j := 0; j < i; j++ {
			a[j*n+i] = a[i*n+j]
		}
	}
	return a
}

// BenchmarkDpstrf2048 times the pivoted Cholesky factorisation at 2048.
func BenchmarkDpstrf2048(b *testing.B) {
	const n = 2048
	a0 := benchPSD(b, n)
	a, piv := make([]float64, n*n), make([]int, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		copy(a, a0)
		b.StartTimer()
		Dpstrf(n, a, n, piv, -1)
	}
}

// BenchmarkDpstrf2048Gonum is gonum's Dpstrf on the same matrix.
func BenchmarkDpstrf2048Gonum(b *testing.B) {
	const n = 2048
	a0 := benchPSD(b, n)
	a, piv, work := make([]float64, n*n), make([]int, n), make([]float64, 2*n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		copy(a, a0)
		b.StartTimer()
		gonum.Implementation{}.Dpstrf(blas.Lower, n, a, n, piv, -1, work)
	}
}

// BenchmarkEigenvaluesSym2048 times the eigenvalues of a 2048×2048
// symmetric matrix (tridiagonal reduction and Dsterf).
func BenchmarkEigenvaluesSym2048(b *testing.B) {
	const n = 2048
	a0 := benchPSD(b, n)
	a, w := make([]float64, n*n), make([]float64, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		copy(a, a0)
		b.StartTimer()
		if !EigenvaluesSym(n, a, n, w) {
			b.Fatal("no convergence")
		}
	}
}

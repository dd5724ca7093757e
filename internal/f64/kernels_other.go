//go:build !amd64 || purego || noasm

package f64

const haveAsm = false

// activeKernel returns the micro-kernel: pure Go in this build.
func activeKernel() *gemmKernel { return &kernelGo }

// axpyDot does y[j] += alpha*a[j] for j < len(a) and returns Σ_j a[j]*x[j];
// x and y must be at least as long as a.
func axpyDot(alpha float64, a, x, y []float64) float64 { return axpyDotGo(alpha, a, x, y) }

// axpyDot4 does, for the four rows a_r = a[r*lda : r*lda+n], r < 4,
//
//	y[j] += Σ_r alpha[r]*a_r[j] (j < n),  dots[r] = Σ_{j<n} a_r[j]*x[j].
func axpyDot4(n int, a []float64, lda int, alpha *[4]float64, x, y []float64) [4]float64 {
	return axpyDot4Go(0, n, a, lda, alpha, x, y)
}

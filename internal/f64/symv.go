package f64

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// axpyDotGo is the pure-Go axpyDot: y[j] += alpha*a[j] for j < len(a), and
// the result is Σ_j a[j]*x[j].
func axpyDotGo(alpha float64, a, x, y []float64) float64 {
	x = x[:len(a)]
	y = y[:len(a)]
	var s0, s1 float64
	j := 0
	for ; j+1 < len(a); j += 2 {
		a0, a1 := a[j], a[j+1]
		s0 += a0 * x[j]
		s1 += a1 * x[j+1]
		y[j] += alpha * a0
		y[j+1] += alpha * a1
	}
	if j < len(a) {
		s0 += a[j] * x[j]
		y[j] += alpha * a[j]
	}
	return s0 + s1
}

// axpyDot4Go is axpyDot4 in plain Go over the columns [j0, j1).
func axpyDot4Go(j0, j1 int, a []float64, lda int, alpha *[4]float64, x, y []float64) (dots [4]float64) {
	a0, a1, a2, a3 := a[j0:j1], a[lda+j0:lda+j1], a[2*lda+j0:2*lda+j1], a[3*lda+j0:3*lda+j1]
	x, y = x[j0:j1], y[j0:j1]
	al0, al1, al2, al3 := alpha[0], alpha[1], alpha[2], alpha[3]
	var s0, s1, s2, s3 float64
	for j, xj := range x {
		v0, v1, v2, v3 := a0[j], a1[j], a2[j], a3[j]
		s0 += v0 * xj
		s1 += v1 * xj
		s2 += v2 * xj
		s3 += v3 * xj
		y[j] += al0*v0 + al1*v1 + al2*v2 + al3*v3
	}
	return [4]float64{s0, s1, s2, s3}
}

// symvParallelN is the order from which DsymvLower splits its rows into
// chunks that two or more goroutines share. Below it the matrix is in cache
// and the goroutine hand-off costs more than it saves.
const symvParallelN = 1024

// symvChunks is the number of row bands of equal area of a chunked
// DsymvLower. Each band adds into its own buffer and the buffers are summed
// in a fixed order, so the result does not depend on which goroutine ran
// which band, nor on GOMAXPROCS.
const symvChunks = 8

var symvScratch sync.Pool

// DsymvLower computes y = A·x for the n×n symmetric matrix A whose lower
// triangle is stored row-major in a (leading dimension lda); the strict upper
// triangle is not read. x and y hold at least n elements (unit stride) and
// must not overlap. Each stored element is read once and used twice (for
// y[i] and y[j]), four rows per pass over y, the way a symmetric product is
// memory-bound. From n = symvParallelN (1024) the rows are cut into 8 bands
// of equal area that up to runtime.GOMAXPROCS goroutines take in turn, each
// band adding into its own buffer; the buffers are summed in a fixed order,
// so the result does not depend on the number of goroutines. A helper
// goroutine that has not started by the time the caller has done all bands
// is not waited for (on a busy machine the caller does not stall).
//
// The reference loop is
//
//	for i < n: y[i] = Σ_{j<=i} A[i][j]*x[j] + Σ_{j>i} A[j][i]*x[j]
func DsymvLower(n int, a []float64, lda int, x, y []float64) {
	if n < 0 {
		panic(fmt.Sprintf("f64: DsymvLower: negative n %d", n))
	}
	if n == 0 {
		return
	}
	checkMatrix("DsymvLower", "A", n, n, a, lda)
	if len(x) < n || len(y) < n {
		panic(fmt.Sprintf("f64: DsymvLower: x has %d and y %d elements, want %d", len(x), len(y), n))
	}
	clear(y[:n])
	if n < symvParallelN {
		symvRows(0, n, a, lda, x, y)
		return
	}
	var bounds [symvChunks + 1]int
	for c := 1; c < symvChunks; c++ {
		bounds[c] = int(float64(n) * math.Sqrt(float64(c)/symvChunks))
	}
	bounds[symvChunks] = n
	bp, _ := symvScratch.Get().(*[]float64)
	if bp == nil || cap(*bp) < symvChunks*n {
		s := make([]float64, symvChunks*n)
		bp = &s
	}
	bufs := (*bp)[:symvChunks*n]
	var next atomic.Int32
	work := func() {
		for {
			c := int(next.Add(1)) - 1
			if c >= symvChunks {
				return
			}
			r0, r1 := bounds[c], bounds[c+1]
			buf := bufs[c*n : c*n+r1]
			clear(buf)
			symvRows(r0, r1, a, lda, x, buf)
		}
	}
	// Helpers: state 0 = not started, 1 = running, 2 = not needed. Only
	// helpers that started are waited for.
	helpers := min(runtime.GOMAXPROCS(0), symvChunks) - 1
	states := make([]atomic.Int32, helpers)
	done := make(chan struct{}, helpers)
	for h := range states {
		go func() {
			if states[h].CompareAndSwap(0, 1) {
				work()
				done <- struct{}{}
			}
		}()
	}
	work()
	for h := range states {
		if !states[h].CompareAndSwap(0, 2) {
			<-done // running: it finishes its band soon
		}
	}
	for c := 0; c < symvChunks; c++ {
		for i, v := range bufs[c*n : c*n+bounds[c+1]] {
			y[i] += v
		}
	}
	symvScratch.Put(bp)
}

// symvRows adds the contribution of rows [r0, r1) of the lower triangle to
// y: y[j] += A[i][j]*x[i] and y[i] += A[i][j]*x[j] for j < i, y[i] +=
// A[i][i]*x[i]. Rows go four at a time through axpyDot4 (one pass over y for
// four rows), the small triangle of each group of four in plain Go.
func symvRows(r0, r1 int, a []float64, lda int, x, y []float64) {
	i := r0
	for ; i+4 <= r1; i += 4 {
		alpha := [4]float64{x[i], x[i+1], x[i+2], x[i+3]}
		t := axpyDot4(i, a[i*lda:], lda, &alpha, x, y)
		for p := 0; p < 4; p++ {
			row := a[(i+p)*lda+i : (i+p)*lda+i+p+1]
			xr := x[i+p]
			s := t[p]
			for q, v := range row[:p] {
				s += v * x[i+q]
				y[i+q] += v * xr
			}
			y[i+p] += s + row[p]*xr
		}
	}
	for ; i < r1; i++ {
		row := a[i*lda : i*lda+i+1]
		xi := x[i]
		t := axpyDot(xi, row[:i], x, y)
		y[i] += t + row[i]*xi
	}
}

package f64

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
)

// gemmKernel is a micro-kernel with its blocking parameters. fn computes
//
//	c[r*ldc+j] += Σ_{p<kc} a[p*mr+r] * b[p*nr+j]   for r < mr, j < nr,
//
// where a is a packed micro-panel of mr rows of op(A) and b one of nr
// columns of op(B). The driver packs op(A) in blocks of mc×kc (meant to stay
// in L2) and op(B) in blocks of kc×nc (L3).
type gemmKernel struct {
	name       string
	mr, nr     int
	mc, kc, nc int
	fn         func(kc int, a, b, c []float64, ldc int)
}

// kernelGo is the pure-Go micro-kernel (4×4 tile).
var kernelGo = gemmKernel{name: "go-4x4", mr: 4, nr: 4, mc: 64, kc: 256, nc: 1024, fn: kernGo4x4}

// kernGo4x4 is the micro-kernel of gemmKernel for a 4×4 tile in plain Go.
func kernGo4x4(kc int, a, b, c []float64, ldc int) {
	var c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33 float64
	a = a[:kc*4]
	b = b[:kc*4]
	for p := 0; p < kc; p++ {
		ap := a[p*4 : p*4+4]
		bp := b[p*4 : p*4+4]
		a0, a1, a2, a3 := ap[0], ap[1], ap[2], ap[3]
		b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	r := c[0*ldc : 0*ldc+4]
	r[0] += c00
	r[1] += c01
	r[2] += c02
	r[3] += c03
	r = c[1*ldc : 1*ldc+4]
	r[0] += c10
	r[1] += c11
	r[2] += c12
	r[3] += c13
	r = c[2*ldc : 2*ldc+4]
	r[0] += c20
	r[1] += c21
	r[2] += c22
	r[3] += c23
	r = c[3*ldc : 3*ldc+4]
	r[0] += c30
	r[1] += c31
	r[2] += c32
	r[3] += c33
}

// operand is a row-major matrix X (leading dimension ld) used as op(X) = X
// or Xᵀ.
type operand struct {
	data  []float64
	ld    int
	trans bool
}

// triangle says which part of C a product writes.
type triangle int

const (
	triFull  triangle = iota // all of C
	triLower                 // C[i][j] with j <= i
	triUpper                 // C[i][j] with j >= i
)

// gemmProblem is C ← C + alpha·op(A)·op(B) restricted to tri; op(A) is m×k
// and op(B) k×n.
type gemmProblem struct {
	a, b  operand
	k     int
	alpha float64
	c     []float64
	ldc   int
	tri   triangle
}

// region is the block of C with rows [i0, i1) and columns [j0, j1).
type region struct{ i0, i1, j0, j1 int }

// packA packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A), times
// alpha, into micro-panels of mr rows: dst[ir*kc + p*mr + r] =
// alpha·op(A)[i0+ir+r][p0+p] for ir a multiple of mr, zero past row i0+mc.
func packA(dst []float64, a operand, i0, mc, p0, kc, mr int, alpha float64) {
	for ir := 0; ir < mc; ir += mr {
		d := dst[ir*kc : ir*kc+mr*kc]
		rows := min(mr, mc-ir)
		if !a.trans {
			for r := 0; r < rows; r++ {
				off := (i0+ir+r)*a.ld + p0
				src := a.data[off : off+kc]
				if alpha == 1 {
					for p, v := range src {
						d[p*mr+r] = v
					}
				} else {
					for p, v := range src {
						d[p*mr+r] = alpha * v
					}
				}
			}
			for r := rows; r < mr; r++ {
				for p := 0; p < kc; p++ {
					d[p*mr+r] = 0
				}
			}
			continue
		}
		for p := 0; p < kc; p++ {
			off := (p0+p)*a.ld + i0 + ir
			src := a.data[off : off+rows]
			dd := d[p*mr : p*mr+mr]
			if alpha == 1 {
				copy(dd, src)
			} else {
				for r, v := range src {
					dd[r] = alpha * v
				}
			}
			clear(dd[rows:])
		}
	}
}

// packB packs rows [p0, p0+kc) and columns [j0, j0+nc) of op(B) into
// micro-panels of nr columns: dst[jr*kc + p*nr + j] = op(B)[p0+p][j0+jr+j]
// for jr a multiple of nr, zero past column j0+nc.
func packB(dst []float64, b operand, p0, kc, j0, nc, nr int) {
	for jr := 0; jr < nc; jr += nr {
		d := dst[jr*kc : jr*kc+nr*kc]
		cols := min(nr, nc-jr)
		if !b.trans {
			for p := 0; p < kc; p++ {
				off := (p0+p)*b.ld + j0 + jr
				dd := d[p*nr : p*nr+nr]
				copy(dd, b.data[off:off+cols])
				clear(dd[cols:])
			}
			continue
		}
		for j := 0; j < cols; j++ {
			off := (j0+jr+j)*b.ld + p0
			for p, v := range b.data[off : off+kc] {
				d[p*nr+j] = v
			}
		}
		for j := cols; j < nr; j++ {
			for p := 0; p < kc; p++ {
				d[p*nr+j] = 0
			}
		}
	}
}

// workspace holds one goroutine's packing buffers and edge tile.
type workspace struct {
	a, b, tile []float64
}

var workspaces sync.Pool

func getWorkspace(k *gemmKernel) *workspace {
	w, _ := workspaces.Get().(*workspace)
	if w == nil {
		w = new(workspace)
	}
	na := k.mc * k.kc
	nb := k.kc * ((k.nc + k.nr - 1) / k.nr * k.nr)
	if cap(w.a) < na {
		w.a = make([]float64, na)
	}
	if cap(w.b) < nb {
		w.b = make([]float64, nb)
	}
	if cap(w.tile) < k.mr*k.nr {
		w.tile = make([]float64, k.mr*k.nr)
	}
	w.a, w.b, w.tile = w.a[:na], w.b[:nb], w.tile[:k.mr*k.nr]
	return w
}

// run computes the part rg of the problem with kernel kern (GotoBLAS loop
// order: column blocks, k blocks with op(B) packed, row blocks with op(A)
// packed, then micro-tiles).
func (pr *gemmProblem) run(rg region, kern *gemmKernel, ws *workspace) {
	mr, nr := kern.mr, kern.nr
	for jc := rg.j0; jc < rg.j1; jc += kern.nc {
		ncb := min(kern.nc, rg.j1-jc)
		ri0, ri1 := rg.i0, rg.i1
		switch pr.tri {
		case triLower:
			ri0 = max(ri0, jc)
		case triUpper:
			ri1 = min(ri1, jc+ncb)
		}
		if ri0 >= ri1 {
			continue
		}
		for pc := 0; pc < pr.k; pc += kern.kc {
			kcb := min(kern.kc, pr.k-pc)
			packB(ws.b, pr.b, pc, kcb, jc, ncb, nr)
			for ic := ri0; ic < ri1; ic += kern.mc {
				mcb := min(kern.mc, ri1-ic)
				packA(ws.a, pr.a, ic, mcb, pc, kcb, mr, pr.alpha)
				pr.macro(kern, ws, ic, mcb, jc, ncb, kcb)
			}
		}
	}
}

// macro runs the micro-kernel over the packed blocks: C[ic:ic+mcb,
// jc:jc+ncb] += packed A · packed B, writing only the triangle. Tiles that
// are partial (matrix edge or crossing the diagonal) go through ws.tile.
func (pr *gemmProblem) macro(kern *gemmKernel, ws *workspace, ic, mcb, jc, ncb, kcb int) {
	mr, nr := kern.mr, kern.nr
	c, ldc := pr.c, pr.ldc
	for jr := 0; jr < ncb; jr += nr {
		nrb := min(nr, ncb-jr)
		bp := ws.b[jr*kcb : jr*kcb+nr*kcb]
		gj := jc + jr
		for ir := 0; ir < mcb; ir += mr {
			mrb := min(mr, mcb-ir)
			gi := ic + ir
			whole := true
			switch pr.tri {
			case triLower:
				if gj > gi+mrb-1 {
					continue
				}
				whole = gj+nrb-1 <= gi
			case triUpper:
				if gi > gj+nrb-1 {
					continue
				}
				whole = gi+mrb-1 <= gj
			}
			ap := ws.a[ir*kcb : ir*kcb+mr*kcb]
			if whole && mrb == mr && nrb == nr {
				kern.fn(kcb, ap, bp, c[gi*ldc+gj:], ldc)
				continue
			}
			t := ws.tile
			clear(t)
			kern.fn(kcb, ap, bp, t, nr)
			for r := 0; r < mrb; r++ {
				lo, hi := 0, nrb
				switch pr.tri {
				case triLower:
					hi = min(hi, gi+r-gj+1)
				case triUpper:
					lo = max(lo, gi+r-gj)
				}
				if lo >= hi {
					continue
				}
				row := c[(gi+r)*ldc+gj+lo : (gi+r)*ldc+gj+hi]
				for j, v := range t[r*nr+lo : r*nr+hi] {
					row[j] += v
				}
			}
		}
	}
}

// serialFlops is the size (m·n·k) below which a product runs on one
// goroutine.
const serialFlops = 1 << 20

// workers returns how many goroutines a product of m·n·k multiply-adds uses.
func workers(m, n, k int) int {
	if float64(m)*float64(n)*float64(k) < serialFlops {
		return 1
	}
	return runtime.GOMAXPROCS(0)
}

// splitRegions divides the m×n C (triangle tri) into at most w regions of
// about equal work, with boundaries on micro-tile multiples.
func splitRegions(m, n int, tri triangle, w int, kern *gemmKernel) []region {
	if w <= 1 {
		return []region{{0, m, 0, n}}
	}
	var rs []region
	switch tri {
	case triFull:
		if n >= m {
			w = min(w, max(1, n/(2*kern.nr)))
			prev := 0
			for p := 1; p <= w; p++ {
				next := n
				if p < w {
					next = roundTo(n*p/w, kern.nr)
				}
				if next > prev {
					rs = append(rs, region{0, m, prev, next})
				}
				prev = max(prev, next)
			}
			return rs
		}
		w = min(w, max(1, m/(2*kern.mr)))
		prev := 0
		for p := 1; p <= w; p++ {
			next := m
			if p < w {
				next = roundTo(m*p/w, kern.mr)
			}
			if next > prev {
				rs = append(rs, region{prev, next, 0, n})
			}
			prev = max(prev, next)
		}
		return rs
	}
	// A triangle of the square n×n C: row bands of equal area.
	w = min(w, max(1, n/(2*kern.mr)))
	prev := 0
	for p := 1; p <= w; p++ {
		next := n
		if p < w {
			f := float64(p) / float64(w)
			if tri == triLower {
				next = roundTo(int(float64(n)*math.Sqrt(f)), kern.mr)
			} else {
				next = roundTo(n-int(float64(n)*math.Sqrt(1-f)), kern.mr)
			}
		}
		next = min(next, n)
		if next > prev {
			if tri == triLower {
				rs = append(rs, region{prev, next, 0, next})
			} else {
				rs = append(rs, region{prev, next, prev, n})
			}
		}
		prev = max(prev, next)
	}
	return rs
}

// roundTo rounds x to the nearest multiple of q.
func roundTo(x, q int) int { return (x + q/2) / q * q }

// exec scales C by beta and adds alpha·op(A)·op(B) on the triangle.
func (pr *gemmProblem) exec(m, n int, beta float64) {
	if beta != 1 {
		for i := 0; i < m; i++ {
			lo, hi := 0, n
			switch pr.tri {
			case triLower:
				hi = i + 1
			case triUpper:
				lo = i
			}
			row := pr.c[i*pr.ldc+lo : i*pr.ldc+hi]
			if beta == 0 {
				clear(row)
				continue
			}
			for j := range row {
				row[j] *= beta
			}
		}
	}
	if pr.alpha == 0 || pr.k == 0 || m == 0 || n == 0 {
		return
	}
	kern := activeKernel()
	rs := splitRegions(m, n, pr.tri, workers(m, n, pr.k), kern)
	if len(rs) == 1 {
		ws := getWorkspace(kern)
		pr.run(rs[0], kern, ws)
		workspaces.Put(ws)
		return
	}
	var wg sync.WaitGroup
	for _, rg := range rs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := getWorkspace(kern)
			pr.run(rg, kern, ws)
			workspaces.Put(ws)
		}()
	}
	ws := getWorkspace(kern)
	pr.run(rs[0], kern, ws)
	workspaces.Put(ws)
	wg.Wait()
}

// checkMatrix panics unless x holds a rows×cols row-major matrix with
// leading dimension ld.
func checkMatrix(fn, name string, rows, cols int, x []float64, ld int) {
	if ld < max(1, cols) {
		panic(fmt.Sprintf("f64: %s: bad leading dimension %d of %s (%d columns)", fn, ld, name, cols))
	}
	if rows > 0 && cols > 0 && len(x) < (rows-1)*ld+cols {
		panic(fmt.Sprintf("f64: %s: %s has %d elements, want at least %d", fn, name, len(x), (rows-1)*ld+cols))
	}
}

// dims returns the stored shape of X when op(X) is r×c.
func dims(t blas.Transpose, r, c int) (int, int) {
	if t == blas.NoTrans {
		return r, c
	}
	return c, r
}

func checkTrans(fn string, t blas.Transpose) bool {
	switch t {
	case blas.NoTrans:
		return false
	case blas.Trans, blas.ConjTrans:
		return true
	}
	panic(fmt.Sprintf("f64: %s: bad transpose %v", fn, t))
}

// Dgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices, with
// op(X) = X or Xᵀ: op(A) is m×k, op(B) k×n, C m×n, as gonum's blas64 Dgemm
// (same arguments and result up to rounding). When beta is 0, C is not read.
// alpha is applied to A while it is packed, so for alpha other than ±1 the
// rounding differs slightly from alpha·(op(A)·op(B)).
//
// The reference loop is
//
//	for i < m, j < n: C[i][j] = alpha * Σ_{p<k} op(A)[i][p]*op(B)[p][j] + beta*C[i][j]
func Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	ta, tb := checkTrans("Dgemm", tA), checkTrans("Dgemm", tB)
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("f64: Dgemm: negative dimension (m=%d n=%d k=%d)", m, n, k))
	}
	ar, ac := dims(tA, m, k)
	br, bc := dims(tB, k, n)
	checkMatrix("Dgemm", "A", ar, ac, a, lda)
	checkMatrix("Dgemm", "B", br, bc, b, ldb)
	checkMatrix("Dgemm", "C", m, n, c, ldc)
	pr := gemmProblem{a: operand{a, lda, ta}, b: operand{b, ldb, tb}, k: k, alpha: alpha, c: c, ldc: ldc}
	pr.exec(m, n, beta)
}

// Dgemmt computes the uplo triangle of C = alpha·op(A)·op(B) + beta·C, where
// op(A) is n×k, op(B) is k×n and C is n×n (row-major). The other triangle
// of C is neither read nor written. The product of two matrices is not
// symmetric in general; Dgemmt is the GEMM for the cases where only a
// triangle is wanted (Dsyrk, Dsyr2k with concatenated operands, Lᵀ·W).
//
// The reference loop (uplo Lower) is
//
//	for i < n, j <= i: C[i][j] = alpha * Σ_{p<k} op(A)[i][p]*op(B)[p][j] + beta*C[i][j]
func Dgemmt(uplo blas.Uplo, tA, tB blas.Transpose, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	ta, tb := checkTrans("Dgemmt", tA), checkTrans("Dgemmt", tB)
	var tri triangle
	switch uplo {
	case blas.Lower:
		tri = triLower
	case blas.Upper:
		tri = triUpper
	default:
		panic(fmt.Sprintf("f64: Dgemmt: bad uplo %v", uplo))
	}
	if n < 0 || k < 0 {
		panic(fmt.Sprintf("f64: Dgemmt: negative dimension (n=%d k=%d)", n, k))
	}
	ar, ac := dims(tA, n, k)
	br, bc := dims(tB, k, n)
	checkMatrix("Dgemmt", "A", ar, ac, a, lda)
	checkMatrix("Dgemmt", "B", br, bc, b, ldb)
	checkMatrix("Dgemmt", "C", n, n, c, ldc)
	pr := gemmProblem{a: operand{a, lda, ta}, b: operand{b, ldb, tb}, k: k, alpha: alpha, c: c, ldc: ldc, tri: tri}
	pr.exec(n, n, beta)
}

// Dsyrk computes the uplo triangle of C = alpha·A·Aᵀ + beta·C (trans
// NoTrans, A n×k) or C = alpha·Aᵀ·A + beta·C (trans Trans, A k×n), C n×n,
// row-major, as gonum's blas64 Dsyrk. The other triangle of C is not touched.
//
// The reference loop (NoTrans, Lower) is
//
//	for i < n, j <= i: C[i][j] = alpha * Σ_{p<k} A[i][p]*A[j][p] + beta*C[i][j]
func Dsyrk(uplo blas.Uplo, trans blas.Transpose, n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int) {
	tb := blas.Trans
	if checkTrans("Dsyrk", trans) {
		tb = blas.NoTrans
	}
	Dgemmt(uplo, trans, tb, n, k, alpha, a, lda, a, lda, beta, c, ldc)
}

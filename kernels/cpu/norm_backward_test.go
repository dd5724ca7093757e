package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// nabF64 widens a float32 slice.
func nabF64(x []float32) []float64 {
	d := make([]float64, len(x))
	for i, v := range x {
		d[i] = float64(v)
	}
	return d
}

// nabMaxAbs is the largest |x[i]| (0 for an empty or nil slice).
func nabMaxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// nabSame fails t unless got and want are bitwise equal.
func nabSame(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] = %g, want %g (bitwise)", what, i, got[i], want[i])
		}
	}
}

// nabWithThreads runs f with SetThreads(n), restoring the previous setting.
func nabWithThreads(n int, f func()) {
	prev := SetThreads(n)
	defer SetThreads(prev)
	f()
}

type gnBwdShape struct {
	n, c, hw, groups int
}

// TestGroupNormBackward compares GroupNormSave and GroupNormBackward with the
// references over awkward shapes (1, 3, 17, 1023 elements per channel; one
// channel per group; 32 groups of 10; groups longer than the 1024-element
// blocks), eps 1e-5 and 1e-6, with and without SiLU and affine parameters, data
// with a small and a large mean, on both paths. Tolerances: forward output
// bitwise equal to GroupNorm's; saved mean within 1e-7*|mean| + 1e-6*std and
// rstd within 1e-6 relative of the float64 statistics; dx, dgamma, dbeta within
// 1e-5*(|ref| + rms(ref)) + 1e-6*max(rstd)*max|dy|*max(1, max|gamma|) (the last
// term covers the cancellation of dx's terms in groups of one or two elements).
// Also: dx aliasing dy, dx nil, and one thread against four give bitwise the
// same results.
func TestGroupNormBackward(t *testing.T) {
	shapes := []gnBwdShape{
		{1, 1, 1, 1}, {1, 3, 17, 3}, {2, 320, 3, 32}, {1, 4, 1023, 2}, {2, 6, 1, 3},
		{1, 2, 2500, 1}, {3, 8, 17, 4}, {2, 32, 9, 32},
	}
	rng := rand.New(rand.NewPCG(31, 32))
	actForEachPath(t, func(t *testing.T) {
		for si, s := range shapes {
			for _, silu := range []bool{false, true} {
				for _, affine := range []bool{true, false} {
					eps := []float32{1e-5, 1e-6}[si%2]
					off := []float64{0.5, 1000}[(si/2)%2]
					name := fmt.Sprintf("n%d-c%d-hw%d-g%d/silu%v-affine%v-eps%g-mean%g", s.n, s.c, s.hw, s.groups, silu, affine, eps, off)
					t.Run(name, func(t *testing.T) { checkGroupNormBackward(t, rng, s, eps, off, silu, affine) })
				}
			}
		}
	})
}

func checkGroupNormBackward(t *testing.T, rng *rand.Rand, s gnBwdShape, eps float32, off float64, silu, affine bool) {
	size := s.n * s.c * s.hw
	x, _ := nabRand(rng, size, 1.5, off)
	dy, _ := nabRand(rng, size, 1, 0)
	var gamma, beta []float32
	if affine {
		gamma, _ = nabRand(rng, s.c, 0.5, 1)
		beta, _ = nabRand(rng, s.c, 0.5, 0)
	}
	ng := s.n * s.groups

	// forward: same output as GroupNorm, statistics as the reference's
	y, ys := make([]float32, size), make([]float32, size)
	mean, rstd := make([]float32, ng), make([]float32, ng)
	rmean, rrstd := make([]float32, ng), make([]float32, ng)
	GroupNorm(x, y, s.n, s.c, s.hw, s.groups, eps, gamma, beta, silu)
	GroupNormSave(x, ys, s.n, s.c, s.hw, s.groups, eps, gamma, beta, silu, mean, rstd)
	nabSame(t, "GroupNormSave y", ys, y)
	GroupNormSaveRef(x, make([]float32, size), s.n, s.c, s.hw, s.groups, eps, gamma, beta, silu, rmean, rrstd)
	cnt := s.c / s.groups * s.hw
	for i := range mean {
		_, v := meanVarRef(x[i*cnt : (i+1)*cnt])
		if math.Abs(float64(mean[i]-rmean[i])) > 1e-7*math.Abs(float64(rmean[i]))+1e-6*math.Sqrt(v) {
			t.Fatalf("mean[%d] = %.9g, want %.9g", i, mean[i], rmean[i])
		}
		if math.Abs(float64(rstd[i]-rrstd[i])) > 1e-6*float64(rrstd[i]) {
			t.Fatalf("rstd[%d] = %.9g, want %.9g", i, rstd[i], rrstd[i])
		}
	}

	dx, dg, db := make([]float32, size), make([]float32, s.c), make([]float32, s.c)
	rdx, rdg, rdb := make([]float32, size), make([]float32, s.c), make([]float32, s.c)
	GroupNormBackward(x, dy, dx, s.n, s.c, s.hw, s.groups, mean, rstd, gamma, beta, silu, dg, db)
	GroupNormBackwardRef(x, dy, rdx, s.n, s.c, s.hw, s.groups, mean, rstd, gamma, beta, silu, rdg, rdb)
	atol := 1e-6 * nabMaxAbs(rstd) * nabMaxAbs(dy) * max(1, nabMaxAbs(gamma))
	nabCmp(t, "dx", dx, nabF64(rdx), 1e-5, atol)
	nabCmp(t, "dgamma", dg, nabF64(rdg), 1e-5, 1e-6)
	nabCmp(t, "dbeta", db, nabF64(rdb), 1e-5, 1e-6)

	// dx aliasing dy
	inplace := slices.Clone(dy)
	GroupNormBackward(x, inplace, inplace, s.n, s.c, s.hw, s.groups, mean, rstd, gamma, beta, silu, nil, nil)
	nabSame(t, "dx in place", inplace, dx)
	// parameter gradients only
	dg2, db2 := make([]float32, s.c), make([]float32, s.c)
	GroupNormBackward(x, dy, nil, s.n, s.c, s.hw, s.groups, mean, rstd, gamma, beta, silu, dg2, db2)
	nabSame(t, "dgamma without dx", dg2, dg)
	nabSame(t, "dbeta without dx", db2, db)
	// the number of threads does not change the result
	dx1, dg1, db1 := make([]float32, size), make([]float32, s.c), make([]float32, s.c)
	nabWithThreads(1, func() {
		GroupNormBackward(x, dy, dx1, s.n, s.c, s.hw, s.groups, mean, rstd, gamma, beta, silu, dg1, db1)
	})
	dx4, dg4, db4 := make([]float32, size), make([]float32, s.c), make([]float32, s.c)
	nabWithThreads(4, func() {
		GroupNormBackward(x, dy, dx4, s.n, s.c, s.hw, s.groups, mean, rstd, gamma, beta, silu, dg4, db4)
	})
	nabSame(t, "dx 4 threads", dx4, dx1)
	nabSame(t, "dgamma 4 threads", dg4, dg1)
	nabSame(t, "dbeta 4 threads", db4, db1)
}

// TestLayerNormBackward compares LayerNormSave and LayerNormBackward with the
// references over awkward shapes (rows x cols: 1x1, 3x17, 5x1023, 77x768 as
// CLIP, 2500x3 over many dgamma blocks, 33x320, 2x2049 beyond one 1024-element
// block), eps 1e-5 and 1e-6, with and without gamma, on both paths.
// Tolerances: forward bitwise equal to LayerNorm's; statistics as in
// TestGroupNormBackward; dx, dgamma, dbeta within 1e-5*(|ref| + rms(ref)) +
// 1e-6*max(rstd)*max|dy|*max(1, max|gamma|). Also dx aliasing dy, dx nil and
// 1 vs 4 threads bitwise.
func TestLayerNormBackward(t *testing.T) {
	shapes := [][2]int{{1, 1}, {3, 17}, {5, 1023}, {77, 768}, {2500, 3}, {33, 320}, {2, 2049}}
	rng := rand.New(rand.NewPCG(33, 34))
	actForEachPath(t, func(t *testing.T) {
		for si, s := range shapes {
			for _, affine := range []bool{true, false} {
				rows, cols := s[0], s[1]
				eps := []float32{1e-5, 1e-6}[si%2]
				off := []float64{-0.3, 300}[(si/2)%2]
				t.Run(fmt.Sprintf("%dx%d-affine%v-eps%g-mean%g", rows, cols, affine, eps, off), func(t *testing.T) {
					checkLayerNormBackward(t, rng, rows, cols, eps, off, affine)
				})
			}
		}
	})
}

func checkLayerNormBackward(t *testing.T, rng *rand.Rand, rows, cols int, eps float32, off float64, affine bool) {
	size := rows * cols
	x, _ := nabRand(rng, size, 2, off)
	dy, _ := nabRand(rng, size, 1, 0)
	var gamma, beta []float32
	if affine {
		gamma, _ = nabRand(rng, cols, 0.5, 1)
		beta, _ = nabRand(rng, cols, 0.5, 0)
	}
	y, ys := make([]float32, size), make([]float32, size)
	mean, rstd := make([]float32, rows), make([]float32, rows)
	rmean, rrstd := make([]float32, rows), make([]float32, rows)
	LayerNorm(x, y, rows, cols, eps, gamma, beta)
	LayerNormSave(x, ys, rows, cols, eps, gamma, beta, mean, rstd)
	nabSame(t, "LayerNormSave y", ys, y)
	LayerNormSaveRef(x, make([]float32, size), rows, cols, eps, gamma, beta, rmean, rrstd)
	for i := range mean {
		_, v := meanVarRef(x[i*cols : (i+1)*cols])
		if math.Abs(float64(mean[i]-rmean[i])) > 1e-7*math.Abs(float64(rmean[i]))+1e-6*math.Sqrt(v) {
			t.Fatalf("mean[%d] = %.9g, want %.9g", i, mean[i], rmean[i])
		}
		if math.Abs(float64(rstd[i]-rrstd[i])) > 1e-6*float64(rrstd[i]) {
			t.Fatalf("rstd[%d] = %.9g, want %.9g", i, rstd[i], rrstd[i])
		}
	}

	dx, dg, db := make([]float32, size), make([]float32, cols), make([]float32, cols)
	rdx, rdg, rdb := make([]float32, size), make([]float32, cols), make([]float32, cols)
	LayerNormBackward(x, dy, dx, rows, cols, mean, rstd, gamma, dg, db)
	LayerNormBackwardRef(x, dy, rdx, rows, cols, mean, rstd, gamma, rdg, rdb)
	atol := 1e-6 * nabMaxAbs(rstd) * nabMaxAbs(dy) * max(1, nabMaxAbs(gamma))
	nabCmp(t, "dx", dx, nabF64(rdx), 1e-5, atol)
	nabCmp(t, "dgamma", dg, nabF64(rdg), 1e-5, 1e-6)
	nabCmp(t, "dbeta", db, nabF64(rdb), 1e-5, 1e-6)

	inplace := slices.Clone(dy)
	LayerNormBackward(x, inplace, inplace, rows, cols, mean, rstd, gamma, nil, nil)
	nabSame(t, "dx in place", inplace, dx)
	dg2, db2 := make([]float32, cols), make([]float32, cols)
	LayerNormBackward(x, dy, nil, rows, cols, mean, rstd, gamma, dg2, db2)
	nabSame(t, "dgamma without dx", dg2, dg)
	nabSame(t, "dbeta without dx", db2, db)
	dx1, dg1 := make([]float32, size), make([]float32, cols)
	nabWithThreads(1, func() { LayerNormBackward(x, dy, dx1, rows, cols, mean, rstd, gamma, dg1, nil) })
	dx4, dg4 := make([]float32, size), make([]float32, cols)
	nabWithThreads(4, func() { LayerNormBackward(x, dy, dx4, rows, cols, mean, rstd, gamma, dg4, nil) })
	nabSame(t, "dx 4 threads", dx4, dx1)
	nabSame(t, "dgamma 4 threads", dg4, dg1)
}

// TestSoftmaxBackward compares SoftmaxBackward with SoftmaxBackwardRef (rows x
// cols: 1x1, 3x17, 2x1023, 4x2049, 8x77), on both paths, within
// 1e-5*(|ref| + rms(ref)) + 1e-7*max|dy|; dx aliasing dy or y gives bitwise
// the same result.
func TestSoftmaxBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(35, 36))
	actForEachPath(t, func(t *testing.T) {
		for _, s := range [][2]int{{1, 1}, {3, 17}, {2, 1023}, {4, 2049}, {8, 77}} {
			rows, cols := s[0], s[1]
			t.Run(fmt.Sprintf("%dx%d", rows, cols), func(t *testing.T) {
				x, _ := nabRand(rng, rows*cols, 3, 0)
				dy, _ := nabRand(rng, rows*cols, 1, 0.2)
				y := make([]float32, rows*cols)
				Softmax(x, y, rows, cols)
				dx, rdx := make([]float32, rows*cols), make([]float32, rows*cols)
				SoftmaxBackward(y, dy, dx, rows, cols)
				SoftmaxBackwardRef(y, dy, rdx, rows, cols)
				nabCmp(t, "dx", dx, nabF64(rdx), 1e-5, 1e-7*nabMaxAbs(dy))
				a := slices.Clone(dy)
				SoftmaxBackward(y, a, a, rows, cols)
				nabSame(t, "dx aliasing dy", a, dx)
				b := slices.Clone(y)
				SoftmaxBackward(b, dy, b, rows, cols)
				nabSame(t, "dx aliasing y", b, dx)
			})
		}
	})
}

// TestNormBackwardPanics checks the argument checks of the normalisation
// backward kernels.
func TestNormBackwardPanics(t *testing.T) {
	f := make([]float32, 64)
	for name, fn := range map[string]func(){
		"GroupNormBackward groups": func() { GroupNormBackward(f, f, f, 1, 6, 2, 4, f, f, nil, nil, false, nil, nil) },
		"GroupNormBackward dy":     func() { GroupNormBackward(f, f[:3], f, 1, 4, 2, 2, f, f, nil, nil, false, nil, nil) },
		"GroupNormBackward stats":  func() { GroupNormBackward(f, f, f, 1, 4, 2, 2, f[:1], f, nil, nil, false, nil, nil) },
		"GroupNormBackward dgamma": func() { GroupNormBackward(f, f, f, 1, 4, 2, 2, f, f, nil, nil, false, f[:3], nil) },
		"GroupNormSave stats":      func() { GroupNormSave(f, f, 2, 4, 2, 2, 1e-5, nil, nil, false, f[:3], f) },
		"LayerNormBackward rstd":   func() { LayerNormBackward(f, f, f, 4, 4, f, f[:3], nil, nil, nil) },
		"LayerNormBackward gamma":  func() { LayerNormBackward(f, f, f, 4, 4, f, f, f[:3], nil, nil) },
		"LayerNormSave mean":       func() { LayerNormSave(f, f, 4, 4, 1e-5, nil, nil, f[:3], f) },
		"SoftmaxBackward dx":       func() { SoftmaxBackward(f, f, f[:15], 4, 4) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

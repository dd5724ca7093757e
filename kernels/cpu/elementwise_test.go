package cpu

import (
	"math"
	"math/rand"
	"testing"
)

// stridedCase is an iteration shape with operand layouts: each operand is a dense
// buffer of some permuted/padded shape, viewed through strides (0 = broadcast).
type stridedCase struct {
	name  string
	shape []int
}

var stridedShapes = []stridedCase{
	{"scalar", []int{}},
	{"1", []int{1}},
	{"17", []int{17}},
	{"3x5", []int{3, 5}},
	{"2x3x4x5", []int{2, 3, 4, 5}},
	{"1x7x1x3", []int{1, 7, 1, 3}},
	{"big", []int{3, 130, 257}}, // > elemGrain: parallel split across rows
	{"long", []int{70001}},      // one run split across goroutines
	{"empty", []int{3, 0, 2}},
}

// randLayout returns strides for an operand over shape: "dense" row-major,
// "perm" a permuted dense layout, "pad" padded rows, "bcast" with random
// broadcast dims (stride 0). It also returns the buffer length needed.
func randLayout(r *rand.Rand, shape []int, kind string) ([]int, int) {
	n := len(shape)
	st := make([]int, n)
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if kind == "perm" {
		r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	acc := 1
	for k := n - 1; k >= 0; k-- {
		d := order[k]
		st[d] = acc
		ext := shape[d]
		if kind == "pad" && k == n-1 {
			ext += 3
		}
		acc *= max(ext, 1)
	}
	if kind == "bcast" {
		for d := range st {
			if r.Intn(2) == 0 {
				st[d] = 0
			}
		}
	}
	size := 1
	for d := range shape {
		if shape[d] == 0 {
			return st, 1
		}
		size += (shape[d] - 1) * st[d]
	}
	return st, size
}

func randBuf(r *rand.Rand, n int) []float32 {
	b := make([]float32, n)
	for i := range b {
		b[i] = float32(r.NormFloat64())
	}
	return b
}

func closeTo(a, b, atol, rtol float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	if math.IsInf(float64(b), 0) {
		return a == b
	}
	d := a - b
	if d < 0 {
		d = -d
	}
	return d <= atol+rtol*float32(math.Abs(float64(b)))
}

func TestUnaryBinaryCopyAgainstRef(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	kinds := []string{"dense", "perm", "pad", "bcast"}
	for _, sc := range stridedShapes {
		for _, kx := range kinds {
			for _, ky := range []string{"dense", "perm", "pad"} {
				ys, ny := randLayout(r, sc.shape, ky)
				xs, nx := randLayout(r, sc.shape, kx)
				bs, nb := randLayout(r, sc.shape, kinds[r.Intn(len(kinds))])
				x := randBuf(r, nx)
				b := randBuf(r, nb)
				for op := UCopy; op <= URecip; op++ {
					alpha, beta := float32(0.7), float32(-0.3)
					if op == UClamp {
						alpha, beta = -0.5, 0.5
					}
					if op == UPow {
						alpha = 2
					}
					got := randBuf(r, ny)
					want := append([]float32(nil), got...)
					Unary(op, alpha, beta, sc.shape, got, ys, x, xs)
					UnaryRef(op, alpha, beta, sc.shape, want, ys, x, xs)
					for i := range got {
						if !closeTo(got[i], want[i], 1e-6, 1e-6) {
							t.Fatalf("%s x:%s y:%s unary %d: [%d] got %v want %v", sc.name, kx, ky, op, i, got[i], want[i])
						}
					}
				}
				for op := BAdd; op <= BMin; op++ {
					got := randBuf(r, ny)
					want := append([]float32(nil), got...)
					Binary(op, sc.shape, got, ys, x, xs, b, bs)
					BinaryRef(op, sc.shape, want, ys, x, xs, b, bs)
					for i := range got {
						if got[i] != want[i] && !(got[i] != got[i] && want[i] != want[i]) {
							t.Fatalf("%s x:%s y:%s binary %d: [%d] got %v want %v", sc.name, kx, ky, op, i, got[i], want[i])
						}
					}
				}
				got := randBuf(r, ny)
				want := append([]float32(nil), got...)
				CopyStrided(sc.shape, got, ys, x, xs)
				UnaryRef(UCopy, 0, 0, sc.shape, want, ys, x, xs)
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s copy: [%d] got %v want %v", sc.name, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func TestCopyTransposed(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	// NCHW -> NHWC and a plain 2-D transpose with ragged tiles.
	for _, c := range []struct{ shape, ss []int }{
		{[]int{2, 37, 45, 70}, []int{70 * 37 * 45, 45, 1, 37 * 45}}, // dst [N, H, W, C] from src [N, C, H, W]
		{[]int{100, 33}, []int{1, 100}},
		{[]int{3, 40, 50}, []int{1, 150, 3}},
	} {
		n := 1
		for _, v := range c.shape {
			n *= v
		}
		src := randBuf(r, n)
		ds := make([]int, len(c.shape))
		acc := 1
		for d := len(c.shape) - 1; d >= 0; d-- {
			ds[d] = acc
			acc *= c.shape[d]
		}
		got := make([]float32, n)
		want := make([]float32, n)
		CopyStrided(c.shape, got, ds, src, c.ss)
		UnaryRef(UCopy, 0, 0, c.shape, want, ds, src, c.ss)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%v: [%d] got %v want %v", c.shape, i, got[i], want[i])
			}
		}
	}
}

func TestBinaryInPlace(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	shape := []int{4, 50, 300}
	st := []int{15000, 300, 1}
	a := randBuf(r, 60000)
	b := randBuf(r, 300)
	want := append([]float32(nil), a...)
	BinaryRef(BAdd, shape, want, st, want, st, b, []int{0, 0, 1})
	Binary(BAdd, shape, a, st, a, st, b, []int{0, 0, 1})
	for i := range a {
		if a[i] != want[i] {
			t.Fatalf("[%d] got %v want %v", i, a[i], want[i])
		}
	}
}

func TestReduceDimAgainstRef(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, sc := range stridedShapes {
		if len(sc.shape) == 0 {
			continue
		}
		for dim := range sc.shape {
			if sc.shape[dim] == 0 {
				continue
			}
			for _, kx := range []string{"dense", "perm", "pad"} {
				xs, nx := randLayout(r, sc.shape, kx)
				x := randBuf(r, nx)
				out := append([]int(nil), sc.shape...)
				out[dim] = 1
				ys, ny := randLayout(r, out, "perm")
				for op := RSum; op <= RVar; op++ {
					got := randBuf(r, ny)
					want := append([]float32(nil), got...)
					ReduceDim(op, sc.shape, dim, got, ys, x, xs)
					ReduceDimRef(op, sc.shape, dim, want, ys, x, xs)
					for i := range got {
						if !closeTo(got[i], want[i], 1e-5, 1e-5) {
							t.Fatalf("%s dim %d %s op %d: [%d] got %v want %v", sc.name, dim, kx, op, i, got[i], want[i])
						}
					}
				}
				idx := make([]int64, ny)
				ArgMaxDim(sc.shape, dim, idx, ys, x, xs)
				mx := make([]float32, ny)
				ReduceDimRef(RMax, sc.shape, dim, mx, ys, x, xs)
				forEachIndex(out, func(i []int) {
					o := offsetOf(i, ys)
					j := int(idx[o])
					if j < 0 || j >= sc.shape[dim] || x[offsetOf(i, xs)+j*xs[dim]] != mx[o] {
						t.Fatalf("%s dim %d: argmax %d does not hold the max %v", sc.name, dim, j, mx[o])
					}
				})
			}
		}
	}
}

func TestReduceHandValues(t *testing.T) {
	// x [2, 3] = [[1, 2, 3], [4, 6, 8]]
	x := []float32{1, 2, 3, 4, 6, 8}
	y := make([]float32, 2)
	ReduceDim(RSum, []int{2, 3}, 1, y, []int{1, 0}, x, []int{3, 1})
	if y[0] != 6 || y[1] != 18 {
		t.Fatalf("sum rows: %v", y)
	}
	ReduceDim(RVar, []int{2, 3}, 1, y, []int{1, 0}, x, []int{3, 1})
	if !closeTo(y[0], 2.0/3, 1e-7, 1e-6) || !closeTo(y[1], 8.0/3, 1e-7, 1e-6) {
		t.Fatalf("var rows: %v", y)
	}
	z := make([]float32, 3)
	ReduceDim(RMean, []int{2, 3}, 0, z, []int{0, 1}, x, []int{3, 1})
	if z[0] != 2.5 || z[1] != 4 || z[2] != 5.5 {
		t.Fatalf("mean cols: %v", z)
	}
	nan := float32(math.NaN())
	ReduceDim(RMax, []int{3}, 0, y[:1], []int{0}, []float32{1, nan, 2}, []int{1})
	if y[0] == y[0] {
		t.Fatalf("max with NaN: %v", y[0])
	}
}

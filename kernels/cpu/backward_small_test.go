package cpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestUpsample2xBackward compares Upsample2xBackward with the reference (nc x h x
// w: 1x1x1, 3x17x3, 2x5x1023, 4x1x17, 64x8x8) within 1e-6*(|ref| + rms(ref)):
// four float32 additions against a float64 sum.
func TestUpsample2xBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(51, 52))
	for _, s := range [][3]int{{1, 1, 1}, {3, 17, 3}, {2, 5, 1023}, {4, 1, 17}, {64, 8, 8}} {
		nc, h, w := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("%dx%dx%d", nc, h, w), func(t *testing.T) {
			dy, _ := nabRand(rng, 4*nc*h*w, 1, 0.1)
			dx, ref := make([]float32, nc*h*w), make([]float32, nc*h*w)
			Upsample2xBackward(dy, dx, nc, h, w)
			Upsample2xBackwardRef(dy, ref, nc, h, w)
			nabCmp(t, "dx", dx, nabF64(ref), 1e-6, 0)
			// the transpose of the forward: <Upsample2x(x), dy> = <x, dx>
			x, _ := nabRand(rng, nc*h*w, 1, 0)
			y := make([]float32, 4*nc*h*w)
			Upsample2x(x, y, nc, h, w)
			var a, b float64
			for i := range y {
				a += float64(y[i]) * float64(dy[i])
			}
			for i := range x {
				b += float64(x[i]) * float64(dx[i])
			}
			nabCmp(t, "<x, dx>", []float32{float32(b)}, []float64{a}, 1e-5, 1e-5)
		})
	}
}

// TestEmbeddingBackward compares EmbeddingGradRows, EmbeddingBackwardSparse and
// EmbeddingBackward with the references (vocab, d, number of ids: 1/1/1,
// 7/5/6 with repeats, 1023/17/77, 49408/3/77 as CLIP's vocabulary, 50/1023/200
// with many repeats) within 1e-6*(|ref| + rms(ref)); rows must be sorted and
// distinct, grad must match the dense gradient's rows, and 1 vs 4 threads
// give bitwise the same results.
func TestEmbeddingBackward(t *testing.T) {
	rng := rand.New(rand.NewPCG(53, 54))
	for _, s := range [][3]int{{1, 1, 1}, {7, 5, 6}, {1023, 17, 77}, {49408, 3, 77}, {50, 1023, 200}} {
		vocab, d, n := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("v%d-d%d-n%d", vocab, d, n), func(t *testing.T) {
			ids := make([]int64, n)
			for i := range ids {
				ids[i] = int64(rng.IntN(vocab))
			}
			if n > 3 {
				ids[1], ids[n-1] = ids[0], ids[0] // repeats, first and last positions
			}
			dy, _ := nabRand(rng, n*d, 1, 0)

			rows := EmbeddingGradRows(ids, vocab)
			want := slices.Clone(ids)
			slices.Sort(want)
			want = slices.Compact(want)
			if !slices.Equal(rows, want) {
				t.Fatalf("rows %v, want %v", rows, want)
			}
			grad, rgrad := make([]float32, len(rows)*d), make([]float32, len(rows)*d)
			EmbeddingBackwardSparse(ids, dy, d, rows, grad)
			EmbeddingBackwardSparseRef(ids, dy, d, rows, rgrad)
			nabCmp(t, "sparse", grad, nabF64(rgrad), 1e-6, 0)

			dw, rdw := make([]float32, vocab*d), make([]float32, vocab*d)
			for i := range dw {
				dw[i] = 7 // overwritten, not accumulated
			}
			EmbeddingBackward(ids, dy, d, vocab, dw)
			EmbeddingBackwardRef(ids, dy, d, vocab, rdw)
			nabCmp(t, "dense", dw, nabF64(rdw), 1e-6, 0)
			for k, id := range rows {
				nabSame(t, "sparse row of dense", grad[k*d:(k+1)*d], dw[int(id)*d:(int(id)+1)*d])
			}

			g1, g4 := make([]float32, len(grad)), make([]float32, len(grad))
			nabWithThreads(1, func() { EmbeddingBackwardSparse(ids, dy, d, rows, g1) })
			nabWithThreads(4, func() { EmbeddingBackwardSparse(ids, dy, d, rows, g4) })
			nabSame(t, "threads", g4, g1)
		})
	}
}

// TestSmallBackwardPanics checks the argument checks of the small backward kernels.
func TestSmallBackwardPanics(t *testing.T) {
	f := make([]float32, 64)
	for name, fn := range map[string]func(){
		"Upsample2xBackward dy":           func() { Upsample2xBackward(f[:15], f, 1, 2, 2) },
		"Upsample2xBackward dx":           func() { Upsample2xBackward(f, f[:3], 1, 2, 2) },
		"EmbeddingGradRows range":         func() { EmbeddingGradRows([]int64{0, 5}, 5) },
		"EmbeddingGradRows negative":      func() { EmbeddingGradRows([]int64{-1}, 5) },
		"EmbeddingBackwardSparse missing": func() { EmbeddingBackwardSparse([]int64{1, 2}, f, 2, []int64{1}, f) },
		"EmbeddingBackwardSparse grad":    func() { EmbeddingBackwardSparse([]int64{1, 2}, f, 2, []int64{1, 2}, f[:3]) },
		"EmbeddingBackward range":         func() { EmbeddingBackward([]int64{3}, f, 2, 3, f) },
		"EmbeddingBackward dw":            func() { EmbeddingBackward([]int64{1}, f, 2, 40, f) },
		"EmbeddingBackward dy":            func() { EmbeddingBackward([]int64{1, 2}, f[:3], 2, 4, f) },
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

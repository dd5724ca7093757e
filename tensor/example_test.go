package tensor_test

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// A residual block in miniature: a linear layer with a half-precision weight,
// an activation, a broadcast add, and buffer reuse through Release.
func Example() {
	// x: [2, 3]
	x := tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	// w: [2, 3] stored as F16 (never expanded to float32), b: [2]
	w := tensor.FromFloat32([]float32{1, 0, -1, 0.5, 0.5, 0.5}, 2, 3).To(tensor.F16)
	b := tensor.FromFloat32([]float32{0, 1}, 2)

	h := tensor.Linear(x, w, b) // [2, 2] = x w^T + b
	a := tensor.SiLU(h.Clamp(0, 100))
	h.Release() // h's buffer goes back to the pool

	y := a.Add(tensor.Ones(tensor.F32, 2)) // broadcast over rows
	a.Release()
	// row sums: 1 + silu(4) = 5.9281 and 1 + silu(8.5) = 10.4983
	fmt.Printf("%v %.4f\n", y.Shape(), y.Sum(1, false).Float32s())

	// Views share storage: the second column of y, transposed.
	col := y.Slice(1, 1, 2).T2()
	fmt.Println(col.Shape(), col.SharesStorage(y))
	// Output:
	// [2, 2] [5.9281 10.4983]
	// [1, 2] true
}

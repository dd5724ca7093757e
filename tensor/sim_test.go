package tensor

import (
	"testing"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/kerneltest"
)

// The simulated device's kernels through the conformance suite: in F32 mode
// every op, with weights of each dtype; in F16 and BF16 modes the products,
// with their operands rounded to 16 bits as on a device computing in them,
// and the training kernels on 16-bit buffers.
func TestSimConformance(t *testing.T) {
	weights := []kernels.DType{kernels.F32, kernels.F16, kernels.BF16}
	for _, mode := range []kernels.DType{kernels.F32, kernels.F16, kernels.BF16} {
		t.Run(mode.String(), func(t *testing.T) {
			var opt kerneltest.Options
			if mode != kernels.F32 {
				opt.Ops = append([]string{"Gemm", "Conv2d", "Attention"}, kerneltest.BackwardNames...)
			}
			ops := kerneltest.DeviceOps[*simBuf](newSimDevice(), kerneltest.Caps{WeightDTypes: weights, Compute: mode})
			kerneltest.Run(t, ops, opt)
		})
	}
}

// The simulated Gemm's epilogue options (per-row bias, residual, batch 0 as
// one product), which the tensor ops do not use, against the loop of
// kernels.GemmParams.
func TestSimGemmEpilogue(t *testing.T) {
	s := newSimDevice()
	up := func(x []float32) *simBuf {
		b, _ := s.Alloc(kernels.F32, len(x))
		if err := s.UploadF32(b, x); err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A [2x3], B [3x2]^T stored as [2x3], C [2x2], bias per row, residual.
	a := up([]float32{1, 2, 3, 4, 5, 6})
	bt := up([]float32{1, 0, 1, 0, 1, 0})
	c := up([]float32{10, 20, 30, 40})
	bias := up([]float32{100, 200})
	r := up([]float32{1, 2, 3, 4})
	p := kernels.GemmParams[*simBuf]{M: 2, N: 2, K: 3, Alpha: 2, Beta: 0.5,
		A: kernels.DeviceMat[*simBuf]{Buf: a, Stride: 3}, B: kernels.DeviceMat[*simBuf]{Buf: bt, Stride: 3, Trans: true},
		C: c, Ldc: 2, Bias: bias, BiasRows: true, R: r, Ldr: 2}
	if err := s.Gemm(p); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 4)
	if err := s.DownloadF32(got, c); err != nil {
		t.Fatal(err)
	}
	// row i, column j: 2*sum_p A(i,p)*B(p,j) + bias[i] + 0.5*C + R
	want := []float32{2*4 + 100 + 5 + 1, 2*2 + 100 + 10 + 2, 2*10 + 200 + 15 + 3, 2*5 + 200 + 20 + 4}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("C = %v, want %v", got, want)
		}
	}
}

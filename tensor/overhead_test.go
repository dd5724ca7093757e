package tensor_test

import (
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
)

// BenchmarkAccelHostOverheadUNetStep runs the SD1.5 U-Net's sequence of ops
// (SD1.5's blocks, layers and heads; narrow channels, since nothing is
// computed) at batch 2 on a device whose kernels do nothing, and reports the
// host time per step with the number of kernel calls and allocations: the
// floor under a GPU step's latency that the Go side sets, and what the GPU
// kernels must outlast to keep it busy.
func BenchmarkAccelHostOverheadUNetStep(b *testing.B) {
	cfg := unet.DefaultConfig()
	cfg.BlockOutChannels = []int{32, 64, 128, 128}
	cfg.CrossAttentionDim = unet.IntList{64}
	m, err := unet.New(nn.NewRandomBuilder(1, tensor.F16), cfg)
	if err != nil {
		b.Fatal(err)
	}
	dev, calls, allocs := tensor.OpenNullDevice(0)
	if err := nn.ToDevice(m, dev); err != nil {
		b.Fatal(err)
	}
	up := func(t *tensor.Tensor) *tensor.Tensor { return t.ToDevice(dev) }
	x := up(tensor.Zeros(tensor.F32, 2, 4, 64, 64))
	ctx := up(tensor.Zeros(tensor.F32, 2, 77, 64))
	ts := up(tensor.Scalar(500))
	m.Forward(x, ts, ctx).Release()
	c0, a0, f0 := calls(), allocs(), tensor.DeviceFLOPs(dev)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Forward(x, ts, ctx).Release()
	}
	b.StopTimer()
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/step")
	b.ReportMetric(float64(calls()-c0)/float64(b.N), "kernels/step")
	b.ReportMetric(float64(allocs()-a0)/float64(b.N), "allocs/step")
	b.ReportMetric(float64(tensor.DeviceFLOPs(dev)-f0)/float64(b.N)/1e9, "GFLOP/step(narrow)")
}

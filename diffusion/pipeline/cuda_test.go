//go:build cuda

package pipeline

import "testing"

// TestCUDAGoldenTxt2Img runs the golden txt2img case with the models on the
// GPU (scripts/gpu-check.sh runs it with -test.run '^TestCUDA'), with the
// tolerances of the simulated device's test: the same code path over
// kernels/cuda instead of kernels/cpu.
func TestCUDAGoldenTxt2Img(t *testing.T) {
	for _, cd := range []struct {
		compute string
		rel     float64
	}{{"f32", 2e-4}, {"f16", 5e-3}, {"bf16", 4e-2}} {
		t.Run(cd.compute, func(t *testing.T) { goldenOnDevice(t, "cuda:0", cd.compute, cd.rel) })
	}
}

// TestCUDADemo compares a small demo-model generation on the GPU with the
// CPU's (fast enough for scripts/emu-cuda.sh's emulated kernels).
func TestCUDADemo(t *testing.T) {
	for _, c := range []struct {
		compute string
		rel     float64
	}{{"f32", 2e-4}, {"f16", 3e-2}} {
		t.Run(c.compute, func(t *testing.T) { demoOnDevice(t, "cuda:0", c.compute, c.rel) })
	}
}

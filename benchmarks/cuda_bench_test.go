//go:build cuda

package benchmarks

import (
	"context"
	"sync"
	"testing"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// GPU benchmarks (scripts/gpu-check.sh runs them with -test.bench CUDA): the
// SD1.5 architecture with random F16 weights, moved to cuda:0 computing in F16.

var (
	gpuOnce sync.Once
	gpuPipe *pipeline.Pipeline
	gpuErr  error
)

func gpuPipeline(b *testing.B) *pipeline.Pipeline {
	gpuOnce.Do(func() {
		gpuPipe, gpuErr = pipeline.NewRandom("sd15", 1, tensor.F16)
		if gpuErr == nil {
			gpuErr = gpuPipe.ToDevice("cuda", "f16")
		}
	})
	if gpuErr != nil {
		b.Fatal(gpuErr)
	}
	return gpuPipe
}

// BenchmarkCUDAUNetStep times one U-Net forward pass of SD1.5 at batch 2 with
// 64x64 latents (a 512x512 image with classifier-free guidance) and 77-token
// text embeddings, synchronising after each pass.
func BenchmarkCUDAUNetStep(b *testing.B) {
	p := gpuPipeline(b)
	dev := p.Device
	g := rng.New(7)
	up := func(t *tensor.Tensor) *tensor.Tensor {
		d := t.ToDevice(dev)
		t.Release()
		return d
	}
	x := up(tensor.Randn(g, 2, 4, 64, 64))
	ctx := up(tensor.Randn(g, 2, 77, p.UNet.Config.CrossAttentionDim[0]))
	ts := up(tensor.Scalar(500))
	step := func() {
		out := p.UNet.Forward(x, ts, ctx)
		out.Release()
		if err := tensor.Synchronize(dev); err != nil {
			b.Fatal(err)
		}
	}
	if err := tensor.Catch(step); err != nil { // warm-up: module loads, allocator
		b.Fatal(err)
	}
	f0 := tensor.DeviceFLOPs(dev)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.StopTimer()
	flops := float64(tensor.DeviceFLOPs(dev)-f0) / float64(b.N)
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/step")
	b.ReportMetric(flops/1e9, "GFLOP/step")
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e12, "TFLOP/s")
	m := tensor.DeviceMemory(dev)
	b.ReportMetric(float64(m.InUse)/(1<<20), "MiB-in-use")
	b.ReportMetric(float64(m.Cached)/(1<<20), "MiB-cached")
}

// BenchmarkCUDATxt2Img runs a whole 512x512 generation (20 PNDM steps with
// guidance) on the GPU and reports its phases.
func BenchmarkCUDATxt2Img(b *testing.B) {
	p := gpuPipeline(b)
	req := pipeline.Request{Prompt: "small left-sided pleural effusion", Height: 512, Width: 512,
		Steps: 20, Guidance: 7.5, Scheduler: "pndm", Seed: 42}
	if _, err := p.Txt2Img(context.Background(), req); err != nil { // warm-up
		b.Fatal(err)
	}
	tm := timeTxt2Img(b, p, req)
	b.ReportMetric(tm.TextEncoding.Seconds()*1e3, "ms-text")
	b.ReportMetric(tm.Denoising.Seconds()*1e3, "ms-denoise")
	b.ReportMetric(float64(tm.Steps)/tm.Denoising.Seconds(), "steps/s")
	b.ReportMetric(tm.Decoding.Seconds()*1e3, "ms-decode")
}

package pipeline

import (
	"context"
	"fmt"
	"image"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// The whole pipeline on the simulated accelerator ("sim": the accelerator code
// path of package tensor with device buffers, transfers and the compute dtype,
// over kernels/cpu), against diffusers' golden outputs. In F32 it must meet the
// CPU's tolerances; in F16 and BF16 every activation is rounded to 16 bits, so
// the tolerances are those of 16-bit storage (relative 2^-11 / 2^-8 per
// rounding, over some dozens of roundings in a row), still far below the
// spread of the outputs.
func TestGoldenTxt2ImgOnSim(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	for i, cd := range []struct {
		compute string
		rel     float64 // tolerance relative to the array's magnitude
	}{{"f32", 1e-4}, {"f16", 5e-3}, {"bf16", 4e-2}} {
		t.Run(cd.compute, func(t *testing.T) {
			goldenOnDevice(t, fmt.Sprintf("sim:%d", 40+i), cd.compute, cd.rel)
		})
	}
}

// goldenOnDevice runs the golden ddim_4steps txt2img case with the models on
// dev computing in compute, and compares the text embeddings, final latents
// and decoded image with diffusers' within rel times each array's magnitude
// (absolute) and rel (relative).
func goldenOnDevice(t *testing.T, dev, compute string, rel float64) {
	dir := goldenModel(t)
	c := goldenCases(t)["ddim_4steps"]
	p, err := Load(dir, Options{Device: dev, Compute: compute})
	require.NoError(t, err)
	defer p.Close()
	require.NotEqual(t, tensor.CPU, p.Device)
	require.Equal(t, p.Device, p.UNet.ConvIn.Weight.Device(), "U-Net weights moved")
	var final, decoded, embeds []float32
	req := Request{
		Prompt: c.Prompt, Negative: c.NegativePrompt, Guidance: c.GuidanceScale,
		Steps: c.Steps, Height: c.Height, Width: c.Width, Seed: c.Seed, Scheduler: "ddim",
		trace: &trace{
			embeds: func(e *tensor.Tensor) {
				require.Equal(t, p.Device, e.Device(), "text embeddings stay on the device")
				embeds = e.Float32s()
			},
			final: func(l, d *tensor.Tensor) {
				require.Equal(t, tensor.CPU, l.Device(), "latents live on the host")
				final, decoded = l.Float32s(), d.Float32s()
			},
		},
	}
	res, err := p.Txt2Img(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	gd := "txt2img/ddim_4steps/"
	for _, a := range []struct {
		name, file string
		got        []float32
	}{{"prompt_embeds", "prompt_embeds.npy", embeds}, {"final_latents", "final_latents.npy", final}, {"decoded_raw", "decoded_raw.npy", decoded}} {
		want, _ := readNpy(t, gd+a.file)
		closeTo(t, a.name, a.got, want, rel*maxAbs(want), rel)
	}
	require.NoError(t, tensor.Synchronize(p.Device))
	m := tensor.DeviceMemory(p.Device)
	w := deviceWeightBytes(p)
	t.Logf("%v: %d bytes of weights, %d in use after the run, %d cached", p.Device, w, m.InUse, m.Cached)
	require.LessOrEqual(t, m.InUse-w, w/8+1<<20, "only the weights (in size classes) stay on the device after a run")
}

// demoOnDevice generates a small image with the built-in demo model on the CPU
// and with its models on dev computing in compute, and compares the final
// latents and decoded images within rel times their magnitude: a quick end
// to end check of the device path (small enough for emulated kernels).
func demoOnDevice(t *testing.T, dev, compute string, rel float64) {
	run := func(dev string) (final, decoded []float32) {
		p, err := Demo()
		require.NoError(t, err)
		defer p.Close()
		if dev != "" {
			require.NoError(t, p.ToDevice(dev, compute))
		}
		req := Request{Prompt: "small left-sided pleural effusion", Negative: "blurry", Steps: 2, Guidance: 4,
			Height: 16, Width: 16, Seed: 11, Scheduler: "ddim",
			trace: &trace{final: func(l, d *tensor.Tensor) { final, decoded = l.Float32s(), d.Float32s() }}}
		_, err = p.Txt2Img(context.Background(), req)
		require.NoError(t, err)
		return final, decoded
	}
	wantF, wantD := run("")
	gotF, gotD := run(dev)
	closeTo(t, "final latents", gotF, wantF, rel*maxAbs(wantF), rel)
	closeTo(t, "decoded", gotD, wantD, rel*maxAbs(wantD), rel)
}

func TestDemoOnSim(t *testing.T) {
	for i, c := range []struct {
		compute string
		rel     float64
	}{{"f32", 1e-4}, {"f16", 3e-2}} {
		t.Run(c.compute, func(t *testing.T) { demoOnDevice(t, fmt.Sprintf("sim:%d", 46+i), c.compute, c.rel) })
	}
}

// deviceWeightBytes sums the bytes of the models' tensors that are on the
// pipeline's device.
func deviceWeightBytes(p *Pipeline) int64 {
	var n int64
	seen := map[*tensor.Tensor]bool{}
	for _, m := range []any{p.TextEncoder, p.UNet, p.VAE} {
		for _, t := range nn.Tensors(m) {
			if seen[t] || t.Device() != p.Device || t.DType() == tensor.I64 {
				continue
			}
			seen[t] = true
			n += int64(t.Numel() * t.DType().Size())
		}
	}
	return n
}

// Img2Img on the simulated device (VAE encoder, posterior sample, noising)
// matches the CPU run in F32.
func TestImg2ImgOnSim(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	dir := goldenModel(t)
	img := image.NewNRGBA(image.Rect(0, 0, 32, 32))
	for i := range img.Pix {
		img.Pix[i] = uint8(i * 7)
	}
	req := Request{Prompt: "small left-sided pleural effusion", Steps: 4, Guidance: 5, Height: 32, Width: 32,
		Seed: 3, InitImage: img, Strength: 0.6, Scheduler: "ddim"}
	run := func(o Options) []uint8 {
		p, err := Load(dir, o)
		require.NoError(t, err)
		defer p.Close()
		res, err := p.Img2Img(context.Background(), req)
		require.NoError(t, err)
		return res.Images[0].Pix
	}
	cpuPix := run(Options{})
	simPix := run(Options{Device: "sim:43", Compute: "f32"})
	worst := 0.0
	for i := range cpuPix {
		worst = math.Max(worst, math.Abs(float64(cpuPix[i])-float64(simPix[i])))
	}
	require.LessOrEqual(t, worst, 1.0, "8-bit pixels differ by at most one step (float rounding)")
}

// Running out of device memory is an error naming the allocation, from
// moving the models and from generating, never a panic.
func TestDeviceOutOfMemory(t *testing.T) {
	dir := goldenModel(t)
	dev, err := tensor.Open("sim:44")
	require.NoError(t, err)
	require.NoError(t, tensor.SetSimMemoryLimit(dev, 1<<20))
	_, err = Load(dir, Options{Device: "sim:44"})
	require.ErrorContains(t, err, "out of device memory allocating")
	require.ErrorContains(t, err, "moving the")

	// Enough for the weights, not for a 256x256 generation.
	p, err := Load(dir, Options{Device: "sim:45"})
	require.NoError(t, err)
	dev45 := p.Device
	require.NoError(t, tensor.SetSimMemoryLimit(p.Device, tensor.DeviceMemory(p.Device).InUse+(1<<20)))
	_, err = p.Txt2Img(context.Background(), Request{Prompt: "x", Steps: 2, Height: 256, Width: 256})
	require.ErrorContains(t, err, "out of device memory allocating")
	t.Log(err)
	require.NoError(t, tensor.SetSimMemoryLimit(p.Device, 0))
	_, err = p.Txt2Img(context.Background(), Request{Prompt: "x", Steps: 2, Height: 32, Width: 32})
	require.NoError(t, err, "the pipeline works again once memory is there")
	require.NoError(t, p.Close())
	require.NoError(t, p.Close(), "a second Close does nothing")
	// The failed run's intermediates go back when collected (cleanups run
	// after a collection, on their own goroutine).
	for i := 0; i < 100 && tensor.DeviceMemory(dev45).InUse != 0; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	require.Zero(t, tensor.DeviceMemory(dev45).InUse, "Close and collection gave all device memory back")
}

func TestDeviceOptionErrors(t *testing.T) {
	dir := goldenModel(t)
	_, err := Load(dir, Options{Device: "tpu"})
	require.ErrorContains(t, err, "unknown device")
	_, err = Load(dir, Options{Device: "sim", Compute: "f8"})
	require.ErrorContains(t, err, "compute dtype")
	if _, cerr := tensor.Open("cuda"); cerr != nil {
		// Without -tags cuda (or without a GPU) the error says why.
		_, err = Load(dir, Options{Device: "cuda"})
		require.Error(t, err)
		t.Log(err)
	}
}

package pipeline

import (
	"context"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/roentgo/roentgo/vae"
	"github.com/stretchr/testify/require"
)

// withMemory makes availableMemory report avail bytes during a test.
func withMemory(t *testing.T, avail float64) {
	old := availableMemory
	availableMemory = func() (float64, bool) { return avail, true }
	t.Cleanup(func() { availableMemory = old })
}

// TestMemoryEstimateSD15: the estimates for Stable Diffusion 1.5 follow the
// hand-derived formula: at 64x64 latents the U-Net keeps conv_in, two
// resnets per level and three downsamplers as skips (320x64^2 +
// 2x320x64^2 + 320x32^2 + 2x640x32^2 + 640x16^2 + 2x1280x16^2 + 1280x8^2 +
// 2x1280x8^2 = 6,635,520 values) and works on 64 tensors of the widest
// level (320x64^2 = 1,310,720 values); the decoder peaks at 8 tensors of
// 256 channels at full size.
func TestMemoryEstimateSD15(t *testing.T) {
	p := &Pipeline{UNet: &unet.Model{Config: unet.DefaultConfig()}, VAE: &vae.AutoencoderKL{Config: vae.SD15Config()}}
	want := 2 * 4 * (6635520 + 64*1310720.0)
	require.InDelta(t, want, p.unetBytes(2, 64, 64), 1)
	require.InDelta(t, 8*4*256*512*512.0, p.decodeBytes(1, 512, 512), 1)
	// 16384x16384: hundreds of GiB for the U-Net.
	require.Greater(t, p.unetBytes(2, 2048, 2048), 500.0*(1<<30))
}

// TestMemoryRefusal: a size whose U-Net pass cannot fit in the available
// memory is refused by Validate with the estimate; a size whose decoding
// would take more than half of it is decoded in tiles (with a warning) and
// still gives an image.
func TestMemoryRefusal(t *testing.T) {
	p, err := Demo()
	require.NoError(t, err)
	defer p.Close()
	withMemory(t, 64<<20)
	err = p.Validate(&Request{Prompt: "x", Height: 4096, Width: 4096, Guidance: 7.5})
	require.ErrorContains(t, err, "image size 4096x4096 with 2 U-Net rows per step needs about")
	require.ErrorContains(t, err, "0.1 GiB are available")

	// Enough for the U-Net at 512x512, not for decoding whole.
	need := p.unetBytes(1, 64, 64)
	dec := p.decodeBytes(1, 512, 512)
	require.Less(t, need, dec/2, "the tiny model decodes with more memory than it denoises")
	withMemory(t, max(need*1.01, dec/3))
	var warnings []string
	p.Warn = func(m string) { warnings = append(warnings, m) }
	res, err := p.Txt2Img(context.Background(), Request{Prompt: "x", Height: 512, Width: 512, Guidance: 1, Steps: 1, Scheduler: "ddim"})
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	require.Equal(t, 512, res.Images[0].Bounds().Dx())
	require.Len(t, warnings, 1)
	require.Contains(t, warnings[0], "decoding in tiles")
}

// TestMemoryEstimateCalibration measures the Go heap a 512x512 SD 1.5
// generation (one row, no guidance) uses above the loaded model, during
// the U-Net step and during decoding, and checks that the estimates are not
// below it. It takes minutes and gigabytes: run with ROENTGO_CALIBRATE=1.
func TestMemoryEstimateCalibration(t *testing.T) {
	if os.Getenv("ROENTGO_CALIBRATE") == "" {
		t.Skip("set ROENTGO_CALIBRATE=1 to measure the memory estimates (minutes, ~4 GB)")
	}
	p, err := NewRandom("sd15", 1, tensor.F16)
	require.NoError(t, err)
	defer p.Close()
	p.KeepWeightsResident = true
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan bool)
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var unetPeak uint64
	req := Request{Prompt: "x", Steps: 1, Guidance: 1, Height: 512, Width: 512, Scheduler: "ddim"}
	req.Callback = func(int, int, float64, *tensor.Tensor) bool { unetPeak = peak.Load(); peak.Store(0); return true }
	_, err = p.Txt2Img(context.Background(), req)
	require.NoError(t, err)
	u, d := float64(unetPeak-base), float64(peak.Load()-base)
	t.Logf("U-Net step: %.2f GiB measured, %.2f estimated; decoding: %.2f GiB measured, %.2f estimated",
		u/(1<<30), p.unetBytes(1, 64, 64)/(1<<30), d/(1<<30), p.decodeBytes(1, 512, 512)/(1<<30))
	require.GreaterOrEqual(t, p.unetBytes(1, 64, 64), u)
	require.GreaterOrEqual(t, p.decodeBytes(1, 512, 512), d)
}

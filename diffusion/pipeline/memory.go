package pipeline

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/roentgo/roentgo/tensor"
)

// Memory estimates. They are deliberately rough and err high: their purpose
// is to refuse, in a second and with a number, a size that would run out of
// memory after minutes (a 16384x16384 image), not to predict the peak.
//
// The U-Net keeps the down path's skip connections until the up path uses
// them (conv_in's output, every resnet's and every downsampler's) and works
// on a few tensors of the widest level at a time, the largest being the
// transformer's feed-forward (GEGLU: 8x the channels per token); the CPU
// attention is tiled and never holds the score matrix. The VAE decoder's
// peak is a few tensors of its widest full-resolution level (256 channels at
// half and full size for Stable Diffusion), per image of a batch.

// workFactor is the U-Net's working memory in widest-level tensors, beyond
// the skip connections: the feed-forward's 8x, attention tiles, im2col
// tiles, and the buffer pool's rounding to size classes. Measured on the SD
// 1.5 architecture at 512x512 (one row, F16 weights, 2 threads; Go heap in
// use above the loaded model, sampled every 20 ms): 0.29 GiB, about 54
// widest-level tensors beyond the skips; 64 errs high
// (TestMemoryEstimateCalibration, ROENTGO_CALIBRATE=1).
const workFactor = 64

// decodeFactor is the VAE decoder's memory in widest-level tensors (input,
// normalised, convolved, residual, pool rounding). Measured as above for one
// 512x512 image: 1.57 GiB, 6.3 tensors of 256 x 512 x 512 values; 8 errs
// high.
const decodeFactor = 8

// levelPixels returns the latent pixels at each U-Net level for a latent of
// lh x lw (each level halves the size, rounding up).
func (p *Pipeline) levelPixels(lh, lw int) []float64 {
	out := make([]float64, len(p.UNet.Config.BlockOutChannels))
	h, w := lh, lw
	for i := range out {
		out[i] = float64(h * w)
		h, w = (h+1)/2, (w+1)/2
	}
	return out
}

// unetBytes estimates the U-Net's memory for rows latents of lh x lw.
func (p *Pipeline) unetBytes(rows, lh, lw int) float64 {
	px := p.levelPixels(lh, lw)
	boc := p.UNet.Config.BlockOutChannels
	lpb := p.UNet.Config.LayersPerBlock
	perLevel := func(i int) float64 {
		if len(lpb) == 0 {
			return 2
		}
		if len(lpb) == 1 {
			return float64(lpb[0])
		}
		return float64(lpb[min(i, len(lpb)-1)])
	}
	skips, widest := 0.0, 0.0
	for i, n := range px {
		v := float64(boc[i]) * n // this level's channels x pixels
		if i == 0 {
			skips += v // conv_in
		}
		skips += perLevel(i) * v
		if i+1 < len(px) {
			skips += float64(boc[i]) * px[i+1] // the downsampler's output
		}
		widest = max(widest, v)
	}
	return float64(rows) * 4 * (skips + workFactor*widest)
}

// decodeBytes estimates the VAE decoder's memory for rows images of h x w
// pixels (decoded whole, not tiled).
func (p *Pipeline) decodeBytes(rows, h, w int) float64 {
	boc := p.VAE.Config.BlockOutChannels // the decoder runs them reversed
	widest := 0.0
	// Decoder level j (from the latents up) has channels boc[len-1-j] at
	// h/2^(len-1-j); each level but the last ends with an upsampler that
	// doubles the size with the level's channels.
	n := len(boc)
	for j := 0; j < n; j++ {
		c := float64(boc[n-1-j])
		scale := float64(int(1) << (n - 1 - j))
		px := float64(h) / scale * float64(w) / scale
		widest = max(widest, c*px)
		if j+1 < n {
			widest = max(widest, c*px*4)
		}
	}
	return float64(rows) * 4 * decodeFactor * widest
}

// availableMemory returns the memory the system can give this process
// without swapping (Linux's MemAvailable), or false where it is not known.
var availableMemory = func() (float64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseFloat(fields[1], 64)
			if err != nil {
				return 0, false
			}
			return kb * 1024, true
		}
	}
	return 0, false
}

// AvailableMemory returns the memory the system can give this process
// without swapping (Linux's MemAvailable), or false where it is not known.
func AvailableMemory() (bytes float64, ok bool) { return availableMemory() }

// gib formats bytes in GiB.
func gib(b float64) string { return fmt.Sprintf("%.1f GiB", b/(1<<30)) }

// checkMemory refuses a plan whose U-Net pass would not fit in the memory
// available now, and chooses tiled decoding (telling Warn when warn is set) when decoding whole would take
// more than half of it (and the VAE can tile the size). It checks the CPU
// and the simulated device (host memory) only: a GPU's memory is reported
// by the device when an allocation fails.
func (p *Pipeline) checkMemory(pl *plan, img2img, warn bool) error {
	if p.Device != tensor.CPU && p.Device.Kind != tensor.KindSim {
		return nil
	}
	avail, ok := availableMemory()
	if !ok {
		return nil
	}
	rows := pl.batch
	if pl.cfg {
		rows *= 2
	}
	need := p.unetBytes(rows, pl.lh, pl.lw)
	if need > avail {
		hint := "a smaller size"
		if pl.batch > 1 {
			hint += " or a smaller batch (-batch 1)"
		}
		return fmt.Errorf("pipeline: image size %dx%d with %d U-Net rows per step needs about %s for the U-Net; %s are available; use %s",
			pl.w, pl.h, rows, gib(need), gib(avail), hint)
	}
	dec := p.decodeBytes(pl.batch, pl.h, pl.w)
	if img2img {
		dec = max(dec, p.decodeBytes(1, pl.h, pl.w)) // the encoder runs on one image
	}
	if dec > avail/2 && p.VAE.TileSampleSize > 0 && p.VAE.TileSampleSize < max(pl.h, pl.w) {
		pl.tiledDecode = true
		if warn {
			p.warn(fmt.Sprintf("decoding %d image(s) of %dx%d whole needs about %s (%s available): decoding in tiles of %d pixels instead (seams are blended, as diffusers' enable_vae_tiling does)",
				pl.batch, pl.w, pl.h, gib(dec), gib(avail), p.VAE.TileSampleSize))
		}
	}
	return nil
}

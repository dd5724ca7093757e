package vae

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// vmHWM returns the process's peak resident set (VmHWM) in bytes, or 0.
func vmHWM() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

// convFLOP is 2 * output elements * inputs per output of a convolution.
func convFLOP(c *nn.Conv2d, oh, ow int) float64 {
	w := c.Weight.Shape()
	return 2 * float64(w[0]*w[1]*w[2]*w[3]) * float64(oh*ow)
}

func resnetFLOP(r *nn.ResnetBlock2D, h, w int) float64 {
	f := convFLOP(r.Conv1, h, w) + convFLOP(r.Conv2, h, w)
	if r.ConvShortcut != nil {
		f += convFLOP(r.ConvShortcut, h, w)
	}
	return f
}

// decodeFLOP counts the multiply-adds (x2) of the convolutions, projections and
// attention products of decoding h x w latents (norms and activations are
// negligible).
func decodeFLOP(m *AutoencoderKL, h, w int) float64 {
	d := m.Decoder
	f := convFLOP(m.PostQuantConv, h, w) + convFLOP(d.ConvIn, h, w)
	f += resnetFLOP(d.MidBlock.Resnets[0], h, w) + resnetFLOP(d.MidBlock.Resnets[1], h, w)
	if a := d.MidBlock.Attention; a != nil {
		c, s := float64(a.ToQ.Weight.Dim(0)), float64(h*w)
		f += 4*2*s*c*c + 2*2*s*s*c
	}
	for _, blk := range d.UpBlocks {
		for _, r := range blk.Resnets {
			f += resnetFLOP(r, h, w)
		}
		if blk.Upsampler != nil {
			h, w = 2*h, 2*w
			f += convFLOP(blk.Upsampler.Conv, h, w)
		}
	}
	return f + convFLOP(d.ConvOut, h, w)
}

// BenchmarkDecodeSD15 decodes 64x64 latents to a 512x512 image with Stable
// Diffusion 1.5's VAE (random F16 weights): about 2.5 TFLOP, in F32 and then
// in BF16 compute (tensor.SetComputeDType(CPU, BF16); skipped without
// AVX512_BF16), after one warm-up decode. It reports seconds per decode, GFLOP/s, %peak against the F32
// FMA probe and the process's peak RSS. It takes minutes on two cores: run it
// alone with -benchtime=1x.
func BenchmarkDecodeSD15(b *testing.B) {
	bld := nn.NewRandomBuilder(1, tensor.F16)
	m, err := New(bld, SD15Config())
	if err != nil {
		b.Fatal(err)
	}
	z := tensor.Randn(rng.New(1), 1, 4, 64, 64)
	flop := decodeFLOP(m, 64, 64)
	for _, ct := range []tensor.DType{tensor.F32, tensor.BF16} {
		b.Run(ct.String(), func(b *testing.B) {
			if err := tensor.SetComputeDType(tensor.CPU, ct); err != nil {
				b.Skip(err)
			}
			defer tensor.SetComputeDType(tensor.CPU, tensor.F32)
			m.Decode(z).Release() // warms the buffer pool
			b.ResetTimer()
			for range b.N {
				m.Decode(z).Release()
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec, "s/decode")
			b.ReportMetric(flop/1e12, "TFLOP/decode")
			b.ReportMetric(flop/sec/1e9, "GFLOP/s")
			if p := cpu.PeakGFLOPS(cpu.Threads()); p > 0 {
				b.ReportMetric(100*flop/sec/1e9/p, "%peak")
			}
			b.ReportMetric(vmHWM()/(1<<20), "peakRSS-MiB")
		})
	}
}

// BenchmarkEncodeSD15 encodes a 512x512 image with SD 1.5's VAE (random F16
// weights); like BenchmarkDecodeSD15 it takes minutes: -benchtime=1x.
func BenchmarkEncodeSD15(b *testing.B) {
	bld := nn.NewRandomBuilder(1, tensor.F16)
	m, err := New(bld, SD15Config())
	if err != nil {
		b.Fatal(err)
	}
	x := tensor.Rand(rng.New(1), 1, 3, 512, 512).Affine(2, -1)
	b.ResetTimer()
	for range b.N {
		m.Encode(x).Release()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/encode")
	b.ReportMetric(vmHWM()/(1<<20), "peakRSS-MiB")
}

// BenchmarkDecodeTiny decodes the golden tiny VAE's 16x16 latents (quick).
func BenchmarkDecodeTiny(b *testing.B) {
	m := loadTiny(b, tensor.F32)
	z := readNpy(b, "vae/decode_input.npy")
	b.ResetTimer()
	for range b.N {
		m.Decode(z).Release()
	}
}

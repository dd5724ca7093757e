package cpu

import (
	"fmt"
	"testing"
)

// convBenchCases are the convolutions of the Stable Diffusion U-Net and VAE that
// scripts/bench_torch_conv_attn.py also measures.
var convBenchCases = []struct {
	name string
	p    ConvParams
	dt   DType
}{
	{"unet3x3_N2_320to320_64x64", ConvParams{N: 2, C: 320, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
	{"unet3x3_N2_320to320_64x64_f16w", ConvParams{N: 2, C: 320, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F16},
	{"convin3x3_N2_4to320_64x64", ConvParams{N: 2, C: 4, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
	{"vae3x3_N1_512to512_128x128", ConvParams{N: 1, C: 512, H: 128, W: 128, K: 512, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
	{"down3x3s2_N2_320to320_64x64", ConvParams{N: 2, C: 320, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, F32},
	{"shortcut1x1_N2_320to640_32x32", ConvParams{N: 2, C: 320, H: 32, W: 32, K: 640, R: 1, S: 1, StrideH: 1, StrideW: 1}, F32},
	{"unet3x3_N2_640to640_32x32_f16w", ConvParams{N: 2, C: 640, H: 32, W: 32, K: 640, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F16},
	{"unet3x3_N2_1280to1280_16x16_f16w", ConvParams{N: 2, C: 1280, H: 16, W: 16, K: 1280, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F16},
	{"unet3x3_N2_1280to1280_8x8_f16w", ConvParams{N: 2, C: 1280, H: 8, W: 8, K: 1280, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F16},
	{"unet3x3_N2_1280to1280_4x4_f16w", ConvParams{N: 2, C: 1280, H: 4, W: 4, K: 1280, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F16},
}

// convFlops is 2*N*K*OH*OW*C*R*S.
func convFlops(p ConvParams) float64 {
	return 2 * float64(p.N) * float64(p.K) * float64(p.OutH()*p.OutW()) * float64(p.C*p.R*p.S)
}

func convBench(b *testing.B, p ConvParams, dt DType, conv func(ConvParams, []float32, Mat, []float32, []float32)) {
	crs := p.C * p.R * p.S
	x := convTestData(p.N*p.C*p.H*p.W, 1)
	w := convWeights(convTestData(p.K*crs, 2), dt, crs)
	bias := convTestData(p.K, 3)
	y := make([]float32, p.N*p.K*p.OutH()*p.OutW())
	conv(p, x, w, bias, y) // warm the pools
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		conv(p, x, w, bias, y)
	}
	reportGFLOPS(b, convFlops(p), Threads())
}

// BenchmarkConv2d reports GFLOP/s and the im2col scratch of each goroutine.
func BenchmarkConv2d(b *testing.B) {
	for _, bc := range convBenchCases {
		b.Run(bc.name, func(b *testing.B) {
			convBench(b, bc.p, bc.dt, Conv2d)
			b.ReportMetric(float64(4*ConvScratchFloats(bc.p)), "scratchB/goroutine")
		})
	}
}

// BenchmarkConv2dRef is the naive baseline on a reduced size.
func BenchmarkConv2dRef(b *testing.B) {
	p := ConvParams{N: 1, C: 32, H: 16, W: 16, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	for _, f := range []struct {
		name string
		fn   func(ConvParams, []float32, Mat, []float32, []float32)
	}{{"ref", Conv2dRef}, {"fast", Conv2d}} {
		b.Run(fmt.Sprintf("%s_N1_32to32_16x16", f.name), func(b *testing.B) { convBench(b, p, F32, f.fn) })
	}
}

// BenchmarkConv2dColdWeights runs the F16-weight cases with the weights cold,
// as in a U-Net step, where every convolution's weights come from memory once
// per step: each call takes the next of enough weight copies to fill 256 MiB.
func BenchmarkConv2dColdWeights(b *testing.B) {
	for _, bc := range convBenchCases {
		if bc.dt != F16 {
			continue
		}
		b.Run(bc.name, func(b *testing.B) {
			p := bc.p
			crs := p.C * p.R * p.S
			x := convTestData(p.N*p.C*p.H*p.W, 1)
			w0 := convWeights(convTestData(p.K*crs, 2), F16, crs)
			ws := make([]Mat, max(2, (256<<20)/(2*p.K*crs)))
			for i := range ws {
				ws[i] = HalfMat(append([]uint16(nil), w0.U16...), F16, crs, false)
			}
			bias := convTestData(p.K, 3)
			y := make([]float32, p.N*p.K*p.OutH()*p.OutW())
			Conv2d(p, x, ws[0], bias, y)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				Conv2d(p, x, ws[i%len(ws)], bias, y)
			}
			reportGFLOPS(b, convFlops(p), Threads())
		})
	}
}

package cpu

import (
	"math"
	"testing"
)

// convBwdBenchCases are the convolutions of the Stable Diffusion U-Net whose
// gradients a training step computes; scripts/bench_torch_backward.py measures
// the same with PyTorch.
var convBwdBenchCases = []struct {
	name string
	p    ConvParams
	dt   DType
}{
	{"unet3x3_N2_320to320_64x64", ConvParams{N: 2, C: 320, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
	{"unet3x3_N2_320to320_64x64_f16w", ConvParams{N: 2, C: 320, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F16},
	{"down3x3s2_N2_320to320_64x64", ConvParams{N: 2, C: 320, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}, F32},
	{"shortcut1x1_N2_320to640_32x32", ConvParams{N: 2, C: 320, H: 32, W: 32, K: 640, R: 1, S: 1, StrideH: 1, StrideW: 1}, F32},
	{"unet3x3_N2_640to640_32x32", ConvParams{N: 2, C: 640, H: 32, W: 32, K: 640, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
	{"unet3x3_N2_1280to1280_16x16", ConvParams{N: 2, C: 1280, H: 16, W: 16, K: 1280, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
	{"unet3x3_N2_1280to1280_8x8", ConvParams{N: 2, C: 1280, H: 8, W: 8, K: 1280, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
	{"unet3x3_N2_1280to1280_4x4", ConvParams{N: 2, C: 1280, H: 4, W: 4, K: 1280, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}, F32},
}

// convBwdBench times one gradient (or the forward, for comparison) of p and
// reports GFLOP/s at 2*N*K*OH*OW*C*R*S flops per call (the same count for
// the forward, the data gradient and the weight gradient).
func convBwdBench(b *testing.B, p ConvParams, dt DType, which string, data, weight func(ConvParams, []float32, Mat, []float32, []float32)) {
	crs := p.C * p.R * p.S
	x := convTestData(p.N*p.C*p.H*p.W, 1)
	w := convWeights(convTestData(p.K*crs, 2), dt, crs)
	dy := convTestData(p.N*p.K*p.OutH()*p.OutW(), 3)
	dx := make([]float32, len(x))
	dw := make([]float32, p.K*crs)
	var run func()
	switch which {
	case "forward":
		bias := convTestData(p.K, 4)
		run = func() { Conv2d(p, x, w, bias, dy) }
	case "data":
		run = func() { data(p, dy, w, nil, dx) }
	case "weight":
		run = func() { weight(p, x, Mat{}, dy, dw) }
	}
	run() // warm the pools
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	reportGFLOPS(b, convFlops(p), Threads())
}

func convBwdDataFast(p ConvParams, dy []float32, w Mat, _, dx []float32) {
	Conv2dBackwardData(p, dy, w, dx)
}
func convBwdDataRef(p ConvParams, dy []float32, w Mat, _, dx []float32) {
	Conv2dBackwardDataRef(p, dy, w, dx)
}
func convBwdWeightFast(p ConvParams, x []float32, _ Mat, dy, dw []float32) {
	Conv2dBackwardWeight(p, x, dy, dw)
}
func convBwdWeightRef(p ConvParams, x []float32, _ Mat, dy, dw []float32) {
	Conv2dBackwardWeightRef(p, x, dy, dw)
}

// BenchmarkConv2dBackward reports GFLOP/s of the data and weight gradients
// beside the forward's on the same shapes, and the scratch per goroutine.
func BenchmarkConv2dBackward(b *testing.B) {
	for _, bc := range convBwdBenchCases {
		for _, which := range []string{"forward", "data", "weight"} {
			if which == "weight" && bc.dt != F32 {
				continue // the weight gradient does not read w
			}
			b.Run(bc.name+"/"+which, func(b *testing.B) {
				convBwdBench(b, bc.p, bc.dt, which, convBwdDataFast, convBwdWeightFast)
				if which != "forward" {
					b.ReportMetric(float64(4*ConvBackwardScratchFloats(bc.p)), "scratchB/goroutine")
				}
			})
		}
	}
}

// BenchmarkConv2dBackwardRef is the naive baseline beside the fast paths on a
// reduced size.
func BenchmarkConv2dBackwardRef(b *testing.B) {
	p := ConvParams{N: 1, C: 32, H: 16, W: 16, K: 32, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	for _, which := range []string{"data", "weight"} {
		b.Run("ref_N1_32to32_16x16/"+which, func(b *testing.B) {
			convBwdBench(b, p, F32, which, convBwdDataRef, convBwdWeightRef)
		})
		b.Run("fast_N1_32to32_16x16/"+which, func(b *testing.B) {
			convBwdBench(b, p, F32, which, convBwdDataFast, convBwdWeightFast)
		})
	}
}

// BenchmarkConv2dBackwardBias reports GB/s of the bias gradient (a pass over dy).
func BenchmarkConv2dBackwardBias(b *testing.B) {
	p := convBwdBenchCases[0].p
	dy := convTestData(p.N*p.K*p.OutH()*p.OutW(), 3)
	db := make([]float32, p.K)
	for i := 0; i < b.N; i++ {
		Conv2dBackwardBias(p, dy, db)
	}
	b.ReportMetric(4*float64(len(dy))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}

// attnBwdBenchCases are the attention shapes of BenchmarkAttention whose
// gradients a Stable Diffusion training step computes, and the VAE's single
// 512-wide head (at 256x256 and 512x512 images).
var attnBwdBenchCases = []struct {
	name string
	p    AttnParams
}{
	{"self_B2_H8_S4096_D40", AttnParams{B: 2, H: 8, Sq: 4096, Sk: 4096, D: 40}},
	{"cross_B2_H8_S4096x77_D40", AttnParams{B: 2, H: 8, Sq: 4096, Sk: 77, D: 40}},
	{"self_B2_H8_S1024_D80", AttnParams{B: 2, H: 8, Sq: 1024, Sk: 1024, D: 80}},
	{"self_B2_H8_S256_D160", AttnParams{B: 2, H: 8, Sq: 256, Sk: 256, D: 160}},
	{"self_B2_H5_S4096_D64", AttnParams{B: 2, H: 5, Sq: 4096, Sk: 4096, D: 64}},
	{"vae_B1_H1_S1024_D512", AttnParams{B: 1, H: 1, Sq: 1024, Sk: 1024, D: 512}},
	{"vae_B1_H1_S4096_D512", AttnParams{B: 1, H: 1, Sq: 4096, Sk: 4096, D: 512}},
}

// attnBwdFlops is the nominal flop count of the backward, 2.5 times the
// forward's (five products of 2*Sq*Sk*D against two; FlashAttention's convention).
func attnBwdFlops(p AttnParams) float64 { return 2.5 * attnFlops(p) }

// attnBwdBench times AttentionBackward (or the forward with the log-sum-exp)
// and reports GFLOP/s at attnBwdFlops (attnFlops for the forward).
func attnBwdBench(b *testing.B, p AttnParams, forward bool, bwd func(p AttnParams, do, q, k, v, o, lse, dq, dk, dv []float32)) {
	p.Scale = float32(1 / math.Sqrt(float64(p.D)))
	hd := p.H * p.D
	q := convTestData(p.B*p.Sq*hd, 1)
	k := convTestData(p.B*p.Sk*hd, 2)
	v := convTestData(p.B*p.Sk*hd, 3)
	do := convTestData(p.B*p.Sq*hd, 4)
	o := make([]float32, len(q))
	lse := make([]float32, p.B*p.H*p.Sq)
	dq, dk, dv := make([]float32, len(q)), make([]float32, len(k)), make([]float32, len(v))
	AttentionWithLSE(p, q, k, v, o, lse)
	run := func() { bwd(p, do, q, k, v, o, lse, dq, dk, dv) }
	flops := attnBwdFlops(p)
	if forward {
		run = func() { AttentionWithLSE(p, q, k, v, o, lse) }
		flops = attnFlops(p)
	}
	run()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	reportGFLOPS(b, flops, Threads())
}

// BenchmarkAttentionBackward reports GFLOP/s of the backward beside the
// forward's (with the log-sum-exp saved) and the scratch of all goroutines
// (the materialised backward keeps P and dP: 8*B*H*Sq*Sk bytes).
func BenchmarkAttentionBackward(b *testing.B) {
	for _, bc := range attnBwdBenchCases {
		b.Run(bc.name+"/forward", func(b *testing.B) { attnBwdBench(b, bc.p, true, nil) })
		b.Run(bc.name+"/backward", func(b *testing.B) {
			attnBwdBench(b, bc.p, false, AttentionBackward)
			b.ReportMetric(float64(4*AttentionBackwardScratchFloats(bc.p)*Threads()), "scratchB")
			b.ReportMetric(8*float64(bc.p.B*bc.p.H*bc.p.Sq*bc.p.Sk), "materialisedB")
		})
	}
}

// BenchmarkAttentionBackwardRef is the naive baseline beside the fast path on a
// reduced size.
func BenchmarkAttentionBackwardRef(b *testing.B) {
	p := AttnParams{B: 1, H: 2, Sq: 256, Sk: 256, D: 40}
	b.Run("ref_B1_H2_S256_D40", func(b *testing.B) { attnBwdBench(b, p, false, AttentionBackwardRef) })
	b.Run("fast_B1_H2_S256_D40", func(b *testing.B) { attnBwdBench(b, p, false, AttentionBackward) })
}

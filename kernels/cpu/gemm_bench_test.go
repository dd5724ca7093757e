package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShapes are the products timed by BenchmarkGemm (M, K, N), the same as
// scripts/bench_numpy_gemm.py: a square one and the Stable Diffusion U-Net ones.
var benchShapes = [][3]int{
	{1024, 1024, 1024},
	{4096, 320, 320},
	{4096, 320, 1280},
	{1024, 640, 640},
	{256, 1280, 5120},
}

// BenchmarkGemm times Gemm on benchShapes with float32 operands ("f32"), with B
// stored as float32 n x k and used transposed ("f32Bt", numpy's a @ b.T), with B
// stored as F16 k x n ("f16B"), and with B stored as F16 n x k and used
// transposed, the layout of nn.Linear weights ("f16Bt"); "naive" is GemmRef on a
// smaller product for scale. It reports GFLOP/s = 2*M*N*K per product.
func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 9))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = rng.Float32()*2 - 1
		}
		return s
	}
	half := func(s []float32) []uint16 {
		u := make([]uint16, len(s))
		F32ToF16(u, s)
		return u
	}
	run := func(b *testing.B, m, n, k int, am, bm Mat, f func(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int)) {
		c := make([]float32, m*n)
		f(m, n, k, 1, am, bm, 0, c, n)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			f(m, n, k, 1, am, bm, 0, c, n)
		}
		reportGFLOPS(b, 2*float64(m)*float64(n)*float64(k), Threads())
	}
	for _, s := range benchShapes {
		m, k, n := s[0], s[1], s[2]
		a := fill(m * k)
		bf := fill(k * n)
		name := fmt.Sprintf("M%d_K%d_N%d", m, k, n)
		b.Run("f32/"+name, func(b *testing.B) {
			run(b, m, n, k, F32Mat(a, k, false), F32Mat(bf, n, false), Gemm)
		})
		b.Run("f32Bt/"+name, func(b *testing.B) {
			run(b, m, n, k, F32Mat(a, k, false), F32Mat(bf, k, true), Gemm)
		})
		b.Run("f16B/"+name, func(b *testing.B) {
			run(b, m, n, k, F32Mat(a, k, false), HalfMat(half(bf), F16, n, false), Gemm)
		})
		b.Run("f16Bt/"+name, func(b *testing.B) {
			run(b, m, n, k, F32Mat(a, k, false), HalfMat(half(bf), F16, k, true), Gemm)
		})
	}
	b.Run("naive/M256_K256_N256", func(b *testing.B) {
		run(b, 256, 256, 256, F32Mat(fill(256*256), 256, false), F32Mat(fill(256*256), 256, false), GemmRef)
	})
}

// BenchmarkGemmSerialAttention times GemmSerial on the attention tile shapes
// (64 queries x 4096 keys x head 40, then 64 x 40 over 4096 keys).
func BenchmarkGemmSerialAttention(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = rng.Float32()
		}
		return s
	}
	for _, s := range []struct {
		m, n, k int
		tb      bool
	}{{64, 4096, 40, true}, {64, 40, 4096, false}} {
		a, bb, c := fill(s.m*s.k), fill(s.k*s.n), make([]float32, s.m*s.n)
		ldb := s.n
		if s.tb {
			ldb = s.k
		}
		b.Run(fmt.Sprintf("M%d_K%d_N%d", s.m, s.k, s.n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				GemmSerial(s.m, s.n, s.k, 1, F32Mat(a, s.k, false), F32Mat(bb, ldb, s.tb), 0, c, s.n)
			}
			reportGFLOPS(b, 2*float64(s.m*s.n*s.k), 1)
		})
	}
}

// BenchmarkGemmMicroKernel times the active micro-kernel alone on cache-resident
// packed panels (kc = 320, one A micro-panel against 8 B micro-panels): the
// ceiling the blocked product can reach on one core.
func BenchmarkGemmMicroKernel(b *testing.B) {
	kern := activeKernel()
	const kc, panels = 320, 8
	pa := make([]float32, kc*kern.mr)
	pb := make([]float32, kc*kern.nr*panels)
	for i := range pa {
		pa[i] = float32(i%7) * 0.25
	}
	for i := range pb {
		pb[i] = float32(i%5) * 0.5
	}
	c := make([]float32, kern.mr*kern.nr*panels)
	ldc := kern.nr * panels
	b.Run(kern.name, func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			for q := 0; q < panels; q++ {
				kern.fn(kc, pa, pb[q*kc*kern.nr:], c[q*kern.nr:], ldc, 1, 0)
			}
		}
		reportGFLOPS(b, 2*float64(kc*kern.mr*kern.nr*panels), 1)
	})
}

// BenchmarkGemmBlocking times Gemm (F32, and B as transposed F16 like the
// nn.Linear weights) on benchShapes with the active kernel's blocking as
// tuned from Caches() ("tuned") and as the compiled-in constants ("const"),
// to check the rule of gemm_blocking.go on a new machine.
func BenchmarkGemmBlocking(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 11))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = rng.Float32()*2 - 1
		}
		return s
	}
	tuned := *activeKernel()
	consts := tuned
	switch tuned.name {
	case "avx512-14x32":
		consts.kc, consts.mc, consts.nc, consts.l1MC, consts.l1NC = 384, 14*24, 4096, 14*96, 320
	case "avx2-6x16":
		consts.kc, consts.mc, consts.nc = 256, 6*32, 4096
	}
	if ci := Caches(); ci.Source != "default" { // the rule, whether or not ROENTGO_GEMM_BLOCKING applied it
		tuneBlocking(&tuned, ci)
	}
	for _, s := range benchShapes {
		m, k, n := s[0], s[1], s[2]
		a, bf := fill(m*k), fill(k*n)
		bh := make([]uint16, len(bf))
		F32ToF16(bh, bf)
		c := make([]float32, m*n)
		for _, op := range []struct {
			name string
			b    Mat
		}{{"f32", F32Mat(bf, n, false)}, {"f16Bt", HalfMat(bh, F16, k, true)}} {
			for _, v := range []struct {
				name string
				kern *gemmKernel
			}{{"tuned", &tuned}, {"const", &consts}} {
				b.Run(fmt.Sprintf("%s/M%d_K%d_N%d/%s", op.name, m, k, n, v.name), func(b *testing.B) {
					testKernel = v.kern
					defer func() { testKernel = nil }()
					Gemm(m, n, k, 1, F32Mat(a, k, false), op.b, 0, c, n)
					b.ResetTimer()
					for range b.N {
						Gemm(m, n, k, 1, F32Mat(a, k, false), op.b, 0, c, n)
					}
					reportGFLOPS(b, 2*float64(m)*float64(n)*float64(k), Threads())
				})
			}
		}
	}
}

// BenchmarkGemmCompute times Gemm on benchShapes in F32 and in BF16 compute
// (SetCompute), with F32 operands ("f32": activations times activations) and
// with B stored as F16 n x k and used transposed (nn.Linear's weights,
// "f16Bt"). GFLOP/s counts 2*M*N*K; %peak is against the F32 FMA probe, and
// %bf16peak against the VDPBF16PS probe.
func BenchmarkGemmCompute(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 11))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = rng.Float32()*2 - 1
		}
		return s
	}
	for _, ct := range []DType{F32, BF16} {
		for _, s := range benchShapes {
			m, k, n := s[0], s[1], s[2]
			a, bf := fill(m*k), fill(k*n)
			u := make([]uint16, len(bf))
			F32ToF16(u, bf)
			for _, lay := range []struct {
				name string
				bm   Mat
			}{{"f32", F32Mat(bf, n, false)}, {"f16Bt", HalfMat(u, F16, k, true)}} {
				b.Run(fmt.Sprintf("%v/%s/M%d_K%d_N%d", ct, lay.name, m, k, n), func(b *testing.B) {
					prev, err := SetCompute(ct)
					if err != nil {
						b.Skip(err)
					}
					defer SetCompute(prev)
					c := make([]float32, m*n)
					Gemm(m, n, k, 1, F32Mat(a, k, false), lay.bm, 0, c, n)
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						Gemm(m, n, k, 1, F32Mat(a, k, false), lay.bm, 0, c, n)
					}
					flops := 2 * float64(m) * float64(n) * float64(k)
					reportGFLOPS(b, flops, Threads())
					if p := Peak(PeakBF16, Threads()); p > 0 {
						b.ReportMetric(100*flops*float64(b.N)/b.Elapsed().Seconds()/1e9/p, "%bf16peak")
					}
				})
			}
		}
	}
}

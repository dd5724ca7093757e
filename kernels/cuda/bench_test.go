//go:build cuda

package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/roentgo/roentgo/kernels"
	"github.com/roentgo/roentgo/kernels/cpu"
)

// Benchmarks of the kernels on Stable Diffusion shapes (SD 1.x U-Net at 512x512:
// 64x64 latents, 320..1280 channels, 8 heads of 40..160 dims, 77 text tokens).
// Each iteration queues one launch; the device is synchronised before the timer
// stops. FLOP counts: GEMM 2MNK, conv 2*N*K*OH*OW*C*R*S, attention 4*B*H*Sq*Sk*D
// (the two products). GB/s counts the bytes an ideal kernel moves once.
// scripts/bench_torch_gpu.py times PyTorch on the same shapes.

func benchBuf(b *testing.B, dt kernels.DType, n int) *Buffer {
	b.Helper()
	buf, err := testDev.Alloc(dt, n)
	if err != nil {
		b.Fatal(err)
	}
	// Small random values (a zero buffer would flatter nothing, but keep the
	// numbers finite and typical).
	r := rand.New(rand.NewPCG(uint64(n), 1))
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(r.NormFloat64() * 0.5)
	}
	switch dt {
	case kernels.F32:
		must(testDev.UploadF32(buf, f))
	case kernels.F16:
		h := make([]uint16, n)
		cpu.F32ToF16(h, f)
		must(testDev.UploadU16(buf, h))
	default:
		h := make([]uint16, n)
		cpu.F32ToBF16(h, f)
		must(testDev.UploadU16(buf, h))
	}
	return buf
}

// timeLaunches runs launch b.N times between a warm-up and a final synchronisation.
func timeLaunches(b *testing.B, launch func() error) {
	b.Helper()
	if err := launch(); err != nil { // warm-up: module load (JIT) and first launch
		b.Fatal(err)
	}
	if err := testDev.Synchronize(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := launch(); err != nil {
			b.Fatal(err)
		}
	}
	if err := testDev.Synchronize(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

func perSecond(b *testing.B, units float64) float64 {
	return units * float64(b.N) / b.Elapsed().Seconds()
}

// gemmShapes are M x K x N of the SD U-Net's linear layers (tokens x in x out).
var gemmShapes = [][3]int{{4096, 320, 320}, {4096, 320, 1280}, {1024, 640, 640}, {256, 1280, 5120}}

// BenchmarkGemm: activations [M, K] times nn.Linear weights [N, K]^T, output in
// the input dtype; "simt-f32" is the SIMT kernel on F32 data (the baseline).
func BenchmarkGemm(b *testing.B) {
	for _, sh := range gemmShapes {
		m, k, n := sh[0], sh[1], sh[2]
		for _, dt := range []kernels.DType{kernels.BF16, kernels.F16, kernels.F32} {
			name := fmt.Sprintf("M%dxK%dxN%d/%v", m, k, n, dt)
			if dt == kernels.F32 {
				name = fmt.Sprintf("M%dxK%dxN%d/simt-f32", m, k, n)
			}
			b.Run(name, func(b *testing.B) {
				a, w, c := benchBuf(b, dt, m*k), benchBuf(b, dt, n*k), benchBuf(b, dt, m*n)
				defer a.Free()
				defer w.Free()
				defer c.Free()
				p := GemmParams{M: m, N: n, K: k, Alpha: 1, A: Mat{Buf: a, Stride: k},
					B: Mat{Buf: w, Stride: k, Trans: true}, C: c, Ldc: n}
				timeLaunches(b, func() error { return testDev.Gemm(p) })
				b.ReportMetric(perSecond(b, 2*float64(m)*float64(n)*float64(k))/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkConv3x3: N=2, 320 -> 320 channels, 64x64, stride 1, pad 1, bias.
func BenchmarkConv3x3(b *testing.B) {
	p := kernels.ConvParams{N: 2, C: 320, H: 64, W: 64, K: 320, R: 3, S: 3, StrideH: 1, StrideW: 1, PadH: 1, PadW: 1}
	for _, dt := range []kernels.DType{kernels.BF16, kernels.F16} {
		b.Run(fmt.Sprintf("N2-320to320-64x64/%v", dt), func(b *testing.B) {
			x := benchBuf(b, dt, p.N*p.C*p.H*p.W)
			w := benchBuf(b, dt, p.K*p.C*9)
			bias := benchBuf(b, kernels.F32, p.K)
			y := benchBuf(b, dt, p.N*p.K*p.OutH()*p.OutW())
			defer func() {
				for _, t := range []*Buffer{x, w, bias, y} {
					t.Free()
				}
			}()
			timeLaunches(b, func() error { return testDev.Conv2d(p, x, Mat{Buf: w, Stride: p.C * 9}, bias, y) })
			fl := 2 * float64(p.N*p.K*p.OutH()*p.OutW()) * float64(p.C*9)
			b.ReportMetric(perSecond(b, fl)/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkAttention: B=2, H=8, D=40, Sq=4096; self (Sk=4096) and cross (Sk=77).
func BenchmarkAttention(b *testing.B) {
	for _, sk := range []int{4096, 77} {
		for _, dt := range []kernels.DType{kernels.BF16, kernels.F16} {
			kind := "self"
			if sk != 4096 {
				kind = "cross"
			}
			b.Run(fmt.Sprintf("%s-B2H8-4096x%d-D40/%v", kind, sk, dt), func(b *testing.B) {
				p := kernels.AttnParams{B: 2, H: 8, Sq: 4096, Sk: sk, D: 40, Scale: 0.15811388}
				hd := p.H * p.D
				q, k, v := benchBuf(b, dt, p.B*p.Sq*hd), benchBuf(b, dt, p.B*sk*hd), benchBuf(b, dt, p.B*sk*hd)
				o := benchBuf(b, dt, p.B*p.Sq*hd)
				defer func() {
					for _, t := range []*Buffer{q, k, v, o} {
						t.Free()
					}
				}()
				timeLaunches(b, func() error { return testDev.Attention(p, q, k, v, o) })
				fl := 4 * float64(p.B*p.H) * float64(p.Sq) * float64(sk) * float64(p.D)
				b.ReportMetric(perSecond(b, fl)/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkGroupNorm: [2, 320, 64, 64], 32 groups, affine, fused SiLU.
func BenchmarkGroupNorm(b *testing.B) {
	const n, c, hw = 2, 320, 64 * 64
	for _, dt := range []kernels.DType{kernels.BF16, kernels.F16, kernels.F32} {
		b.Run(fmt.Sprintf("2x320x64x64-silu/%v", dt), func(b *testing.B) {
			x, y := benchBuf(b, dt, n*c*hw), benchBuf(b, dt, n*c*hw)
			g, be := benchBuf(b, kernels.F32, c), benchBuf(b, kernels.F32, c)
			defer func() {
				for _, t := range []*Buffer{x, y, g, be} {
					t.Free()
				}
			}()
			timeLaunches(b, func() error { return testDev.GroupNorm(x, y, n, c, hw, 32, 1e-5, g, be, true) })
			bytes := 2 * float64(n*c*hw) * float64(elemSize(dt)) // read x once, write y once
			b.ReportMetric(perSecond(b, bytes)/1e9, "GB/s")
		})
	}
}

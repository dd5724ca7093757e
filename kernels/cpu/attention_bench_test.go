package cpu

import (
	"math"
	"testing"
)

// attnBenchCases are the attention shapes of Stable Diffusion 1.5 at 512x512
// (head dims 40, 80, 160 at 4096, 1024, 256 tokens; text length 77) and a head
// dim of 64 (SD2, CLIP); scripts/bench_torch_conv_attn.py measures the same.
var attnBenchCases = []struct {
	name string
	p    AttnParams
}{
	{"self_B2_H8_S4096_D40", AttnParams{B: 2, H: 8, Sq: 4096, Sk: 4096, D: 40}},
	{"cross_B2_H8_S4096x77_D40", AttnParams{B: 2, H: 8, Sq: 4096, Sk: 77, D: 40}},
	{"self_B2_H8_S1024_D80", AttnParams{B: 2, H: 8, Sq: 1024, Sk: 1024, D: 80}},
	{"self_B2_H8_S256_D160", AttnParams{B: 2, H: 8, Sq: 256, Sk: 256, D: 160}},
	{"self_B2_H5_S4096_D64", AttnParams{B: 2, H: 5, Sq: 4096, Sk: 4096, D: 64}},
	{"causal_B2_H12_S77_D64", AttnParams{B: 2, H: 12, Sq: 77, Sk: 77, D: 64, Causal: true}},
}

// attnFlops is 4*B*H*Sq*Sk*D (the two products; the mask is not discounted).
func attnFlops(p AttnParams) float64 {
	return 4 * float64(p.B) * float64(p.H) * float64(p.Sq) * float64(p.Sk) * float64(p.D)
}

func attnBench(b *testing.B, p AttnParams, attn func(AttnParams, []float32, []float32, []float32, []float32)) {
	p.Scale = float32(1 / math.Sqrt(float64(p.D)))
	hd := p.H * p.D
	q := convTestData(p.B*p.Sq*hd, 1)
	k := convTestData(p.B*p.Sk*hd, 2)
	v := convTestData(p.B*p.Sk*hd, 3)
	o := make([]float32, len(q))
	attn(p, q, k, v, o)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		attn(p, q, k, v, o)
	}
	reportGFLOPS(b, attnFlops(p), Threads())
}

// BenchmarkAttention reports GFLOP/s and the scratch of all goroutines together
// (a full score matrix would take 4*B*H*Sq*Sk bytes).
func BenchmarkAttention(b *testing.B) {
	for _, bc := range attnBenchCases {
		b.Run(bc.name, func(b *testing.B) {
			attnBench(b, bc.p, Attention)
			b.ReportMetric(float64(4*AttentionScratchFloats(bc.p)*Threads()), "scratchB")
			b.ReportMetric(4*float64(bc.p.B*bc.p.H*bc.p.Sq*bc.p.Sk), "scoresB")
		})
	}
}

// BenchmarkAttentionRef is the naive baseline on a reduced size.
func BenchmarkAttentionRef(b *testing.B) {
	p := AttnParams{B: 1, H: 2, Sq: 256, Sk: 256, D: 40}
	b.Run("ref_B1_H2_S256_D40", func(b *testing.B) { attnBench(b, p, AttentionRef) })
	b.Run("fast_B1_H2_S256_D40", func(b *testing.B) { attnBench(b, p, Attention) })
}

// BenchmarkAttnSoftmaxCols times the column max + exp of one 4096 x 128 score
// tile on each instruction-set level, in Gexp/s.
func BenchmarkAttnSoftmaxCols(b *testing.B) {
	const rows, ld = 4096, 128
	x0 := convTestData(rows*ld, 5)
	x := make([]float32, len(x0))
	m, s := make([]float32, ld), make([]float32, ld)
	old, old512 := attnUseAVX2, attnUseAVX512
	defer func() { attnUseAVX2, attnUseAVX512 = old, old512 }()
	for lvl, name := range []string{"go", "avx2", "avx512"} {
		if lvl == 1 && !old || lvl == 2 && !old512 {
			continue
		}
		b.Run(name, func(b *testing.B) {
			attnUseAVX2, attnUseAVX512 = lvl >= 1, lvl >= 2
			for i := 0; i < b.N; i++ {
				copy(x, x0)
				attnColMax(x, ld, m)
				attnExpCols(x, ld, m, s)
			}
			b.ReportMetric(float64(rows*ld)*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gexp/s")
		})
	}
}

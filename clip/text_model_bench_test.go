package clip

import (
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// BenchmarkTextModelSD15 runs Stable Diffusion 1.5's text encoder (hidden 768,
// 12 layers, 12 heads, intermediate 3072) with random weights on one prompt of
// 77 tokens, F32 and F16 weights. It reports GFLOP/s from the matrix products
// (2 * 77 * 85M multiply-adds of the layers, plus attention).
func BenchmarkTextModelSD15(b *testing.B) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		b.Run(dt.String(), func(b *testing.B) {
			bld := nn.NewRandomBuilder(1, dt)
			m, err := NewTextModel(bld, SD15TextConfig())
			if err != nil {
				b.Fatal(err)
			}
			row := make([]int32, 77)
			for i := range row {
				row[i] = int32(400 + 13*i)
			}
			row[0], row[30] = 49406, 49407
			ids := IDs(row)
			c := m.Config
			s, d, f := 77.0, float64(c.HiddenSize), float64(c.IntermediateSize)
			flop := float64(c.NumHiddenLayers) * (2*s*(4*d*d+2*d*f) + 2*2*s*s*d)
			m.Forward(ids).Release() // warm the buffer pool
			b.ResetTimer()
			for range b.N {
				m.Forward(ids).Release()
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec*1e3, "ms/call")
			b.ReportMetric(flop/sec/1e9, "GFLOP/s")
		})
	}
}

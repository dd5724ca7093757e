package nn

import (
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

// Stable Diffusion sizes: the first U-Net level at 512x512 (latents 64x64, 320
// channels, time embedding 1280, text states 77x768, batch 2 for classifier-free
// guidance).

func sdResnet(b *Builder) *ResnetBlock2D {
	return NewResnetBlock2D(b, ResnetBlock2DConfig{In: 320, Out: 320, TembChannels: 1280})
}

func sdTransformer(b *Builder) *Transformer2DModel {
	return NewTransformer2DModel(b, Transformer2DConfig{Channels: 320, Heads: 8, DimHead: 40, CrossDim: 768})
}

func benchForward(b *testing.B, flops float64, f func() *tensor.Tensor) {
	f().Release() // warm the buffer pool
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f().Release()
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/op")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
}

// resnetFlops counts the multiply-adds (x2) of the two 3x3 convolutions.
func resnetFlops(n, c, h, w int) float64 {
	return 2 * 2 * float64(n*h*w) * float64(c*c*9)
}

// transformerFlops counts the matrix products of a Transformer2DModel block.
func transformerFlops(n, c, h, w, sc, cd int) float64 {
	s := float64(h * w)
	d := float64(c)
	lin := 2 * s * d * d * (1 + 1)               // proj_in, proj_out
	lin += 2 * s * d * d * 4                     // attn1 q, k, v, out
	lin += 2 * s * d * d * 2                     // attn2 q, out
	lin += 2 * float64(sc) * float64(cd) * d * 2 // attn2 k, v
	lin += 2 * s * d * 8 * d                     // ff proj (2*4d)
	lin += 2 * s * 4 * d * d                     // ff out
	att := 2 * 2 * s * s * d                     // attn1 scores and values
	att += 2 * 2 * s * float64(sc) * d           // attn2
	return float64(n) * (lin + att)
}

func BenchmarkResnetBlock2D(b *testing.B) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		b.Run("320x64x64xB2/"+dt.String(), func(b *testing.B) {
			r := sdResnet(NewRandomBuilder(1, dt))
			g := rng.New(0)
			x := tensor.Randn(g, 2, 320, 64, 64)
			temb := tensor.Randn(g, 2, 1280)
			benchForward(b, resnetFlops(2, 320, 64, 64), func() *tensor.Tensor { return r.Forward(x, temb) })
		})
	}
}

func BenchmarkTransformer2DModel(b *testing.B) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		b.Run("320x64x64xB2/"+dt.String(), func(b *testing.B) {
			m := sdTransformer(NewRandomBuilder(1, dt))
			g := rng.New(0)
			x := tensor.Randn(g, 2, 320, 64, 64)
			ctx := tensor.Randn(g, 2, 77, 768)
			benchForward(b, transformerFlops(2, 320, 64, 64, 77, 768), func() *tensor.Tensor { return m.Forward(x, ctx) })
		})
	}
}

// TestForwardRecyclesBuffers checks that the layers release their intermediates:
// once the pool is warm, a Forward whose result is released allocates no new
// buffers.
func TestForwardRecyclesBuffers(t *testing.T) {
	rb := NewRandomBuilder(5, tensor.F16)
	res := NewResnetBlock2D(rb.Sub("res"), ResnetBlock2DConfig{In: 32, Out: 64, TembChannels: 40, Groups: 8})
	tr := NewTransformer2DModel(rb.Sub("tr"), Transformer2DConfig{Channels: 64, Heads: 4, DimHead: 16, CrossDim: 24, Groups: 8})
	down := NewDownsample2D(rb.Sub("down"), 64, 64, 0)
	up := NewUpsample2D(rb.Sub("up"), 64, 32)
	temb := NewTimestepEmbedding(rb.Sub("temb"), 16, 40, 0)
	proj := NewTimesteps(16, true, 0)
	require.NoError(t, rb.Check())
	g := rng.New(1)
	x := tensor.Randn(g, 2, 32, 12, 10)
	ctx := tensor.Randn(g, 2, 7, 24)
	ts := tensor.FromFloat32([]float32{10, 500})
	step := func() {
		e := proj.Forward(ts)
		te := temb.Forward(e)
		e.Release()
		h := res.Forward(x, te)
		te.Release()
		h2 := tr.Forward(h, ctx)
		h.Release()
		d := down.Forward(h2)
		h2.Release()
		u := up.ForwardSize(d, 12, 10)
		d.Release()
		u.Release()
	}
	step()
	step()
	before := tensor.GetPoolStats()
	step()
	after := tensor.GetPoolStats()
	require.Equal(t, before.Misses, after.Misses, "buffers allocated by a warm step")
	require.Greater(t, after.Hits, before.Hits)
}

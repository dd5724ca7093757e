package optim

import (
	"fmt"
	"testing"

	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// benchParams returns total F32 values as tensors of size per (each with a
// gradient), filled with cheap deterministic values.
func benchParams(b *testing.B, total, per int) []*nn.Trainable {
	b.Helper()
	var params []nn.Param
	x := uint32(1)
	next := func() float32 { x = x*1664525 + 1013904223; return float32(int32(x>>8)-1<<23) / (1 << 23) }
	for i := 0; i < total; i += per {
		n := min(per, total-i)
		v := make([]float32, n)
		for j := range v {
			v[j] = next()
		}
		params = append(params, nn.Param{Name: fmt.Sprintf("p%d", len(params)), Tensor: tensor.FromFloat32(v, n)})
	}
	ps, err := nn.NewParamSet(nil, params)
	if err != nil {
		b.Fatal(err)
	}
	tr, err := ps.Trainable()
	if err != nil {
		b.Fatal(err)
	}
	for _, p := range tr {
		g := make([]float32, p.Numel())
		for j := range g {
			g[j] = next() * 1e-3
		}
		p.Grad = tensor.FromFloat32(g, p.Numel())
	}
	return tr
}

// BenchmarkAdamWStep times one AdamW step over 100 M F32 values (SD 1.5's
// U-Net has 859.5 M: its parameters, gradients and both moments would take
// 13.8 GB; 100 M take 1.6 GB), as 40 tensors of 2.5 M. GB/s counts the
// memory traffic of the step: the finiteness check reads the gradients (4
// bytes per value), the update reads parameter, gradient and moments and
// writes parameter and moments (28 bytes): 32 bytes per value. "fused" is
// the optimiser on every thread (AVX2/FMA loop where available),
// "fused-1thread" on one, "fused-purego" with the pure-Go loop, and
// "tensor-ops" the same update as a sequence of tensor ops per parameter
// (torch's single-tensor AdamW loop), the baseline.
func BenchmarkAdamWStep(b *testing.B) {
	const total, per = 100_000_000, 2_500_000
	params := benchParams(b, total, per)
	report := func(b *testing.B) {
		s := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(32*total/s/1e9, "GB/s")
		b.ReportMetric(total/s/1e6, "Mparams/s")
	}
	run := func(name string, threads int, vector bool) {
		b.Run(name, func(b *testing.B) {
			if threads > 0 {
				defer cpu.SetThreads(cpu.SetThreads(threads))
			}
			defer func(v bool) { adamwVector = v }(adamwVector)
			adamwVector = vector
			opt, err := NewAdamW(params, DefaultAdamW())
			if err != nil {
				b.Fatal(err)
			}
			if err := opt.Step(1e-4); err != nil { // allocate the moments
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := opt.Step(1e-4); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
	run("fused", 0, true)
	run("fused-1thread", 1, true)
	run("fused-purego", 0, false)
	b.Run("tensor-ops", func(b *testing.B) {
		cfg := DefaultAdamW()
		m := make([]*tensor.Tensor, len(params))
		v := make([]*tensor.Tensor, len(params))
		for i, p := range params {
			m[i] = tensor.Zeros(tensor.F32, p.Numel())
			v[i] = tensor.Zeros(tensor.F32, p.Numel())
		}
		b.ResetTimer()
		for it := range b.N {
			c := cfg.coef(1e-4, it+1)
			tensor.NoGrad(func() {
				for i, pp := range params {
					p, g := pp.Master, pp.Grad
					p.MulScalarInPlace(c.decay)
					m[i].MulScalarInPlace(c.b1)
					t1 := g.MulScalar(c.a1)
					m[i].AddInPlace(t1)
					t1.Release()
					v[i].MulScalarInPlace(c.b2)
					t2 := g.Mul(g)
					t2.MulScalarInPlace(c.a2)
					v[i].AddInPlace(t2)
					t2.Release()
					den := v[i].Sqrt()
					den.MulScalarInPlace(1 / c.bc2Sqrt)
					den.AddScalarInPlace(c.eps)
					upd := m[i].Div(den)
					den.Release()
					upd.MulScalarInPlace(c.negStep)
					p.AddInPlace(upd)
					upd.Release()
				}
			})
		}
		report(b)
	})
}

// BenchmarkClipGradNorm times ClipGradNorm over 100 M gradient values that
// get clipped: the norm pass reads them (4 bytes a value) and the scaling
// pass reads and writes them (8 bytes).
func BenchmarkClipGradNorm(b *testing.B) {
	const total, per = 100_000_000, 2_500_000
	params := benchParams(b, total, per)
	b.ResetTimer()
	for range b.N {
		if _, err := ClipGradNorm(params, 1e-3); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(12*total/s/1e9, "GB/s")
}

// BenchmarkEMAStep times one EMA step over 100 M values: it reads the
// master and reads and writes the shadow (12 bytes a value).
func BenchmarkEMAStep(b *testing.B) {
	const total, per = 100_000_000, 2_500_000
	params := benchParams(b, total, per)
	e, err := NewEMA(params, DefaultEMA())
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		e.Step()
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(12*total/s/1e9, "GB/s")
}

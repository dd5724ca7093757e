//go:build amd64 && !purego

package optim

import "github.com/roentgo/roentgo/kernels/cpu"

// adamwAVX2 runs the AdamW update (adamwUpdate's arithmetic, with true F32
// fused multiply-adds) over the first n - n%8 elements, eight at a time, and
// returns how many it did. It needs AVX2 and FMA3.
//
//go:noescape
func adamwAVX2(param, grad, expAvg, expAvgSq *float32, n int, c *adamwCoef) int

// adamwSpan updates one span, eight lanes at a time where the CPU allows.
func adamwSpan(p, g, m, v []float32, c *adamwCoef) {
	n := len(p)
	g, m, v = g[:n], m[:n], v[:n]
	done := 0
	if n >= 8 && adamwVector && cpu.CPU.HasAVX2FMA {
		done = adamwAVX2(&p[0], &g[0], &m[0], &v[0], n, c)
	}
	adamwUpdate(p[done:], g[done:], m[done:], v[done:], c)
}

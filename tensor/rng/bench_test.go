package rng

import "testing"

// BenchmarkNormal measures Normal on SD latent sizes (torch on this kind of
// CPU: about 0.1 ms for 16384 elements, for comparison).
func BenchmarkNormal(b *testing.B) {
	for _, n := range []int{4 * 64 * 64, 4 * 128 * 128} {
		b.Run(itoa(n), func(b *testing.B) {
			g := New(0)
			dst := make([]float32, n)
			b.SetBytes(int64(4 * n))
			for i := 0; i < b.N; i++ {
				g.Normal(dst, 0, 1)
			}
		})
	}
}

func BenchmarkUniform(b *testing.B) {
	g := New(0)
	dst := make([]float32, 65536)
	b.SetBytes(4 * 65536)
	for i := 0; i < b.N; i++ {
		g.Uniform(dst, 0, 1)
	}
}

func itoa(n int) string {
	s := ""
	for n > 0 || s == "" {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	return s
}

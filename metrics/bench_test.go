package metrics

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/roentgo/roentgo/internal/f64"
)

// randomStats returns the statistics of n random d-dimensional features with
// a non-trivial covariance (x = A·z + b, z standard normal), like
// scripts/bench_frechet.py builds for scipy.
func randomStats(tb testing.TB, n, d int, seed uint64) *Stats {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	k := 64 // rank of the shared factor
	a := make([]float64, d*k)
	for i := range a {
		a[i] = rng.NormFloat64() / 8
	}
	acc := NewAccumulator(d)
	row := make([]float64, d)
	z := make([]float64, k)
	batch := make([]float64, 0, 256*d)
	for r := 0; r < n; r++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		for i := range row {
			s := rng.NormFloat64() * 0.5
			for j, zj := range z {
				s += a[i*k+j] * zj
			}
			row[i] = s + 0.1*float64(i%7)
		}
		batch = append(batch, row...)
		if len(batch) == cap(batch) {
			acc.AddBatch(batch)
			batch = batch[:0]
		}
	}
	acc.AddBatch(batch)
	st, err := acc.Stats()
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func benchmarkFrechet(b *testing.B, n, d int) {
	s1 := randomStats(b, n, d, 1)
	s2 := randomStats(b, n, d, 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := Frechet(s1, s2, DefaultFrechetEps)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Distance, "fd")
		if r.MaxImagDiag > 0 {
			b.ReportMetric(1, "complex")
		}
	}
}

// BenchmarkFrechet2048 times one Frechet distance between 2048-d statistics
// (the size of Inception-v3 pool features).
func BenchmarkFrechet2048(b *testing.B) { benchmarkFrechet(b, 4096, 2048) }

// BenchmarkFrechet512 is the same for 512-d statistics (CLIP ViT-B/32).
func BenchmarkFrechet512(b *testing.B) { benchmarkFrechet(b, 2048, 512) }

// BenchmarkFrechetSymmetric2048 times FrechetSymmetric on the same 2048-d
// statistics as BenchmarkFrechet2048.
func BenchmarkFrechetSymmetric2048(b *testing.B) {
	s1 := randomStats(b, 4096, 2048, 1)
	s2 := randomStats(b, 4096, 2048, 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := FrechetSymmetric(s1, s2)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Distance, "fd")
	}
}

// BenchmarkFrechetSymmetric2048Gonum is the baseline of
// BenchmarkFrechetSymmetric2048: the same computation with gonum alone
// (frechetSymmetricGonum, the implementation before internal/f64).
func BenchmarkFrechetSymmetric2048Gonum(b *testing.B) {
	s1 := randomStats(b, 4096, 2048, 1)
	s2 := randomStats(b, 4096, 2048, 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := frechetSymmetricGonum(s1, s2)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Distance, "fd")
	}
}

// BenchmarkAccumulate2048 times adding 2048-d features to an Accumulator
// (reported per feature vector).
func BenchmarkAccumulate2048(b *testing.B) {
	const rows, d = 512, 2048
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, rows*d)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	acc := NewAccumulator(d)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		acc.AddBatch32(x)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/vector")
}

// BenchmarkFrechetFiles compares both methods with scipy on statistics
// written by scripts/bench_frechet.py (directory in METRICS_BENCH_STATS,
// holding stats1.npz, stats2.npz and scipy.txt); skipped without it.
func BenchmarkFrechetFiles(b *testing.B) {
	dir := os.Getenv("METRICS_BENCH_STATS")
	if dir == "" {
		b.Skip("METRICS_BENCH_STATS not set (see scripts/bench_frechet.sh)")
	}
	s1, err := ReadStats(filepath.Join(dir, "stats1.npz"))
	if err != nil {
		b.Fatal(err)
	}
	s2, err := ReadStats(filepath.Join(dir, "stats2.npz"))
	if err != nil {
		b.Fatal(err)
	}
	var want, scipySec float64
	if txt, err := os.ReadFile(filepath.Join(dir, "scipy.txt")); err == nil {
		fmt.Sscan(string(txt), &want, &scipySec)
	}
	for _, m := range []struct {
		name string
		f    func(a, b *Stats) (FrechetResult, error)
	}{
		{"schur", func(a, b *Stats) (FrechetResult, error) { return Frechet(a, b, DefaultFrechetEps) }},
		{"symmetric", FrechetSymmetric},
	} {
		b.Run(m.name, func(b *testing.B) {
			var r FrechetResult
			for i := 0; i < b.N; i++ {
				if r, err = m.f(s1, s2); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec, "s/op")
			b.Logf("%s: D=%d fd %.12g in %.2f s; scipy fd %.12g in %.2f s; relative difference %.3g",
				m.name, s1.Dim(), r.Distance, sec, want, scipySec, math.Abs(r.Distance-want)/math.Abs(want))
		})
	}
}

// randomFeatures32 returns n random d-dimensional float32 feature vectors,
// row-major [n, d]: a rank-32 shared factor plus independent noise, shifted
// and scaled per dimension (non-negative-ish, like pooled CNN features).
func randomFeatures32(n, d int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	const k = 32
	a := make([]float64, k*d)
	for i := range a {
		a[i] = rng.NormFloat64() / 8
	}
	shift := make([]float64, d)
	for i := range shift {
		shift[i] = 0.5 + rng.Float64()
	}
	x := make([]float32, n*d)
	z := make([]float64, k)
	row := make([]float64, d)
	for r := 0; r < n; r++ {
		for i := range z {
			z[i] = rng.NormFloat64()
		}
		for i := range row {
			row[i] = shift[i] + 0.3*rng.NormFloat64()
		}
		for j, zj := range z {
			for i, v := range a[j*d : (j+1)*d] {
				row[i] += zj * v
			}
		}
		for i, v := range row {
			x[r*d+i] = float32(v)
		}
	}
	return x
}

// BenchmarkFID10000x2048 times a whole 2048-d FID between two sets of 10,000
// feature vectors (issue 12's target: under 5 s): both sets' statistics
// accumulated from float32 features in batches of 100 rows (as a feature
// extractor delivers them), then FrechetSymmetric. Generating the random
// features is not timed.
func BenchmarkFID10000x2048(b *testing.B) {
	const n, d, batch = 10000, 2048, 100
	x1 := randomFeatures32(n, d, 1)
	x2 := randomFeatures32(n, d, 2)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var st [2]*Stats
		for s, x := range [][]float32{x1, x2} {
			acc := NewAccumulator(d)
			for r := 0; r < n; r += batch {
				acc.AddBatch32(x[r*d : min(r+batch, n)*d])
			}
			var err error
			if st[s], err = acc.Stats(); err != nil {
				b.Fatal(err)
			}
		}
		r, err := FrechetSymmetric(st[0], st[1])
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.Distance, "fd")
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/op")
	b.Logf("internal/f64 kernels: %s, GOMAXPROCS %d", f64.Level(), runtime.GOMAXPROCS(0))
}

package main

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/metrics/features"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// benchmarkEvaluate times the whole evaluation (decoding, features, FID,
// KID, MS-SSIM diversity, memorisation, sheets, JSON) of 16 real and 16
// generated 256x256 phantoms (4 prompts of 4), without a cache, and reports
// images/s over both sets.
func benchmarkEvaluate(b *testing.B, extra ...string) {
	dir := b.TempDir()
	ims, reps := phantomSet(b, 1, 16, testSize)
	gen, greps := phantomSet(b, 2, 16, testSize)
	_ = reps
	realDir, genDir := filepath.Join(dir, "real"), filepath.Join(dir, "gen")
	writeFolder(b, realDir, ims)
	writeGenerated(b, genDir, gen, greps, 4)
	args := append([]string{"-real", realDir, "-gen", genDir, "-size", "256", "-kid-subsets", "10"}, extra...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		runEval(b, append(args, "-out", filepath.Join(dir, fmt.Sprint("out", i)))...)
	}
	b.ReportMetric(float64(32*b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkEvaluatePixels is the weight-free mode (-features pixels).
//
//	go test ./examples/evaluate -run '^$' -bench . -benchtime 3x
func BenchmarkEvaluatePixels(b *testing.B) { benchmarkEvaluate(b, "-features", "pixels") }

// BenchmarkEvaluateInception uses the full-size FID Inception with random
// weights (the real model's cost), batch 16.
func BenchmarkEvaluateInception(b *testing.B) {
	li := loadInception
	b.Cleanup(func() { loadInception = li })
	m, err := features.NewInception(nn.NewRandomBuilder(1, tensor.F32), features.InceptionConfig{})
	if err != nil {
		b.Fatal(err)
	}
	loadInception = func(string) (*features.Inception, error) { return m, nil }
	benchmarkEvaluate(b, "-features", "inception", "-inception", "random")
}

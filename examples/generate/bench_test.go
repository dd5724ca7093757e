package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
)

// benchGenerate generates images (distinct prompts and seeds, PNG files and
// manifest rows, as the program does) in batches of batch, and reports
// images/min.
func benchGenerate(b *testing.B, p *pipeline.Pipeline, size, steps, batch, images int) {
	pf := &promptFile{}
	for i := 0; i < images; i++ {
		pf.rows = append(pf.rows, &row{id: fmt.Sprintf("r%d", i), prompt: fmt.Sprintf("finding %d, chest radiograph", i)})
	}
	s := settings{N: 1, Seed: 1, Steps: steps, Guidance: 4, Scheduler: "pndm", Width: size, Height: size, LongPrompt: "truncate"}
	imgs, err := buildJob(pf, s, ".", false)
	if err != nil {
		b.Fatal(err)
	}
	png, _ := lookupFormat("png")
	j := &job{images: imgs, formats: []formatInfo{png}, longPrompt: "truncate", hash: "bench"}
	o := &options{now: time.Now, stderr: io.Discard}
	cache := pipeline.NewTextCache(256)
	defer cache.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		o.out = b.TempDir()
		if err := os.MkdirAll(filepath.Join(o.out, "png"), 0o755); err != nil {
			b.Fatal(err)
		}
		app, err := openAppender(filepath.Join(o.out, "manifest.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		var keep []manifestLine
		b.StartTimer()
		for lo := 0; lo < len(imgs); lo += batch {
			if err := runBatch(b.Context(), p, j, o, imgs[lo:min(lo+batch, len(imgs))], cache, &inputCache{}, app, &keep, "cpu"); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		app.close()
		b.StartTimer()
	}
	b.ReportMetric(float64(images*b.N)/b.Elapsed().Minutes(), "images/min")
}

// BenchmarkGenerateTiny: the demo model (tiny SD1-style architecture) at
// 128x128, 20 PNDM steps, 8 images, batch 1 vs 4.
func BenchmarkGenerateTiny(b *testing.B) {
	p, err := pipeline.Demo()
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, batch := range []int{1, 4} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) { benchGenerate(b, p, 128, 20, batch, 8) })
	}
}

// BenchmarkGenerateSD15: Stable Diffusion 1.5 at 512x512 on the CPU, batch
// 1 vs 4 (4 images, $ROENTGO_SD15_STEPS steps, default 20). $ROENTGO_SD15
// is a diffusers SD 1.5 folder, or "random" for the SD 1.5 architecture with
// random weights (the same cost; built in F16). Skipped when unset.
func BenchmarkGenerateSD15(b *testing.B) {
	path := os.Getenv("ROENTGO_SD15")
	if path == "" {
		b.Skip("set ROENTGO_SD15 to a diffusers SD 1.5 folder (or \"random\")")
	}
	steps := 20
	if v := os.Getenv("ROENTGO_SD15_STEPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("ROENTGO_SD15_STEPS=%q; expected a positive integer", v)
		}
		steps = n
	}
	var p *pipeline.Pipeline
	var err error
	if path == "random" {
		p, err = pipeline.NewRandom("sd15", 1, tensor.F16)
	} else {
		p, err = pipeline.Load(path, pipeline.Options{})
	}
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	for _, batch := range []int{1, 4} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) { benchGenerate(b, p, 512, steps, batch, 4) })
	}
}

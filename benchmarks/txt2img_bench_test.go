package benchmarks

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/tensor"
)

// peakRSSMiB returns the process's peak resident set size (VmHWM) in MiB, or -1.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return -1
}

// cpuTime returns the CPU time (user + system) the process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTxt2Img runs a whole txt2img generation at 512x512 (64x64 latents) on the
// SD1.5 architecture with random F16 weights: 20 PNDM steps with classifier-free
// guidance (a batch-2 U-Net call per step). It reports the seconds spent in text
// encoding, denoising and decoding, the denoising time per step, the process CPU
// time per generation (steadier than wall time on a shared machine), and peak RSS.
// One iteration takes minutes on 2 cores: run it with -benchtime 1x.
func BenchmarkTxt2Img(b *testing.B) {
	for _, c := range []struct {
		name  string
		model string
		size  int
		steps int
	}{
		{"SD15/F16/512x512/20steps", "sd15", 512, 20},
	} {
		b.Run(c.name, func(b *testing.B) {
			p, err := pipeline.NewRandom(c.model, 1, tensor.F16)
			if err != nil {
				b.Fatal(err)
			}
			req := pipeline.Request{
				Prompt:    "small left-sided pleural effusion",
				Height:    c.size,
				Width:     c.size,
				Steps:     c.steps,
				Guidance:  4,
				Scheduler: "pndm",
				Seed:      42,
			}
			cpu0 := cpuTime()
			tm := timeTxt2Img(b, p, req)
			b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(tm.TextEncoding.Seconds(), "s-text")
			b.ReportMetric(tm.Denoising.Seconds(), "s-denoise")
			b.ReportMetric(tm.Denoising.Seconds()/float64(max(tm.Steps, 1)), "s/step")
			b.ReportMetric(tm.Decoding.Seconds(), "s-decode")
			b.ReportMetric(peakRSSMiB(), "MiB-peakRSS")
		})
	}
}

// timeTxt2Img runs req b.N times on the benchmark's clock and returns the
// phase timings of the last run.
func timeTxt2Img(b *testing.B, p *pipeline.Pipeline, req pipeline.Request) pipeline.Timings {
	var tm pipeline.Timings
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := p.Txt2Img(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		tm = res.Timings
	}
	b.StopTimer()
	return tm
}

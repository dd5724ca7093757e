package unet

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/roentgo/roentgo/kernels/cpu"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// benchModels caches the random-weight real-size U-Nets per config and weight
// dtype (building one takes seconds and 1.7 GB (F16) or 3.4 GB (F32)).
var benchModels sync.Map // "config/dtype" -> benchModel

// benchModel is a cached U-Net and its named parameters.
type benchModel struct {
	m      *Model
	params []nn.Param
}

func realSize(b *testing.B, config string, dt tensor.DType) *Model {
	m, _ := realSizeParams(b, config, dt)
	return m
}

// realSizeParams is realSize with the model's named parameters (the
// builder's, for nn.NewParamSet).
func realSizeParams(b *testing.B, config string, dt tensor.DType) (*Model, []nn.Param) {
	key := fmt.Sprintf("%s/%v", config, dt)
	if c, ok := benchModels.Load(key); ok {
		return c.(benchModel).m, c.(benchModel).params
	}
	cfg, err := LoadConfig(filepath.Join("testdata", config))
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	bl := nn.NewRandomBuilder(1, dt)
	m, err := New(bl, cfg)
	if err == nil {
		err = bl.Check()
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s U-Net, random %v weights: %d parameters, built in %v", config, dt, numParams(bl.Params()), time.Since(start).Round(time.Millisecond))
	benchModels.Store(key, benchModel{m, bl.Params()})
	return m, bl.Params()
}

// BenchmarkSD15 times one U-Net step (Forward) of the SD1.5 architecture with
// random weights at batch 2 (classifier-free guidance), for F16 and F32 weights
// and 64x64 (512x512 images) and 32x32 latents. Metrics: s/step, cpu-s/step
// (process CPU time: the figure to trust on a shared machine), GFLOP/s (from
// forwardFLOPs), buffer-pool misses per step (0 once warm: no GC churn) and
// the process's peak resident memory (VmHWM; it includes every model built so
// far in the process: run one dtype per process, e.g. -bench 'SD15/F16', for
// a clean figure).
//
//	go test ./unet -run '^$' -bench 'SD15/F16/64' -benchtime 3x
func BenchmarkSD15(b *testing.B) {
	for _, dt := range []tensor.DType{tensor.F16, tensor.F32} {
		for _, size := range []int{64, 32} {
			b.Run(fmt.Sprintf("%v/%dx%d", dt, size, size), func(b *testing.B) {
				benchStep(b, realSize(b, "sd15_config.json", dt), size)
			})
		}
	}
}

// BenchmarkSD15Compute times the SD1.5 U-Net step (F16 weights, batch 2) in
// F32 compute and then in BF16 compute (tensor.SetComputeDType(CPU, BF16):
// linear and convolution products in bfloat16 with F32 sums) in one run, so
// the two can be compared as a ratio; %peak is against the F32 FMA probe.
//
//	go test ./unet -run '^$' -bench 'SD15Compute/.*/64' -benchtime 2x
func BenchmarkSD15Compute(b *testing.B) {
	for _, size := range []int{64, 32} {
		for _, ct := range []tensor.DType{tensor.F32, tensor.BF16} {
			b.Run(fmt.Sprintf("%v/%dx%d", ct, size, size), func(b *testing.B) {
				if err := tensor.SetComputeDType(tensor.CPU, ct); err != nil {
					b.Skip(err)
				}
				defer tensor.SetComputeDType(tensor.CPU, tensor.F32)
				m := realSize(b, "sd15_config.json", tensor.F16)
				benchStep(b, m, size)
				if p := cpu.PeakGFLOPS(cpu.Threads()); p > 0 {
					b.ReportMetric(100*forwardFLOPs(m, 2, size, size, 77)/(b.Elapsed().Seconds()/float64(b.N))/1e9/p, "%peak")
				}
			})
		}
	}
}

// BenchmarkSD21 is BenchmarkSD15 for the SD2.1(-base) architecture (linear
// projections, 5/10/20/20 heads of 64, 1024-wide text states) with F16 weights.
func BenchmarkSD21(b *testing.B) {
	b.Run("F16/64x64", func(b *testing.B) { benchStep(b, realSize(b, "sd21_config.json", tensor.F16), 64) })
}

// benchStep times m.Forward at batch 2 with size x size latents and 77 tokens.
func benchStep(b *testing.B, m *Model, size int) {
	g := rng.New(3)
	sample := tensor.Randn(g, 2, 4, size, size)
	ctx := tensor.Randn(g, 2, 77, m.Config.CrossAttentionDim.at(0))
	ts := tensor.Scalar(500)
	flops := forwardFLOPs(m, 2, size, size, 77)
	out := m.Forward(sample, ts, ctx) // warms the buffer pool
	if !out.Shape().Equal(sample.Shape()) {
		b.Fatalf("output %v for input %v", out.Shape(), sample.Shape())
	}
	out.Release()
	pool, cpu0 := tensor.GetPoolStats(), cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m.Forward(sample, ts, ctx).Release()
	}
	b.StopTimer()
	// Buffers the pool could not serve (new allocations) per step.
	b.ReportMetric(float64(tensor.GetPoolStats().Misses-pool.Misses)/float64(b.N), "pool-misses/step")
	// CPU time of the process per step: on a shared machine, wall time
	// over-states the cost; on an idle one wall ~ cpu / cores.
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/step")
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/step")
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
	b.ReportMetric(flops/2/1e12, "TFLOP/sample")
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
}

// cpuSeconds returns the user+system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// sysSeconds returns the system CPU time of the process so far.
func sysSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Stime.Nano()).Seconds()
}

// vmHWM returns the process's peak resident set size in bytes (VmHWM of
// /proc/self/status), or 0 where that is unavailable.
func vmHWM() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// forwardFLOPs counts the multiply-adds (x2) of one Forward on [n, C, h, w]
// latents (h and w divisible by 2^(levels-1)) with seq text tokens: the
// convolutions, linear layers and the two matrix products of each attention.
// Norms, activations and the softmax are left out (a few percent).
func forwardFLOPs(m *Model, n, h, w, seq int) float64 {
	var f float64
	prod := func(s tensor.Shape) float64 {
		p := 1.0
		for _, d := range s {
			p *= float64(d)
		}
		return p
	}
	conv := func(c *nn.Conv2d, oh, ow int) { f += 2 * float64(n*oh*ow) * prod(c.Weight.Shape()) }
	lin := func(l *nn.Linear, rows int) { f += 2 * float64(rows) * prod(l.Weight.Shape()) }
	resnet := func(r *nn.ResnetBlock2D, hh, ww int) {
		conv(r.Conv1, hh, ww)
		conv(r.Conv2, hh, ww)
		if r.ConvShortcut != nil {
			conv(r.ConvShortcut, hh, ww)
		}
		lin(r.TimeEmbProj, n)
	}
	attn := func(a *nn.Attention, sq, sk int) {
		lin(a.ToQ, n*sq)
		lin(a.ToK, n*sk)
		lin(a.ToV, n*sk)
		lin(a.ToOut, n*sq)
		f += 4 * float64(n*sq*sk*a.Heads*a.DimHead) // Q K^T and P V
	}
	transformer := func(t *nn.Transformer2DModel, hh, ww int) {
		s := hh * ww
		lin(t.ProjIn, n*s)
		for _, blk := range t.Blocks {
			attn(blk.Attn1, s, s)
			attn(blk.Attn2, s, seq)
			lin(blk.FF.Proj, n*s)
			lin(blk.FF.Out, n*s)
		}
		lin(t.ProjOut, n*s)
	}
	lin(m.TimeEmbedding.Linear1, n)
	lin(m.TimeEmbedding.Linear2, n)
	conv(m.ConvIn, h, w)
	for i, d := range m.DownBlocks {
		hh, ww := h>>i, w>>i
		for j, r := range d.Resnets {
			resnet(r, hh, ww)
			if d.Attentions != nil {
				transformer(d.Attentions[j], hh, ww)
			}
		}
		if d.Downsampler != nil {
			conv(d.Downsampler.Conv, hh/2, ww/2)
		}
	}
	l := len(m.DownBlocks) - 1
	resnet(m.MidBlock.Resnets[0], h>>l, w>>l)
	transformer(m.MidBlock.Attention, h>>l, w>>l)
	resnet(m.MidBlock.Resnets[1], h>>l, w>>l)
	for i, u := range m.UpBlocks {
		hh, ww := h>>(l-i), w>>(l-i)
		for j, r := range u.Resnets {
			resnet(r, hh, ww)
			if u.Attentions != nil {
				transformer(u.Attentions[j], hh, ww)
			}
		}
		if u.Upsampler != nil {
			conv(u.Upsampler.Conv, 2*hh, 2*ww)
		}
	}
	conv(m.ConvOut, h, w)
	return f
}

// BenchmarkTrainStep times one training step at batch 1 with 77 tokens:
// forward, epsilon MSE loss, backward and an AdamW step over every parameter
// (F32 masters; the optimiser's moments exist from the warm-up step on), as
// scripts/torch_train_sd15.py does for PyTorch (scripts/bench-train.sh runs
// both): the golden tiny U-Net at 16x16 latents, and the SD1.5 architecture
// (random F32 weights) at 32x32 and 64x64 latents, each without and with
// gradient checkpointing (".../plain", ".../checkpointing"). Metrics:
// s/step, cpu-s/step, steps/s, the forward, backward and optimiser parts of
// a step, and the process's peak resident memory (run one SD1.5 case per
// process for a clean figure: the peak includes every case run before).
//
//	go test ./unet -run '^$' -bench 'TrainStep/tiny' -benchtime 20x
//	go test ./unet -run '^$' -bench 'TrainStep/SD15/F32/32x32/plain' -benchtime 2x
func BenchmarkTrainStep(b *testing.B) {
	b.Run("tiny/16x16", func(b *testing.B) {
		dir := filepath.Join(goldenDir(b), "model", "diffusers", "unet")
		cfg, err := LoadConfig(filepath.Join(dir, "config.json"))
		if err != nil {
			b.Fatal(err)
		}
		src, closer, err := nn.OpenComponent(dir, false)
		if err != nil {
			b.Fatal(err)
		}
		defer closer.Close()
		m, bl, err := nn.Build(src, cfg, tensor.F32, New)
		if err != nil {
			b.Fatal(err)
		}
		ps, err := nn.NewParamSet(m, bl.Params())
		if err != nil {
			b.Fatal(err)
		}
		benchTrain(b, m, ps, 16)
	})
	for _, size := range []int{32, 64} {
		for _, ckpt := range []bool{false, true} {
			name := fmt.Sprintf("SD15/F32/%dx%d/plain", size, size)
			if ckpt {
				name = fmt.Sprintf("SD15/F32/%dx%d/checkpointing", size, size)
			}
			b.Run(name, func(b *testing.B) {
				m, params := realSizeParams(b, "sd15_config.json", tensor.F32)
				ps, err := nn.NewParamSet(m, params)
				if err != nil {
					b.Fatal(err)
				}
				m.GradientCheckpointing = ckpt
				defer func() { m.GradientCheckpointing = false }()
				benchTrain(b, m, ps, size)
			})
		}
		// LoRA fine-tuning (issue 10): rank-4 adapters on the attention
		// projections (to_q/to_k/to_v/to_out.0), the base model frozen.
		b.Run(fmt.Sprintf("SD15/F32/%dx%d/lora-r4", size, size), func(b *testing.B) {
			m, _ := realSizeParams(b, "sd15_config.json", tensor.F32)
			net, err := lora.Attach(m, lora.Config{Rank: 4, Alpha: 4})
			if err != nil {
				b.Fatal(err)
			}
			defer net.Remove()
			ps, err := net.ParamSet()
			if err != nil {
				b.Fatal(err)
			}
			benchTrain(b, m, ps, size)
		})
	}
}

// trainPoolLimit is the buffer-pool limit of the training benchmarks: no
// practical limit (the pool never holds more than the step had live at
// once). ROENTGO_TRAIN_POOL_LIMIT (bytes) overrides it, e.g. 2147483648 for
// the library's default.
const trainPoolLimit = 1 << 40

// benchTrain times training steps of m at batch 1 with size x size latents:
// every parameter of ps is made trainable (its value is its F32 master) and
// updated by AdamW; afterwards the parameters are unmarked for autograd (the
// weights the steps changed stay changed: they are random anyway).
//
// The step hands autograd's gradients to the optimiser without a copy (the
// trainable's Grad is the leaf's gradient tensor) and drops them after the
// update, as torch's loss.backward(), optimizer.step() and zero_grad() do.
func benchTrain(b *testing.B, m *Model, ps *nn.ParamSet, size int) {
	// A training step releases and re-allocates the same activations and
	// gradients every step: a buffer pool large enough to hold them all
	// serves every allocation after the warm-up. With the default 2 GiB
	// limit the rest goes to the garbage collector, whose heap grows to
	// about twice the live data (+4 GB peak RSS at 32x32) and whose returned
	// pages fault back in every step (seconds of system time per step).
	limit := int64(trainPoolLimit)
	if v := os.Getenv("ROENTGO_TRAIN_POOL_LIMIT"); v != "" { // bytes, for comparisons
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("ROENTGO_TRAIN_POOL_LIMIT=%q: %v", v, err)
		}
		limit = n
	}
	old := tensor.SetPoolLimit(limit)
	defer func() {
		tensor.SetPoolLimit(old) // drains the pool
		debug.FreeOSMemory()
	}()
	train, err := ps.Trainable()
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, p := range train {
			p.Grad = nil
			p.Tensor.ZeroGrad()
			p.Tensor.SetRequiresGrad(false)
		}
	}()
	opt, err := optim.NewAdamW(train, optim.DefaultAdamW())
	if err != nil {
		b.Fatal(err)
	}
	defer func() { // the moments (6.9 GB for SD1.5) go back to the pool now
		for _, p := range train {
			if m, v, _, ok := opt.State(p.Name); ok {
				m.Release()
				v.Release()
			}
		}
	}()
	g := rng.New(3)
	sample := tensor.Randn(g, 1, 4, size, size)
	noise := tensor.Randn(g, 1, 4, size, size)
	ctx := tensor.Randn(g, 1, 77, m.Config.CrossAttentionDim.at(0))
	ts := tensor.Scalar(500)
	var fwd, bwd, upd time.Duration
	step := func() {
		t0 := time.Now()
		pred := m.Forward(sample, ts, ctx)
		loss := tensor.MSELoss(pred, noise)
		t1 := time.Now()
		if err := tensor.Backward(loss); err != nil {
			b.Fatal(err)
		}
		pred.Release()
		loss.Release()
		t2 := time.Now()
		for _, p := range train {
			p.Grad = p.Tensor.Grad()
		}
		if err := opt.Step(1e-4); err != nil {
			b.Fatal(err)
		}
		for _, p := range train {
			p.Grad = nil
			p.Tensor.ZeroGrad()
		}
		t3 := time.Now()
		fwd, bwd, upd = fwd+t1.Sub(t0), bwd+t2.Sub(t1), upd+t3.Sub(t2)
	}
	step() // warm-up: the buffer pool, AdamW's moments
	fwd, bwd, upd = 0, 0, 0
	cpu0, sys0 := cpuSeconds(), sysSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step()
	}
	b.StopTimer()
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec, "s/step")
	b.ReportMetric(1/sec, "steps/s")
	b.ReportMetric((cpuSeconds()-cpu0)/float64(b.N), "cpu-s/step")
	// System time: page faults of freshly allocated memory, mostly.
	b.ReportMetric((sysSeconds()-sys0)/float64(b.N), "sys-s/step")
	b.ReportMetric(fwd.Seconds()/float64(b.N), "fwd-s/step")
	b.ReportMetric(bwd.Seconds()/float64(b.N), "bwd-s/step")
	b.ReportMetric(upd.Seconds()/float64(b.N), "adamw-s/step")
	if hwm := vmHWM(); hwm > 0 {
		b.ReportMetric(float64(hwm)/(1<<20), "peak-RSS-MiB")
	}
}

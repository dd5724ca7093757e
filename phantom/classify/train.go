package classify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/phantom"
	"github.com/roentgo/roentgo/tensor"
)

// TrainOptions configure Train. Zero fields take the values of
// DefaultTrainOptions, except Seed, Log and Config's zero value (which
// means DefaultConfig).
type TrainOptions struct {
	// Seed fixes everything: the phantoms (phantom.Random of
	// phantom.DatasetSeed(Seed, i)), the initial weights, the batches and
	// the augmentations.
	Seed uint64
	// Train and Val are the numbers of training and validation phantoms:
	// dataset indices 0..Train-1 and Train..Train+Val-1.
	Train, Val int
	// Steps is the number of optimiser steps of Batch images each.
	Steps, Batch int
	// LR is AdamW's peak learning rate: linear warm-up over the first
	// Warmup steps, then cosine decay to 0 at Steps.
	LR     float64
	Warmup int
	// WeightDecay is AdamW's decoupled weight decay.
	WeightDecay float64
	// ClipNorm clips the global gradient norm (<= 0: default).
	ClipNorm float64
	// Workers is the number of goroutines rendering phantoms.
	Workers int
	// Log receives progress lines; nil: none. LogEvery is the interval in
	// steps.
	Log      io.Writer
	LogEvery int
	// FindingsRate is phantom.Options.FindingsRate of the phantoms.
	FindingsRate float64
	// RenderSize is the side at which phantoms are rendered before
	// Preprocess (FromPhantom) reduces them to InputSize.
	RenderSize int
	// MaxPosWeight bounds the loss weight of a finding's positives (see
	// Train).
	MaxPosWeight float64
	// NoAugment turns augmentation off.
	NoAugment bool
	// Config is the network; the zero value means DefaultConfig.
	Config Config
}

// DefaultTrainOptions returns the defaults: 2000 training and 500
// validation phantoms rendered at 256 with FindingsRate 0.7, 1500 steps of
// 32 images, AdamW with peak learning rate 2e-3 (100 warm-up steps, cosine
// decay), weight decay 1e-4, gradient clipping at 1, positive weights up to
// 4, one rendering worker per CPU, seed 1 (docs/DEMO_MODEL.md gives the
// measured cost and held-out accuracy of this run).
func DefaultTrainOptions() TrainOptions {
	return TrainOptions{Seed: 1, Train: 2000, Val: 500, Steps: 1500, Batch: 32, LR: 2e-3, Warmup: 100,
		WeightDecay: 1e-4, ClipNorm: 1, Workers: runtime.NumCPU(), LogEvery: 100, FindingsRate: 0.7,
		RenderSize: 256, MaxPosWeight: 4, Config: DefaultConfig()}
}

// withDefaults fills the zero fields of o and checks the result.
func (o TrainOptions) withDefaults() (TrainOptions, error) {
	d := DefaultTrainOptions()
	setI := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setF := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	setI(&o.Train, d.Train)
	setI(&o.Val, d.Val)
	setI(&o.Steps, d.Steps)
	setI(&o.Batch, d.Batch)
	setI(&o.Warmup, min(d.Warmup, o.Steps/10))
	setI(&o.Workers, d.Workers)
	setI(&o.LogEvery, d.LogEvery)
	setI(&o.RenderSize, d.RenderSize)
	setF(&o.LR, d.LR)
	setF(&o.WeightDecay, d.WeightDecay)
	setF(&o.ClipNorm, d.ClipNorm)
	setF(&o.FindingsRate, d.FindingsRate)
	setF(&o.MaxPosWeight, d.MaxPosWeight)
	if o.Config.Outputs == 0 && o.Config.Stem == 0 {
		o.Config = DefaultConfig()
	}
	switch {
	case o.Train < 1 || o.Val < 0 || o.Steps < 1 || o.Batch < 1 || o.Workers < 1 || o.Warmup < 0:
		return o, fmt.Errorf("classify: Train: options Train %d, Val %d, Steps %d, Batch %d, Workers %d, Warmup %d; expected Train, Steps, Batch and Workers >= 1, Val and Warmup >= 0",
			o.Train, o.Val, o.Steps, o.Batch, o.Workers, o.Warmup)
	case !(o.LR > 0) || math.IsInf(o.LR, 0) || o.WeightDecay < 0 || !(o.ClipNorm > 0) || !(o.MaxPosWeight >= 1):
		return o, fmt.Errorf("classify: Train: LR %v, WeightDecay %v, ClipNorm %v, MaxPosWeight %v; expected LR > 0, WeightDecay >= 0, ClipNorm > 0, MaxPosWeight >= 1",
			o.LR, o.WeightDecay, o.ClipNorm, o.MaxPosWeight)
	case !(o.FindingsRate >= 0 && o.FindingsRate <= 1):
		return o, fmt.Errorf("classify: Train: FindingsRate %v, expected a value in [0, 1]", o.FindingsRate)
	case o.RenderSize < max(phantom.MinSize, MinImageSize) || o.RenderSize > phantom.MaxSize:
		return o, fmt.Errorf("classify: Train: RenderSize %d, expected %d to %d", o.RenderSize, max(phantom.MinSize, MinImageSize), phantom.MaxSize)
	}
	if err := o.Config.Validate(); err != nil {
		return o, err
	}
	return o, nil
}

// Train renders o.Train + o.Val phantoms, trains a new Model on the first
// o.Train and returns it with its Report on the other o.Val.
//
// Each phantom is phantom.Random(phantom.DatasetSeed(o.Seed, i),
// {FindingsRate: o.FindingsRate}), rendered at RenderSize (Workers
// goroutines) and reduced by FromPhantom (8-bit gray, then Preprocess), as
// a generated PNG would be. Each step draws Batch training images (epochs
// of a seeded shuffle), augments them (see augment: brightness, contrast,
// gamma, shifts of up to 4 pixels, blur, noise; never a left-right flip,
// which would swap the patient's sides) and takes an AdamW step on
// BCEWithLogits, where a finding's positives weigh
// min(sqrt(negatives/positives), MaxPosWeight) (counted on the training
// set) and negatives 1, so that rarer findings are still learnt; the
// output biases start at the weighted priors (priorBias). The loss
// is F32 autograd on the CPU; the run is deterministic given o.
func Train(ctx context.Context, o TrainOptions) (*Model, *Report, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, format+"\n", args...)
		}
	}
	xs, ys, err := renderSet(ctx, o, 0, o.Train+o.Val)
	if err != nil {
		return nil, nil, err
	}
	logf("classify: rendered %d phantoms at %d in %s", o.Train+o.Val, o.RenderSize, time.Since(start).Round(time.Millisecond))
	trainX, trainY := xs[:o.Train], ys[:o.Train]
	posW := positiveWeights(trainY, o.MaxPosWeight)

	b := nn.NewRandomBuilder(o.Seed, tensor.F32)
	m, err := New(b, o.Config)
	if err != nil {
		return nil, nil, err
	}
	if err := tensor.Catch(func() { m.out.Bias.CopyFrom(tensor.FromFloat32(priorBias(trainY, posW), len(Findings))) }); err != nil {
		return nil, nil, err
	}
	ps, err := nn.NewParamSet(m, m.Params())
	if err != nil {
		return nil, nil, err
	}
	params, err := ps.Trainable()
	if err != nil {
		return nil, nil, err
	}
	acfg := optim.DefaultAdamW()
	acfg.WeightDecay = o.WeightDecay
	opt, err := optim.NewAdamW(params, acfg)
	if err != nil {
		return nil, nil, err
	}
	sched, err := optim.NewSchedule(o.LR, optim.ScheduleConfig{Name: "cosine", WarmupSteps: o.Warmup, TrainingSteps: o.Steps})
	if err != nil {
		return nil, nil, err
	}
	// Training done: no autograd marks left on the weights.
	defer func() {
		for _, p := range params {
			p.Tensor.SetRequiresGrad(false)
		}
	}()

	const px = InputSize * InputSize
	K := len(Findings)
	order := newShuffler(mix(o.Seed, 0x5348), o.Train)
	xb, yb, wb := make([]float32, o.Batch*px), make([]float32, o.Batch*K), make([]float32, o.Batch*K)
	var lossSum, tailSum float64
	var lossN, tailN int
	tail := o.Steps - max(o.Steps/10, 1)
	tStart := time.Now()
	for step := 0; step < o.Steps; step++ {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		for i := 0; i < o.Batch; i++ {
			j := order.next()
			dst := xb[i*px : (i+1)*px]
			if o.NoAugment {
				copy(dst, trainX[j])
			} else {
				augment(dst, trainX[j], newRNG(mix(o.Seed, 0x417567, uint64(step), uint64(i))))
			}
			for k := 0; k < K; k++ {
				y := trainY[j][k]
				yb[i*K+k] = y
				wb[i*K+k] = 1 + (posW[k]-1)*y
			}
		}
		var loss float64
		var berr error
		err := tensor.Catch(func() {
			tensor.Do(func() {
				lg, _ := m.Forward(tensor.FromFloat32(xb, o.Batch, 1, InputSize, InputSize))
				l := BCEWithLogits(lg, tensor.FromFloat32(yb, o.Batch, K), tensor.FromFloat32(wb, o.Batch, K))
				loss = float64(l.Item())
				if math.IsNaN(loss) || math.IsInf(loss, 0) {
					return
				}
				berr = tensor.Backward(l)
			})
		})
		if err == nil {
			err = berr
		}
		if err == nil && (math.IsNaN(loss) || math.IsInf(loss, 0)) {
			err = fmt.Errorf("the loss is %v; lower LR (now %v)", loss, o.LR)
		}
		if err == nil {
			err = ps.CollectGrads(1)
		}
		if err == nil {
			_, err = optim.ClipGradNorm(params, o.ClipNorm)
		}
		if err == nil {
			err = opt.Step(sched.LR(step))
		}
		ps.ZeroGrad()
		if err != nil {
			return nil, nil, fmt.Errorf("classify: Train: step %d: %w", step+1, err)
		}
		lossSum += loss
		lossN++
		if step >= tail {
			tailSum += loss
			tailN++
		}
		if (step+1)%o.LogEvery == 0 || step+1 == o.Steps {
			rate := float64(step+1) / time.Since(tStart).Seconds()
			logf("classify: step %d/%d loss %.4f lr %.2e (%.2f steps/s)", step+1, o.Steps, lossSum/float64(lossN), sched.LR(step), rate)
			lossSum, lossN = 0, 0
		}
	}
	rep := &Report{}
	if o.Val > 0 {
		if rep, err = Evaluate(m, xs[o.Train:], ys[o.Train:]); err != nil {
			return nil, nil, err
		}
	}
	rep.Train, rep.Val, rep.Steps, rep.Duration = o.Train, o.Val, o.Steps, time.Since(start)
	rep.Loss = tailSum / float64(max(tailN, 1))
	logf("classify: trained in %s", rep.Duration.Round(time.Second))
	return m, rep, nil
}

// renderSet renders the phantoms lo..hi-1 of o's dataset with o.Workers
// goroutines and returns their inputs and targets.
func renderSet(ctx context.Context, o TrainOptions, lo, hi int) (xs, ys [][]float32, err error) {
	n := hi - lo
	xs, ys = make([][]float32, n), make([][]float32, n)
	errs := make([]error, o.Workers)
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < o.Workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := range next {
				if errs[w] != nil {
					continue
				}
				p := phantom.Random(phantom.DatasetSeed(o.Seed, lo+i), phantom.Options{FindingsRate: o.FindingsRate})
				im, err := phantom.Render(p, o.RenderSize, o.RenderSize)
				if err == nil {
					xs[i], err = FromPhantom(im)
				}
				if err != nil {
					errs[w] = fmt.Errorf("classify: phantom %d: %w", lo+i, err)
				}
				ys[i] = Targets(p.Findings)
			}
		}(w)
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return xs, ys, nil
}

// positiveWeights returns, per finding, min(sqrt(negatives/positives),
// maxW), at least 1 (1 when there are no positives).
func positiveWeights(ys [][]float32, maxW float64) []float32 {
	K := len(Findings)
	out := make([]float32, K)
	for k := 0; k < K; k++ {
		var pos float64
		for _, y := range ys {
			pos += float64(y[k])
		}
		neg := float64(len(ys)) - pos
		w := 1.0
		if pos > 0 {
			w = min(max(math.Sqrt(neg/pos), 1), maxW)
		}
		out[k] = float32(w)
	}
	return out
}

// priorBias returns the output biases at which a network that ignores its
// input minimises the weighted loss: log(w p / (1 - p)) for a finding of
// training prevalence p and positive weight w (p clamped to [1/(2n),
// 1 - 1/(2n)] for n images). Starting there skips the first phase of
// training, in which the biases would only drift towards the priors.
func priorBias(ys [][]float32, posW []float32) []float32 {
	K := len(Findings)
	out := make([]float32, K)
	n := float64(len(ys))
	for k := 0; k < K; k++ {
		var pos float64
		for _, y := range ys {
			pos += float64(y[k])
		}
		p := min(max(pos/n, 0.5/n), 1-0.5/n)
		out[k] = float32(math.Log(float64(posW[k]) * p / (1 - p)))
	}
	return out
}

// augment writes an augmented copy of the InputSize x InputSize image src
// into dst, drawing from r: a shift of up to 4 pixels in each direction
// (edges replicated), contrast x[0.85, 1.15] about 0.5 and brightness
// +-0.06, gamma in [0.85, 1.18], with probability 0.5 a Gaussian blur of
// sigma in [0.3, 1.0] pixels, Gaussian noise of sigma up to 0.02, then
// clamping to [0, 1]. It never flips left-right.
func augment(dst, src []float32, r *rng) {
	const n = InputSize
	dx, dy := r.intn(9)-4, r.intn(9)-4
	contrast := r.uniform(0.85, 1.15)
	bright := r.uniform(-0.06, 0.06)
	gamma := math.Exp(r.uniform(math.Log(0.85), math.Log(1.18)))
	blur := 0.0
	if r.float() < 0.5 {
		blur = r.uniform(0.3, 1.0)
	}
	noise := r.uniform(0, 0.02)
	for y := 0; y < n; y++ {
		sy := min(max(y-dy, 0), n-1)
		for x := 0; x < n; x++ {
			sx := min(max(x-dx, 0), n-1)
			v := (float64(src[sy*n+sx])-0.5)*contrast + 0.5 + bright
			v = math.Pow(min(max(v, 0), 1), gamma)
			dst[y*n+x] = float32(v)
		}
	}
	if blur > 0 {
		gaussBlur(dst, n, blur)
	}
	for i := range dst {
		v := float64(dst[i]) + noise*r.norm()
		dst[i] = float32(min(max(v, 0), 1))
	}
}

// gaussBlur blurs the n x n image v in place with a Gaussian of the given
// sigma (pixels), separably, edges replicated.
func gaussBlur(v []float32, n int, sigma float64) {
	rad := int(math.Ceil(2.5 * sigma))
	k := make([]float64, 2*rad+1)
	var sum float64
	for i := range k {
		d := float64(i - rad)
		k[i] = math.Exp(-d * d / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]float32, n*n)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			var acc float64
			for i, w := range k {
				acc += w * float64(v[y*n+min(max(x+i-rad, 0), n-1)])
			}
			tmp[y*n+x] = float32(acc)
		}
	}
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			var acc float64
			for i, w := range k {
				acc += w * float64(tmp[min(max(y+i-rad, 0), n-1)*n+x])
			}
			v[y*n+x] = float32(acc)
		}
	}
}

// rng is a small deterministic generator (splitmix64), independent of the
// Go version.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (r *rng) float() float64               { return float64(r.next()>>11) / (1 << 53) }
func (r *rng) uniform(a, b float64) float64 { return a + (b-a)*r.float() }
func (r *rng) intn(n int) int               { return int(r.next() % uint64(n)) }

// norm returns a standard normal value (Box-Muller).
func (r *rng) norm() float64 {
	u := 1 - r.float() // (0, 1]
	return math.Sqrt(-2*math.Log(u)) * math.Cos(2*math.Pi*r.float())
}

// mix hashes values into one seed.
func mix(vals ...uint64) uint64 {
	r := rng{s: 0x636c617373696679} // "classify"
	for _, v := range vals {
		r.s ^= v
		r.s = r.next()
	}
	return r.s
}

// shuffler yields indices 0..n-1 in epochs, each a fresh permutation.
type shuffler struct {
	r    *rng
	perm []int
	pos  int
}

func newShuffler(seed uint64, n int) *shuffler {
	s := &shuffler{r: newRNG(seed), perm: make([]int, n), pos: n}
	for i := range s.perm {
		s.perm[i] = i
	}
	return s
}

func (s *shuffler) next() int {
	if s.pos == len(s.perm) {
		for i := len(s.perm) - 1; i > 0; i-- {
			j := s.r.intn(i + 1)
			s.perm[i], s.perm[j] = s.perm[j], s.perm[i]
		}
		s.pos = 0
	}
	s.pos++
	return s.perm[s.pos-1]
}

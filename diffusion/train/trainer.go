package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// StepInfo is what one optimiser step did.
type StepInfo struct {
	// Step is the number of optimiser steps done (1 after the first).
	Step, Total int
	// Loss is the mean of the micro-batches' losses (as the optimiser saw
	// them, min-SNR weighted when enabled).
	Loss float64
	// LR is the learning rate the step used; GradNorm the global gradient
	// norm before clipping.
	LR       float64
	GradNorm float64
	// Epoch is the epoch of the next sample; Duration the step's wall time.
	Epoch    int
	Duration time.Duration
}

// NonFiniteLossError reports a NaN or infinite loss (or gradient): training
// stops at Step (1-based, the step that failed) without updating anything,
// and the last checkpoint written, if any, is LastCheckpoint.
type NonFiniteLossError struct {
	Step           int
	Value          float64
	What           string // "loss" or a parameter's gradient
	LastCheckpoint string
}

// Error describes the failure and where to resume from.
func (e *NonFiniteLossError) Error() string {
	where := "no checkpoint was written yet"
	if e.LastCheckpoint != "" {
		where = "the last good checkpoint is " + e.LastCheckpoint
	}
	return fmt.Sprintf("train: step %d: %s is %v; stopped without updating the weights (%s; lower the learning rate or check the data)", e.Step, e.What, e.Value, where)
}

// Trainer fine-tunes a Stable Diffusion model (see the package
// documentation). Create it with New or Resume, call Step or Run, then
// SaveModel; Close it.
type Trainer struct {
	cfg  Config
	mode Mode
	// restorePool puts the buffer pool's limit back at Close.
	restorePool func()
	models      *Models
	pipe        *pipeline.Pipeline

	unetTrain, textTrain, all []*nn.Trainable
	extraTrain                [][]*nn.Trainable // per Models.Extra
	opt                       *optim.AdamW
	ema                       *optim.EMA
	lr                        *optim.Schedule
	acc                       *optim.Accumulator

	noise      *diffusion.Schedule
	pred       diffusion.Prediction
	scaling    float32
	latentSize int // R / f
	channels   int

	ds      *dataset.Dataset
	it      *dataset.Iterator
	cache   *LatentCache
	vaeHash string

	step  int
	total int

	lastCheckpoint string

	// OnStep, if set, is called after every optimiser step.
	OnStep func(StepInfo)
	// Warn, if set, receives warnings (captions truncated, ...).
	Warn func(msg string)

	warnedTruncation bool
}

// New loads the model and the dataset of cfg and prepares a run from step 0.
func New(cfg Config) (*Trainer, error) {
	return newTrainer(cfg, nil)
}

// newTrainer builds a trainer; st, when not nil, is the checkpoint to
// continue from (its dir and state).
func newTrainer(cfg Config, st *resumeState) (t *Trainer, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mode, _ := LookupMode(cfg.Mode)
	t = &Trainer{cfg: cfg, mode: mode}
	t.restorePool = raisePoolLimit()
	built := t
	defer func() {
		if err != nil {
			built.Close()
			t = nil
		}
	}()
	pipe, named, err := pipeline.LoadForTraining(cfg.Model, pipeline.Options{DType: cfg.Precision, Prediction: cfg.Prediction})
	if err != nil {
		return nil, errctx.Wrap("train", err)
	}
	t.pipe = pipe
	pipe.KeepWeightsResident = true
	pipe.UNet.GradientCheckpointing = cfg.GradCheckpointing
	if f := pipe.VAEScaleFactor(); cfg.Resolution%f != 0 {
		return nil, fmt.Errorf("train: resolution %d is not a multiple of the VAE's downsampling factor %d", cfg.Resolution, f)
	}
	t.latentSize = cfg.Resolution / pipe.VAEScaleFactor()
	t.channels = pipe.VAE.Config.LatentChannels
	t.scaling = float32(pipe.VAE.Config.ScalingFactor)

	// The noise schedule and the prediction type, as the training script's
	// DDPMScheduler.from_pretrained(model, subfolder="scheduler").
	scfg, err := pipe.SchedulerConfig("ddpm")
	if err != nil {
		return nil, errctx.Wrap("train", err)
	}
	if t.noise, err = diffusion.NewSchedule(scfg); err != nil {
		return nil, errctx.Wrap("train: scheduler config", err)
	}
	t.pred = scfg.PredictionType
	if t.pred == "" {
		t.pred = diffusion.Epsilon
	}
	if t.pred != diffusion.Epsilon && t.pred != diffusion.VPrediction {
		return nil, fmt.Errorf("train: the scheduler config's prediction type is %q; training supports epsilon and v_prediction", t.pred)
	}

	// Parameters: the mode selects, the sets make masters.
	m := &Models{Pipeline: pipe, Config: cfg}
	if m.UNet, err = nn.NewParamSet(pipe.UNet, named.UNet); err != nil {
		return nil, errctx.Wrap("train: unet", err)
	}
	if m.Text, err = nn.NewParamSet(pipe.TextEncoder, named.TextEncoder); err != nil {
		return nil, errctx.Wrap("train: text encoder", err)
	}
	if err := mode.Select(m); err != nil {
		return nil, errctx.Wrap("train: mode "+mode.Name(), err)
	}
	t.models = m
	if t.unetTrain, err = m.UNet.Trainable(); err != nil {
		return nil, errctx.Wrap("train: unet", err)
	}
	if t.textTrain, err = m.Text.Trainable(); err != nil {
		return nil, errctx.Wrap("train: text encoder", err)
	}
	t.all = append(append([]*nn.Trainable(nil), t.unetTrain...), t.textTrain...)
	names := map[string]bool{"unet": true, "text_encoder": true, "optimizer": true, "ema": true}
	for _, x := range m.Extra {
		if x.Name == "" || names[x.Name] || x.Name != filepath.Base(x.Name) || x.Params == nil {
			return nil, fmt.Errorf("train: mode %s: bad extra parameter set %q", mode.Name(), x.Name)
		}
		names[x.Name] = true
		ps, err := x.Params.Trainable()
		if err != nil {
			return nil, errctx.Wrap("train: "+x.Name, err)
		}
		t.extraTrain = append(t.extraTrain, ps)
		t.all = append(t.all, ps...)
	}
	if len(t.all) == 0 {
		return nil, fmt.Errorf("train: mode %s leaves no parameter to train", mode.Name())
	}
	if t.opt, err = optim.NewAdamW(t.all, cfg.AdamW); err != nil {
		return nil, errctx.Wrap("train", err)
	}
	if cfg.EMA {
		if t.ema, err = optim.NewEMA(t.all, optim.DefaultEMA()); err != nil {
			return nil, errctx.Wrap("train", err)
		}
	}
	if t.acc, err = optim.NewAccumulator(cfg.Accumulate); err != nil {
		return nil, errctx.Wrap("train", err)
	}

	// The data.
	layout, _ := dataset.ParseLayout(cfg.Layout)
	if cfg.LatentCache != "" {
		if t.vaeHash, err = pipeline.HashFolder(filepath.Join(cfg.Model, "vae")); err != nil {
			return nil, errctx.Wrap("train: latent cache", err)
		}
		if t.cache, err = OpenLatentCache(cfg.LatentCache); err != nil {
			return nil, err
		}
	}
	t.ds, err = dataset.Open(cfg.Data, dataset.Options{
		Layout: layout, Resolution: cfg.Resolution, Split: cfg.Split,
		Shuffle: cfg.Shuffle, Seed: cfg.Seed, Workers: cfg.Workers, Load: t.load,
	})
	if err != nil {
		return nil, errctx.Wrap("train", err)
	}
	if t.ds.Len() == 0 {
		return nil, fmt.Errorf("train: dataset %s holds no usable image with a caption", cfg.Data)
	}
	t.total = cfg.totalSteps(t.ds.Len())
	if t.lr, err = optim.NewSchedule(cfg.LR, optim.ScheduleConfig{Name: cfg.Schedule, WarmupSteps: cfg.Warmup, TrainingSteps: t.total}); err != nil {
		return nil, errctx.Wrap("train", err)
	}

	pos := dataset.Position{}
	if st != nil {
		if err := t.restore(st); err != nil {
			return nil, err
		}
		pos = st.Position
	}
	if t.it, err = t.ds.Iter(pos); err != nil {
		return nil, errctx.Wrap("train", err)
	}
	return t, nil
}

// Close stops the data loader and releases the model and the cache.
func (t *Trainer) Close() error {
	var errs []error
	if t.it != nil {
		t.it.Close()
		t.it = nil
	}
	if t.ds != nil {
		errs = append(errs, t.ds.Close())
		t.ds = nil
	}
	if t.cache != nil {
		errs = append(errs, t.cache.Close())
		t.cache = nil
	}
	if t.pipe != nil {
		errs = append(errs, t.pipe.Close())
		t.pipe = nil
	}
	if t.restorePool != nil {
		t.restorePool()
		t.restorePool = nil
	}
	return errors.Join(errs...)
}

// Config returns the run's configuration.
func (t *Trainer) Config() Config { return t.cfg }

// StepsDone returns the number of optimiser steps done.
func (t *Trainer) StepsDone() int { return t.step }

// TotalSteps returns the number of optimiser steps the run takes.
func (t *Trainer) TotalSteps() int { return t.total }

// Models returns the models and parameter sets being trained.
func (t *Trainer) Models() *Models { return t.models }

// Pipeline returns the pipeline whose U-Net and text encoder are trained:
// generating with it uses the current weights.
func (t *Trainer) Pipeline() *pipeline.Pipeline { return t.pipe }

// Position returns the dataset position of the next sample.
func (t *Trainer) Position() dataset.Position { return t.it.Position() }

// DataStats returns the data loader's counts (loaded, skipped).
func (t *Trainer) DataStats() dataset.Stats { return t.it.Stats() }

// CacheStats returns the latent cache's hits and misses (0, 0 without a
// cache).
func (t *Trainer) CacheStats() (hits, misses int) {
	if t.cache == nil {
		return 0, 0
	}
	return t.cache.Stats()
}

// load is the dataset's LoadFunc: the posterior of the record's image as
// [2L, h, w] (the mean, then the standard deviation), from the cache or
// encoded with the VAE.
func (t *Trainer) load(rec dataset.Record, flip bool, decode func() ([]float32, error)) ([]float32, []int, error) {
	var key [32]byte
	if t.cache != nil {
		abs, err := filepath.Abs(filepath.Join(t.ds.Dir(), filepath.FromSlash(rec.Image)))
		if err != nil {
			return nil, nil, err
		}
		if key, err = CacheKey(abs, t.cfg.Resolution, flip, t.vaeHash); err != nil {
			return nil, nil, err
		}
		data, shape, ok, err := t.cache.Get(key)
		if err != nil {
			return nil, nil, err
		}
		if ok && len(shape) == 3 && shape[0] == 2*t.channels && shape[1] == t.latentSize && shape[2] == t.latentSize {
			return data, shape, nil
		}
	}
	px, err := decode()
	if err != nil {
		return nil, nil, err
	}
	data, shape, err := t.encode(px)
	if err != nil {
		return nil, nil, err
	}
	if t.cache != nil {
		if err := t.cache.Put(key, data, shape); err != nil {
			return nil, nil, err
		}
	}
	return data, shape, nil
}

// encode runs the VAE encoder on one preprocessed image [3, R, R] and
// returns the posterior's mean and standard deviation stacked, [2L, h, w].
// It runs on the loader's goroutines; the VAE's weights need no gradient,
// so nothing is recorded.
func (t *Trainer) encode(px []float32) (data []float32, shape []int, err error) {
	r := t.cfg.Resolution
	err = tensor.Catch(func() {
		x := tensor.FromFloat32(px, 1, 3, r, r)
		defer x.Release()
		d := t.pipe.VAE.Encode(x)
		defer d.Release()
		mean, std := d.Mean.Float32s(), d.Std.Float32s()
		data = append(mean, std...)
		sh := d.Mean.Shape()
		shape = []int{2 * sh[1], sh[2], sh[3]}
	})
	if err != nil {
		return nil, nil, errctx.Wrap("train: vae", err)
	}
	if shape[0] != 2*t.channels || shape[1] != t.latentSize || shape[2] != t.latentSize {
		return nil, nil, fmt.Errorf("train: the VAE gave latents %v for a %dx%d image, want [%d, %d, %d]", shape, r, r, 2*t.channels, t.latentSize, t.latentSize)
	}
	return data, shape, nil
}

// batch is one micro-batch of posteriors and captions.
type batch struct {
	mean, std []float32 // [B, L, h, w] each
	captions  []string
}

// nextBatch reads Batch samples.
func (t *Trainer) nextBatch() (*batch, error) {
	b := &batch{}
	n := t.channels * t.latentSize * t.latentSize
	for len(b.captions) < t.cfg.Batch {
		s, err := t.it.Next()
		if err != nil {
			return nil, errctx.Wrap("train: data", err)
		}
		if len(s.Pixels) != 2*n {
			return nil, fmt.Errorf("train: sample %s has %d values, want %d", s.Path, len(s.Pixels), 2*n)
		}
		b.mean = append(b.mean, s.Pixels[:n]...)
		b.std = append(b.std, s.Pixels[n:]...)
		b.captions = append(b.captions, s.Caption)
	}
	return b, nil
}

// microSeed returns the seed of global micro-batch k's generator: every
// random draw of a micro-batch (posterior sample, noise, noise offset,
// timesteps, conditioning dropout) comes from rng.New(microSeed(k)), so a
// run's randomness is a function of (Seed, k) alone and a resumed run draws
// exactly what the uninterrupted one would have.
func (t *Trainer) microSeed(k int) uint64 {
	z := t.cfg.Seed ^ 0x7261696e696e67 // "raining"
	z += 0x9E3779B97F4A7C15 * uint64(k+1)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	z ^= z >> 31
	return z & 0xffffffff // only 32 bits reach torch's mt19937 seeding
}

// minSNRWeights returns the per-sample loss weights of min-SNR-gamma for
// the timesteps: snr = acp/(1-acp) computed as diffusers' compute_snr does
// in float32 ((sqrt(acp)/sqrt(1-acp))^2), weight = min(snr, gamma)/snr for
// epsilon and min(snr, gamma)/(snr+1) for v_prediction.
func minSNRWeights(s *diffusion.Schedule, ts []int, gamma float64, pred diffusion.Prediction) []float32 {
	w := make([]float32, len(ts))
	g := float32(gamma)
	for i, t := range ts {
		a := s.AlphasCumprod[t]
		r := float32(math.Sqrt(float64(a))) / float32(math.Sqrt(float64(1-a)))
		snr := r * r
		m := min(snr, g)
		if pred == diffusion.VPrediction {
			w[i] = m / (snr + 1)
		} else {
			w[i] = m / snr
		}
	}
	return w
}

// microLoss computes the loss of one micro-batch with the generator g and
// back-propagates it; it returns the loss value. Every tensor it makes is
// freed when it returns.
func (t *Trainer) microLoss(b *batch, g *rng.Generator) (loss float64, err error) {
	B, L, h := t.cfg.Batch, t.channels, t.latentSize
	err = tensor.Catch(func() {
		tensor.Do(func() {
			lat := tensor.FromFloat32(b.mean, B, L, h, h)
			if t.cfg.SampleLatents {
				eps := tensor.Randn(g, B, L, h, h)
				lat = tensor.FromFloat32(b.std, B, L, h, h).Mul(eps).AddInPlace(lat)
			}
			lat = lat.MulScalar(t.scaling)
			noise := tensor.Randn(g, B, L, h, h)
			if t.cfg.NoiseOffset > 0 {
				off := tensor.Randn(g, B, L, 1, 1)
				noise = noise.Add(off.MulScalar(float32(t.cfg.NoiseOffset)))
			}
			ts := t.noise.SampleTimesteps(g, B)
			captions := append([]string(nil), b.captions...)
			if t.cfg.CondDropout > 0 {
				u := make([]float32, B)
				g.Uniform(u, 0, 1)
				for i := range captions {
					if float64(u[i]) < t.cfg.CondDropout {
						captions[i] = ""
					}
				}
			}
			var rows [][]int32
			for _, c := range captions {
				ids, _, e := t.pipe.Tokenizer.Encode(c)
				if e != nil {
					err = fmt.Errorf("train: caption %q: %v", c, e)
					return
				}
				rows = append(rows, ids)
				t.warnTruncated(c)
			}
			noisy := t.noise.AddNoise(lat, noise, ts)
			ehs := t.pipe.TextEncoder.Forward(clip.IDs(rows...))
			tf := make([]float32, B)
			for i, v := range ts {
				tf[i] = float32(v)
			}
			pred := t.pipe.UNet.Forward(noisy, tensor.FromFloat32(tf, B), ehs)
			target := t.noise.Target(t.pred, lat, noise, ts)
			var l *tensor.Tensor
			if t.cfg.SNRGamma > 0 {
				d := pred.Sub(target)
				per := d.Square().Reshape(B, -1).Mean(1, false)
				w := tensor.FromFloat32(minSNRWeights(t.noise, ts, t.cfg.SNRGamma, t.pred), B)
				l = per.Mul(w).MeanAll()
			} else {
				l = tensor.MSELoss(pred, target)
			}
			loss = float64(l.Item())
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return // reported by the caller; nothing back-propagated
			}
			err = tensor.Backward(l)
		})
	})
	return loss, err
}

// Step runs one optimiser step: Accumulate micro-batches (loss, backward,
// gradients averaged), clipping, AdamW, EMA. A non-finite loss or gradient
// is a *NonFiniteLossError and changes no weight.
func (t *Trainer) Step() (StepInfo, error) {
	if t.step >= t.total {
		return StepInfo{}, fmt.Errorf("train: all %d steps are done", t.total)
	}
	start := time.Now()
	k := t.cfg.Accumulate
	var sum float64
	fail := func(what string, v float64) error {
		t.zeroGrad()
		return &NonFiniteLossError{Step: t.step + 1, Value: v, What: what, LastCheckpoint: t.lastCheckpoint}
	}
	for micro := 0; micro < k; micro++ {
		b, err := t.nextBatch()
		if err != nil {
			return StepInfo{}, err
		}
		g := rng.New(t.microSeed(t.step*k + micro))
		loss, err := t.microLoss(b, g)
		if err != nil {
			return StepInfo{}, fmt.Errorf("train: step %d: %w", t.step+1, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return StepInfo{}, fail("the loss", loss)
		}
		sum += loss
		scale := t.acc.LossScale()
		if err := t.models.UNet.CollectGrads(scale); err != nil {
			return StepInfo{}, errctx.Wrap("train", err)
		}
		if err := t.models.Text.CollectGrads(scale); err != nil {
			return StepInfo{}, errctx.Wrap("train", err)
		}
		for _, x := range t.models.Extra {
			if err := x.Params.CollectGrads(scale); err != nil {
				return StepInfo{}, errctx.Wrap("train: "+x.Name, err)
			}
		}
		t.acc.Next()
	}
	// A parameter the forward did not reach has no gradient buffer before
	// its first step; after it, ZeroGrad keeps a zero buffer (torch's
	// zero_grad(set_to_none=False)), so AdamW keeps decaying it. A resumed
	// run starts without buffers: give such parameters the zero gradient an
	// uninterrupted run would have.
	for _, p := range t.all {
		if p.Grad == nil {
			if _, _, n, ok := t.opt.State(p.Name); ok && n > 0 {
				p.Grad = tensor.Zeros(tensor.F32, p.Shape()...)
			}
		}
	}
	var norm float32
	var err error
	if t.cfg.MaxGradNorm > 0 {
		norm, err = optim.ClipGradNorm(t.all, t.cfg.MaxGradNorm)
	} else {
		norm, err = optim.GradNorm(t.all)
	}
	var nf *optim.NonFiniteError
	if errors.As(err, &nf) {
		return StepInfo{}, fail("the gradient of "+nf.Param, float64(nf.Value))
	} else if err != nil {
		return StepInfo{}, errctx.Wrap("train", err)
	}
	lr := t.lr.LR(t.step)
	if err := t.opt.Step(lr); err != nil {
		if errors.As(err, &nf) {
			return StepInfo{}, fail("the gradient of "+nf.Param, float64(nf.Value))
		}
		return StepInfo{}, errctx.Wrap("train", err)
	}
	t.zeroGrad()
	if t.ema != nil {
		t.ema.Step()
	}
	t.step++
	info := StepInfo{Step: t.step, Total: t.total, Loss: sum / float64(k), LR: lr, GradNorm: float64(norm),
		Epoch: t.it.Position().Epoch, Duration: time.Since(start)}
	if t.OnStep != nil {
		t.OnStep(info)
	}
	return info, nil
}

// zeroGrad clears the gradients of every parameter set.
func (t *Trainer) zeroGrad() {
	t.models.UNet.ZeroGrad()
	t.models.Text.ZeroGrad()
	for _, x := range t.models.Extra {
		x.Params.ZeroGrad()
	}
}

// warnTruncated warns once about a caption longer than the text encoder
// reads (it is truncated, as the training script does).
func (t *Trainer) warnTruncated(c string) {
	if t.Warn == nil || t.warnedTruncation {
		return
	}
	tok := t.pipe.Tokenizer
	if ids, err := tok.Tokens(c); err == nil && len(ids) > tok.MaxLength()-2 {
		t.warnedTruncation = true
		t.Warn(fmt.Sprintf("a caption of %d tokens is truncated to %d (the text encoder reads %d); further truncations are not reported", len(ids), tok.MaxLength()-2, tok.MaxLength()))
	}
}

// Interrupted is returned by Run when its context was cancelled: the
// checkpoint Checkpoint was written at Step.
type Interrupted struct {
	Step       int
	Checkpoint string
}

// Error says where to resume.
func (e *Interrupted) Error() string {
	return fmt.Sprintf("train: interrupted after step %d; checkpoint %s (resume from it)", e.Step, e.Checkpoint)
}

// Run trains until the last step, checkpointing every CheckpointEvery
// steps, then writes the final checkpoint and the trained model (Out/model)
// and returns nil. When ctx is cancelled it finishes the current step,
// writes a checkpoint and returns an *Interrupted. A non-finite loss stops
// it with a *NonFiniteLossError, keeping the checkpoints written before.
func (t *Trainer) Run(ctx context.Context) error {
	for t.step < t.total {
		if ctx.Err() != nil {
			dir, err := t.Checkpoint()
			if err != nil {
				return err
			}
			return &Interrupted{Step: t.step, Checkpoint: dir}
		}
		if _, err := t.Step(); err != nil {
			return err
		}
		if e := t.cfg.CheckpointEvery; e > 0 && t.step%e == 0 && t.step < t.total {
			if _, err := t.Checkpoint(); err != nil {
				return err
			}
		}
	}
	if _, err := t.Checkpoint(); err != nil {
		return err
	}
	return t.SaveModel(filepath.Join(t.cfg.Out, "model"))
}

// ensureOut creates the output folder.
func (t *Trainer) ensureOut() error {
	if err := os.MkdirAll(t.cfg.Out, 0o755); err != nil {
		return fmt.Errorf("train: output folder: %w", err)
	}
	return nil
}

// EvalLoss returns the mean loss of the current weights over the first n
// records of the dataset (file order, unflipped) with fixed randomness:
// record i gets the posterior mean, the noise and the timestep drawn from
// rng.New(seed + i), so two calls with the same arguments see the same
// inputs and differ only by the weights. It is a steadier measure of
// learning than the training loss, whose timesteps and noise change every
// step. Nothing is recorded or back-propagated, and the run's state (data
// position, random streams) is not touched.
func (t *Trainer) EvalLoss(n int, seed uint64) (float64, error) {
	n = min(n, t.ds.Len())
	if n <= 0 {
		return 0, errors.New("train: EvalLoss: no records")
	}
	L, h := t.channels, t.latentSize
	var sum float64
	var err error
	tensor.NoGrad(func() {
		for i := 0; i < n && err == nil; i++ {
			var s *dataset.Sample
			if s, err = t.ds.Load(i); err != nil {
				return
			}
			g := rng.New(seed + uint64(i))
			err = tensor.Catch(func() {
				tensor.Do(func() {
					lat := tensor.FromFloat32(s.Pixels[:L*h*h], 1, L, h, h).MulScalar(t.scaling)
					noise := tensor.Randn(g, 1, L, h, h)
					ts := t.noise.SampleTimesteps(g, 1)
					ids, _, e := t.pipe.Tokenizer.Encode(s.Caption)
					if e != nil {
						err = e
						return
					}
					ehs := t.pipe.TextEncoder.Forward(clip.IDs(ids))
					pred := t.pipe.UNet.Forward(t.noise.AddNoise(lat, noise, ts), tensor.FromFloat32([]float32{float32(ts[0])}, 1), ehs)
					sum += float64(tensor.MSELoss(pred, t.noise.Target(t.pred, lat, noise, ts)).Item())
				})
			})
		}
	})
	if err != nil {
		return 0, errctx.Wrap("train: EvalLoss", err)
	}
	return sum / float64(n), nil
}

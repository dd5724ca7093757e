package diffusion

import (
	"fmt"
	"strings"

	"github.com/roentgo/roentgo/tensor"
)

// StepOutput is the result of one Scheduler.Step.
type StepOutput struct {
	// PrevSample is the sample at the next (less noisy) timestep.
	PrevSample *tensor.Tensor
	// PredOriginal is the scheduler's estimate of the clean sample x0, or
	// nil for schedulers whose diffusers 0.16.1 step does not return one
	// (PNDM, Heun).
	PredOriginal *tensor.Tensor
}

// Release releases both tensors.
func (o StepOutput) Release() {
	o.PrevSample.Release()
	o.PredOriginal.Release()
}

// Scheduler is a sampler with the semantics of a diffusers 0.16.1 scheduler.
// Typical use (see Sample):
//
//	s.SetTimesteps(n)
//	x := initial noise * s.InitNoiseSigma()
//	for _, t := range s.Timesteps() {
//		out := model(s.ScaleModelInput(x, t), t)
//		x = s.Step(out, t, x, noise).PrevSample
//	}
//
// The sigma schedulers (euler, euler_a, heun, lms) also have a method
// Sigmas() []float32: the noise level of each timestep followed by 0.
//
// A Scheduler carries the state of one sampling run (multistep history) and
// is not safe for concurrent use; SetTimesteps resets it.
type Scheduler interface {
	// Name is the name New knows the scheduler by.
	Name() string
	// Config returns the configuration.
	Config() Config
	// Schedule returns the training noise schedule.
	Schedule() *Schedule
	// SetTimesteps prepares n inference steps and resets the state. It fails,
	// leaving the scheduler as it was, when n is not in [1,
	// num_train_timesteps], or when the steps would not fit the training
	// schedule: with leading spacing and a steps_offset (Stable Diffusion's
	// steps_offset 1 at n = num_train_timesteps) DDPM, DDIM, PNDM and
	// DPM-Solver would start past the last training timestep, and LMS would
	// get two timesteps clamped to the same noise level; diffusers fails
	// (IndexError) or divides by zero there. The sigma schedulers otherwise
	// clamp timesteps past the schedule to its last noise level, as
	// diffusers does.
	SetTimesteps(n int) error
	// NumInferenceSteps is the n of the last SetTimesteps (0 before).
	NumInferenceSteps() int
	// Timesteps returns the timesteps to evaluate the model at, in order
	// (len(Timesteps()) may exceed n: PNDM repeats one, Heun evaluates
	// twice per step). The slice must not be modified.
	Timesteps() []float64
	// Order is diffusers' scheduler.order: model evaluations per step
	// (2 for Heun), used to skip steps for img2img.
	Order() int
	// InitNoiseSigma is the standard deviation of the initial noise.
	InitNoiseSigma() float64
	// ScaleModelInput returns the model input for sample x at timestep t
	// (x itself for the schedulers that do not scale: do not release it
	// twice).
	ScaleModelInput(x *tensor.Tensor, t float64) *tensor.Tensor
	// Step returns the sample at the next timestep from the model output at
	// timestep t for sample x. Schedulers that add noise (DDPM, DDIM with
	// eta > 0, Euler, Euler ancestral) draw it from noise, one
	// torch.randn-shaped tensor per step; others ignore noise (it may be
	// nil). It panics if t is not one of Timesteps().
	Step(modelOutput *tensor.Tensor, t float64, x *tensor.Tensor, noise tensor.RandSource) StepOutput
	// AddNoise returns original noised to the given timestep of each batch
	// row (img2img's starting latents, training inputs).
	AddNoise(original, noise *tensor.Tensor, timesteps []float64) *tensor.Tensor
}

// SchedulerNames lists the canonical scheduler names, the ones Name
// returns. New also accepts the other spellings CanonicalSchedulerName
// knows ("Euler a", "DPM++ 2M Karras", "plms", diffusers class names, ...).
var SchedulerNames = []string{"ddpm", "ddim", "pndm", "euler", "euler_a", "heun", "dpmpp_2m", "dpmpp_2m_karras", "lms"}

// schedulerAliases maps squashed spellings (see squashSchedulerName) to
// canonical names.
var schedulerAliases = map[string]string{
	"ddpm":  "ddpm",
	"ddim":  "ddim",
	"pndm":  "pndm",
	"plms":  "pndm", // the CompVis scripts' name (--plms)
	"euler": "euler",
	// diffusers' EulerAncestralDiscreteScheduler, A1111's "Euler a",
	// k-diffusion's sample_euler_ancestral.
	"eulera":         "euler_a",
	"eulerancestral": "euler_a",
	"heun":           "heun",
	"lms":            "lms",
	// DPM-Solver++(2M): A1111's "DPM++ 2M", diffusers'
	// DPMSolverMultistepScheduler (whose default is dpmsolver++, order 2).
	"dpmpp2m":            "dpmpp_2m",
	"dpmsolvermultistep": "dpmpp_2m",
	"dpmpp2mkarras":      "dpmpp_2m_karras",
}

// squashSchedulerName reduces a scheduler name to the key of
// schedulerAliases: lower case, "++" read as "pp", without spaces, hyphens,
// underscores and dots, without a k-diffusion "k_" prefix and without a
// trailing "scheduler" and then "discrete" (diffusers class names).
func squashSchedulerName(name string) string {
	s := strings.ToLower(strings.TrimSpace(name))
	if len(s) > 2 && s[0] == 'k' && strings.ContainsRune(" -_", rune(s[1])) {
		s = s[2:]
	}
	s = strings.ReplaceAll(s, "++", "pp")
	s = strings.Map(func(r rune) rune {
		if strings.ContainsRune(" \t-_.", r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSuffix(s, "scheduler")
	s = strings.TrimSuffix(s, "discrete")
	return s
}

// CanonicalSchedulerName returns the name in SchedulerNames that name
// spells, and whether there is one. It ignores case and treats spaces,
// hyphens, underscores and dots alike (or as absent), reads "++" as "pp",
// and accepts besides the canonical names:
//
//   - euler_a: "Euler a", "euler_ancestral", "EulerAncestral";
//   - dpmpp_2m: "dpm++2m", "DPM++ 2M"; dpmpp_2m_karras: "DPM++ 2M Karras";
//   - pndm: "plms" (the original CompVis scripts' name);
//   - k-diffusion's "k_" names: "k_euler", "k_euler_a", "k_lms", "k_heun",
//     "k_dpmpp_2m";
//   - diffusers class names: "DDPMScheduler", "DDIMScheduler",
//     "PNDMScheduler", "EulerDiscreteScheduler",
//     "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
//     "LMSDiscreteScheduler" and "DPMSolverMultistepScheduler" (dpmpp_2m;
//     a config's use_karras_sigmas is not part of the name).
//
// Unknown names, including "" and partial ones like "dpm", give ("", false).
func CanonicalSchedulerName(name string) (string, bool) {
	c, ok := schedulerAliases[squashSchedulerName(name)]
	return c, ok
}

// Options holds settings of individual schedulers that are not part of a
// diffusers config (diffusers passes them to step).
type Options struct {
	// Eta is DDIM's eta: 0 is deterministic DDIM, 1 is DDPM-like noise.
	Eta float64
}

// New returns the scheduler called name, configured by cfg: ddpm, ddim,
// pndm, euler, euler_a, heun, dpmpp_2m, dpmpp_2m_karras (dpmpp_2m with
// use_karras_sigmas forced on), lms, or any other spelling of these that
// CanonicalSchedulerName accepts. Use NewWithOptions for DDIM's eta.
func New(name string, cfg Config) (Scheduler, error) {
	return NewWithOptions(name, cfg, Options{})
}

// NewWithOptions is New with scheduler options.
func NewWithOptions(name string, cfg Config, o Options) (Scheduler, error) {
	canon, ok := CanonicalSchedulerName(name)
	if !ok {
		return nil, fmt.Errorf("diffusion: unknown scheduler %q (expected one of %s; common spellings of these such as \"Euler a\", \"DPM++ 2M Karras\", \"plms\", \"k_lms\" and diffusers class names such as \"EulerDiscreteScheduler\" are accepted too)",
			name, strings.Join(SchedulerNames, ", "))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch canon {
	case "ddpm":
		return newDDPM(cfg)
	case "ddim":
		return newDDIM(cfg, o.Eta)
	case "pndm":
		return newPNDM(cfg)
	case "euler":
		return newEuler(cfg, false, "euler")
	case "euler_a":
		return newEuler(cfg, true, "euler_a")
	case "heun":
		return newHeun(cfg)
	case "lms":
		return newLMS(cfg)
	case "dpmpp_2m":
		return newDPM(cfg, "dpmpp_2m")
	case "dpmpp_2m_karras":
		cfg.UseKarrasSigmas = true
		return newDPM(cfg, "dpmpp_2m_karras")
	}
	panic(fmt.Sprintf("diffusion: scheduler alias table maps %q to unknown %q", name, canon))
}

func checkSteps(n, T int) error {
	if n < 1 || n > T {
		return fmt.Errorf("diffusion: %d inference steps requested, expected 1 to num_train_timesteps = %d", n, T)
	}
	return nil
}

// checkIndexable returns nil when the timesteps ts of n steps all index the
// training schedule [0, T), and otherwise an error that names the timestep
// out of range and the largest step count below n whose timesteps (from
// at) fit. Only leading spacing with a steps_offset gets there: its largest
// timestep is (n-1) (T div n) + steps_offset, which reaches T for n = T
// with Stable Diffusion's steps_offset 1. diffusers 0.16.1 fails there as
// well, when step indexes alphas_cumprod[T] (an IndexError after the first
// model evaluation); here SetTimesteps refuses before any work.
func checkIndexable(name string, n, offset, T int, ts []float64, at func(m int) []float64) error {
	fits := func(ts []float64) (bad float64, ok bool) {
		for _, t := range ts {
			if !(t >= 0 && t < float64(T)) {
				return t, false
			}
		}
		return 0, true
	}
	bad, ok := fits(ts)
	if ok {
		return nil
	}
	where := "start"
	if bad < 0 {
		where = "end"
	}
	hint := "no step count stays in range with this steps_offset: use a smaller one"
	for m := n - 1; m >= 1; m-- {
		if _, ok := fits(at(m)); ok {
			hint = stepCount(m) + " would stay in range"
			break
		}
	}
	return fmt.Errorf("diffusion: %s: %d inference steps with steps_offset %d would %s at timestep %v, outside the training schedule [0, %d) (diffusers fails there too: alphas_cumprod has no index %v); %s",
		name, n, offset, where, bad, T, bad, hint)
}

// stepCount returns "1 step" or "m steps".
func stepCount(m int) string {
	if m == 1 {
		return "1 step"
	}
	return fmt.Sprintf("%d steps", m)
}

// intTimestep converts a timestep to an integer index into the training
// schedule, panicking for non-integers.
func intTimestep(op string, t float64, T int) int {
	i := int(t)
	if float64(i) != t || i < 0 || i >= T {
		panic(fmt.Sprintf("diffusion: %s: timestep %v is not an integer in [0, %d)", op, t, T))
	}
	return i
}

// base holds what every scheduler shares.
type base struct {
	name  string
	cfg   Config
	sched *Schedule
	n     int
	ts    []float64
}

func newBase(name string, cfg Config) (base, error) {
	s, err := NewSchedule(cfg)
	if err != nil {
		return base{}, err
	}
	return base{name: name, cfg: cfg, sched: s}, nil
}

func (b *base) Name() string           { return b.name }
func (b *base) Config() Config         { return b.cfg }
func (b *base) Schedule() *Schedule    { return b.sched }
func (b *base) NumInferenceSteps() int { return b.n }
func (b *base) Timesteps() []float64   { return b.ts }
func (b *base) T() int                 { return len(b.sched.Betas) }
func (b *base) spacing(def string) string {
	if b.cfg.TimestepSpacing != "" {
		return b.cfg.TimestepSpacing
	}
	return def
}

// The discrete-time schedulers (DDPM, DDIM, PNDM, DPM-Solver++) share these
// defaults; the sigma schedulers (sigmaBase and its users) override them.

// Order is the number of model calls per step: 1.
func (b *base) Order() int { return 1 }

// InitNoiseSigma is 1: the initial latents are unit Gaussian noise.
func (b *base) InitNoiseSigma() float64 { return 1 }

// ScaleModelInput returns x unchanged.
func (b *base) ScaleModelInput(x *tensor.Tensor, _ float64) *tensor.Tensor { return x }

// AddNoise noises original to the given integer timesteps (addNoiseInt).
func (b *base) AddNoise(o, z *tensor.Tensor, ts []float64) *tensor.Tensor {
	return b.addNoiseInt(o, z, ts)
}

// addNoiseInt is the alphas_cumprod add_noise with integer timesteps.
func (b *base) addNoiseInt(original, noise *tensor.Tensor, timesteps []float64) *tensor.Tensor {
	ts := make([]int, len(timesteps))
	for i, t := range timesteps {
		ts[i] = intTimestep("AddNoise", t, b.T())
	}
	return b.sched.AddNoise(original, noise, ts)
}

// predictX0 converts a model output to the predicted clean sample with the
// alphas_cumprod parameterisation (a = acp[t], float32 as torch):
// epsilon: (x - sqrt(1-a) out) / sqrt(a); sample: out;
// v: sqrt(a) x - sqrt(1-a) out.
func predictX0(p Prediction, a float32, out, x *tensor.Tensor) *tensor.Tensor {
	b := 1 - a
	switch p {
	case Epsilon:
		t := out.MulScalar(sqrt32(b))
		r := x.Sub(t)
		t.Release()
		return divScalarInPlace(r, sqrt32(a))
	case SamplePrediction:
		return out.Clone()
	case VPrediction:
		return lin2(sqrt32(a), x, -sqrt32(b), out)
	}
	panic(fmt.Sprintf("diffusion: unknown prediction type %q", p))
}

// noiseLike draws a standard normal tensor shaped like x from g.
func noiseLike(op string, g tensor.RandSource, x *tensor.Tensor) *tensor.Tensor {
	if g == nil {
		panic(fmt.Sprintf("diffusion: %s: this scheduler needs a noise source", op))
	}
	return tensor.Randn(g, x.Shape()...)
}

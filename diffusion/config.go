package diffusion

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
)

// Beta schedules (Config.BetaSchedule).
const (
	BetaLinear       = "linear"
	BetaScaledLinear = "scaled_linear"
	BetaSquaredCos   = "squaredcos_cap_v2"
)

// Timestep spacings (Config.TimestepSpacing). The empty string selects what
// diffusers 0.16.1 does for the scheduler: "leading" for DDPM, DDIM and PNDM,
// "linspace" for Euler, Euler ancestral, Heun, LMS and DPM-Solver.
const (
	SpacingLeading  = "leading"
	SpacingTrailing = "trailing"
	SpacingLinspace = "linspace"
)

// Prediction says what the model predicts (Config.PredictionType).
type Prediction string

// The model parameterisations.
const (
	// Epsilon: the model predicts the added noise.
	Epsilon Prediction = "epsilon"
	// VPrediction: the model predicts v = sqrt(acp)*eps - sqrt(1-acp)*x0.
	VPrediction Prediction = "v_prediction"
	// SamplePrediction: the model predicts the clean sample x0.
	SamplePrediction Prediction = "sample"
)

var (
	betaSchedules = []string{BetaLinear, BetaScaledLinear, BetaSquaredCos}
	spacings      = []string{SpacingLeading, SpacingTrailing, SpacingLinspace}
	predictions   = []string{string(Epsilon), string(VPrediction), string(SamplePrediction)}
	varianceTypes = []string{"fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log"}
)

// Config is a diffusers scheduler configuration (scheduler_config.json); the
// json tags are diffusers' keys. One struct serves every scheduler: each uses
// the keys that its diffusers class has and ignores the others. Keys that
// diffusers writes but roentgo does not use (_diffusers_version, ...) are
// ignored when loading.
type Config struct {
	// ClassName is diffusers' _class_name (e.g. "PNDMScheduler"), informative.
	ClassName string `json:"_class_name,omitempty"`

	// NumTrainTimesteps is T, the length of the training schedule.
	NumTrainTimesteps int `json:"num_train_timesteps"`
	// BetaStart and BetaEnd bound the linear and scaled_linear schedules.
	BetaStart float64 `json:"beta_start"`
	BetaEnd   float64 `json:"beta_end"`
	// BetaSchedule is linear, scaled_linear or squaredcos_cap_v2.
	BetaSchedule string `json:"beta_schedule"`
	// TrainedBetas, when not null, gives the T betas directly.
	TrainedBetas []float64 `json:"trained_betas"`

	// PredictionType is what the model predicts.
	PredictionType Prediction `json:"prediction_type"`
	// StepsOffset is added to the timesteps of "leading" spacing (1 in
	// Stable Diffusion's configs).
	StepsOffset int `json:"steps_offset"`
	// TimestepSpacing is "leading", "trailing", "linspace" or "" (the
	// scheduler's diffusers 0.16.1 behaviour).
	TimestepSpacing string `json:"timestep_spacing"`

	// SetAlphaToOne (DDIM, PNDM): use alphas_cumprod = 1 after the last step
	// instead of alphas_cumprod[0].
	SetAlphaToOne bool `json:"set_alpha_to_one"`
	// ClipSample (DDPM, DDIM) clamps the predicted x0 to ±ClipSampleRange.
	ClipSample      bool    `json:"clip_sample"`
	ClipSampleRange float64 `json:"clip_sample_range"`
	// Thresholding (dynamic thresholding) is not supported: it must be false.
	Thresholding bool `json:"thresholding"`
	// VarianceType (DDPM): fixed_small, fixed_small_log, fixed_large,
	// fixed_large_log.
	VarianceType string `json:"variance_type"`
	// SkipPRKSteps (PNDM) skips the pseudo Runge-Kutta warm-up (3 steps of
	// 4 model evaluations each) and starts PLMS at once, as Stable
	// Diffusion configures it; false runs the warm-up as diffusers does.
	SkipPRKSteps bool `json:"skip_prk_steps"`

	// UseKarrasSigmas (Euler, Heun, DPM-Solver) uses the noise levels of
	// Karras et al. 2022 (rho = 7).
	UseKarrasSigmas bool `json:"use_karras_sigmas"`
	// InterpolationType (Euler): "linear" or "log_linear".
	InterpolationType string `json:"interpolation_type"`

	// DPM-Solver settings: only solver_order 2 (or 1), algorithm_type
	// "dpmsolver++" and solver_type "midpoint" are implemented.
	SolverOrder     int    `json:"solver_order"`
	AlgorithmType   string `json:"algorithm_type"`
	SolverType      string `json:"solver_type"`
	LowerOrderFinal bool   `json:"lower_order_final"`
}

// DefaultConfig returns the defaults of diffusers' DDPMScheduler and
// DDIMScheduler constructors (linear betas 1e-4..0.02 over 1000 steps,
// epsilon, clip_sample and set_alpha_to_one true) with the DPM-Solver and
// Euler keys at their defaults.
func DefaultConfig() Config {
	return Config{
		NumTrainTimesteps: 1000,
		BetaStart:         0.0001,
		BetaEnd:           0.02,
		BetaSchedule:      BetaLinear,
		PredictionType:    Epsilon,
		SetAlphaToOne:     true,
		ClipSample:        true,
		ClipSampleRange:   1,
		VarianceType:      "fixed_small",
		InterpolationType: "linear",
		SolverOrder:       2,
		AlgorithmType:     "dpmsolver++",
		SolverType:        "midpoint",
		LowerOrderFinal:   true,
	}
}

// DefaultConfigFor returns DefaultConfig adjusted to the constructor defaults
// of the named diffusers class: PNDMScheduler has set_alpha_to_one false;
// the sigma schedulers and DPM-Solver have no clip_sample. Unknown classes
// get DefaultConfig.
func DefaultConfigFor(className string) Config {
	c := DefaultConfig()
	c.ClassName = className
	switch className {
	case "PNDMScheduler":
		c.SetAlphaToOne = false
		c.ClipSample = false
	case "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
		"LMSDiscreteScheduler", "DPMSolverMultistepScheduler":
		c.ClipSample = false
	}
	return c
}

// ParseSchedulerConfig decodes a scheduler_config.json document: the
// defaults of its _class_name (DefaultConfigFor) overlaid with its keys. It
// checks the result with Validate.
func ParseSchedulerConfig(data []byte) (Config, error) {
	var head struct {
		ClassName string `json:"_class_name"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Config{}, errctx.Wrap("diffusion: scheduler config is not a JSON object", err)
	}
	c := DefaultConfigFor(head.ClassName)
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&c); err != nil {
		return Config{}, errctx.Wrap("diffusion: scheduler config", err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// LoadSchedulerConfig reads a diffusers scheduler_config.json (see
// ParseSchedulerConfig). Errors name the file.
func LoadSchedulerConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, errctx.Wrap("diffusion: reading scheduler config", err)
	}
	c, err := ParseSchedulerConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func oneOf(v string, allowed []string) bool {
	for _, a := range allowed {
		if v == a {
			return true
		}
	}
	return false
}

func badName(key, v string, allowed []string) error {
	return fmt.Errorf("diffusion: unknown %s %q (expected one of %s)", key, v, strings.Join(allowed, ", "))
}

// Validate checks the settings every scheduler shares: the beta schedule,
// the prediction type, the timestep spacing and the numeric ranges.
func (c *Config) Validate() error {
	if c.NumTrainTimesteps < 2 {
		return fmt.Errorf("diffusion: num_train_timesteps is %d, expected at least 2", c.NumTrainTimesteps)
	}
	if c.TrainedBetas != nil {
		if len(c.TrainedBetas) != c.NumTrainTimesteps {
			return fmt.Errorf("diffusion: trained_betas has %d values, expected num_train_timesteps = %d", len(c.TrainedBetas), c.NumTrainTimesteps)
		}
		for i, b := range c.TrainedBetas {
			if !(b >= 0 && b < 1) {
				return fmt.Errorf("diffusion: trained_betas[%d] = %v, expected a value in [0, 1)", i, b)
			}
		}
	} else {
		if !oneOf(c.BetaSchedule, betaSchedules) {
			return badName("beta_schedule", c.BetaSchedule, betaSchedules)
		}
		if c.BetaSchedule != BetaSquaredCos {
			if !(c.BetaStart > 0 && c.BetaStart < 1 && c.BetaEnd > 0 && c.BetaEnd < 1) {
				return fmt.Errorf("diffusion: beta_start %v and beta_end %v must lie in (0, 1)", c.BetaStart, c.BetaEnd)
			}
		}
	}
	if !oneOf(string(c.PredictionType), predictions) {
		return badName("prediction_type", string(c.PredictionType), predictions)
	}
	if c.TimestepSpacing != "" && !oneOf(c.TimestepSpacing, spacings) {
		return badName("timestep_spacing", c.TimestepSpacing, spacings)
	}
	if c.StepsOffset < 0 || c.StepsOffset >= c.NumTrainTimesteps {
		return fmt.Errorf("diffusion: steps_offset is %d, expected 0 <= steps_offset < num_train_timesteps", c.StepsOffset)
	}
	if c.Thresholding {
		return fmt.Errorf("diffusion: thresholding (dynamic thresholding) is not supported; set it to false")
	}
	if c.ClipSample && !(c.ClipSampleRange > 0) {
		return fmt.Errorf("diffusion: clip_sample_range is %v, expected a positive value", c.ClipSampleRange)
	}
	return nil
}

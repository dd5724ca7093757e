package pipeline

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/internal/errctx"
)

// schedulerClasses maps diffusion.New's scheduler names to the diffusers
// classes whose constructor defaults apply.
var schedulerClasses = map[string]string{
	"ddpm":            "DDPMScheduler",
	"ddim":            "DDIMScheduler",
	"pndm":            "PNDMScheduler",
	"euler":           "EulerDiscreteScheduler",
	"euler_a":         "EulerAncestralDiscreteScheduler",
	"euler_ancestral": "EulerAncestralDiscreteScheduler",
	"heun":            "HeunDiscreteScheduler",
	"lms":             "LMSDiscreteScheduler",
	"dpmpp_2m":        "DPMSolverMultistepScheduler",
	"dpmpp_2m_karras": "DPMSolverMultistepScheduler",
}

// SchedulerNameOf returns the diffusion.New name of the scheduler that a
// scheduler_config.json describes (its _class_name; DPM-Solver with
// use_karras_sigmas is dpmpp_2m_karras).
func SchedulerNameOf(configJSON []byte) (string, error) {
	var head struct {
		ClassName string `json:"_class_name"`
		Karras    bool   `json:"use_karras_sigmas"`
	}
	if err := json.Unmarshal(configJSON, &head); err != nil {
		return "", fmt.Errorf("scheduler config is not a JSON object: %v", err)
	}
	switch head.ClassName {
	case "DPMSolverMultistepScheduler":
		if head.Karras {
			return "dpmpp_2m_karras", nil
		}
		return "dpmpp_2m", nil
	case "EulerAncestralDiscreteScheduler":
		return "euler_a", nil
	}
	for name, class := range schedulerClasses {
		if class == head.ClassName && name != "euler_ancestral" {
			return name, nil
		}
	}
	return "", fmt.Errorf("scheduler class %q is not supported; expected one of %s", head.ClassName, classList())
}

func classList() string {
	seen := map[string]bool{}
	var out []string
	for _, n := range diffusion.SchedulerNames {
		if c := schedulerClasses[n]; !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return strings.Join(out, ", ")
}

// SchedulerConfig returns the configuration of the scheduler called name
// for this pipeline, as diffusers builds it: the folder's
// scheduler_config.json read with the defaults of name's class (from_config:
// keys the class does not know are ignored, keys the file lacks take the
// class's defaults), then the corrections StableDiffusionPipeline's
// constructor applies to outdated configs: steps_offset 1 and clip_sample
// false. name may be any spelling diffusion.CanonicalSchedulerName accepts.
func (p *Pipeline) SchedulerConfig(name string) (diffusion.Config, error) {
	if c, ok := diffusion.CanonicalSchedulerName(name); ok {
		name = c
	}
	class, ok := schedulerClasses[name]
	if !ok {
		return diffusion.Config{}, fmt.Errorf("pipeline: unknown scheduler %q; expected one of %s", name, strings.Join(diffusion.SchedulerNames, ", "))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(p.SchedulerJSON, &raw); err != nil {
		return diffusion.Config{}, fmt.Errorf("pipeline: scheduler config is not a JSON object: %v", err)
	}
	raw["_class_name"], _ = json.Marshal(class)
	data, err := json.Marshal(raw)
	if err != nil {
		return diffusion.Config{}, fmt.Errorf("pipeline: scheduler config: %v", err)
	}
	cfg, err := diffusion.ParseSchedulerConfig(data)
	if err != nil {
		return diffusion.Config{}, errctx.Wrap("pipeline: scheduler config", err)
	}
	if cfg.StepsOffset != 1 && cfg.TimestepSpacing != diffusion.SpacingTrailing && cfg.TimestepSpacing != diffusion.SpacingLinspace {
		// diffusers' pipeline forces steps_offset 1 whatever the scheduler.
		cfg.StepsOffset = 1
	}
	cfg.ClipSample = false
	return cfg, nil
}

// NewScheduler returns a fresh scheduler called name (the pipeline's own when
// name is empty) configured by SchedulerConfig; eta is DDIM's eta (0 for
// deterministic DDIM; ignored by the others).
func (p *Pipeline) NewScheduler(name string, eta float64) (diffusion.Scheduler, error) {
	if name == "" {
		name = p.SchedulerName
	}
	cfg, err := p.SchedulerConfig(name)
	if err != nil {
		return nil, err
	}
	s, err := diffusion.NewWithOptions(name, cfg, diffusion.Options{Eta: eta})
	if err != nil {
		return nil, fmt.Errorf("pipeline: scheduler %s: %w", name, err)
	}
	return s, nil
}

package diffusion

import (
	"strings"
	"testing"
)

func TestCanonicalSchedulerName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// The canonical names map to themselves.
		{"ddpm", "ddpm"}, {"ddim", "ddim"}, {"pndm", "pndm"}, {"euler", "euler"}, {"euler_a", "euler_a"},
		{"heun", "heun"}, {"dpmpp_2m", "dpmpp_2m"}, {"dpmpp_2m_karras", "dpmpp_2m_karras"}, {"lms", "lms"},
		// Euler ancestral.
		{"Euler a", "euler_a"}, {"euler_ancestral", "euler_a"}, {"EulerAncestral", "euler_a"},
		{"euler-a", "euler_a"}, {"EULER A", "euler_a"},
		// DPM++ 2M (Karras).
		{"dpm++2m", "dpmpp_2m"}, {"dpm++ 2m", "dpmpp_2m"}, {"DPM++ 2M", "dpmpp_2m"}, {"dpm++_2m", "dpmpp_2m"},
		{"dpm++2m karras", "dpmpp_2m_karras"}, {"DPM++ 2M Karras", "dpmpp_2m_karras"},
		{"dpmpp_2m_karras", "dpmpp_2m_karras"}, {"dpm++-2m-karras", "dpmpp_2m_karras"},
		// PLMS and upper case.
		{"plms", "pndm"}, {"PLMS", "pndm"}, {"PNDM", "pndm"}, {"DDIM", "ddim"}, {"  ddim ", "ddim"},
		// k-diffusion names.
		{"k_euler", "euler"}, {"k_euler_a", "euler_a"}, {"k_euler_ancestral", "euler_a"}, {"k_lms", "lms"},
		{"k_heun", "heun"}, {"k_dpmpp_2m", "dpmpp_2m"}, {"K_LMS", "lms"},
		// diffusers class names.
		{"EulerDiscreteScheduler", "euler"}, {"EulerAncestralDiscreteScheduler", "euler_a"},
		{"DPMSolverMultistepScheduler", "dpmpp_2m"}, {"LMSDiscreteScheduler", "lms"},
		{"HeunDiscreteScheduler", "heun"}, {"DDIMScheduler", "ddim"}, {"DDPMScheduler", "ddpm"},
		{"PNDMScheduler", "pndm"}, {"EulerDiscrete", "euler"}, {"ddim_scheduler", "ddim"},
	} {
		got, ok := CanonicalSchedulerName(tc.in)
		if !ok || got != tc.want {
			t.Errorf("CanonicalSchedulerName(%q) = %q, %v; want %q, true", tc.in, got, ok, tc.want)
		}
	}
	for _, in := range []string{
		"", " ", "eulerx", "dpm", "dpm++", "dpm++ 2s", "dpmpp_2m_sde", "euler karras", "k_", "k", "scheduler",
		"discrete", "DiscreteScheduler", "UniPCMultistepScheduler", "DPMSolverSinglestepScheduler",
		"ddim2", "a", "karras", "lms karras", "kdpm2", "euler_a_karras", "pndm_plms",
	} {
		if got, ok := CanonicalSchedulerName(in); ok || got != "" {
			t.Errorf("CanonicalSchedulerName(%q) = %q, %v; want rejection", in, got, ok)
		}
	}
	// Every canonical name is its own canonical name.
	for _, n := range SchedulerNames {
		if got, ok := CanonicalSchedulerName(n); !ok || got != n {
			t.Errorf("canonical %q maps to %q, %v", n, got, ok)
		}
	}
}

// New accepts every alias and builds the canonical scheduler.
func TestNewAliases(t *testing.T) {
	cfg := mustConfig(t, sdConfig)
	for in, want := range map[string]string{
		"plms": "pndm", "Euler a": "euler_a", "EulerAncestralDiscreteScheduler": "euler_a",
		"DPM++ 2M Karras": "dpmpp_2m_karras", "DPMSolverMultistepScheduler": "dpmpp_2m", "k_lms": "lms",
		"HeunDiscreteScheduler": "heun", "DDIM": "ddim", "ddpm": "ddpm", "k_euler": "euler",
	} {
		s, err := New(in, cfg)
		if err != nil {
			t.Errorf("New(%q): %v", in, err)
			continue
		}
		if s.Name() != want {
			t.Errorf("New(%q).Name() = %q, want %q", in, s.Name(), want)
		}
	}
	// The Karras variant forces use_karras_sigmas; plain dpmpp_2m keeps the config's.
	k, _ := New("DPM++ 2M Karras", cfg)
	p, _ := New("DPMSolverMultistepScheduler", cfg)
	if !k.Config().UseKarrasSigmas || p.Config().UseKarrasSigmas {
		t.Errorf("use_karras_sigmas: karras %v, plain %v", k.Config().UseKarrasSigmas, p.Config().UseKarrasSigmas)
	}
	for _, in := range []string{"", "dpm", "eulerx"} {
		_, err := New(in, cfg)
		if err == nil {
			t.Errorf("New(%q) accepted", in)
			continue
		}
		for _, w := range append([]string{"unknown scheduler", "accepted too"}, SchedulerNames...) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%q): error %q does not contain %q", in, err, w)
			}
		}
	}
}

package diffusion

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/tensor"
)

// TestGoldenTxt2ImgSteps replays the scheduler side of the golden diffusers
// txt2img runs (DDIM 4 steps, PNDM 5 steps, guidance 7.5) with the saved
// U-Net outputs: Guide must give the pipeline's guided noise_pred, and the
// sampling loop the pipeline's latents after every step. The Denoiser
// returns the saved U-Net output of its call and checks its input (the
// latents doubled for the [uncond; cond] batch) against the saved one.
func TestGoldenTxt2ImgSteps(t *testing.T) {
	needGolden(t)
	data, err := os.ReadFile(filepath.Join(golden, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Txt2Img map[string]struct {
			GuidanceScale   float64         `json:"guidance_scale"`
			Steps           int             `json:"steps"`
			Eta             float64         `json:"eta"`
			SchedulerClass  string          `json:"scheduler_class"`
			SchedulerConfig json.RawMessage `json:"scheduler_config"`
			UnetTimesteps   []float64       `json:"unet_timesteps"`
		} `json:"txt2img"`
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ddim_4steps", "pndm_5steps"} {
		t.Run(name, func(t *testing.T) {
			c := idx.Txt2Img[name]
			s := schedulerFor(t, c.SchedulerClass, c.SchedulerConfig, map[string]any{"eta": c.Eta})
			if err := s.SetTimesteps(c.Steps); err != nil {
				t.Fatal(err)
			}
			dir := "txt2img/" + name + "/"
			init, shape := readNpy(t, dir+"initial_latents.npy")
			uin, _ := readNpy(t, dir+"unet_input.npy")
			uout, ushape := readNpy(t, dir+"unet_output.npy")
			guided, _ := readNpy(t, dir+"step_model_output.npy")
			lat, _ := readNpy(t, dir+"latents_per_step.npy")
			n := len(init)
			call := 0
			denoise := func(_ context.Context, x *tensor.Tensor, ts float64) (*tensor.Tensor, error) {
				if ts != c.UnetTimesteps[call] {
					t.Fatalf("call %d at t=%v, want %v", call, ts, c.UnetTimesteps[call])
				}
				in := tensor.Cat(0, x, x)
				checkClose(t, "unet input", in.Float32s(), uin[call*2*n:(call+1)*2*n], 0, 0)
				out := tensor.FromFloat32(uout[call*2*n:(call+1)*2*n], ushape[1:]...)
				g := Guide(out, c.GuidanceScale)
				checkClose(t, "guided noise_pred", g.Float32s(), guided[call*n:(call+1)*n], 1e-6, 1e-6)
				call++
				return g, nil
			}
			x := tensor.FromFloat32(init, shape...).MulScalar(float32(s.InitNoiseSigma()))
			got, err := Sample(context.Background(), s, denoise, x, SampleOptions{
				Callback: func(step, _ int, _ float64, l *tensor.Tensor) bool {
					checkClose(t, "latents", l.Float32s(), lat[step*n:(step+1)*n], rolloutRtol, rolloutAtol)
					return true
				}})
			if err != nil {
				t.Fatal(err)
			}
			final, _ := readNpy(t, dir+"final_latents.npy")
			checkClose(t, "final latents", got.Float32s(), final, rolloutRtol, rolloutAtol)
			_, rel, abs := errStats(got.Float32s(), final, rolloutRtol, rolloutAtol)
			t.Logf("%s: final latents max rel %.2g max abs %.2g", name, rel, abs)
		})
	}
}

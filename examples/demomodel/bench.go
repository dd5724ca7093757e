package main

import (
	"fmt"
	"io"
	"time"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// benchResult is one measured training step kind.
type benchResult struct {
	What    string
	Batch   int
	Seconds float64 // per optimiser step (forward, backward, AdamW)
}

// sizes reports the parameter counts and F16 sizes of the architecture.
func sizes(w io.Writer, m *randomModels) (total int) {
	for _, c := range []struct {
		name string
		b    *nn.Builder
	}{{"text encoder", m.text}, {"unet", m.unet}, {"vae", m.vae}} {
		n := numParams(c.b.Params())
		total += n
		fmt.Fprintf(w, "  %-12s %10d parameters  %6.2f MB f16\n", c.name, n, float64(2*n)/1e6)
	}
	fmt.Fprintf(w, "  %-12s %10d parameters  %6.2f MB f16\n", "total", total, float64(2*total)/1e6)
	return total
}

// timeSteps runs warm-up steps then measures steps of fn and returns the
// mean seconds per step.
func timeSteps(warm, steps int, fn func(i int) error) (float64, error) {
	for i := 0; i < warm; i++ {
		if err := fn(i); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for i := 0; i < steps; i++ {
		if err := fn(warm + i); err != nil {
			return 0, err
		}
	}
	return time.Since(start).Seconds() / float64(steps), nil
}

// benchVAE times VAE training steps (encode, sample, decode, loss,
// backward, AdamW) at batch b on crops of side crop.
func benchVAE(m *randomModels, b, crop, steps int) (float64, error) {
	ps, err := nn.NewParamSet(m.VAE, m.vae.Params())
	if err != nil {
		return 0, err
	}
	train, err := ps.Trainable()
	if err != nil {
		return 0, err
	}
	opt, err := optim.NewAdamW(train, optim.DefaultAdamW())
	if err != nil {
		return 0, err
	}
	g := rng.New(1)
	x := tensor.Randn(g, b, 3, crop, crop)
	defer x.Release()
	return timeSteps(1, steps, func(i int) error {
		err := tensor.Catch(func() {
			tensor.Do(func() {
				l, _, _ := vaeLoss(m.VAE, x, rng.New(uint64(i)), defaultKLWeight)
				if err := tensor.Backward(l); err != nil {
					panic(err)
				}
			})
		})
		if err != nil {
			return err
		}
		if err := ps.CollectGrads(1); err != nil {
			return err
		}
		if err := opt.Step(1e-4); err != nil {
			return err
		}
		ps.ZeroGrad()
		return nil
	})
}

// benchUNet times joint text-encoder + U-Net training steps at batch b on
// latents of side h with captions of the given ids.
func benchUNet(m *randomModels, b, h, steps int, ids []int32) (float64, error) {
	ups, err := nn.NewParamSet(m.UNet, m.unet.Params())
	if err != nil {
		return 0, err
	}
	tps, err := nn.NewParamSet(m.Text, m.text.Params())
	if err != nil {
		return 0, err
	}
	ut, err := ups.Trainable()
	if err != nil {
		return 0, err
	}
	tt, err := tps.Trainable()
	if err != nil {
		return 0, err
	}
	opt, err := optim.NewAdamW(append(ut, tt...), optim.DefaultAdamW())
	if err != nil {
		return 0, err
	}
	rows := make([][]int32, b)
	for i := range rows {
		rows[i] = ids
	}
	return timeSteps(1, steps, func(i int) error {
		err := tensor.Catch(func() {
			tensor.Do(func() {
				g := rng.New(uint64(i))
				x := tensor.Randn(g, b, 4, h, h)
				ts := make([]float32, b)
				for k := range ts {
					ts[k] = float32((k*397 + i*31) % 1000)
				}
				ehs := m.Text.Forward(clip.IDs(rows...))
				pred := m.UNet.Forward(x, tensor.FromFloat32(ts, b), ehs)
				l := tensor.MSELoss(pred, tensor.Randn(g, b, 4, h, h))
				if err := tensor.Backward(l); err != nil {
					panic(err)
				}
			})
		})
		if err != nil {
			return err
		}
		if err := ups.CollectGrads(1); err != nil {
			return err
		}
		if err := tps.CollectGrads(1); err != nil {
			return err
		}
		if err := opt.Step(1e-4); err != nil {
			return err
		}
		ups.ZeroGrad()
		tps.ZeroGrad()
		return nil
	})
}

// stageBench prints the architecture's parameter counts and F16 sizes and
// times training steps of the VAE (at -vae-batch, -vae-crop) and of text
// encoder + U-Net (at -batch, on -resolution/8 latents) with random
// weights, then the time the planned run would take at those speeds.
func (o *options) stageBench() error {
	full, err := loadFullTokenizer(o.Tokenizer)
	if err != nil {
		return fmt.Errorf("the full CLIP tokenizer (-clip-tokenizer): %v", err)
	}
	rv, err := reduceVocab(full, vocabCorpus(o.Seed, o.Rate, 0))
	if err != nil {
		return err
	}
	a, err := demoArchitecture(rv.Size, o.Res)
	if err != nil {
		return err
	}
	m, err := newRandomModels(a, o.Seed, tensor.F32)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "architecture (vocabulary %d tokens):\n", rv.Size)
	sizes(o.stdout, m)
	tok, err := rv.tokenizer()
	if err != nil {
		return err
	}
	ids, _, err := tok.Encode("Moderate left pleural effusion. Mild cardiomegaly. No pneumothorax.")
	if err != nil {
		return err
	}
	const steps = 3
	vs, err := benchVAE(m, o.VAEBatch, o.VAECrop, steps)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "vae: batch %d crops %dx%d: %.3f s/step (%.1f crops/s)\n", o.VAEBatch, o.VAECrop, o.VAECrop, vs, float64(o.VAEBatch)/vs)
	us, err := benchUNet(m, o.Batch, o.Res/vaeFactor, steps, ids)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.stdout, "text encoder + unet: batch %d latents 4x%dx%d: %.3f s/step (%.1f samples/s)\n", o.Batch, o.Res/vaeFactor, o.Res/vaeFactor, us, float64(o.Batch)/us)
	vt, ut := float64(o.VAESteps)*vs, float64(o.UNetSteps)*us
	fmt.Fprintf(o.stdout, "plan: vae %d steps %.0f min, unet %d steps %.0f min, total %.0f min (+ phantoms and encoding)\n",
		o.VAESteps, vt/60, o.UNetSteps, ut/60, (vt+ut)/60)
	return nil
}

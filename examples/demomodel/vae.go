package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/diffusion/train"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/phantom"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/roentgo/roentgo/vae"
)

// defaultKLWeight is the weight of the KL term of the VAE loss (per-sample
// KL summed over the latent, averaged over the batch), LDM's 1e-6.
const defaultKLWeight = 1e-6

// vaeLoss returns the VAE training loss of the images x [B, 3, H, W] in
// [-1, 1]: the Charbonnier reconstruction loss mean(sqrt((rec-x)^2 +
// 1e-6)) (a smooth L1, sharper than MSE) plus klWeight times the mean over
// the batch of KL(posterior || N(0, I)) summed over the latent, with the
// posterior sampled with noise from g. It also returns the reconstruction
// loss and the KL as plain numbers.
func vaeLoss(m *vae.AutoencoderKL, x *tensor.Tensor, g tensor.RandSource, klWeight float64) (loss *tensor.Tensor, rec, kl float64) {
	post := m.Encode(x)
	eps := tensor.Randn(g, post.Mean.Shape()...)
	z := post.Std.Mul(eps).Add(post.Mean)
	out := m.Decode(z)
	d := out.Sub(x)
	recL := d.Square().AddScalar(1e-6).Sqrt().MeanAll()
	k := post.Mean.Square().Add(post.LogVar.Exp()).AddScalar(-1).Sub(post.LogVar)
	klL := k.Reshape(k.Dim(0), -1).Sum(1, false).MulScalar(0.5).MeanAll()
	loss = recL.Add(klL.MulScalar(float32(klWeight)))
	return loss, float64(recL.Item()), float64(klL.Item())
}

// vaeState is a VAE checkpoint's state.json.
type vaeState struct {
	Step  int     `json:"step"`
	Steps int     `json:"steps"`
	Batch int     `json:"batch"`
	Crop  int     `json:"crop"`
	LR    float64 `json:"lr"`
	KL    float64 `json:"kl_weight"`
	Seed  uint64  `json:"seed"`
}

// vaeWarmup is the VAE's learning-rate warm-up (then constant).
const vaeWarmup = 100

// vaeTrainer is the VAE stage's state.
type vaeTrainer struct {
	o      *options
	model  *vae.AutoencoderKL
	ps     *nn.ParamSet
	params []*nn.Trainable
	opt    *optim.AdamW
	lr     *optim.Schedule
	images [][]uint8 // gray, Res x Res each
	step   int
	closer io.Closer
}

// stageVAE trains the VAE from scratch (from OUT/init's random weights) on
// random crops of the phantoms: Charbonnier reconstruction + KL, AdamW,
// gradient clipping at 1. Checkpoints go to OUT/vae/checkpoint-NNNNNN
// (masters, optimiser, state.json) and OUT/vae/latest; a run continues from
// the latest. Every random draw of step k comes from (seed, k), so a
// resumed run is the same run. The result is OUT/vae/final (config.json and
// F32 weights).
func (o *options) stageVAE(ctx context.Context) error {
	if _, err := o.needRecipe(); err != nil {
		return err
	}
	dir := o.path("vae")
	if done, _ := readLatest(dir); done == train.CheckpointName(o.VAESteps) && exists(filepath.Join(dir, "final", "config.json")) {
		o.logf("vae: already trained for %d steps (%s)", o.VAESteps, filepath.Join(dir, "final"))
		return nil
	}
	t, err := o.newVAETrainer()
	if err != nil {
		return err
	}
	defer t.close()
	if name, err := readLatest(dir); err == nil {
		if err := t.restore(filepath.Join(dir, name)); err != nil {
			return err
		}
		o.logf("vae: resuming from %s", filepath.Join(dir, name))
	}
	logf, err := os.OpenFile(filepath.Join(dir, "loss.csv"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	start, startStep := time.Now(), t.step
	var recSum float64
	var recN int
	for t.step < o.VAESteps {
		if ctx.Err() != nil {
			if err := t.checkpoint(); err != nil {
				return err
			}
			return errInterrupted
		}
		loss, rec, kl, norm, err := t.trainStep()
		if err != nil {
			return err
		}
		fmt.Fprintf(logf, "%d,%.6g,%.6g,%.6g,%.4g\n", t.step, loss, rec, kl, norm)
		recSum += rec
		recN++
		if o.LogEvery > 0 && (t.step%o.LogEvery == 0 || t.step == o.VAESteps) {
			rate := float64(t.step-startStep) / time.Since(start).Seconds()
			o.logf("vae: step %d/%d  rec %.4f (mean of %d)  kl %.1f  grad %.3g  %.2f steps/s  eta %s",
				t.step, o.VAESteps, recSum/float64(recN), recN, kl, norm, rate, eta(o.VAESteps-t.step, rate))
			recSum, recN = 0, 0
		}
		if o.CheckpointEvery > 0 && t.step%o.CheckpointEvery == 0 && t.step < o.VAESteps {
			if err := t.checkpoint(); err != nil {
				return err
			}
		}
	}
	if err := t.checkpoint(); err != nil {
		return err
	}
	if err := writeFolderAtomic(filepath.Join(dir, "final"), func(tmp string) error {
		if err := linkOrCopy(o.path("init", "vae", "config.json"), filepath.Join(tmp, "config.json")); err != nil {
			return err
		}
		return t.ps.SaveWeights(filepath.Join(tmp, "diffusion_pytorch_model.safetensors"), nil)
	}); err != nil {
		return err
	}
	psnr, err := t.evalPSNR(4)
	if err != nil {
		return err
	}
	o.logf("vae: PSNR %.2f dB on 4 held-out phantoms (posterior mean, full %dx%d images); reconstructions in %s", psnr, o.Res, o.Res, filepath.Join(dir, "recon.png"))
	return nil
}

// eta formats the time left for n steps at rate steps/s.
func eta(n int, rate float64) string {
	if !(rate > 0) {
		return "?"
	}
	return (time.Duration(float64(n)/rate) * time.Second).Round(time.Second).String()
}

// exists reports whether path exists.
func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// readLatest returns the checkpoint name in dir/latest.
func readLatest(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "latest"))
	if err != nil {
		return "", err
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, "checkpoint-") || strings.ContainsAny(name, `/\`) {
		return "", fmt.Errorf("%s: bad checkpoint name %q", filepath.Join(dir, "latest"), name)
	}
	return name, nil
}

// newVAETrainer loads OUT/init's VAE, the optimiser and the images.
func (o *options) newVAETrainer() (t *vaeTrainer, err error) {
	t = &vaeTrainer{o: o}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	vdir := o.path("init", "vae")
	cfg, err := vae.LoadConfig(filepath.Join(vdir, "config.json"))
	if err != nil {
		return nil, err
	}
	src, closer, err := nn.OpenComponent(vdir, false)
	if err != nil {
		return nil, err
	}
	t.closer = closer
	m, b, err := nn.Build(src, cfg, tensor.F32, vae.New)
	if err != nil {
		return nil, err
	}
	t.model = m
	if t.ps, err = nn.NewParamSet(m, b.Params()); err != nil {
		return nil, err
	}
	if t.params, err = t.ps.Trainable(); err != nil {
		return nil, err
	}
	if t.opt, err = optim.NewAdamW(t.params, optim.DefaultAdamW()); err != nil {
		return nil, err
	}
	if t.lr, err = optim.NewSchedule(o.VAELR, optim.ScheduleConfig{Name: "constant_with_warmup", WarmupSteps: vaeWarmup, TrainingSteps: o.VAESteps}); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.path("vae"), 0o755); err != nil {
		return nil, err
	}
	t.images = make([][]uint8, o.Images)
	for i := range t.images {
		if t.images[i], err = readGray(o.path("data", imageName(i)+".png"), o.Res); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (t *vaeTrainer) close() {
	if t.closer != nil {
		t.closer.Close()
		t.closer = nil
	}
}

// readGray reads an 8-bit gray PNG of side res.
func readGray(path string, res int) ([]uint8, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	g, ok := img.(*image.Gray)
	if !ok || g.Rect.Dx() != res || g.Rect.Dy() != res {
		return nil, fmt.Errorf("%s: want an 8-bit gray %dx%d PNG", path, res, res)
	}
	out := make([]uint8, res*res)
	for y := 0; y < res; y++ {
		copy(out[y*res:(y+1)*res], g.Pix[y*g.Stride:y*g.Stride+res])
	}
	return out, nil
}

// mix64 is splitmix64's finaliser of (a, b).
func mix64(a, b uint64) uint64 {
	z := a ^ 0x5641455f64656d6f // "VAE_demo"
	z += 0x9E3779B97F4A7C15 * (b + 1)
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// batch returns step k's crops [B, 3, C, C] in [-1, 1] (gray replicated to
// RGB, as diffusion/dataset prepares images): image and offsets drawn from
// (seed, k).
func (t *vaeTrainer) batch(k int) []float32 {
	o := t.o
	B, C, R := o.VAEBatch, o.VAECrop, o.Res
	out := make([]float32, B*3*C*C)
	s := mix64(o.Seed, uint64(k))
	next := func(n int) int { s = mix64(s, 0x1234); return int(s % uint64(n)) }
	for b := 0; b < B; b++ {
		img := t.images[next(len(t.images))]
		x0, y0 := next(R-C+1), next(R-C+1)
		for y := 0; y < C; y++ {
			for x := 0; x < C; x++ {
				v := float32(img[(y0+y)*R+x0+x])/127.5 - 1
				for c := 0; c < 3; c++ {
					out[((b*3+c)*C+y)*C+x] = v
				}
			}
		}
	}
	return out
}

// trainStep runs one optimiser step.
func (t *vaeTrainer) trainStep() (loss, rec, kl float64, norm float32, err error) {
	o := t.o
	px := t.batch(t.step)
	g := rng.New(mix64(o.Seed^0xbeef, uint64(t.step)) & 0xffffffff)
	err = tensor.Catch(func() {
		tensor.Do(func() {
			x := tensor.FromFloat32(px, o.VAEBatch, 3, o.VAECrop, o.VAECrop)
			l, r, k := vaeLoss(t.model, x, g, o.KLWeight)
			loss, rec, kl = float64(l.Item()), r, k
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				return
			}
			if e := tensor.Backward(l); e != nil {
				err = e
			}
		})
	})
	if err != nil {
		return
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		t.ps.ZeroGrad()
		return 0, 0, 0, 0, fmt.Errorf("step %d: the loss is %v; lower -vae-lr (the last checkpoint is kept)", t.step+1, loss)
	}
	if err = t.ps.CollectGrads(1); err != nil {
		return
	}
	if norm, err = optim.ClipGradNorm(t.params, 1); err != nil {
		t.ps.ZeroGrad()
		return
	}
	if err = t.opt.Step(t.lr.LR(t.step)); err != nil {
		t.ps.ZeroGrad()
		return
	}
	t.ps.ZeroGrad()
	t.step++
	return
}

// checkpoint writes OUT/vae/checkpoint-NNNNNN and points latest at it,
// keeping the newest two checkpoints.
func (t *vaeTrainer) checkpoint() error {
	dir := t.o.path("vae")
	name := train.CheckpointName(t.step)
	err := writeFolderAtomic(filepath.Join(dir, name), func(tmp string) error {
		if err := t.ps.SaveMasters(filepath.Join(tmp, "vae.safetensors"), nil); err != nil {
			return err
		}
		if err := t.opt.Save(filepath.Join(tmp, "optimizer.safetensors"), nil); err != nil {
			return err
		}
		st := vaeState{Step: t.step, Steps: t.o.VAESteps, Batch: t.o.VAEBatch, Crop: t.o.VAECrop, LR: t.o.VAELR, KL: t.o.KLWeight, Seed: t.o.Seed}
		b, err := json.MarshalIndent(st, "", "  ")
		if err != nil {
			return err
		}
		return pipeline.WriteFileAtomic(filepath.Join(tmp, "state.json"), b)
	})
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(dir, "latest"), []byte(name+"\n")); err != nil {
		return err
	}
	// Keep the newest two.
	es, _ := os.ReadDir(dir)
	var cks []string
	for _, e := range es {
		if e.IsDir() && strings.HasPrefix(e.Name(), "checkpoint-") {
			cks = append(cks, e.Name())
		}
	}
	sort.Strings(cks)
	for i := 0; i+2 < len(cks); i++ {
		if cks[i] != name {
			os.RemoveAll(filepath.Join(dir, cks[i]))
		}
	}
	return nil
}

// restore loads a checkpoint folder.
func (t *vaeTrainer) restore(ck string) error {
	b, err := os.ReadFile(filepath.Join(ck, "state.json"))
	if err != nil {
		return err
	}
	var st vaeState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %v", filepath.Join(ck, "state.json"), err)
	}
	if st.Batch != t.o.VAEBatch || st.Crop != t.o.VAECrop || st.Seed != t.o.Seed {
		t.o.logf("vae: warning: the checkpoint was made with -vae-batch %d -vae-crop %d -seed %d; continuing with the new values", st.Batch, st.Crop, st.Seed)
	}
	if err := t.ps.LoadMasters(filepath.Join(ck, "vae.safetensors")); err != nil {
		return err
	}
	if err := t.opt.Load(filepath.Join(ck, "optimizer.safetensors")); err != nil {
		return err
	}
	t.step = st.Step
	return nil
}

// evalPSNR reconstructs n held-out phantoms (dataset indices Images,
// Images+1, ...) at full resolution from the posterior mean, returns their
// mean PSNR (on [0, 1] gray) and writes originals above reconstructions
// to OUT/vae/recon.png.
func (t *vaeTrainer) evalPSNR(n int) (float64, error) {
	o := t.o
	R := o.Res
	sheet := image.NewGray(image.Rect(0, 0, n*R, 2*R))
	var sum float64
	var err error
	tensor.NoGrad(func() {
		for i := 0; i < n && err == nil; i++ {
			p := phantom.Random(phantom.DatasetSeed(o.Seed, o.Images+i), phantom.Options{FindingsRate: o.Rate})
			im, e := phantom.Render(p, R, R)
			if e != nil {
				err = e
				return
			}
			gray := im.Gray()
			px := make([]float32, 3*R*R)
			for j, v := range gray.Pix {
				f := float32(v)/127.5 - 1
				px[j], px[R*R+j], px[2*R*R+j] = f, f, f
			}
			var out []float32
			err = tensor.Catch(func() {
				tensor.Do(func() {
					post := t.model.Encode(tensor.FromFloat32(px, 1, 3, R, R))
					defer post.Release()
					out = t.model.Decode(post.Mean).Float32s()
				})
			})
			if err != nil {
				return
			}
			var mse float64
			for j, v := range gray.Pix {
				// Mean of the three channels, back to [0, 1].
				r := (float64(out[j]+out[R*R+j]+out[2*R*R+j])/3 + 1) / 2
				r = math.Min(1, math.Max(0, r))
				d := r - float64(v)/255
				mse += d * d
				sheet.Pix[(R+j/R)*sheet.Stride+i*R+j%R] = uint8(math.Round(r * 255))
				sheet.Pix[(j/R)*sheet.Stride+i*R+j%R] = v
			}
			mse /= float64(R * R)
			sum += 10 * math.Log10(1/math.Max(mse, 1e-12))
		}
	})
	if err != nil {
		return 0, err
	}
	var b bytes.Buffer
	if err := png.Encode(&b, sheet); err != nil {
		return 0, err
	}
	if err := pipeline.WriteFileAtomic(o.path("vae", "recon.png"), b.Bytes()); err != nil {
		return 0, err
	}
	return sum / float64(n), nil
}

// linkOrCopy makes dst a hard link of src, or a copy.
func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return pipeline.WriteFileAtomic(dst, b)
}

package pipeline

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn/sdckpt"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/roentgo/roentgo/vae"
)

// defaultSchedulerJSON is the scheduler of a single-file checkpoint without
// a ConfigDir/scheduler: the PNDM configuration Stable Diffusion 1.x and
// 2.x-base ship with (scaled_linear betas from 0.00085 to 0.012 over 1000
// steps, steps_offset 1, skip_prk_steps, set_alpha_to_one false, epsilon
// prediction). The 768-pixel 2.x models predict v: pass
// Options.Prediction "v_prediction" for them.
const defaultSchedulerJSON = `{
  "_class_name": "PNDMScheduler",
  "beta_end": 0.012,
  "beta_schedule": "scaled_linear",
  "beta_start": 0.00085,
  "num_train_timesteps": 1000,
  "prediction_type": "epsilon",
  "set_alpha_to_one": false,
  "skip_prk_steps": true,
  "steps_offset": 1,
  "trained_betas": null
}
`

// loadSingleFile loads an original single-file checkpoint (sdckpt.Open):
// SD 1.x or 2.x, told by its text encoder's keys. The component configs come
// from o.ConfigDir where it has them, else they are the variant's standard
// ones (unet.SD15Config / SD21Config and likewise); the scheduler is
// ConfigDir's or defaultSchedulerJSON; the tokenizer is o.Tokenizer or
// ConfigDir/tokenizer, and its absence is an error. With dtype auto the
// weights keep the file's dtype. A .ckpt is read into memory and closed after
// loading (its EMA copy and other unused tensors are freed); a safetensors
// file stays mapped until Close.
func loadSingleFile(path string, o Options) (*Pipeline, error) {
	ck, err := sdckpt.Open(path, nil)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %s is neither a diffusers folder nor a single-file Stable Diffusion checkpoint (.safetensors or .ckpt): %w", path, err)
	}
	p := &Pipeline{Path: path, Warn: o.Warn}
	p.closers = append(p.closers, ck)
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	if ck.Variant == sdckpt.VariantUnknown {
		return nil, fmt.Errorf("pipeline: %s holds no text encoder weights (cond_stage_model.*); expected a single-file Stable Diffusion 1.x/2.x checkpoint or a diffusers pipeline folder", path)
	}

	// Configs, tokenizer and scheduler: from ConfigDir where present.
	cfgFile := func(rel string) (string, bool) {
		if o.ConfigDir == "" {
			return "", false
		}
		f := filepath.Join(o.ConfigDir, filepath.FromSlash(rel))
		_, err := os.Stat(f)
		return f, err == nil
	}
	if o.ConfigDir != "" {
		st, err := os.Stat(o.ConfigDir)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("pipeline: config folder %s is not a folder; expected a diffusers folder with unet/, vae/, text_encoder/ config.json files", o.ConfigDir)
		}
		found := false
		for _, rel := range []string{"unet/config.json", "vae/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json"} {
			if _, ok := cfgFile(rel); ok {
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("pipeline: config folder %s holds none of unet/config.json, vae/config.json, text_encoder/config.json, scheduler/scheduler_config.json, tokenizer/; expected a diffusers folder", o.ConfigDir)
		}
	}
	tokDir := o.Tokenizer
	if tokDir == "" {
		if _, ok := cfgFile("tokenizer/vocab.json"); ok {
			tokDir = filepath.Join(o.ConfigDir, "tokenizer")
		}
	}
	if tokDir == "" {
		return nil, fmt.Errorf("pipeline: %s is a single-file checkpoint, which holds no tokenizer; pass a tokenizer folder (vocab.json and merges.txt, e.g. a diffusers model's tokenizer/) with -tokenizer DIR", path)
	}
	schedJSON, where := []byte(defaultSchedulerJSON), "default "+ck.Variant.String()+" scheduler config"
	if f, ok := cfgFile("scheduler/scheduler_config.json"); ok {
		if schedJSON, err = os.ReadFile(f); err != nil {
			return nil, errctx.Wrap("pipeline", err)
		}
		where = f
	}
	if err := p.setScheduler(schedJSON, where, o); err != nil {
		return nil, err
	}
	var ucfg *unet.Config
	if f, ok := cfgFile("unet/config.json"); ok {
		c, err := unet.LoadConfig(f)
		if err != nil {
			return nil, errctx.Wrap("pipeline: unet", err)
		}
		ucfg = &c
	}
	var vcfg *vae.Config
	if f, ok := cfgFile("vae/config.json"); ok {
		c, err := vae.LoadConfig(f)
		if err != nil {
			return nil, errctx.Wrap("pipeline: vae", err)
		}
		vcfg = &c
	}
	var tcfg *clip.TextConfig
	if f, ok := cfgFile("text_encoder/config.json"); ok {
		c, err := clip.LoadTextConfig(f)
		if err != nil {
			return nil, errctx.Wrap("pipeline: text encoder", err)
		}
		tcfg = &c
	}
	// SD2's OpenCLIP tower has more layers than the text encoder uses: map
	// only as many as the given config has.
	if tcfg != nil && ck.Variant == sdckpt.SD2 && ck.Config.TextLayers != tcfg.NumHiddenLayers {
		c := ck.Config
		c.TextLayers = tcfg.NumHiddenLayers
		p.closers = nil
		if err := ck.Close(); err != nil {
			return nil, errctx.Wrap("pipeline", err)
		}
		if ck, err = sdckpt.Open(path, &c); err != nil {
			return nil, errctx.Wrap("pipeline", err)
		}
		p.closers = append(p.closers, ck)
	}

	if err := checkStandardSizes(ck, ucfg, vcfg, tcfg); err != nil {
		return nil, err
	}
	if ucfg, err = unetInChannels(ck, ucfg); err != nil {
		return nil, err
	}
	if p.Tokenizer, err = clip.Load(tokDir); err != nil {
		return nil, errctx.Wrap("pipeline: tokenizer", err)
	}
	fixed, _ := dtypeOption(o.DType)
	dtypeFor := func(comp string) tensor.DType {
		if fixed != nil {
			return *fixed
		}
		return sourceDType(ck.Source(comp))
	}
	if p.TextEncoder, err = clip.TextModelFromCheckpoint(ck, tcfg, dtypeFor(sdckpt.TextEncoder)); err != nil {
		return nil, errctx.Wrap("pipeline: text encoder", err)
	}
	for _, w := range p.TextEncoder.Warnings {
		p.warn(strings.TrimPrefix(w, "clip: "))
	}
	if p.UNet, err = unet.FromCheckpoint(ck, ucfg, dtypeFor(sdckpt.UNet)); err != nil {
		return nil, errctx.Wrap("pipeline: unet", err)
	}
	if p.VAE, err = vae.FromCheckpoint(ck, vcfg, dtypeFor(sdckpt.VAE)); err != nil {
		return nil, errctx.Wrap("pipeline: vae", err)
	}
	if err := p.checkCompatible(); err != nil {
		return nil, err
	}
	if isZip(path) {
		// The models hold their tensors in memory: free the rest now.
		p.closers = nil
		if err := ck.Close(); err != nil {
			return nil, errctx.Wrap("pipeline", err)
		}
	}
	p.hash = startFileHash(path)
	ok = true
	return p, nil
}

// isZip reports whether path starts like a zip archive (a PyTorch checkpoint).
func isZip(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && string(magic[:]) == "PK\x03\x04"
}

// startFileHash computes the model hash of a single-file checkpoint in the
// background: the hex SHA-256 of the file's bytes (the hash other Stable
// Diffusion front ends show for checkpoints, of which ModelHash keeps the
// first 12 digits). Configs from Options.ConfigDir do not count.
func startFileHash(path string) *hashJob {
	j := &hashJob{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		j.sum, j.err = hashFile(path)
	}()
	return j
}

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", errctx.Wrap("pipeline: hashing", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("pipeline: hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// checkStandardSizes checks, for each component without a given config, that
// the checkpoint's first layer has the width of the variant's standard
// config, so that a non-standard model gets one line asking for its configs
// instead of the builder's list of every misshapen tensor.
func checkStandardSizes(ck *sdckpt.Checkpoint, ucfg *unet.Config, vcfg *vae.Config, tcfg *clip.TextConfig) error {
	sd2 := ck.Variant == sdckpt.SD2
	type probe struct {
		comp, key, what string
		dim, want       int
	}
	var probes []probe
	if tcfg == nil {
		c := clip.SD15TextConfig()
		if sd2 {
			c = clip.SD21TextConfig()
		}
		probes = append(probes, probe{sdckpt.TextEncoder, "text_model.embeddings.token_embedding.weight", "text encoder hidden size", 1, c.HiddenSize})
	}
	if ucfg == nil {
		c := unet.SD15Config()
		if sd2 {
			c = unet.SD21Config()
		}
		probes = append(probes, probe{sdckpt.UNet, "conv_in.weight", "U-Net's first block width", 0, c.BlockOutChannels[0]})
	}
	if vcfg == nil {
		c := vae.SD15Config()
		if sd2 {
			c = vae.SD21Config()
		}
		probes = append(probes, probe{sdckpt.VAE, "encoder.conv_in.weight", "VAE's first block width", 0, c.BlockOutChannels[0]})
	}
	for _, pr := range probes {
		_, shape, ok := ck.Source(pr.comp).Info(pr.key)
		if !ok || len(shape) <= pr.dim {
			continue // the builder reports missing weights
		}
		if got := shape[pr.dim]; got != pr.want {
			return fmt.Errorf("pipeline: %s: the %s is %d, not the standard %s's %d; for a non-standard architecture pass its diffusers configs with -config DIR (a folder with unet/, vae/, text_encoder/ config.json)", ck.Path, pr.what, got, ck.Variant, pr.want)
		}
	}
	return nil
}

// unetInChannels returns the U-Net config to build a single-file
// checkpoint's U-Net with: ucfg (nil: the variant's standard config) with
// in_channels taken from the file's conv_in weight [C0, in, k, k] when it
// holds an inpainting U-Net (sd-v1-5-inpainting and the like: 9 = 4 latent
// + 1 mask + 4 masked-image latents); other channel counts are left for the
// builder to report. A config from ConfigDir that disagrees with the file
// is an error naming both.
func unetInChannels(ck *sdckpt.Checkpoint, ucfg *unet.Config) (*unet.Config, error) {
	_, shape, ok := ck.Source(sdckpt.UNet).Info("conv_in.weight")
	if !ok || len(shape) != 4 {
		return ucfg, nil
	}
	in := shape[1]
	if ucfg != nil {
		if ucfg.InChannels != in {
			return nil, fmt.Errorf("pipeline: %s: the U-Net's conv_in takes %d channels but the given unet/config.json says in_channels %d", ck.Path, in, ucfg.InChannels)
		}
		return ucfg, nil
	}
	c := unet.SD15Config()
	if ck.Variant == sdckpt.SD2 {
		c = unet.SD21Config()
	}
	if in == c.InChannels || in != 2*c.InChannels+1 {
		return nil, nil
	}
	c.InChannels = in
	return &c, nil
}

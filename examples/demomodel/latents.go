package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/roentgo/roentgo/diffusion/dataset"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/diffusion/train"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/vae"
)

// stageLatents encodes every phantom with the trained VAE (OUT/vae/final),
// sets the VAE's scaling_factor to 1/std of the latents (as Stable
// Diffusion's 0.18215 was chosen), writes OUT/model0 (OUT/init with the
// trained VAE) and stores each image's posterior (mean, std) in
// OUT/latents.cache under the key diffusion/train computes, so that the
// U-Net stage never runs the VAE. Done when model0 exists and the cache
// holds every image for the current trained VAE.
func (o *options) stageLatents(ctx context.Context) error {
	if _, err := o.needRecipe(); err != nil {
		return err
	}
	final := o.path("vae", "final")
	if !exists(filepath.Join(final, "config.json")) {
		return fmt.Errorf("%s does not exist; run stage vae first", final)
	}
	cachePath := o.path("latents.cache")
	if exists(o.path("model0", "model_index.json")) && sameFile(filepath.Join(final, "diffusion_pytorch_model.safetensors"), o.path("model0", "vae", "diffusion_pytorch_model.safetensors")) {
		c, err := train.OpenLatentCache(cachePath)
		if err != nil {
			return err
		}
		n := c.Len()
		c.Close()
		if n >= o.Images {
			o.logf("latents: %s and %d cached posteriors exist", o.path("model0"), n)
			return nil
		}
	}
	m, err := vae.Load(final, tensor.F32)
	if err != nil {
		return err
	}
	defer m.Close()
	R := o.Res
	means := make([][]float32, o.Images)
	stds := make([][]float32, o.Images)
	var shape []int
	for i := 0; i < o.Images; i++ {
		if ctx.Err() != nil {
			return errInterrupted // nothing written yet: the stage restarts
		}
		b, err := os.ReadFile(o.path("data", imageName(i)+".png"))
		if err != nil {
			return err
		}
		px, err := dataset.Decode(b, R, false)
		if err != nil {
			return err
		}
		err = tensor.Catch(func() {
			tensor.NoGrad(func() {
				tensor.Do(func() {
					post := m.Encode(tensor.FromFloat32(px, 1, 3, R, R))
					defer post.Release()
					means[i], stds[i] = post.Mean.Float32s(), post.Std.Float32s()
					sh := post.Mean.Shape()
					shape = []int{2 * sh[1], sh[2], sh[3]}
				})
			})
		})
		if err != nil {
			return err
		}
		if o.LogEvery > 0 && (i+1)%(o.LogEvery*10) == 0 {
			o.logf("latents: encoded %d/%d", i+1, o.Images)
		}
	}
	// Standard deviation of the sampled latents mean + std*eps over the
	// dataset: sqrt(Var(mean) + E[std^2]).
	var s, s2, v float64
	var n int
	for i := range means {
		for j, x := range means[i] {
			s += float64(x)
			s2 += float64(x) * float64(x)
			v += float64(stds[i][j]) * float64(stds[i][j])
			n++
		}
	}
	mu := s / float64(n)
	std := math.Sqrt(s2/float64(n) - mu*mu + v/float64(n))
	scaling := 1 / std
	o.logf("latents: latent mean %.4f, std %.4f: scaling_factor %.5f", mu, std, scaling)

	if err := writeFolderAtomic(o.path("model0"), func(tmp string) error {
		return o.writeModel0(tmp, final, scaling)
	}); err != nil {
		return err
	}
	hash, err := pipeline.HashFolder(o.path("model0", "vae"))
	if err != nil {
		return err
	}
	os.Remove(cachePath) // entries of another VAE would never hit
	c, err := train.OpenLatentCache(cachePath)
	if err != nil {
		return err
	}
	for i := range means {
		abs, err := filepath.Abs(o.path("data", imageName(i)+".png"))
		if err != nil {
			c.Close()
			return err
		}
		key, err := train.CacheKey(abs, R, false, hash)
		if err != nil {
			c.Close()
			return err
		}
		if err := c.Put(key, append(means[i], stds[i]...), shape); err != nil {
			c.Close()
			return err
		}
	}
	if err := c.Close(); err != nil {
		return err
	}
	o.logf("latents: %d posteriors %v in %s", o.Images, shape, cachePath)
	return nil
}

// writeModel0 fills dir with OUT/init's files, the trained VAE's weights
// and its config with the scaling factor.
func (o *options) writeModel0(dir, final string, scaling float64) error {
	init := o.path("init")
	err := filepath.WalkDir(init, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(init, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		if strings.HasPrefix(filepath.ToSlash(rel), "vae/") {
			return nil
		}
		return linkOrCopy(path, filepath.Join(dir, rel))
	})
	if err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(final, "config.json"))
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	cfg["scaling_factor"] = scaling
	if b, err = json.MarshalIndent(cfg, "", "  "); err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(filepath.Join(dir, "vae", "config.json"), b); err != nil {
		return err
	}
	return linkOrCopy(filepath.Join(final, "diffusion_pytorch_model.safetensors"), filepath.Join(dir, "vae", "diffusion_pytorch_model.safetensors"))
}

// sameFile reports whether the files a and b exist and hold the same bytes
// (model0's VAE weights are the trained VAE's, unless the VAE was trained
// further since).
func sameFile(a, b string) bool {
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	return err == nil && bytes.Equal(x, y)
}

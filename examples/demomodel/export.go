package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// weightFiles are the components' weight files in a diffusers folder.
var weightFiles = map[string]string{
	"text_encoder": "model.safetensors",
	"unet":         "diffusion_pytorch_model.safetensors",
	"vae":          "diffusion_pytorch_model.safetensors",
}

// stageExport writes OUT/model: OUT/unet/model with every weight in F16
// (configs, tokenizer and scheduler copied), then loads it with the
// pipeline and generates OUT/sample.png as a check.
func (o *options) stageExport() error {
	src := o.path("unet", "model")
	if !exists(filepath.Join(src, "model_index.json")) {
		return errors.New(src + " does not exist; run stage unet first")
	}
	dst := o.path("model")
	if err := writeFolderAtomic(dst, func(tmp string) error { return exportF16(src, tmp) }); err != nil {
		return err
	}
	var total int64
	for comp, file := range weightFiles {
		st, err := os.Stat(filepath.Join(dst, comp, file))
		if err != nil {
			return err
		}
		total += st.Size()
	}
	o.logf("export: F16 model in %s: weights %.2f MB", dst, float64(total)/1e6)
	return o.checkModel(dst, "large left pleural effusion", o.path("sample.png"))
}

// exportF16 copies the diffusers folder src to dst (existing), converting
// the weights of the three components to F16.
func exportF16(src, dst string) error {
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if len(parts) == 2 && weightFiles[parts[0]] != "" && strings.HasSuffix(parts[1], ".safetensors") {
			return nil // converted below
		}
		return linkOrCopy(path, filepath.Join(dst, rel))
	})
	if err != nil {
		return err
	}
	for comp, file := range weightFiles {
		s, closer, err := nn.OpenComponent(filepath.Join(src, comp), false)
		if err != nil {
			return err
		}
		keys := s.Keys()
		sort.Strings(keys)
		var params []nn.Param
		err = tensor.Catch(func() {
			for _, k := range keys {
				t, e := s.Load(k)
				if e != nil {
					err = e
					return
				}
				params = append(params, nn.Param{Name: k, Tensor: t.To(tensor.F16)})
			}
		})
		if err == nil {
			err = nn.SaveSafetensors(filepath.Join(dst, comp, file), params, map[string]string{"format": "pt", "roentgo": "demo model (phantoms), examples/demomodel"})
		}
		for _, p := range params {
			p.Tensor.Release()
		}
		closer.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", comp, err)
		}
	}
	return nil
}

// checkModel loads the model folder dir with the pipeline and writes one
// image for prompt to path (20 steps, guidance 4, seed 0).
func (o *options) checkModel(dir, prompt, path string) error {
	p, err := pipeline.Load(dir, pipeline.Options{})
	if err != nil {
		return err
	}
	defer p.Close()
	res, err := p.Txt2Img(context.Background(), pipeline.Request{Prompt: prompt, Height: o.Res, Width: o.Res, Steps: 20, Guidance: 4})
	if err != nil {
		return err
	}
	data, err := pipeline.EncodePNG(res.Images[0], res.Text(0))
	if err != nil {
		return err
	}
	if err := pipeline.WriteFileAtomic(path, data); err != nil {
		return err
	}
	o.logf("export: %q -> %s", prompt, path)
	return nil
}

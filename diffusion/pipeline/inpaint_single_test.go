package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/nn/sdckpt"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

// writeInpaintSingleFile writes the 9-channel tiny model as an original
// single-file checkpoint (the sd-v1-5-inpainting layout): tiny-sd1's file
// with every U-Net tensor replaced by the inpainting U-Net's (conv_in
// [32, 9, 3, 3]), under the same original keys.
func writeInpaintSingleFile(t *testing.T) string {
	single := filepath.Join(goldenModel(t), "..", "tiny-sd1-fp32.safetensors")
	src, err := safetensors.Open(single)
	require.NoError(t, err)
	defer src.Close()
	m, err := sdckpt.Convert(src.Names(), sdckpt.SD1Config())
	require.NoError(t, err)
	unetFile, err := safetensors.Open(filepath.Join(inpaintDir(t), "model", "diffusers", "unet", "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	defer unetFile.Close()
	var out []safetensors.TensorInfo
	replaced := 0
	for _, ti := range src.Tensors {
		for _, tg := range m.Targets[ti.Name] {
			if tg.Component != sdckpt.UNet {
				continue
			}
			require.Equal(t, sdckpt.Identity, tg.Transform, ti.Name)
			u, ok := unetFile.Get(tg.Key)
			require.True(t, ok, tg.Key)
			ti = safetensors.TensorInfo{Name: ti.Name, DType: u.DType, Shape: u.Shape, Data: u.Data}
			replaced++
		}
		out = append(out, ti)
	}
	require.Equal(t, len(unetFile.Tensors), replaced)
	var buf bytes.Buffer
	require.NoError(t, safetensors.Write(&buf, out, map[string]string{"format": "pt"}))
	path := filepath.Join(t.TempDir(), "tiny-sd1-inpainting.safetensors")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	return path
}

// TestInpaintSingleFile: a single-file inpainting checkpoint loads with its
// conv_in's 9 input channels (a config saying otherwise is an error naming
// both) and reproduces the golden inpaint_ddim6 image.
func TestInpaintSingleFile(t *testing.T) {
	path := writeInpaintSingleFile(t)
	folder := filepath.Join(inpaintDir(t), "model", "diffusers")

	ck, err := sdckpt.Open(path, nil)
	require.NoError(t, err)
	c, err := unetInChannels(ck, nil)
	require.NoError(t, err)
	require.NotNil(t, c, "the standard SD1 config with 9 input channels")
	require.Equal(t, 9, c.InChannels)
	require.NoError(t, ck.Close())

	_, err = Load(path, Options{ConfigDir: goldenModel(t)})
	require.ErrorContains(t, err, "conv_in takes 9 channels but the given unet/config.json says in_channels 4")

	p, err := Load(path, Options{ConfigDir: folder})
	require.NoError(t, err)
	defer p.Close()
	require.True(t, p.IsInpaintModel())
	cases := inpaintCases(t)
	cs := cases["inpaint_ddim6"]
	dir := inpaintDir(t)
	img, err := LoadImage(filepath.Join(dir, "images", "inp0.png"))
	require.NoError(t, err)
	mask, err := LoadMask(filepath.Join(dir, "masks", "mask0.png"))
	require.NoError(t, err)
	res, err := p.Inpaint(context.Background(), Request{Prompt: cs.Prompt, Negative: cs.NegativePrompt, Guidance: cs.GuidanceScale,
		Steps: cs.Steps, Height: 64, Width: 64, Seed: cs.Seed, Scheduler: "ddim", InitImage: img, MaskImage: mask, KeepDecoded: true})
	require.NoError(t, err)
	want := readAbs(t, filepath.Join(dir, "inpaint_ddim6", "decoded_raw.npy"))
	closeTo(t, "decoded_raw (single file)", res.Decoded[0], want, 1e-4*maxAbs(want), 1e-4)

	// Txt2Img and Img2Img refuse an inpainting model.
	_, err = p.Txt2Img(context.Background(), Request{Prompt: "x", Steps: 2, Height: 64, Width: 64})
	require.ErrorContains(t, err, "an inpainting model")
	_, err = p.Img2Img(context.Background(), Request{Prompt: "x", Steps: 2, Height: 64, Width: 64, InitImage: img, Strength: 0.5})
	require.ErrorContains(t, err, "an inpainting model")
}

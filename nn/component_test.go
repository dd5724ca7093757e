package nn

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/torchzip"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

func touch(t *testing.T, dir string, names ...string) {
	t.Helper()
	for _, n := range names {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), nil, 0o644))
	}
}

// TestFindWeightsOrder: the preferred variant first, then safetensors before
// .bin; diffusers and transformers names.
func TestFindWeightsOrder(t *testing.T) {
	for _, c := range []struct {
		files      []string
		fp16       bool
		want       string
		format     string
		wantVarint string
	}{
		{[]string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}, false, "diffusion_pytorch_model.safetensors", "safetensors", ""},
		{[]string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"}, true, "diffusion_pytorch_model.fp16.safetensors", "safetensors", "fp16"},
		{[]string{"diffusion_pytorch_model.fp16.safetensors"}, false, "diffusion_pytorch_model.fp16.safetensors", "safetensors", "fp16"},
		{[]string{"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.safetensors"}, false, "diffusion_pytorch_model.bin", "bin", ""},
		{[]string{"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.safetensors"}, true, "diffusion_pytorch_model.fp16.safetensors", "safetensors", "fp16"},
		{[]string{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"}, true, "diffusion_pytorch_model.safetensors", "safetensors", ""},
		{[]string{"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"}, true, "diffusion_pytorch_model.fp16.bin", "bin", "fp16"},
		{[]string{"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"}, false, "diffusion_pytorch_model.bin", "bin", ""},
		{[]string{"model.safetensors", "pytorch_model.bin"}, false, "model.safetensors", "safetensors", ""},
		{[]string{"pytorch_model.bin", "model.fp16.safetensors"}, false, "pytorch_model.bin", "bin", ""},
		{[]string{"pytorch_model.fp16.bin"}, false, "pytorch_model.fp16.bin", "bin", "fp16"},
	} {
		dir := t.TempDir()
		touch(t, dir, c.files...)
		w, err := FindWeights(dir, c.fp16)
		require.NoError(t, err, "%v", c.files)
		require.Equal(t, []string{filepath.Join(dir, c.want)}, w.Files, "%v fp16=%v", c.files, c.fp16)
		require.Equal(t, c.format, w.Format)
		require.Equal(t, c.wantVarint, w.Variant)
		require.Empty(t, w.Index)
	}
	_, err := FindWeights(t.TempDir(), false)
	require.ErrorContains(t, err, "holds no weight files: looked for diffusion_pytorch_model.safetensors, model.safetensors, diffusion_pytorch_model.bin, pytorch_model.bin")
}

// TestOpenComponentSharded splits a state dict into two shards with an index,
// as safetensors and as .bin, with diffusers' variant index names.
func TestOpenComponentSharded(t *testing.T) {
	full := MapSource{
		"a.weight": tensor.FromFloat32([]float32{1, 2, 3, 4}, 2, 2),
		"a.bias":   tensor.FromFloat32([]float32{5, 6}, 2),
		"b.weight": tensor.FromFloat32([]float32{7}, 1, 1),
	}
	shard1 := []Param{{"a.weight", full["a.weight"]}, {"a.bias", full["a.bias"]}}
	shard2 := []Param{{"b.weight", full["b.weight"]}}
	index := `{"metadata": {"total_size": 28}, "weight_map": {"a.weight": "%[1]s-00001-of-00002.%[2]s", "a.bias": "%[1]s-00001-of-00002.%[2]s", "b.weight": "%[1]s-00002-of-00002.%[2]s"}}`
	toTorch := func(ps []Param) []torchzip.Tensor {
		var out []torchzip.Tensor
		for _, p := range ps {
			out = append(out, torchzip.Tensor{Name: p.Name, DType: "F32", Shape: p.Tensor.Shape(), Data: f32Bytes(p.Tensor.Float32s()...)})
		}
		return out
	}
	for _, c := range []struct{ format, stem, indexName string }{
		{"safetensors", "diffusion_pytorch_model", "diffusion_pytorch_model.safetensors.index.json"},
		{"safetensors", "diffusion_pytorch_model.fp16", "diffusion_pytorch_model.safetensors.index.fp16.json"},
		{"bin", "pytorch_model", "pytorch_model.bin.index.json"},
	} {
		dir := t.TempDir()
		for i, ps := range [][]Param{shard1, shard2} {
			name := filepath.Join(dir, c.stem+[]string{"-00001-of-00002.", "-00002-of-00002."}[i]+c.format)
			if c.format == "safetensors" {
				require.NoError(t, SaveSafetensors(name, ps, nil))
			} else {
				require.NoError(t, torchzip.Write(name, toTorch(ps), false))
			}
		}
		idx := filepath.Join(dir, c.indexName)
		require.NoError(t, os.WriteFile(idx, []byte(fmt.Sprintf(index, c.stem, c.format)), 0o644))
		w, err := FindWeights(dir, true)
		require.NoError(t, err)
		require.Equal(t, idx, w.Index)
		require.Len(t, w.Files, 2)
		src, closer, err := OpenComponent(dir, true)
		require.NoError(t, err, c.indexName)
		require.Equal(t, full.Keys(), src.Keys())
		for k, want := range full {
			got, err := src.Load(k)
			require.NoError(t, err)
			require.Equal(t, want.Float32s(), got.Float32s(), k)
		}
		require.NoError(t, closer.Close())

		// An index naming a tensor its shards lack, and one naming a missing shard.
		require.NoError(t, os.WriteFile(idx, []byte(fmt.Sprintf(`{"weight_map": {"a.weight": "%[1]s-00001-of-00002.%[2]s", "zzz": "%[1]s-00002-of-00002.%[2]s"}}`, c.stem, c.format)), 0o644))
		_, _, err = OpenComponent(dir, true)
		require.ErrorContains(t, err, "lists tensors its shards lack: zzz")
		require.NoError(t, os.WriteFile(idx, []byte(`{"weight_map": {"a.weight": "absent.`+c.format+`"}}`), 0o644))
		_, _, err = OpenComponent(dir, true)
		require.ErrorContains(t, err, "names shard absent."+c.format)
		require.NoError(t, os.WriteFile(idx, []byte(`{"weight_map": {"a.weight": "../x"}}`), 0o644))
		_, _, err = OpenComponent(dir, true)
		require.ErrorContains(t, err, "want a file name in the same folder")
		require.NoError(t, os.WriteFile(idx, []byte(`{}`), 0o644))
		_, _, err = OpenComponent(dir, true)
		require.ErrorContains(t, err, "no weight_map")
	}
}

func TestComponentDir(t *testing.T) {
	root := t.TempDir()
	_, err := ComponentDir(filepath.Join(root, "absent"), "unet")
	require.ErrorContains(t, err, "absent")
	_, err = ComponentDir(root, "unet")
	require.ErrorContains(t, err, "is not a diffusers unet folder: no config.json and no weight files (and no unet/ subfolder)")
	touch(t, root, "diffusion_pytorch_model.safetensors")
	_, err = ComponentDir(root, "unet")
	require.ErrorContains(t, err, "is not a diffusers unet folder: no config.json (and no unet/ subfolder)")
	touch(t, root, "config.json")
	got, err := ComponentDir(root, "unet")
	require.NoError(t, err)
	require.Equal(t, root, got)
	sub := filepath.Join(root, "vae")
	require.NoError(t, os.Mkdir(sub, 0o755))
	touch(t, sub, "config.json")
	got, err = ComponentDir(root, "vae")
	require.NoError(t, err)
	require.Equal(t, sub, got)
	_, err = ComponentDir(filepath.Join(root, "config.json"), "vae")
	require.ErrorContains(t, err, "is a file")
}

package nn

import (
	"os"
	"path"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestFindWeightsFS: an fs.FS holding a component folder gives the same
// choice of file, format and variant as the same folder on disk, whatever
// the preference.
func TestFindWeightsFS(t *testing.T) {
	for _, files := range [][]string{
		{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"},
		{"diffusion_pytorch_model.fp16.safetensors"},
		{"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.safetensors"},
		{"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"},
		{"diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin"},
		{"model.safetensors", "pytorch_model.bin"},
		{"model.fp16.safetensors", "config.json"},
		{"pytorch_model.fp16.bin"},
		{"diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.fp16.safetensors"},
		{"diffusion_pytorch_model.safetensors.index.fp16.json"},
	} {
		for _, fp16 := range []bool{false, true} {
			dir := t.TempDir()
			mfs := fstest.MapFS{}
			for _, f := range files {
				touch(t, dir, f)
				mfs["unet/"+f] = &fstest.MapFile{}
			}
			got, err := FindWeightsFS(mfs, "unet", fp16)
			require.NoError(t, err, "%v", files)
			want := findWeights(fp16, func(name string) bool {
				_, err := os.Stat(filepath.Join(dir, name))
				return err == nil
			})
			require.Equal(t, want.Format, got.Format, "%v fp16=%v", files, fp16)
			require.Equal(t, want.Variant, got.Variant, "%v fp16=%v", files, fp16)
			if want.Index != "" {
				require.Equal(t, path.Join("unet", want.Index), got.Index, "%v fp16=%v", files, fp16)
				require.Empty(t, got.Files)
				continue
			}
			// Where FindWeights reads no index, it returns the same file.
			disk, err := FindWeights(dir, fp16)
			require.NoError(t, err)
			require.Empty(t, got.Index)
			require.Equal(t, []string{"unet/" + filepath.Base(disk.Files[0])}, got.Files, "%v fp16=%v", files, fp16)
		}
	}
	// The root of the FS, and a folder without weights (a folder named like
	// a weights file does not count).
	w, err := FindWeightsFS(fstest.MapFS{"model.safetensors": {}}, ".", false)
	require.NoError(t, err)
	require.Equal(t, []string{"model.safetensors"}, w.Files)
	_, err = FindWeightsFS(fstest.MapFS{"vae/config.json": {}, "vae/model.safetensors/x": {}}, "vae", false)
	require.ErrorContains(t, err, "nn: vae holds no weight files: looked for diffusion_pytorch_model.safetensors, model.safetensors")
}

// TestParseSafetensorsSource: a Source over a file's bytes holds what
// OpenSafetensors reads from the file, builds the same layer, and Close
// leaves its tensors valid.
func TestParseSafetensorsSource(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.safetensors")
	params := []Param{
		{"l.weight", tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 3, 2).To(tensor.F16)},
		{"l.bias", tensor.FromFloat32([]float32{-1, 0.5, 7}, 3).To(tensor.F16)},
	}
	require.NoError(t, SaveSafetensors(p, params, nil))
	buf, err := os.ReadFile(p)
	require.NoError(t, err)
	file, err := OpenSafetensors(p)
	require.NoError(t, err)
	defer file.Close()
	mem, err := ParseSafetensors("m.safetensors", buf)
	require.NoError(t, err)
	require.Equal(t, file.Keys(), mem.Keys())
	for _, k := range file.Keys() {
		fdt, fsh, _ := file.Info(k)
		mdt, msh, ok := mem.Info(k)
		require.True(t, ok)
		require.Equal(t, fdt, mdt)
		require.Equal(t, fsh, msh)
	}
	build := func(src Source) *Linear {
		l, _, err := Build(src, 0, tensor.F16, func(b *Builder, _ int) (*Linear, error) {
			return NewLinear(b.Sub("l"), 2, 3, true), nil
		})
		require.NoError(t, err)
		return l
	}
	lf, lm := build(file), build(mem)
	require.Equal(t, lf.Weight.HalfData(), lm.Weight.HalfData())
	require.Equal(t, lf.Bias.HalfData(), lm.Bias.HalfData())
	require.NoError(t, mem.Close())
	require.Equal(t, []float32{-1, 0.5, 7}, lm.Bias.Float32s())

	_, err = ParseSafetensors("unet/diffusion_pytorch_model.safetensors", buf[:len(buf)-1])
	require.ErrorContains(t, err, "unet/diffusion_pytorch_model.safetensors")
	require.ErrorContains(t, err, "nn: ")
}

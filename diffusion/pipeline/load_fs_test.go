package pipeline

import (
	"context"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// writeTinyFolder writes the random tiny model (F16 safetensors) as a
// diffusers folder and returns it.
func writeTinyFolder(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	require.NoError(t, WriteRandom(dir, "tiny", 11, tensor.F16))
	return dir
}

// mapFSOf returns every file of dir as a MapFS (copies of the bytes).
func mapFSOf(t *testing.T, dir string) fstest.MapFS {
	t.Helper()
	m := fstest.MapFS{}
	require.NoError(t, fs.WalkDir(os.DirFS(dir), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(os.DirFS(dir), p)
		m[p] = &fstest.MapFile{Data: data}
		return err
	}))
	return m
}

// clone returns a copy of m sharing the files' data.
func cloneFS(m fstest.MapFS) fstest.MapFS {
	c := fstest.MapFS{}
	for k, v := range m {
		c[k] = v
	}
	return c
}

// requireSameBits asserts that two tensors hold the same values in the same
// dtype, bit for bit.
func requireSameBits(t *testing.T, what string, got, want *tensor.Tensor) {
	t.Helper()
	require.Equal(t, want.DType(), got.DType(), what)
	require.True(t, want.Shape().Equal(got.Shape()), what)
	g, w := got.Float32s(), want.Float32s()
	for i := range w {
		if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
			t.Fatalf("%s: element %d is %v, want %v (bit for bit)", what, i, g[i], w[i])
		}
	}
}

// requireSameWeights compares a few weights of every component.
func requireSameWeights(t *testing.T, got, want *Pipeline) {
	t.Helper()
	requireSameBits(t, "token_embedding", got.TextEncoder.TokenEmbedding.Weight, want.TextEncoder.TokenEmbedding.Weight)
	requireSameBits(t, "final_layer_norm", got.TextEncoder.FinalLayerNorm.Weight, want.TextEncoder.FinalLayerNorm.Weight)
	requireSameBits(t, "conv_in", got.UNet.ConvIn.Weight, want.UNet.ConvIn.Weight)
	requireSameBits(t, "conv_out", got.UNet.ConvOut.Weight, want.UNet.ConvOut.Weight)
	requireSameBits(t, "post_quant_conv", got.VAE.PostQuantConv.Weight, want.VAE.PostQuantConv.Weight)
}

// tinyRequest is a short generation of the tiny model.
var tinyRequest = Request{Prompt: "a small effusion", Negative: "blur", Guidance: 5, Steps: 3, Height: 64, Width: 64, Seed: 42, Scheduler: "ddim"}

// TestLoadFSMatchesLoad: the tiny model loaded from its folder, from
// os.DirFS of the folder and from a MapFS of its files has the same weights,
// generates bit-identical images and has the same model hash.
func TestLoadFSMatchesLoad(t *testing.T) {
	dir := writeTinyFolder(t)
	disk, err := Load(dir, Options{})
	require.NoError(t, err)
	defer disk.Close()
	want, err := disk.Txt2Img(context.Background(), tinyRequest)
	require.NoError(t, err)
	wantHash, err := HashFolder(dir)
	require.NoError(t, err)
	require.Equal(t, wantHash[:12], disk.ModelHash())

	for name, fsys := range map[string]fs.FS{"DirFS": os.DirFS(dir), "MapFS": mapFSOf(t, dir)} {
		p, err := LoadFS(fsys, Options{})
		require.NoError(t, err, name)
		require.Empty(t, p.Path, name)
		require.Equal(t, tensor.CPU, p.Device)
		require.Equal(t, tensor.F16, p.UNet.ConvIn.Weight.DType(), "%s: F16 files -> F16 weights", name)
		requireSameWeights(t, p, disk)
		require.Equal(t, disk.SchedulerName, p.SchedulerName)
		require.Equal(t, disk.SchedulerJSON, p.SchedulerJSON)
		require.Equal(t, disk.Tokenizer.VocabSize(), p.Tokenizer.VocabSize())
		got, err := p.Txt2Img(context.Background(), tinyRequest)
		require.NoError(t, err, name)
		require.Len(t, got.Images, 1)
		require.Equal(t, want.Images[0].Pix, got.Images[0].Pix, "%s: pixels", name)
		require.Equal(t, disk.ModelHash(), p.ModelHash(), "%s: same files, same hash", name)
		require.Equal(t, disk.ModelHash(), got.ModelHash)
		require.Equal(t, EmbeddedName, got.ModelName)
		sum, err := HashFS(fsys)
		require.NoError(t, err)
		require.Equal(t, wantHash, sum)
		require.NoError(t, p.Close())
		require.NoError(t, p.Close(), "a second Close is fine")
	}
	named, err := LoadFS(os.DirFS(dir), Options{Name: "phantom-demo"})
	require.NoError(t, err)
	res, err := named.Txt2Img(context.Background(), tinyRequest)
	require.NoError(t, err)
	require.Equal(t, "phantom-demo", res.ModelName, "Options.Name names a LoadFS model")
	require.NoError(t, named.Close())

	// Options: a dtype, the prediction type, a scheduler, the tokenizer from
	// disk (the FS then needs none).
	noTok := mapFSOf(t, dir)
	for k := range noTok {
		if strings.HasPrefix(k, "tokenizer/") {
			delete(noTok, k)
		}
	}
	o := Options{DType: "f32", Prediction: "v_prediction", Scheduler: "euler", Tokenizer: filepath.Join(dir, "tokenizer")}
	d32, err := Load(dir, o)
	require.NoError(t, err)
	defer d32.Close()
	m32, err := LoadFS(noTok, o)
	require.NoError(t, err)
	defer m32.Close()
	require.Equal(t, tensor.F32, m32.UNet.ConvIn.Weight.DType())
	requireSameWeights(t, m32, d32)
	require.Equal(t, d32.SchedulerJSON, m32.SchedulerJSON)
	require.Contains(t, string(m32.SchedulerJSON), `"v_prediction"`)
	require.Equal(t, d32.SchedulerName, m32.SchedulerName)
	_, err = LoadFS(noTok, Options{})
	require.ErrorContains(t, err, "pipeline: the fs.FS is not a diffusers Stable Diffusion folder: missing tokenizer/vocab.json, tokenizer/merges.txt")
}

// TestHashFolderSymlink: a model folder reached through a symbolic link has
// the hash of its target (the walk starts at the link's target).
func TestHashFolderSymlink(t *testing.T) {
	dir := writeTinyFolder(t)
	link := filepath.Join(t.TempDir(), "link")
	require.NoError(t, os.Symlink(dir, link))
	want, err := HashFolder(dir)
	require.NoError(t, err)
	got, err := HashFolder(link)
	require.NoError(t, err)
	require.Equal(t, want, got)
	_, err = HashFolder("")
	require.ErrorContains(t, err, "no folder given")
	_, err = HashFolder(filepath.Join(dir, "nope"))
	require.ErrorContains(t, err, "pipeline: hashing "+filepath.Join(dir, "nope"))
}

// TestLoadFSVariants: with both a full-precision (F32) and an .fp16 weights
// file, LoadFS picks the file Load picks for each dtype option.
func TestLoadFSVariants(t *testing.T) {
	dir := writeTinyFolder(t)
	// unet/: the F16 file becomes the .fp16 variant, an F32 copy the full one.
	unetDir := filepath.Join(dir, "unet")
	full := filepath.Join(unetDir, "diffusion_pytorch_model.safetensors")
	a, err := tensor.LoadSafetensors(full)
	require.NoError(t, err)
	f32 := map[string]*tensor.Tensor{}
	for _, n := range a.Names() {
		x, err := a.Get(n)
		require.NoError(t, err)
		// Shift the values so that the file read is seen in the weights.
		f32[n] = x.To(tensor.F32).Affine(1, 1.0/1024)
	}
	require.NoError(t, a.Close())
	require.NoError(t, os.Rename(full, filepath.Join(unetDir, "diffusion_pytorch_model.fp16.safetensors")))
	require.NoError(t, tensor.SaveSafetensors(full, f32, nil))
	mfs := mapFSOf(t, dir)

	for _, c := range []struct {
		dtype string
		want  tensor.DType
	}{{"", tensor.F32}, {"f16", tensor.F16}, {"bf16", tensor.BF16}, {"f32", tensor.F32}} {
		d, err := Load(dir, Options{DType: c.dtype})
		require.NoError(t, err, c.dtype)
		m, err := LoadFS(mfs, Options{DType: c.dtype})
		require.NoError(t, err, c.dtype)
		require.Equal(t, c.want, m.UNet.ConvIn.Weight.DType(), "dtype %q", c.dtype)
		requireSameWeights(t, m, d)
		require.NoError(t, d.Close())
		require.NoError(t, m.Close())
	}
}

// TestLoadFSWarnings: problems loading works around reach Options.Warn as
// with Load (position_ids stored out of order).
func TestLoadFSWarnings(t *testing.T) {
	dir := writeTinyFolder(t)
	path := filepath.Join(dir, "text_encoder", "model.safetensors")
	a, err := tensor.LoadSafetensors(path)
	require.NoError(t, err)
	ts := map[string]*tensor.Tensor{}
	for _, n := range a.Names() {
		x, err := a.Get(n)
		require.NoError(t, err)
		ts[n] = x.Clone()
	}
	require.NoError(t, a.Close())
	pos := make([]float32, 77)
	for i := range pos {
		pos[i] = float32(i)
	}
	pos[3], pos[4] = 4, 3
	ts["text_model.embeddings.position_ids"] = tensor.FromFloat32(pos, 1, 77).To(tensor.F16)
	require.NoError(t, tensor.SaveSafetensors(path, ts, nil))

	var diskWarn, fsWarn []string
	d, err := Load(dir, Options{Warn: func(m string) { diskWarn = append(diskWarn, m) }})
	require.NoError(t, err)
	defer d.Close()
	m, err := LoadFS(mapFSOf(t, dir), Options{Warn: func(m string) { fsWarn = append(fsWarn, m) }})
	require.NoError(t, err)
	defer m.Close()
	require.Len(t, fsWarn, 1)
	require.Contains(t, fsWarn[0], "text_model.embeddings.position_ids is not 0..76 in order")
	require.Equal(t, diskWarn, fsWarn)
	require.NotNil(t, m.Warn)
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5}, m.TextEncoder.PositionIDs.Int64s()[:6])
}

// TestLoadFSDevice: Options.Device moves the pipeline as Load does; it
// generates what the folder does there.
func TestLoadFSDevice(t *testing.T) {
	dir := writeTinyFolder(t)
	o := Options{Device: "sim", Compute: "f32"}
	d, err := Load(dir, o)
	require.NoError(t, err)
	defer d.Close()
	m, err := LoadFS(os.DirFS(dir), o)
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, d.Device, m.Device)
	require.NotEqual(t, tensor.CPU, m.Device)
	require.Equal(t, m.Device, m.UNet.ConvIn.Weight.Device())
	req := tinyRequest
	req.Steps = 2
	want, err := d.Txt2Img(context.Background(), req)
	require.NoError(t, err)
	got, err := m.Txt2Img(context.Background(), req)
	require.NoError(t, err)
	require.Equal(t, want.Images[0].Pix, got.Images[0].Pix)
	require.NoError(t, m.Close())
	require.Equal(t, tensor.CPU, m.Device, "Close gave the device memory back")
}

// TestLoadFSErrors: each broken model is a clear error, never a panic.
func TestLoadFSErrors(t *testing.T) {
	base := mapFSOf(t, writeTinyFolder(t))
	weights := base["unet/diffusion_pytorch_model.safetensors"].Data
	vaeWeights := base["vae/diffusion_pytorch_model.safetensors"].Data
	edit := func(f func(m fstest.MapFS)) fstest.MapFS {
		m := cloneFS(base)
		f(m)
		return m
	}
	without := func(prefix string) fstest.MapFS {
		return edit(func(m fstest.MapFS) {
			for k := range m {
				if strings.HasPrefix(k, prefix) {
					delete(m, k)
				}
			}
		})
	}
	set := func(name string, data []byte) fstest.MapFS {
		return edit(func(m fstest.MapFS) { m[name] = &fstest.MapFile{Data: data} })
	}
	unetConfig := string(base["unet/config.json"].Data)
	require.Contains(t, unetConfig, `"block_out_channels": [32, 64]`)

	for _, c := range []struct {
		name string
		fsys fs.FS
		o    Options
		want []string
	}{
		{"nil", nil, Options{}, []string{"pipeline: LoadFS: no file system given"}},
		{"no model_index.json", without("model_index.json"), Options{},
			[]string{"pipeline: the fs.FS is not a diffusers Stable Diffusion folder: missing model_index.json"}},
		{"no unet folder", without("unet/"), Options{},
			[]string{"not a diffusers Stable Diffusion folder: missing unet/config.json"}},
		{"no unet weights", without("unet/diffusion_pytorch_model"), Options{},
			[]string{"pipeline: the fs.FS: weights missing: nn: unet holds no weight files: looked for diffusion_pytorch_model.safetensors"}},
		{"model_index.json not JSON", set("model_index.json", []byte("[")), Options{},
			[]string{"pipeline: model_index.json is not a JSON object"}},
		{"SDXL", set("model_index.json", []byte(`{"_class_name": "StableDiffusionXLPipeline"}`)), Options{},
			[]string{"holds a StableDiffusionXLPipeline; expected a StableDiffusionPipeline"}},
		{"other component class", set("model_index.json", []byte(`{"vae": ["diffusers", "AutoencoderTiny"]}`)), Options{},
			[]string{"pipeline: model_index.json: unsupported components: vae is AutoencoderTiny (want AutoencoderKL)"}},
		{"truncated weights", set("unet/diffusion_pytorch_model.safetensors", weights[:len(weights)-3]), Options{},
			[]string{"pipeline: unet: ", "(in unet/diffusion_pytorch_model.safetensors)"}},
		{"weights cut in the header", set("vae/diffusion_pytorch_model.safetensors", vaeWeights[:100]), Options{},
			[]string{"pipeline: vae: ", "header length", "(in vae/diffusion_pytorch_model.safetensors)"}},
		{"weights too short", set("vae/diffusion_pytorch_model.safetensors", vaeWeights[:5]), Options{},
			[]string{"pipeline: vae: file is 5 bytes, shorter than the 8-byte header length (in vae/diffusion_pytorch_model.safetensors)"}},
		{"corrupt header", set("unet/diffusion_pytorch_model.safetensors", append(append([]byte(nil), weights[:8]...), make([]byte, len(weights)-8)...)), Options{},
			[]string{"pipeline: unet: ", "(in unet/diffusion_pytorch_model.safetensors)"}},
		{"wrong shapes", set("unet/config.json", []byte(strings.Replace(unetConfig, `"block_out_channels": [32, 64]`, `"block_out_channels": [32, 96]`, 1))), Options{},
			[]string{"pipeline: unet: unet/diffusion_pytorch_model.safetensors: parameters do not match the model", "down_blocks.1.resnets.0.conv1.weight"}},
		{"bad unet config", set("unet/config.json", []byte(`{"block_out_channels": "wide"}`)), Options{},
			[]string{"pipeline: unet: unet/config.json: config: json: cannot unmarshal"}},
		{"bad text config", set("text_encoder/config.json", []byte(`{"hidden_size": 30, "num_attention_heads": 4}`)), Options{},
			[]string{"pipeline: text encoder: text_encoder/config.json: text config: hidden_size 30 is not a multiple of num_attention_heads 4"}},
		{"bad scheduler config", set("scheduler/scheduler_config.json", []byte(`{"_class_name": "NoScheduler"}`)), Options{},
			[]string{"pipeline: scheduler/scheduler_config.json"}},
		{"no merges", without("tokenizer/merges.txt"), Options{},
			[]string{"missing tokenizer/merges.txt"}},
		{".bin only", edit(func(m fstest.MapFS) {
			delete(m, "vae/diffusion_pytorch_model.safetensors")
			m["vae/diffusion_pytorch_model.bin"] = &fstest.MapFile{Data: []byte("PK")}
		}), Options{}, []string{"pipeline: vae: vae/diffusion_pytorch_model.bin is a PyTorch .bin file, but only single safetensors files are read from an fs.FS; expected vae/diffusion_pytorch_model.safetensors or vae/model.safetensors"}},
		{"sharded", edit(func(m fstest.MapFS) {
			delete(m, "text_encoder/model.safetensors")
			m["text_encoder/model.safetensors.index.json"] = &fstest.MapFile{Data: []byte(`{"weight_map": {}}`)}
		}), Options{}, []string{"pipeline: text encoder: text_encoder/model.safetensors.index.json is the index of a sharded checkpoint, but only single safetensors files are read from an fs.FS"}},
		{"config folder", base, Options{ConfigDir: "/some/configs"}, []string{"a config folder (/some/configs) applies only to single-file checkpoints"}},
		{"dtype", base, Options{DType: "f8"}, []string{`dtype "f8" is not known`}},
		{"prediction", base, Options{Prediction: "noise"}, []string{`prediction type "noise" is not known`}},
		{"device", base, Options{Device: "tpu"}, []string{"unknown device"}},
		{"tokenizer folder", base, Options{Tokenizer: filepath.Join(t.TempDir(), "none")}, []string{"pipeline: tokenizer: ", "vocab.json is missing"}},
	} {
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%s: panic: %v", c.name, r)
				}
			}()
			var p *Pipeline
			p, err = LoadFS(c.fsys, c.o)
			require.Nil(t, p, c.name)
		}()
		require.Error(t, err, c.name)
		t.Logf("%s: %v", c.name, err)
		for _, w := range c.want {
			require.ErrorContains(t, err, w, c.name)
		}
	}

	// Every truncation of a weights file is an error, not a panic.
	for _, n := range []int{0, 7, 8, 9, 64, len(vaeWeights) / 2, len(vaeWeights) - 1} {
		_, err := LoadFS(set("vae/diffusion_pytorch_model.safetensors", vaeWeights[:n]), Options{})
		require.ErrorContains(t, err, "vae/diffusion_pytorch_model.safetensors", "truncated to %d bytes", n)
	}
}

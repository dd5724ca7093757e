package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"encoding/binary"
	"github.com/roentgo/roentgo/diffusion"
	"github.com/roentgo/roentgo/internal/torchzip"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
	"github.com/x448/float16"
)

// ddimFinal runs the golden txt2img ddim_4steps case on p and returns the
// final latents and the image's pixels.
func ddimFinal(t *testing.T, p *Pipeline) ([]float32, []uint8) {
	t.Helper()
	c := goldenCases(t)["ddim_4steps"]
	require.NotEmpty(t, c.Prompt)
	var final []float32
	req := Request{
		Prompt: c.Prompt, Negative: c.NegativePrompt, Guidance: c.GuidanceScale,
		Steps: c.Steps, Height: c.Height, Width: c.Width, Seed: c.Seed, Scheduler: "ddim",
		trace: &trace{final: func(l, _ *tensor.Tensor) { final = l.Float32s() }},
	}
	res, err := p.Txt2Img(context.Background(), req)
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	return final, res.Images[0].Pix
}

// requireBits asserts that got and want hold the same float32 bit patterns.
func requireBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	require.Equal(t, len(want), len(got), what)
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %v, want %v (bit for bit)", what, i, got[i], want[i])
		}
	}
}

// checkAgainstFolder checks that p gives the golden diffusers folder's
// ddim_4steps final latents (which TestGoldenTxt2Img compares with
// diffusers') and image bit for bit.
func checkAgainstFolder(t *testing.T, p *Pipeline) {
	t.Helper()
	wantLat, wantPix := ddimFinal(t, loadGolden(t))
	// The folder run itself must match diffusers' final latents.
	golden, _ := readNpy(t, "txt2img/ddim_4steps/final_latents.npy")
	closeTo(t, "folder final_latents", wantLat, golden, 1e-4*maxAbs(golden), 1e-4)
	gotLat, gotPix := ddimFinal(t, p)
	requireBits(t, "final latents", gotLat, wantLat)
	require.Equal(t, wantPix, gotPix, "image")
}

func sha256File(t *testing.T, path string) string {
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// TestLoadSingleFileGolden: the golden tiny model's single-file checkpoint
// (safetensors, and the same tensors written as a Lightning-style .ckpt)
// with the configs of the golden diffusers folder gives the folder's
// ddim_4steps result bit for bit.
func TestLoadSingleFileGolden(t *testing.T) {
	folder := goldenModel(t)
	single := filepath.Join(goldenDir, "model", "tiny-sd1-fp32.safetensors")
	ckpt := filepath.Join(t.TempDir(), "tiny-sd1-fp32.ckpt")
	require.NoError(t, torchzip.FromSafetensors(single, ckpt, true))
	for _, path := range []string{single, ckpt} {
		t.Run(filepath.Ext(path), func(t *testing.T) {
			p, err := Load(path, Options{ConfigDir: folder})
			require.NoError(t, err)
			defer p.Close()
			require.Equal(t, path, p.Path)
			require.Equal(t, "pndm", p.SchedulerName, "ConfigDir's scheduler")
			require.Equal(t, tensor.F32, p.UNet.ConvIn.Weight.DType(), "stored dtype")
			checkAgainstFolder(t, p)
			require.Equal(t, sha256File(t, path)[:12], p.ModelHash())
		})
	}

	// An explicit tokenizer, a scheduler override and a prediction override.
	p, err := Load(single, Options{ConfigDir: folder, Tokenizer: filepath.Join(folder, "tokenizer"), Scheduler: "ddim", Prediction: "v_prediction", DType: "f16"})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, "ddim", p.SchedulerName)
	require.Equal(t, tensor.F16, p.UNet.ConvIn.Weight.DType())
	c, err := p.SchedulerConfig("euler")
	require.NoError(t, err)
	require.Equal(t, diffusion.VPrediction, c.PredictionType)
}

// TestLoadSingleFileErrors: the one-line errors of single-file loads.
func TestLoadSingleFileErrors(t *testing.T) {
	tmp := t.TempDir()
	notCkpt := filepath.Join(tmp, "notes.safetensors")
	require.NoError(t, os.WriteFile(notCkpt, []byte("these are not weights\n"), 0o644))
	_, err := Load(notCkpt, Options{Tokenizer: tmp})
	require.ErrorContains(t, err, "is neither a diffusers folder nor a single-file Stable Diffusion checkpoint")
	require.NotContains(t, err.Error(), "\n")

	_, err = Load(tmp, Options{ConfigDir: tmp})
	require.ErrorContains(t, err, "applies only to single-file checkpoints")
	_, err = Load(tmp, Options{Prediction: "x0"})
	require.ErrorContains(t, err, `prediction type "x0" is not known; expected epsilon, v_prediction, sample`)

	folder := goldenModel(t)
	single := filepath.Join(goldenDir, "model", "tiny-sd1-fp32.safetensors")
	_, err = Load(single, Options{})
	require.ErrorContains(t, err, "single-file checkpoint, which holds no tokenizer; pass a tokenizer folder")
	require.ErrorContains(t, err, "-tokenizer DIR")
	_, err = Load(single, Options{ConfigDir: tmp})
	require.ErrorContains(t, err, "holds none of unet/config.json")

	// A diffusers component's weights are not a single-file checkpoint.
	_, err = Load(filepath.Join(folder, "unet", "diffusion_pytorch_model.safetensors"), Options{Tokenizer: filepath.Join(folder, "tokenizer")})
	require.ErrorContains(t, err, "holds no text encoder weights")

	// Without ConfigDir the tiny file's weights do not fit SD 1.5's sizes:
	// one line asks for the configs.
	_, err = Load(single, Options{Tokenizer: filepath.Join(folder, "tokenizer")})
	require.ErrorContains(t, err, "the text encoder hidden size is 32, not the standard SD1's 768; for a non-standard architecture pass its diffusers configs with -config DIR")
	require.NotContains(t, err.Error(), "\n")
}

// copyTree copies the files of src whose names pass keep into dst.
func copyTree(t *testing.T, src, dst string, keep func(rel string) bool) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil || !keep(rel) {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	}))
}

// TestLoadBinFolder: a diffusers folder whose components hold only PyTorch
// .bin weights (the golden folder's tensors written by internal/torchzip)
// gives the safetensors folder's result bit for bit; a component without
// weights is reported before anything loads.
func TestLoadBinFolder(t *testing.T) {
	folder := goldenModel(t)
	dir := filepath.Join(t.TempDir(), "bin")
	copyTree(t, folder, dir, func(rel string) bool { return !strings.HasSuffix(rel, ".safetensors") })
	for comp, base := range map[string]string{"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model"} {
		bin := base + ".bin"
		if comp == "text_encoder" {
			bin = "pytorch_model.bin"
		}
		require.NoError(t, torchzip.FromSafetensors(filepath.Join(folder, comp, base+".safetensors"), filepath.Join(dir, comp, bin), false))
	}
	p, err := Load(dir, Options{})
	require.NoError(t, err)
	defer p.Close()
	require.Equal(t, tensor.F32, p.UNet.ConvIn.Weight.DType(), "stored dtype")
	checkAgainstFolder(t, p)

	require.NoError(t, os.Remove(filepath.Join(dir, "vae", "diffusion_pytorch_model.bin")))
	_, err = Load(dir, Options{})
	require.ErrorContains(t, err, "weights missing")
	require.ErrorContains(t, err, "vae")
}

// TestSingleFileFloatPositionIDs: a half-precision single-file checkpoint
// (diffusers' convert script with --half stores position_ids as F16) loads,
// and damaged float position_ids (75.9999 for 76) load with a warning passed
// to Options.Warn; both give the folder's ddim_4steps result.
func TestSingleFileFloatPositionIDs(t *testing.T) {
	folder := goldenModel(t)
	single := filepath.Join(goldenDir, "model", "tiny-sd1-fp32.safetensors")
	const key = "cond_stage_model.transformer.text_model.embeddings.position_ids"
	rewrite := func(dt safetensors.DType, vals func(i int) float32) string {
		f, err := safetensors.Open(single)
		require.NoError(t, err)
		defer f.Close()
		var ts []safetensors.TensorInfo
		for _, name := range f.Names() {
			ti, _ := f.Get(name)
			if name == key {
				n := ti.NumElements()
				ti.DType = dt
				ti.Data = make([]byte, 0, 4*n)
				for i := 0; i < n; i++ {
					v := vals(i)
					if dt == "F16" {
						h := float16.Fromfloat32(v)
						ti.Data = append(ti.Data, byte(h), byte(h>>8))
					} else {
						ti.Data = binary.LittleEndian.AppendUint32(ti.Data, math.Float32bits(v))
					}
				}
			}
			ts = append(ts, ti)
		}
		out := filepath.Join(t.TempDir(), "model.safetensors")
		require.NoError(t, safetensors.WriteFile(out, ts, nil))
		return out
	}
	for _, c := range []struct {
		name string
		path string
		warn bool
	}{
		{"f16 exact", rewrite("F16", func(i int) float32 { return float32(i) }), false},
		{"f32 off", rewrite("F32", func(i int) float32 {
			if i == 76 {
				return 75.9999
			}
			return float32(i)
		}), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var warnings []string
			p, err := Load(c.path, Options{ConfigDir: folder, Warn: func(m string) { warnings = append(warnings, m) }})
			require.NoError(t, err)
			defer p.Close()
			if c.warn {
				require.Len(t, warnings, 1)
				require.Contains(t, warnings[0], "position_ids")
			} else {
				require.Empty(t, warnings)
			}
			checkAgainstFolder(t, p)
		})
	}
}

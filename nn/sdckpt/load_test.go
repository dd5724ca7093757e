package sdckpt

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/torchzip"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

func tensorBytes(x *tensor.Tensor) []byte {
	var b bytes.Buffer
	for _, v := range x.Float32s() {
		u := math.Float32bits(v)
		b.Write([]byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)})
	}
	return b.Bytes()
}

// TestOpenGolden opens the golden single file as safetensors and as a .ckpt
// and compares every tensor of every component Source with the diffusers
// folder, bit for bit.
func TestOpenGolden(t *testing.T) {
	golden := goldenModel(t)
	single := filepath.Join(golden, "tiny-sd1-fp32.safetensors")
	ckpt := filepath.Join(t.TempDir(), "tiny.ckpt")
	require.NoError(t, torchzip.FromSafetensors(single, ckpt, true))
	folders := map[string]string{
		UNet:        filepath.Join(golden, "diffusers/unet/diffusion_pytorch_model.safetensors"),
		VAE:         filepath.Join(golden, "diffusers/vae/diffusion_pytorch_model.safetensors"),
		TextEncoder: filepath.Join(golden, "diffusers/text_encoder/model.safetensors"),
	}
	for _, path := range []string{single, ckpt} {
		ck, err := Open(path, nil)
		require.NoError(t, err)
		require.Equal(t, SD1, ck.Variant)
		// Sizes inferred from the keys, as in the folders' config.json files.
		require.Equal(t, [4]int{2, 2, 2, 1}, [4]int{ck.Config.UNetBlocks, ck.Config.UNetLayersPerBlock, ck.Config.VAEBlocks, ck.Config.VAELayersPerBlock})
		require.Contains(t, ck.Report(), "SD1 layout")
		require.Contains(t, ck.Report(), "0 ignored, 0 unmapped")
		for comp, f := range folders {
			want, err := nn.OpenSafetensors(f)
			require.NoError(t, err)
			src := ck.Source(comp)
			require.True(t, ck.Has(comp))
			require.Equal(t, want.Keys(), src.Keys(), comp)
			for _, k := range want.Keys() {
				wdt, wsh, _ := want.Info(k)
				dt, sh, ok := src.Info(k)
				require.True(t, ok)
				require.Equal(t, wdt, dt, k)
				require.Equal(t, wsh, sh, k)
				w, err := want.Load(k)
				require.NoError(t, err)
				g, err := src.Load(k)
				require.NoError(t, err)
				require.Equal(t, w.Shape(), g.Shape(), k)
				require.Equal(t, w.DType(), g.DType(), k)
				if w.DType() == tensor.I64 {
					require.Equal(t, w.Int64s(), g.Int64s(), k)
				} else {
					require.True(t, bytes.Equal(tensorBytes(w), tensorBytes(g)), "%s/%s differs", comp, k)
				}
				g2, _ := src.Load(k)
				require.Same(t, g, g2)
			}
			_, _, ok := src.Info("nope")
			require.False(t, ok)
			_, err = src.Load("nope")
			require.Error(t, err)
			want.Close()
		}
		require.Panics(t, func() { ck.Source("tokenizer") })
		require.NoError(t, ck.Close())
	}
}

// TestSD2Checkpoint: OpenCLIP's fused in_proj is split into q, k, v (hand
// values), layers past TextLayers and the projection are ignored and
// reported, the variant is SD2.
func TestSD2Checkpoint(t *testing.T) {
	const d = 2
	inW := make([]float32, 3*d*d) // rows 0-1 q, 2-3 k, 4-5 v
	for i := range inW {
		inW[i] = float32(i)
	}
	pre := "cond_stage_model.model."
	src := nn.MapSource{
		pre + "transformer.resblocks.0.attn.in_proj_weight": tensor.FromFloat32(inW, 3*d, d),
		pre + "transformer.resblocks.0.attn.in_proj_bias":   tensor.FromFloat32([]float32{10, 11, 20, 21, 30, 31}, 3*d),
		pre + "transformer.resblocks.1.ln_1.weight":         tensor.FromFloat32([]float32{1, 1}, d),
		pre + "text_projection":                             tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, d, 3),
		pre + "logit_scale":                                 tensor.FromFloat32([]float32{4.6}, 1),
		"alphas_cumprod":                                    tensor.FromFloat32([]float32{0.9}, 1),
		"something.else":                                    tensor.FromFloat32([]float32{0}, 1),
	}
	ck, err := NewCheckpoint(src, nil)
	require.NoError(t, err)
	require.Equal(t, SD2, ck.Variant)
	require.Equal(t, 23, ck.Config.TextLayers)
	cfg := ck.Config
	cfg.TextLayers = 1
	ck, err = NewCheckpoint(src, &cfg)
	require.NoError(t, err)
	te := ck.Source(TextEncoder)
	require.False(t, ck.Has(UNet))
	p := "text_model.encoder.layers.0.self_attn."
	require.Equal(t, []string{p + "k_proj.bias", p + "k_proj.weight", p + "q_proj.bias", p + "q_proj.weight", p + "v_proj.bias", p + "v_proj.weight"}, te.Keys())
	for i, name := range []string{"q_proj", "k_proj", "v_proj"} {
		w, err := te.Load(p + name + ".weight")
		require.NoError(t, err)
		require.Equal(t, tensor.Shape{d, d}, w.Shape())
		require.Equal(t, inW[i*d*d:(i+1)*d*d], w.Float32s(), name)
		_, sh, _ := te.Info(p + name + ".weight")
		require.Equal(t, []int{d, d}, sh)
		b, err := te.Load(p + name + ".bias")
		require.NoError(t, err)
		require.Equal(t, []float32{float32(10*(i+1) + 0), float32(10*(i+1) + 1)}, b.Float32s(), name)
	}
	rep := ck.Report()
	require.Contains(t, rep, "SD2 layout")
	require.Contains(t, rep, "text layer 1 beyond the encoder's 1 layers")
	require.Contains(t, rep, "unmapped 1: something.else")
	require.Contains(t, rep, "DDPM schedule buffer")

	// With the projection kept, it is transposed (hand values).
	cfg.TextProjection = true
	ck, err = NewCheckpoint(src, &cfg)
	require.NoError(t, err)
	pr, err := ck.Source(TextEncoder).Load("text_projection.weight")
	require.NoError(t, err)
	require.Equal(t, tensor.Shape{3, d}, pr.Shape())
	require.Equal(t, []float32{1, 4, 2, 5, 3, 6}, pr.Float32s())
	_, sh, _ := ck.Source(TextEncoder).Info("text_projection.weight")
	require.Equal(t, []int{3, d}, sh)

	// Missing-weights errors name the component.
	require.ErrorContains(t, ck.MissingError(UNet, []string{"conv_in.weight"}), "holds no unet weights (no model.diffusion_model.* keys)")
	require.ErrorContains(t, ck.MissingError(TextEncoder, []string{"z", "a"}), "lacks 2 text_encoder weights, e.g. a, z")

	// Both text encoder layouts at once.
	src["cond_stage_model.transformer.text_model.final_layer_norm.weight"] = tensor.FromFloat32([]float32{1, 1}, d)
	_, err = NewCheckpoint(src, nil)
	require.ErrorContains(t, err, "both")
}

// TestInferConfigSD1 infers the SD 1.x sizes from the real-size key lists.
func TestInferConfigSD1(t *testing.T) {
	keys := append(ldmUNetSD1(), ldmVAESD()...)
	keys = append(keys, "cond_stage_model.transformer.text_model.final_layer_norm.weight")
	v, err := DetectVariant(keys)
	require.NoError(t, err)
	require.Equal(t, SD1, v)
	c := InferConfig(keys, v)
	require.Equal(t, [4]int{4, 2, 4, 2}, [4]int{c.UNetBlocks, c.UNetLayersPerBlock, c.VAEBlocks, c.VAELayersPerBlock})
	m, err := Convert(keys, c)
	require.NoError(t, err)
	require.Empty(t, m.Unmapped)
	v, err = DetectVariant([]string{"model.diffusion_model.out.2.weight"})
	require.NoError(t, err)
	require.Equal(t, VariantUnknown, v)
	require.Equal(t, SD1Config().UNetBlocks, InferConfig(nil, v).UNetBlocks)
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := Open(filepath.Join(dir, "absent.safetensors"), nil)
	require.ErrorContains(t, err, "absent.safetensors")
	legacy := filepath.Join(dir, "old.ckpt")
	require.NoError(t, os.WriteFile(legacy, []byte("\x80\x02}q\x00."), 0o644))
	_, err = Open(legacy, nil)
	require.ErrorContains(t, err, "not a PyTorch zip checkpoint")
	junk := filepath.Join(dir, "junk.safetensors")
	require.NoError(t, os.WriteFile(junk, []byte("nonsense"), 0o644))
	_, err = Open(junk, nil)
	require.Error(t, err)
	// A mapping error names the file.
	bad := filepath.Join(dir, "bad.ckpt")
	require.NoError(t, torchzip.Write(bad, []torchzip.Tensor{{Name: "model.diffusion_model.input_blocks.99.0.in_layers.0.weight", DType: "F32", Shape: []int{1}, Data: make([]byte, 4)}}, true))
	_, err = Open(bad, &Config{})
	require.ErrorContains(t, err, "bad.ckpt")
}

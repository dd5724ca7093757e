package unet

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// Tolerances against diffusers (float32 on PyTorch's CPU). Both sides compute in
// float32 with different summation orders (im2col/GEMM tiling, blocked softmax,
// one-pass vs two-pass norms); over the ~40 layers of the tiny U-Net the
// rounding differences stay around 1e-6..1e-5 of values of order 1. The golden
// README states ~1e-4 relative; atol covers outputs near zero.
const (
	atol32 = 1e-4
	rtol32 = 1e-4
)

// Tolerances for F16 weights against the float32 reference. Rounding a weight
// to F16 perturbs it by up to 2^-11 relative (4.9e-4); these perturbations are
// independent across the K = 9*C terms of a convolution and partly cancel, so
// the output of the tiny U-Net (|out| <= 1.5) moves by about 1e-3 (measured:
// 8e-4). 5e-3 + 5e-3|r| leaves room for other weights and inputs while staying
// far below any structural error (a wrong head split or skip order moves
// outputs by > 0.1). The F16 arithmetic itself is checked exactly: F16 weights
// give the same result as F32 weights holding the F16-rounded values.
const (
	atol16 = 5e-3
	rtol16 = 5e-3
)

func loadTiny(t testing.TB, dt tensor.DType) *Model {
	t.Helper()
	m, err := Load(filepath.Join(goldenDir(t), "model", "diffusers"), dt)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// goldenTimesteps are the timesteps of unet/out.npy (index.json: unet.timesteps).
var goldenTimesteps = []float32{999, 500, 1}

func TestGoldenTinySD1(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	sample := readNpy(t, "unet/sample.npy")
	ehs := readNpy(t, "unet/encoder_hidden_states.npy")
	out := readNpy(t, "unet/out.npy") // [3, 2, 4, 16, 16]
	require.Equal(t, tensor.Shape{3, 2, 4, 16, 16}, out.Shape())

	// Intermediates at t = 999 localise a mismatch: compare each block output.
	inter := map[string]*tensor.Tensor{}
	m.hook = func(name string, x *tensor.Tensor) { inter[name] = x.Clone() }
	for i, ts := range goldenTimesteps {
		got := m.Forward(sample, tensor.Scalar(ts), ehs)
		want := out.Select(0, i)
		if i == 0 {
			m.hook = nil
			for _, name := range []string{"time_proj", "time_embedding", "conv_in", "down_blocks.0", "down_blocks.1", "mid_block", "up_blocks.0", "up_blocks.1"} {
				requireClose(t, inter[name], readNpy(t, "unet/intermediate_t999/"+name+".npy"), atol32, rtol32, name)
			}
			// Our conv_norm_out is fused with the SiLU that follows it (conv_act).
			norm := readNpy(t, "unet/intermediate_t999/conv_norm_out.npy")
			requireClose(t, inter["conv_act"], tensor.SiLU(norm), atol32, rtol32, "conv_norm_out+SiLU")
			requireClose(t, got, readNpy(t, "unet/intermediate_t999/conv_out.npy"), atol32, rtol32, "conv_out")
		}
		requireClose(t, got, want, atol32, rtol32, fmt.Sprintf("out t=%g", ts))
	}

	// A different timestep per batch row, as int64 like diffusers' test and as float32.
	want := readNpy(t, "unet/out_per_sample_t.npy").Select(0, 0) // [1, 2, 4, 16, 16]: one row pair [981, 1]
	requireClose(t, m.Forward(sample, tensor.FromFloat32([]float32{981, 1}, 2), ehs), want, atol32, rtol32, "out_per_sample_t (f32)")
	requireClose(t, m.Forward(sample, tensor.FromInt64([]int64{981, 1}, 2), ehs), want, atol32, rtol32, "out_per_sample_t (i64)")
}

func TestGoldenTinySD1F16(t *testing.T) {
	m16 := loadTiny(t, tensor.F16)
	sample := readNpy(t, "unet/sample.npy")
	ehs := readNpy(t, "unet/encoder_hidden_states.npy")
	out := readNpy(t, "unet/out.npy")
	got := m16.Forward(sample, tensor.Scalar(999), ehs)
	requireClose(t, got, out.Select(0, 0), atol16, rtol16, "F16 weights vs diffusers F32")

	// The F16 path computes what F32 computes with the rounded weights: build the
	// model from the F16-rounded values stored as F32 and compare tightly.
	src, err := nn.OpenSafetensors(filepath.Join(goldenDir(t), "model", "diffusers", "unet", "diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	defer src.Close()
	rounded := nn.MapSource{}
	for _, k := range src.Keys() {
		x, err := src.Load(k)
		require.NoError(t, err)
		rounded[k] = x.To(tensor.F16).To(tensor.F32)
	}
	b := nn.NewBuilder(rounded)
	mr, err := New(b, m16.Config)
	require.NoError(t, err)
	require.NoError(t, b.Check())
	requireClose(t, got, mr.Forward(sample, tensor.Scalar(999), ehs), atol32, rtol32, "F16 weights vs F32 with F16-rounded weights")
}

// TestGoldenTxt2ImgCalls replays every U-Net call of the golden DDIM pipeline run
// (32x32 latents, text-encoder states of a real prompt and a negative prompt).
func TestGoldenTxt2ImgCalls(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	in := readNpy(t, "txt2img/ddim_4steps/unet_input.npy")   // [4, 2, 4, 32, 32]
	out := readNpy(t, "txt2img/ddim_4steps/unet_output.npy") // [4, 2, 4, 32, 32]
	ts := readNpy(t, "txt2img/ddim_4steps/timesteps.npy")    // [4]: 751, 501, 251, 1
	ctx := readNpy(t, "txt2img/ddim_4steps/prompt_embeds.npy")
	require.Equal(t, []float32{751, 501, 251, 1}, ts.Float32s())
	for i := 0; i < ts.Dim(0); i++ {
		got := m.Forward(in.Select(0, i), ts.Narrow(0, i, 1), ctx)
		requireClose(t, got, out.Select(0, i), atol32, rtol32, fmt.Sprintf("call %d (t=%g)", i, ts.At(i)))
		got.Release()
	}
}

// The cases below come from scripts/golden_unet.py: a plain-torch U-Net that
// reproduces the diffusers golden outputs to 1.4e-6 before writing them.

// TestGoldenOddLatents runs the tiny-sd1 U-Net on 17x11 latents: the decoder's
// upsampler resizes 9x6 to the skip connections' 17x11 (diffusers'
// forward_upsample_size), not to 18x12.
func TestGoldenOddLatents(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	sample := readNpyPath(t, "testdata/odd/sample.npy") // [2, 4, 17, 11]
	ts := readNpyPath(t, "testdata/odd/timesteps.npy")  // [981, 1]
	ehs := readNpy(t, "unet/encoder_hidden_states.npy")
	got := m.Forward(sample, ts, ehs)
	requireClose(t, got, readNpyPath(t, "testdata/odd/out.npy"), atol32, rtol32, "17x11 latents")
}

// TestGoldenSD2Tiny checks the SD2 options (linear projections, a head count per
// block, another text width, three levels, mid_block_scale_factor 1.5,
// freq_shift 1, flip_sin_to_cos false) on a random U-Net stored as a diffusers
// .fp16 variant, loaded as F16 and as F32 (the reference used the same
// F16-rounded values), on 12x20 latents and on odd 10x14 ones.
func TestGoldenSD2Tiny(t *testing.T) {
	ctx := readNpyPath(t, "testdata/sd2tiny/ctx.npy") // [2, 7, 24]
	sample := readNpyPath(t, "testdata/sd2tiny/sample.npy")
	ts := readNpyPath(t, "testdata/sd2tiny/timesteps.npy")
	want := readNpyPath(t, "testdata/sd2tiny/out.npy")
	oddSample := readNpyPath(t, "testdata/sd2tiny/odd_sample.npy")
	oddWant := readNpyPath(t, "testdata/sd2tiny/odd_out.npy")
	for _, dt := range []tensor.DType{tensor.F16, tensor.F32} {
		m, err := Load("testdata/sd2tiny", dt)
		require.NoError(t, err)
		require.Equal(t, IntList{2, 4, 4}, m.Config.AttentionHeadDim)
		require.True(t, m.Config.UseLinearProjection)
		requireClose(t, m.Forward(sample, ts, ctx), want, atol32, rtol32, fmt.Sprintf("%v 12x20", dt))
		requireClose(t, m.Forward(oddSample, tensor.Scalar(333), ctx.Narrow(0, 0, 1)), oddWant, atol32, rtol32, fmt.Sprintf("%v 10x14", dt))
		require.NoError(t, m.Close())
	}
}

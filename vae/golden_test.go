package vae

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

// Tolerance against diffusers 0.16.1 (float32, CPU): activations are O(1)
// (|x| < 3), and our kernels sum in another order (blocked im2col products,
// one-pass GroupNorm statistics, a fused attention with an online softmax), a
// few float32 ulps per op that grow to ~1e-6 through the ~20 layers of the tiny
// VAE. 1e-4 relative plus 1e-5 absolute keeps a margin of ~10x, while a wrong
// padding, scale or group count shows as errors of 1e-2 and more.
const atol, rtol = 1e-5, 1e-4

func loadTiny(t testing.TB, dt tensor.DType) *AutoencoderKL {
	t.Helper()
	m, err := Load(golden(t, "model/diffusers"), dt)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// observe makes m compare each block output it reports with the golden
// intermediate of the same name in dir (when there is one), recording the
// names compared in seen.
func observe(t *testing.T, m *AutoencoderKL, dir string, seen map[string]bool) {
	m.obs = func(name string, x *tensor.Tensor) {
		rel := filepath.Join(dir, name+".npy")
		if _, err := os.Stat(golden(t, rel)); err != nil {
			return
		}
		requireClose(t, x, readNpy(t, rel), atol, rtol, name)
		seen[name] = true
	}
}

func TestGoldenEncode(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	require.NotNil(t, m.Encoder.MidBlock.Attention)
	seen := map[string]bool{}
	observe(t, m, "vae/encode_intermediate", seen)
	x := readNpy(t, "vae/encode_input.npy")
	d := m.Encode(x)
	defer d.Release()
	require.Len(t, seen, 4, "golden intermediates compared: %v", seen)
	requireClose(t, d.Moments, readNpy(t, "vae/encode_moments.npy"), atol, rtol, "moments")
	requireClose(t, d.Mean, readNpy(t, "vae/encode_mean.npy"), atol, rtol, "mean")
	requireClose(t, d.LogVar, readNpy(t, "vae/encode_logvar.npy"), atol, rtol, "logvar")
	requireClose(t, d.Std, readNpy(t, "vae/encode_std.npy"), atol, rtol, "std")

	// Sample = mean + std * torch.randn(shape, generator=manual_seed(s)).
	s := d.Sample(rng.New(42))
	eps := tensor.Randn(rng.New(42), 1, 4, 32, 32)
	want := eps.Mul(d.Std).Add(d.Mean)
	requireClose(t, s, want, 0, 0, "sample")
	mode := d.Mode()
	requireClose(t, mode, d.Mean, 0, 0, "mode")
	require.False(t, mode.SharesStorage(d.Mean))
}

func TestGoldenDecode(t *testing.T) {
	m := loadTiny(t, tensor.F32)
	seen := map[string]bool{}
	observe(t, m, "vae/decode_intermediate", seen)
	z := readNpy(t, "vae/decode_input.npy")
	y := m.Decode(z)
	require.Len(t, seen, 6, "golden intermediates compared: %v", seen)
	requireClose(t, y, readNpy(t, "vae/decode_output.npy"), atol, rtol, "decode")
	m.obs = nil
	// The tiny VAE's tile is 32 latents: a 16x16 latent is one tile, so every
	// mode decodes it in one piece.
	m.Tiling = TileAlways
	requireClose(t, m.Decode(z), y, 0, 0, "decode, TileAlways on one tile")
}

// TestGoldenHalf decodes and encodes with F16 and BF16 weights: the results move
// by the weights' rounding (2^-11 and 2^-8 relative) accumulated over the
// layers, compared with absolute tolerances of 1e-2 and 6e-2 on O(1) outputs.
func TestGoldenHalf(t *testing.T) {
	for _, c := range []struct {
		dt  tensor.DType
		tol float64
	}{{tensor.F16, 1e-2}, {tensor.BF16, 6e-2}} {
		t.Run(c.dt.String(), func(t *testing.T) {
			m := loadTiny(t, c.dt)
			require.Equal(t, c.dt, m.Decoder.ConvIn.Weight.DType())
			y := m.Decode(readNpy(t, "vae/decode_input.npy"))
			requireClose(t, y, readNpy(t, "vae/decode_output.npy"), c.tol, c.tol, "decode")
			d := m.Encode(readNpy(t, "vae/encode_input.npy"))
			requireClose(t, d.Moments, readNpy(t, "vae/encode_moments.npy"), c.tol, c.tol, "moments")
		})
	}
}

// TestNewKeyNames loads the golden weights renamed to diffusers' later
// attention keys (to_q, to_k, to_v, to_out.0) and requires the same output.
func TestNewKeyNames(t *testing.T) {
	src, err := nn.OpenSafetensors(golden(t, "model/diffusers/vae/diffusion_pytorch_model.safetensors"))
	require.NoError(t, err)
	defer src.Close()
	rename := map[string]string{"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
	ms := nn.MapSource{}
	renamed := 0
	for _, k := range src.Keys() {
		x, err := src.Load(k)
		require.NoError(t, err)
		nk := k
		for old, nw := range rename {
			for _, part := range []string{".weight", ".bias"} {
				suffix := "attentions.0." + old + part
				if len(k) > len(suffix) && k[len(k)-len(suffix):] == suffix {
					nk = k[:len(k)-len(suffix)] + "attentions.0." + nw + part
					renamed++
				}
			}
		}
		ms[nk] = x
	}
	require.Equal(t, 16, renamed)
	c, err := LoadConfig(golden(t, "model/diffusers/vae/config.json"))
	require.NoError(t, err)
	b := nn.NewBuilder(ms)
	m, err := New(b, c)
	require.NoError(t, err)
	require.NoError(t, b.Check())
	y := m.Decode(readNpy(t, "vae/decode_input.npy"))
	requireClose(t, y, readNpy(t, "vae/decode_output.npy"), atol, rtol, "decode (to_q names)")
}

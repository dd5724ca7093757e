package vae

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestGoldenVAELossGradients: the LDM-style VAE loss of the golden vae_loss
// case (reconstruction MSE + 1e-6 x the mean KL of the clamped posterior),
// with the stored sample noise: the posterior, latents, reconstruction and
// losses match, and Backward gives the gradient of every AutoencoderKL
// parameter within 1e-4 of its norm (the parameters whose true gradient is
// zero, absolutely within 1e-6).
func TestGoldenVAELossGradients(t *testing.T) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/vae_loss")
	var index struct {
		Cases map[string]struct {
			Loss                   float64  `json:"loss"`
			RecLoss                float64  `json:"rec_loss"`
			ZeroTrueGradientParams []string `json:"zero_true_gradient_params"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	tc := index.Cases["vae_loss"]
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }

	model := golden(t, "model/diffusers/vae")
	cfg, err := LoadConfig(filepath.Join(model, "config.json"))
	require.NoError(t, err)
	src, closer, err := nn.OpenComponent(model, false)
	require.NoError(t, err)
	defer closer.Close()
	m, b, err := nn.Build(src, cfg, tensor.F32, New)
	require.NoError(t, err)
	params := b.Params()
	for _, p := range params {
		p.Tensor.SetRequiresGrad(true).SetName(p.Name)
	}

	x := npy("pixel_values.npy")
	post := m.Encode(x)
	testutil.RequireClose(t, post.Mean, npy("posterior_mean.npy"), 1e-5, 1e-4, "posterior mean")
	testutil.RequireClose(t, post.LogVar, npy("posterior_logvar.npy"), 1e-5, 1e-4, "posterior logvar")
	z := post.Std.Mul(npy("sample_noise.npy")).Add(post.Mean)
	testutil.RequireClose(t, z, npy("z.npy"), 1e-5, 1e-4, "z")
	rec := m.Decode(z)
	testutil.RequireClose(t, rec, npy("x_rec.npy"), 1e-5, 1e-4, "x_rec")
	recLoss := tensor.MSELoss(rec, x)
	require.InDelta(t, tc.RecLoss, float64(recLoss.Item()), 1e-5*tc.RecLoss, "rec_loss")
	// KL per sample: 0.5 sum_{c,h,w} (mean^2 + exp(logvar) - 1 - logvar).
	kl := post.Mean.Square().Add(post.LogVar.Exp()).AddScalar(-1).Sub(post.LogVar)
	klPer := kl.Reshape(kl.Dim(0), -1).Sum(1, false).MulScalar(0.5)
	testutil.RequireClose(t, klPer, npy("kl_per_sample.npy"), 1e-3, 1e-5, "kl_per_sample")
	loss := recLoss.Add(klPer.MeanAll().MulScalar(1e-6))
	require.InDelta(t, tc.Loss, float64(loss.Item()), 1e-5*tc.Loss, "loss")
	require.NoError(t, tensor.Backward(loss))

	grads, err := tensor.LoadSafetensors(filepath.Join(dir, "grads_vae.safetensors"))
	require.NoError(t, err)
	defer grads.Close()
	zero := map[string]bool{}
	for _, n := range tc.ZeroTrueGradientParams {
		zero[n] = true
	}
	require.Len(t, params, len(grads.Names()), "one golden gradient per parameter")
	worst, worstName := 0.0, ""
	for _, p := range params {
		want, err := grads.Get(p.Name)
		require.NoError(t, err, p.Name)
		g := p.Tensor.Grad()
		require.NotNil(t, g, "no gradient for %s", p.Name)
		rel := testutil.RequireGradClose(t, p.Name, g.Float32s(), want.Float32s(), zero[p.Name], 1e-4)
		if rel > worst {
			worst, worstName = rel, p.Name
		}
	}
	t.Logf("%d gradients; worst: %s, max difference %.3g of its gradient's norm", len(params), worstName, worst)
}

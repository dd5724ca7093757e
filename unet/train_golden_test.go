package unet

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

// trainCase is the part of tiny-sd1-train/index.json a gradient case needs.
type trainCase struct {
	Loss                   float64  `json:"loss"`
	ZeroTrueGradientParams []string `json:"zero_true_gradient_params"`
}

// TestGoldenTrainStepGradients: one training step of diffusers'
// train_text_to_image.py on the tiny U-Net, for the epsilon target (every
// parameter's gradient stored), the min-SNR-weighted loss (snr_gamma 5) and
// the v-prediction target (a subset of parameters stored): the forward
// reproduces model_pred and the loss, and Backward gives every stored
// gradient within 1e-4 of its tensor's norm (the golden README's tolerance);
// parameters whose true gradient is zero are compared absolutely (|g| <=
// 1e-6). Targets and min-SNR weights are the golden inputs (target.npy,
// mse_loss_weights.npy).
func TestGoldenTrainStepGradients(t *testing.T) {
	for _, name := range []string{"unet_eps", "unet_minsnr", "unet_vpred"} {
		t.Run(name, func(t *testing.T) { goldenTrainStep(t, name) })
	}
}

func goldenTrainStep(t *testing.T, name string) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/"+name)
	root := filepath.Dir(dir)
	var index struct {
		Cases map[string]trainCase `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(root, "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	tc := index.Cases[name]
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }

	model := filepath.Join(goldenDir(t), "model", "diffusers", "unet")
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

	target := npy("noise.npy")
	if _, err := os.Stat(filepath.Join(dir, "target.npy")); err == nil {
		target = npy("target.npy")
	}
	pred := m.Forward(npy("noisy_latents.npy"), npy("timesteps.npy").To(tensor.F32), npy("encoder_hidden_states.npy"))
	testutil.RequireClose(t, pred, npy("model_pred.npy"), atol32, rtol32, "model_pred")
	var loss *tensor.Tensor
	if _, err := os.Stat(filepath.Join(dir, "mse_loss_weights.npy")); err == nil {
		// min-SNR: mean over rows of weight_b * mean over C, H, W.
		d := pred.Sub(target)
		sq := d.Square()
		perSample := sq.Reshape(sq.Dim(0), -1).Mean(1, false)
		testutil.RequireClose(t, perSample, npy("per_sample_mse.npy"), 1e-6, 1e-5, "per_sample_mse")
		loss = perSample.Mul(npy("mse_loss_weights.npy")).MeanAll()
	} else {
		loss = tensor.MSELoss(pred, target)
	}
	require.InDelta(t, tc.Loss, float64(loss.Item()), 1e-5*tc.Loss, "loss")
	require.NoError(t, tensor.Backward(loss))

	grads, err := tensor.LoadSafetensors(filepath.Join(dir, "grads_unet.safetensors"))
	require.NoError(t, err)
	defer grads.Close()
	zero := map[string]bool{}
	for _, n := range tc.ZeroTrueGradientParams {
		zero[n] = true
	}
	byName := map[string]*tensor.Tensor{}
	for _, p := range params {
		byName[p.Name] = p.Tensor
	}
	if name == "unet_eps" {
		require.Len(t, params, len(grads.Names()), "one golden gradient per parameter")
	}
	worst, worstName := 0.0, ""
	for _, pname := range grads.Names() {
		want, err := grads.Get(pname)
		require.NoError(t, err)
		param := byName[pname]
		require.NotNil(t, param, "golden gradient of unknown parameter %s", pname)
		g := param.Grad()
		require.NotNil(t, g, "no gradient for %s", pname)
		require.Equal(t, want.Shape(), g.Shape(), pname)
		rel := testutil.RequireGradClose(t, pname, g.Float32s(), want.Float32s(), zero[pname], 1e-4)
		if rel > worst {
			worst, worstName = rel, pname
		}
	}
	t.Logf("%d gradients; worst: %s, max difference %.3g of its gradient's norm", len(grads.Names()), worstName, worst)
}

// TestGradientCheckpointingSameGradients: the golden training step with
// GradientCheckpointing gives the gradients of the plain step (which is
// itself bit-for-bit repeatable). Not bit-identical: a tensor used both
// inside and outside a checkpointed block (the block's input, also a skip
// connection; the time embedding) gets the inside contributions summed
// first, so its gradient's additions happen in another order (last-bit
// differences, measured below 1e-6 of each gradient's norm).
func TestGradientCheckpointingSameGradients(t *testing.T) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/unet_eps")
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }
	model := filepath.Join(goldenDir(t), "model", "diffusers", "unet")
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
	x, ts, ehs, noise := npy("noisy_latents.npy"), npy("timesteps.npy").To(tensor.F32), npy("encoder_hidden_states.npy"), npy("noise.npy")
	step := func(ck bool) map[string][]float32 {
		m.GradientCheckpointing = ck
		for _, p := range params {
			p.Tensor.ZeroGrad()
		}
		loss := tensor.MSELoss(m.Forward(x, ts, ehs), noise)
		require.NoError(t, tensor.Backward(loss))
		out := map[string][]float32{}
		for _, p := range params {
			require.NotNil(t, p.Tensor.Grad(), p.Name)
			out[p.Name] = p.Tensor.Grad().Float32s()
		}
		return out
	}
	plain := step(false)
	again := step(false)
	ck := step(true)
	same := func(a, b []float32) bool {
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return len(a) == len(b)
	}
	var index struct {
		Cases map[string]trainCase `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	zero := map[string]bool{}
	for _, n := range index.Cases["unet_eps"].ZeroTrueGradientParams {
		zero[n] = true
	}
	worst, differ := 0.0, 0
	for name, g := range plain {
		require.True(t, same(g, again[name]), "%s: two plain steps differ (non-deterministic kernels)", name)
		worst = max(worst, testutil.RequireGradClose(t, name+" (checkpointing)", ck[name], g, zero[name], 1e-6))
		if !same(g, ck[name]) {
			differ++
			t.Errorf("%s: the checkpointed gradient is not bit-identical to the plain one", name)
		}
	}
	t.Logf("checkpointing: %d of %d gradients differ in any bit; worst difference %.3g of a gradient's norm", differ, len(plain), worst)
}

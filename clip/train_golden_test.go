package clip_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/stretchr/testify/require"
)

// buildGolden builds a component of the golden tiny model with its
// parameters marked trainable and named, and returns them by name.
func buildGolden[M, C any](t *testing.T, dir string, cfg C, newModel func(*nn.Builder, C) (M, error)) (M, map[string]*tensor.Tensor) {
	src, closer, err := nn.OpenComponent(dir, false)
	require.NoError(t, err)
	t.Cleanup(func() { closer.Close() })
	m, b, err := nn.Build(src, cfg, tensor.F32, newModel)
	require.NoError(t, err)
	params := map[string]*tensor.Tensor{}
	for _, p := range b.Params() {
		params[p.Name] = p.Tensor.SetRequiresGrad(true).SetName(p.Name)
	}
	return m, params
}

// TestGoldenJointTextEncoderGradients: dreambooth's --train_text_encoder
// step on the tiny pipeline: the text encoder's hidden states feed the
// U-Net, the epsilon loss is back-propagated through both, and every
// CLIPTextModel parameter's gradient matches diffusers' within 1e-4 of its
// norm (the token embedding's through its non-zero rows, stored sparsely:
// every other row must be exactly zero; the key biases, whose true gradient
// is zero, absolutely within 1e-6), as does the stored U-Net subset.
func TestGoldenJointTextEncoderGradients(t *testing.T) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/joint_text_encoder")
	var index struct {
		Cases map[string]struct {
			Loss     float64  `json:"loss"`
			ZeroText []string `json:"text_encoder_zero_true_gradient_params"`
			ZeroUNet []string `json:"zero_true_gradient_params"`
		} `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	tc := index.Cases["joint_text_encoder"]
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }
	model := filepath.Join(testutil.GoldenDir(t), "model", "diffusers")

	tcfg, err := clip.LoadTextConfig(filepath.Join(model, "text_encoder", "config.json"))
	require.NoError(t, err)
	text, textParams := buildGolden(t, filepath.Join(model, "text_encoder"), tcfg, clip.NewTextModel)
	ucfg, err := unet.LoadConfig(filepath.Join(model, "unet", "config.json"))
	require.NoError(t, err)
	u, unetParams := buildGolden(t, filepath.Join(model, "unet"), ucfg, unet.New)

	ehs := text.Forward(npy("input_ids.npy"))
	testutil.RequireClose(t, ehs, npy("encoder_hidden_states.npy"), 1e-5, 1e-4, "encoder_hidden_states")
	pred := u.Forward(npy("noisy_latents.npy"), npy("timesteps.npy").To(tensor.F32), ehs)
	loss := tensor.MSELoss(pred, npy("noise.npy"))
	require.InDelta(t, tc.Loss, float64(loss.Item()), 1e-5*tc.Loss, "loss")
	require.NoError(t, tensor.Backward(loss))

	zero := map[string]bool{}
	for _, n := range append(tc.ZeroText, tc.ZeroUNet...) {
		zero[n] = true
	}
	compare := func(name string, got, want []float32) float64 {
		return testutil.RequireGradClose(t, name, got, want, zero[name], 1e-4)
	}
	worst := 0.0
	tg, err := tensor.LoadSafetensors(filepath.Join(dir, "grads_text_encoder.safetensors"))
	require.NoError(t, err)
	defer tg.Close()
	const tok = "text_model.embeddings.token_embedding.weight"
	for _, name := range tg.Names() {
		want, err := tg.Get(name)
		require.NoError(t, err)
		if name == tok+".rows" || name == tok+".rows_grad" {
			continue
		}
		p := textParams[name]
		require.NotNil(t, p, "golden gradient of unknown parameter %s", name)
		require.NotNil(t, p.Grad(), "no gradient for %s", name)
		worst = max(worst, compare(name, p.Grad().Float32s(), want.Float32s()))
	}
	// The token embedding: the stored rows, and zeros elsewhere.
	rowsT, err := tg.Get(tok + ".rows")
	require.NoError(t, err)
	rowsGrad, err := tg.Get(tok + ".rows_grad")
	require.NoError(t, err)
	g := textParams[tok].Grad()
	require.NotNil(t, g)
	d := g.Dim(1)
	gv := g.Float32s()
	isRow := map[int64]bool{}
	var got []float32
	for _, r := range rowsT.Int64s() {
		isRow[r] = true
		got = append(got, gv[int(r)*d:int(r+1)*d]...)
	}
	worst = max(worst, compare(tok+" (rows)", got, rowsGrad.Float32s()))
	for r := 0; r < g.Dim(0); r++ {
		if isRow[int64(r)] {
			continue
		}
		for _, v := range gv[r*d : (r+1)*d] {
			require.Zero(t, v, "token embedding row %d is not in the batch: its gradient must be 0", r)
		}
	}

	ug, err := tensor.LoadSafetensors(filepath.Join(dir, "grads_unet.safetensors"))
	require.NoError(t, err)
	defer ug.Close()
	for _, name := range ug.Names() {
		want, err := ug.Get(name)
		require.NoError(t, err)
		p := unetParams[name]
		require.NotNil(t, p, name)
		worst = max(worst, compare(name, p.Grad().Float32s(), want.Float32s()))
	}
	t.Logf("%d text-encoder and %d U-Net gradients; worst %.3g of a gradient's norm", len(tg.Names())-1, len(ug.Names()), worst)
}

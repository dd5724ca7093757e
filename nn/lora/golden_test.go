package lora_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/stretchr/testify/require"
)

// goldenCase is what the tests read of a LoRA case in
// tiny-sd1-train/index.json.
type goldenCase struct {
	Loss float64 `json:"loss"`
	Rank int     `json:"rank"`
}

// loadCase returns the case's folder, its index entry and the tiny U-Net
// (F32) read from the golden model.
func loadCase(t *testing.T, name string) (string, goldenCase, *unet.Model) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/"+name)
	var index struct {
		Cases map[string]goldenCase `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	return dir, index.Cases[name], tinyUNet(t)
}

// tinyUNet builds the golden tiny-sd1 U-Net in F32.
func tinyUNet(t *testing.T) *unet.Model {
	model := filepath.Join(testutil.GoldenDir(t), "model", "diffusers", "unet")
	cfg, err := unet.LoadConfig(filepath.Join(model, "config.json"))
	require.NoError(t, err)
	src, closer, err := nn.OpenComponent(model, false)
	require.NoError(t, err)
	t.Cleanup(func() { closer.Close() })
	m, _, err := nn.Build(src, cfg, tensor.F32, unet.New)
	require.NoError(t, err)
	return m
}

// stepInputs returns the U-Net inputs of a golden training step.
func stepInputs(t *testing.T, dir string) (x, ts, ehs *tensor.Tensor) {
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }
	return npy("noisy_latents.npy"), npy("timesteps.npy").To(tensor.F32), npy("encoder_hidden_states.npy")
}

// equalBits reports whether a and b hold the same float32 bits.
func equalBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
			return false
		}
	}
	return true
}

// TestGoldenLoRARandom: diffusers 0.16.1's LoRAAttnProcessor on the 12
// attention layers of the tiny U-Net with random factors
// (tiny-sd1-train/lora_random): the file written by save_attn_procs loads
// (safetensors and the PyTorch .bin, and train_dreambooth_lora's
// "unet."-prefixed .bin, to the same factors); the U-Net output matches
// diffusers' at scales 1, 0.5 and 0 (scale 0 bit for bit equal to the
// model without LoRA); the loss and the gradients of the 96 factors match
// (golden README tolerances); and merged weights give the unmerged output
// within float32 rounding.
func TestGoldenLoRARandom(t *testing.T) {
	dir, tc, m := loadCase(t, "lora_random")
	x, ts, ehs := stepInputs(t, dir)
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }

	base := m.Forward(x, ts, ehs)
	testutil.RequireClose(t, base, npy("unet_out_base.npy"), 1e-5, 1e-4, "unet_out_base")

	f, err := lora.Read(filepath.Join(dir, "lora_save_attn_procs", "pytorch_lora_weights.safetensors"))
	require.NoError(t, err)
	require.Equal(t, lora.LayoutDiffusers, f.Layout)
	require.Len(t, f.Entries, 48)
	for _, other := range []string{"lora_save_attn_procs/pytorch_lora_weights.bin", "lora_dreambooth/pytorch_lora_weights.bin"} {
		g, err := lora.Read(filepath.Join(dir, filepath.FromSlash(other)))
		require.NoError(t, err, other)
		require.Len(t, g.Entries, len(f.Entries), other)
		for i, e := range g.Entries {
			require.Equal(t, f.Entries[i].Module, e.Module, other)
			require.Equal(t, lora.UNet, e.Component, other)
			require.True(t, equalBits(f.Entries[i].Down.Float32s(), e.Down.Float32s()), "%s: %s down", other, e.Key)
			require.True(t, equalBits(f.Entries[i].Up.Float32s(), e.Up.Float32s()), "%s: %s up", other, e.Key)
		}
	}
	net, err := f.Apply(map[string]any{lora.UNet: m}, 1)
	require.NoError(t, err)
	require.Len(t, net.Adapters, 48)

	for _, s := range []struct {
		scale float64
		file  string
	}{{1, "unet_out_scale_1.npy"}, {0.5, "unet_out_scale_0.5.npy"}, {0, "unet_out_scale_0.npy"}} {
		require.NoError(t, net.SetMultiplier(s.scale))
		out := m.Forward(x, ts, ehs)
		testutil.RequireClose(t, out, npy(s.file), 1e-5, 1e-4, s.file)
		if s.scale == 0 {
			require.True(t, equalBits(out.Float32s(), base.Float32s()), "scale 0 must give the base model's output bit for bit")
		}
		// Merged: the same within float32 rounding.
		require.NoError(t, net.Merge())
		merged := m.Forward(x, ts, ehs)
		testutil.RequireClose(t, merged, out, 1e-5, 1e-4, "merged vs unmerged, scale "+s.file)
		if s.scale == 0 {
			require.True(t, equalBits(merged.Float32s(), base.Float32s()), "merged at scale 0 must give the base model's output bit for bit")
		}
		net.Unmerge()
		again := m.Forward(x, ts, ehs)
		require.True(t, equalBits(again.Float32s(), out.Float32s()), "unmerge must restore the weights exactly")
	}
	require.NoError(t, net.SetMultiplier(1))

	// Gradients of the factors (scale 1, the training scripts' setting).
	train, err := net.Trainable()
	require.NoError(t, err)
	require.Len(t, train, 96)
	pred := m.Forward(x, ts, ehs)
	testutil.RequireClose(t, pred, npy("model_pred.npy"), 1e-5, 1e-4, "model_pred")
	loss := tensor.MSELoss(pred, npy("noise.npy"))
	require.InDelta(t, tc.Loss, float64(loss.Item()), 1e-5*tc.Loss, "loss")
	require.NoError(t, tensor.Backward(loss))
	compareGrads(t, filepath.Join(dir, "grads_lora.safetensors"), train, false)

	net.Remove()
	require.True(t, equalBits(m.Forward(x, ts, ehs).Float32s(), base.Float32s()), "Remove leaves the base model")
}

// compareGrads checks the parameters' autograd gradients against a golden
// file keyed by the same names (every down gradient exactly 0 when
// zeroDown).
func compareGrads(t *testing.T, path string, train []*nn.Trainable, zeroDown bool) {
	grads, err := tensor.LoadSafetensors(path)
	require.NoError(t, err)
	defer grads.Close()
	require.Len(t, grads.Names(), len(train))
	worst := 0.0
	for _, p := range train {
		want, err := grads.Get(p.Name)
		require.NoError(t, err, p.Name)
		g := p.Tensor.Grad()
		require.NotNil(t, g, p.Name)
		require.Equal(t, want.Shape(), g.Shape(), p.Name)
		if zeroDown && filepath.Ext(filepath.Base(p.Name)) == ".weight" && containsDown(p.Name) {
			for i, v := range g.Float32s() {
				require.Zero(t, v, "%s[%d]: up is 0, so the down gradient is exactly 0", p.Name, i)
			}
			continue
		}
		worst = max(worst, testutil.RequireGradClose(t, p.Name, g.Float32s(), want.Float32s(), false, 1e-4))
	}
	t.Logf("%d LoRA gradients; worst %.3g of a gradient's norm", len(train), worst)
}

func containsDown(name string) bool {
	return len(name) > len(".down.weight") && name[len(name)-len(".down.weight"):] == ".down.weight"
}

// TestGoldenLoRADefaultInit: Attach with diffusers 0.16.1's initialisation
// and seed 0 gives train_text_to_image_lora.py's initial factors after
// torch.manual_seed(0), bit for bit, under the save_attn_procs names; the
// output equals the base model's (up = 0); the down gradients are exactly
// 0 and the up gradients match diffusers'.
func TestGoldenLoRADefaultInit(t *testing.T) {
	dir, tc, m := loadCase(t, "lora_default_init")
	x, ts, ehs := stepInputs(t, dir)
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }
	base := m.Forward(x, ts, ehs)

	net, err := lora.Attach(m, lora.Config{Rank: tc.Rank, Seed: 0})
	require.NoError(t, err)
	want, err := tensor.LoadSafetensors(filepath.Join(dir, "lora_save_attn_procs", "pytorch_lora_weights.safetensors"))
	require.NoError(t, err)
	defer want.Close()
	params := net.Params()
	require.Len(t, params, len(want.Names()))
	for _, p := range params {
		w, err := want.Get(p.Name)
		require.NoError(t, err, p.Name)
		require.Equal(t, w.Shape(), p.Tensor.Shape(), p.Name)
		require.True(t, equalBits(w.Float32s(), p.Tensor.Float32s()), "%s: initial values differ from diffusers' (seed 0)", p.Name)
	}

	train, err := net.Trainable()
	require.NoError(t, err)
	pred := m.Forward(x, ts, ehs)
	require.True(t, equalBits(pred.Float32s(), base.Float32s()), "a new LoRA (up = 0) must not change the output")
	testutil.RequireClose(t, pred, npy("model_pred.npy"), 1e-5, 1e-4, "model_pred")
	loss := tensor.MSELoss(pred, npy("noise.npy"))
	require.InDelta(t, tc.Loss, float64(loss.Item()), 1e-5*tc.Loss, "loss")
	require.NoError(t, tensor.Backward(loss))
	compareGrads(t, filepath.Join(dir, "grads_lora.safetensors"), train, true)
}

// TestUNetAllTargets: adapters on every preset of the tiny U-Net
// (attention, feed-forward, transformer projections, ResNet and sampling
// convolutions) with random factors: merged equals unmerged within float32
// rounding, every factor gets a gradient, and Remove gives the base output
// bit for bit.
func TestUNetAllTargets(t *testing.T) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/lora_random")
	m := tinyUNet(t)
	x, ts, ehs := stepInputs(t, dir)
	base := m.Forward(x, ts, ehs)
	var targets []string
	for _, p := range [][]string{lora.AttentionTargets, lora.FeedForwardTargets, lora.ProjTargets, lora.ConvTargets} {
		targets = append(targets, p...)
	}
	net, err := lora.Attach(m, lora.Config{Rank: 2, Alpha: 1, Targets: targets, Init: lora.InitKaiming})
	require.NoError(t, err)
	kinds := map[string]int{}
	for _, a := range net.Adapters {
		kinds[a.Down.Shape().String()]++
	}
	t.Logf("%d adapters; factor shapes %v", len(net.Adapters), kinds)
	require.Greater(t, len(net.Adapters), 48+24+24)
	randomize(net, 8)
	un := m.Forward(x, ts, ehs)
	require.NoError(t, net.Merge())
	testutil.RequireClose(t, m.Forward(x, ts, ehs), un, 1e-5, 1e-4, "merged vs unmerged, all targets")
	net.Unmerge()

	train, err := net.Trainable()
	require.NoError(t, err)
	require.NoError(t, tensor.Backward(tensor.MSELoss(m.Forward(x, ts, ehs), testutil.ReadNpy(t, filepath.Join(dir, "noise.npy")))))
	for _, p := range train {
		require.NotNil(t, p.Tensor.Grad(), p.Name)
	}
	net.Remove()
	require.True(t, equalBits(m.Forward(x, ts, ehs).Float32s(), base.Float32s()))
}

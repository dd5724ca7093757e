package lora_test

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
	"github.com/stretchr/testify/require"
)

// toy is a model with a U-Net-like attention projection, a 1x1-conv
// projection used as a Linear, and a 3x3 ResNet convolution.
type toy struct {
	Q    *nn.Linear
	Proj *nn.Linear
	Conv *nn.Conv2d
}

func newToy(seed uint64, dt tensor.DType) *toy {
	b := nn.NewRandomBuilder(seed, dt)
	blk := b.Path("down_blocks", 0, "attentions", 0)
	pc := nn.NewConv2d(blk.Sub("proj_in"), 6, 8, 1, 1, 0)
	return &toy{
		Q:    nn.NewLinear(blk.Path("transformer_blocks", 0, "attn1", "to_q"), 8, 8, false),
		Proj: &nn.Linear{Weight: pc.Weight, Bias: pc.Bias, Name: pc.Name},
		Conv: nn.NewConv2d(b.Path("down_blocks", 0, "resnets", 0, "conv1"), 3, 5, 3, 1, 1),
	}
}

// forward runs every layer on fixed inputs and returns the outputs.
func (m *toy) forward() []*tensor.Tensor {
	g := rng.New(7)
	x := tensor.Randn(g, 2, 3, 8)
	p := tensor.Randn(g, 2, 4, 6)
	c := tensor.Randn(g, 2, 3, 6, 5)
	q := m.Q.Forward(x)
	// The projection as Transformer2DModel runs it: its [8, 6, 1, 1]
	// weight as a matrix, then the adapters.
	pr := tensor.Linear(p, m.Proj.Weight.Reshape(8, 6), m.Proj.Bias)
	if m.Proj.Adapter != nil {
		pr = m.Proj.Adapter.Adapt(p, pr)
	}
	return []*tensor.Tensor{q, pr, m.Conv.Forward(c)}
}

// randomize fills the network's factors with N(0, 0.3^2) values.
func randomize(net *lora.Network, seed uint64) {
	g := rng.New(seed)
	for _, a := range net.Adapters {
		g.Normal(a.Down.F32Data(), 0, 0.3)
		g.Normal(a.Up.F32Data(), 0, 0.3)
	}
}

var allTargets = []string{"to_q", "proj_in", "*.resnets.*.conv1"}

// TestMergedEqualsUnmerged: for Linear, 1x1-conv-as-Linear and 3x3 Conv2d
// layers, with alpha != rank and a multiplier, the merged weights give the
// unmerged output within float32 rounding, Unmerge restores the weights
// bit for bit, and multiplier 0 gives the base output bit for bit (merged
// or not).
func TestMergedEqualsUnmerged(t *testing.T) {
	m := newToy(1, tensor.F32)
	base := m.forward()
	net, err := lora.Attach(m, lora.Config{Rank: 2, Alpha: 3, Targets: allTargets, Init: lora.InitKaiming, Seed: 3})
	require.NoError(t, err)
	require.Len(t, net.Adapters, 3)
	require.Equal(t, tensor.Shape{5, 2, 1, 1}, net.Adapters[2].Up.Shape())
	randomize(net, 5)
	for _, mult := range []float64{1, 0.7, 0} {
		require.NoError(t, net.SetMultiplier(mult))
		un := m.forward()
		w0 := []*tensor.Tensor{m.Q.Weight, m.Proj.Weight, m.Conv.Weight}
		require.NoError(t, net.Merge())
		me := m.forward()
		for i := range un {
			testutil.RequireClose(t, me[i], un[i], 1e-5, 1e-5, "merged vs unmerged")
			if mult == 0 {
				require.True(t, equalBits(un[i].Float32s(), base[i].Float32s()), "multiplier 0, unmerged: base output")
				require.True(t, equalBits(me[i].Float32s(), base[i].Float32s()), "multiplier 0, merged: base output")
			} else {
				require.False(t, equalBits(un[i].Float32s(), base[i].Float32s()), "the LoRA changes layer %d", i)
			}
		}
		net.Unmerge()
		require.Same(t, w0[0], m.Q.Weight)
		require.Same(t, w0[2], m.Conv.Weight)
		again := m.forward()
		for i := range un {
			require.True(t, equalBits(again[i].Float32s(), un[i].Float32s()))
		}
	}
	// 16-bit weights: merged in F32 and rounded once.
	h := newToy(1, tensor.F16)
	hn, err := lora.Attach(h, lora.Config{Rank: 2, Targets: allTargets})
	require.NoError(t, err)
	randomize(hn, 5)
	un := h.forward()
	require.NoError(t, hn.Merge())
	require.Equal(t, tensor.F16, h.Q.Weight.DType())
	for i, me := range h.forward() {
		testutil.RequireClose(t, me, un[i], 1e-2, 1e-2, "F16 merged vs unmerged")
	}
}

// TestSaveReadRoundTrip: a network written in the diffusers and the kohya
// layout reads back to the same weights: the same factors and alpha in the
// kohya layout; in the diffusers layout, which has no alpha, the same
// factors when alpha = rank and up scaled by alpha/rank otherwise (the same
// function).
func TestSaveReadRoundTrip(t *testing.T) {
	for _, alpha := range []float64{0, 6} {
		m := newToy(1, tensor.F32)
		net, err := lora.Attach(m, lora.Config{Rank: 2, Alpha: alpha, Targets: allTargets})
		require.NoError(t, err)
		randomize(net, 9)
		want := m.forward()
		for _, layout := range []lora.Layout{lora.LayoutDiffusers, lora.LayoutKohya} {
			path := filepath.Join(t.TempDir(), "lora.safetensors")
			require.NoError(t, net.Save(path, layout, nil))
			f, err := lora.Read(path)
			require.NoError(t, err, layout)
			require.Equal(t, layout, f.Layout)
			fresh := newToy(1, tensor.F32)
			got, err := f.Apply(map[string]any{lora.UNet: fresh}, 1)
			require.NoError(t, err, layout)
			require.Len(t, got.Adapters, len(net.Adapters))
			byModule := map[string]*lora.Adapter{}
			for _, b := range net.Adapters {
				byModule[b.Module] = b
			}
			for _, a := range got.Adapters {
				b := byModule[a.Module]
				require.NotNil(t, b, a.Module)
				require.True(t, equalBits(a.Down.Float32s(), b.Down.Float32s()), "%v %s down", layout, a.Module)
				if layout == lora.LayoutKohya || alpha == 0 {
					require.True(t, equalBits(a.Up.Float32s(), b.Up.Float32s()), "%v %s up", layout, a.Module)
					require.Equal(t, b.Alpha, a.Alpha)
				} else {
					require.Equal(t, float64(a.Rank()), a.Alpha)
				}
				require.InDelta(t, b.Scale()/float32(b.Alpha/float64(b.Rank())), a.Scale()/float32(a.Alpha/float64(a.Rank())), 0)
			}
			for i, g := range fresh.forward() {
				testutil.RequireClose(t, g, want[i], 1e-6, 1e-6, layout.String()+" round trip")
			}
			// Merged after reading: the same again.
			require.NoError(t, got.Merge())
			for i, g := range fresh.forward() {
				testutil.RequireClose(t, g, want[i], 1e-5, 1e-5, layout.String()+" round trip, merged")
			}
		}
	}
}

// TestKeyNames: the names of the factors in each layout.
func TestKeyNames(t *testing.T) {
	m := newToy(1, tensor.F32)
	net, err := lora.Attach(m, lora.Config{Targets: allTargets})
	require.NoError(t, err)
	var names []string
	for _, p := range net.Params() {
		names = append(names, p.Name)
	}
	require.Equal(t, []string{
		"down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight",
		"down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight",
		"down_blocks.0.attentions.0.proj_in.lora.down.weight",
		"down_blocks.0.attentions.0.proj_in.lora.up.weight",
		"down_blocks.0.resnets.0.conv1.lora.down.weight",
		"down_blocks.0.resnets.0.conv1.lora.up.weight",
	}, names)
	path := filepath.Join(t.TempDir(), "k.safetensors")
	require.NoError(t, net.Save(path, lora.LayoutKohya, nil))
	a, err := tensor.LoadSafetensors(path)
	require.NoError(t, err)
	defer a.Close()
	require.Contains(t, a.Names(), "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight")
	require.Contains(t, a.Names(), "lora_unet_down_blocks_0_resnets_0_conv1.alpha")
	al, err := a.Get("lora_unet_down_blocks_0_resnets_0_conv1.alpha")
	require.NoError(t, err)
	require.Equal(t, 0, al.Rank())
	require.Equal(t, float32(4), al.Float32s()[0])
}

// writeFile writes tensors to a safetensors file.
func writeFile(t *testing.T, ts map[string]*tensor.Tensor) string {
	path := filepath.Join(t.TempDir(), "bad.safetensors")
	require.NoError(t, tensor.SaveSafetensors(path, ts, nil))
	return path
}

// TestBadFiles: LoRAs for other architectures and files of other kinds
// give errors naming the key; nothing is applied then.
func TestBadFiles(t *testing.T) {
	z := func(shape ...int) *tensor.Tensor { return tensor.Zeros(tensor.F32, shape...) }
	const q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
	cases := []struct {
		name string
		ts   map[string]*tensor.Tensor
		want string
	}{
		{"unknown module", map[string]*tensor.Tensor{
			"lora_unet_input_blocks_1_1_proj_in.lora_down.weight": z(2, 6), "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": z(8, 2)},
			`key "lora_unet_input_blocks_1_1_proj_in.lora_down.weight": the unet has no layer "input_blocks_1_1_proj_in" (a LoRA for another architecture?)`},
		{"shape", map[string]*tensor.Tensor{q + ".lora_down.weight": z(2, 16), q + ".lora_up.weight": z(8, 2)},
			`key "` + q + `.lora_down.weight": down factor [2, 16], want [2, 8, ...]: layer down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q has weight [8, 8]`},
		{"up shape", map[string]*tensor.Tensor{q + ".lora_down.weight": z(2, 8), q + ".lora_up.weight": z(16, 2)},
			`up factor [16, 2], want [8, 2]`},
		{"rank", map[string]*tensor.Tensor{q + ".lora_down.weight": z(2, 8), q + ".lora_up.weight": z(8, 3)},
			`have different ranks`},
		{"partner", map[string]*tensor.Tensor{q + ".lora_down.weight": z(2, 8)}, `has no up factor beside it`},
		{"text encoder", map[string]*tensor.Tensor{
			"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": z(2, 8),
			"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight":   z(8, 2)},
			`adapts the text encoder, which was not given`},
		{"loha", map[string]*tensor.Tensor{q + ".hada_w1_a": z(2, 8)}, `LyCORIS variant`},
		{"other", map[string]*tensor.Tensor{"model.diffusion_model.input_blocks.0.0.weight": z(2, 8)}, `fits no LoRA layout`},
		{"alpha", map[string]*tensor.Tensor{q + ".lora_down.weight": z(2, 8), q + ".lora_up.weight": z(8, 2), q + ".alpha": z(2)},
			`expected a scalar alpha`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newToy(1, tensor.F32)
			w := m.Q.Weight
			testutil.NoPanic(t, c.name, func() {
				f, err := lora.Read(writeFile(t, c.ts))
				if err == nil {
					_, err = f.Apply(map[string]any{lora.UNet: m}, 1)
				}
				require.Error(t, err)
				require.True(t, strings.Contains(err.Error(), c.want), "error %q lacks %q", err, c.want)
			})
			require.Nil(t, m.Q.Adapter)
			require.Same(t, w, m.Q.Weight)
		})
	}
	_, err := lora.Read(filepath.Join(t.TempDir(), "missing.safetensors"))
	require.Error(t, err)
}

// TestPEFTLayout: peft / diffusers >= 0.22 keys ("unet.<module>.lora_A.weight")
// with an alpha are read and applied.
func TestPEFTLayout(t *testing.T) {
	g := rng.New(3)
	d, u := tensor.Randn(g, 2, 8), tensor.Randn(g, 8, 2)
	const mod = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
	f, err := lora.Read(writeFile(t, map[string]*tensor.Tensor{mod + ".lora_A.weight": d, mod + ".lora_B.weight": u,
		mod + ".alpha": tensor.FromFloat32([]float32{1}).Reshape()}))
	require.NoError(t, err)
	require.Equal(t, lora.LayoutPEFT, f.Layout)
	m := newToy(1, tensor.F32)
	net, err := f.Apply(map[string]any{lora.UNet: m}, 2)
	require.NoError(t, err)
	require.Len(t, net.Adapters, 1)
	require.Equal(t, float32(1), net.Adapters[0].Scale()) // 2 * 1 / 2
	require.NotNil(t, m.Q.Adapter)
}

// TestAttachErrors: bad configurations.
func TestAttachErrors(t *testing.T) {
	m := newToy(1, tensor.F32)
	_, err := lora.Attach(m, lora.Config{Targets: []string{"nothing"}})
	require.ErrorContains(t, err, "match no Linear or Conv2d layer")
	_, err = lora.Attach(m, lora.Config{Rank: -1})
	require.ErrorContains(t, err, "rank -1")
	_, err = lora.Attach(m, lora.Config{Alpha: math.NaN()})
	require.ErrorContains(t, err, "alpha")
	_, err = lora.Attach(m, lora.Config{Component: "vae"})
	require.ErrorContains(t, err, "component")
	require.Nil(t, m.Q.Adapter)
}

package lora_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/lora"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// tinyTextModel is a random CLIP text encoder of two layers.
func tinyTextModel(t *testing.T) *clip.TextModel {
	c := clip.DefaultTextConfig()
	c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads = 50, 16, 32, 2, 2
	m, err := clip.NewTextModel(nn.NewRandomBuilder(11, tensor.F32), c)
	require.NoError(t, err)
	return m
}

// TestTextEncoderAndUNet: a network over the U-Net-like toy model and a
// text encoder (attention and MLP targets) is written in both layouts with
// the component prefixes ("text_encoder.", "lora_te_") and reads back to
// the same outputs.
func TestTextEncoderAndUNet(t *testing.T) {
	ids := clip.IDs([]int32{1, 5, 7, 2})
	text, m := tinyTextModel(t), newToy(1, tensor.F32)
	tn, err := lora.Attach(text, lora.Config{Component: lora.TextEncoder, Targets: append(append([]string{}, lora.AttentionTargets...), lora.FeedForwardTargets...), Alpha: 2})
	require.NoError(t, err)
	require.Len(t, tn.Adapters, 2*6)
	un, err := lora.Attach(m, lora.Config{Targets: allTargets})
	require.NoError(t, err)
	net := &lora.Network{}
	net.Extend(un)
	net.Extend(tn)
	randomize(net, 4)
	wantText, wantUNet := text.Forward(ids), m.forward()
	require.Equal(t, "text_encoder.text_model.encoder.layers.0.self_attn.to_q_lora.down.weight", tn.Adapters[0].ParamName("down"))
	for _, layout := range []lora.Layout{lora.LayoutDiffusers, lora.LayoutKohya} {
		path := filepath.Join(t.TempDir(), "l.safetensors")
		require.NoError(t, net.Save(path, layout, nil))
		a, err := tensor.LoadSafetensors(path)
		require.NoError(t, err)
		for _, n := range a.Names() {
			ok := strings.HasPrefix(n, "unet.") || strings.HasPrefix(n, "text_encoder.")
			if layout == lora.LayoutKohya {
				ok = strings.HasPrefix(n, "lora_unet_") || strings.HasPrefix(n, "lora_te_text_model_encoder_layers_")
			}
			require.True(t, ok, "%v key %q", layout, n)
		}
		a.Close()
		f, err := lora.Read(path)
		require.NoError(t, err)
		text2, m2 := tinyTextModel(t), newToy(1, tensor.F32)
		_, err = f.Apply(map[string]any{lora.UNet: m2}, 1)
		require.ErrorContains(t, err, "adapts the text encoder, which was not given")
		got, err := f.Apply(map[string]any{lora.UNet: m2, lora.TextEncoder: text2}, 1)
		require.NoError(t, err)
		require.Len(t, got.Adapters, len(net.Adapters))
		testutil.RequireClose(t, text2.Forward(ids), wantText, 1e-6, 1e-5, layout.String()+" text encoder")
		for i, o := range m2.forward() {
			testutil.RequireClose(t, o, wantUNet[i], 1e-6, 1e-5, layout.String()+" unet")
		}
	}
}

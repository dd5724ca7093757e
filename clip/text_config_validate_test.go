package clip

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestTextConfigBadValues feeds text_encoder/config.json files with one bad
// value through LoadTextConfig (what LoadTextModel and the pipeline use):
// each is refused with an error naming the key, what was expected and the
// file, never a panic.
func TestTextConfigBadValues(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	for _, tc := range []struct{ json, want string }{
		{`{"vocab_size": 0}`, "vocab_size = 0, want a positive number"},
		{`{"vocab_size": -49408}`, "vocab_size = -49408, want a positive number"},
		{`{"vocab_size": 100000000}`, "vocab_size = 100000000, want at most 16777216"},
		{`{"hidden_size": 0}`, "hidden_size = 0, want a positive number"},
		{`{"hidden_size": -768}`, "hidden_size = -768, want a positive number"},
		{`{"hidden_size": 1048576}`, "hidden_size = 1048576, want at most 65536"},
		{`{"intermediate_size": 0}`, "intermediate_size = 0, want a positive number"},
		{`{"intermediate_size": 1000000}`, "intermediate_size = 1000000, want at most 65536"},
		{`{"num_hidden_layers": 0}`, "num_hidden_layers = 0, want a positive number"},
		{`{"num_hidden_layers": -1}`, "num_hidden_layers = -1, want a positive number"},
		{`{"num_hidden_layers": 100000}`, "num_hidden_layers = 100000, want at most 65536"},
		{`{"num_attention_heads": 0}`, "num_attention_heads = 0, want a positive number"},
		{`{"num_attention_heads": -8}`, "num_attention_heads = -8, want a positive number"},
		{`{"num_attention_heads": 7}`, "hidden_size 512 is not a multiple of num_attention_heads 7"},
		{`{"num_attention_heads": 1024}`, "hidden_size 512 is not a multiple of num_attention_heads 1024"},
		{`{"max_position_embeddings": 0}`, "max_position_embeddings = 0, want a positive number"},
		{`{"max_position_embeddings": -77}`, "max_position_embeddings = -77, want a positive number"},
		{`{"max_position_embeddings": 10000000}`, "max_position_embeddings = 10000000, want at most 65536"},
		{`{"layer_norm_eps": 0}`, "layer_norm_eps = 0, want a positive finite number"},
		{`{"layer_norm_eps": -1e-5}`, "layer_norm_eps = -1e-05, want a positive finite number"},
		{`{"layer_norm_eps": 1e-60}`, "layer_norm_eps = 1e-60, want a positive finite number (as float32)"},
		{`{"layer_norm_eps": 1e300}`, "layer_norm_eps = 1e+300, want a positive finite number"},
		{`{"hidden_act": ""}`, `hidden_act "" is not supported`},
		// Sizes each allowed but together too many parameters.
		{`{"hidden_size": 65536, "intermediate_size": 65536, "num_hidden_layers": 1000, "num_attention_heads": 1}`,
			"vocab_size 49408, hidden_size 65536, intermediate_size 65536 and num_hidden_layers 1000 make a model of"},
		{`{"vocab_size": 16777216, "hidden_size": 4096}`, "parameters, want at most 17179869184"},
		{`{"max_position_embeddings": 7.5}`, "max_position_embeddings"},
	} {
		t.Run(tc.json, func(t *testing.T) {
			require.NoError(t, os.WriteFile(path, []byte(tc.json), 0o644))
			testutil.NoPanic(t, tc.json, func() {
				_, err := LoadTextConfig(path)
				require.Error(t, err, tc.json)
				require.Contains(t, err.Error(), tc.want, tc.json)
				require.Contains(t, err.Error(), path, tc.json)
			})
		})
	}
}

// TestTextConfigBadFloats sets layer_norm_eps values JSON cannot spell and
// requires Validate and NewTextModel to refuse them by key.
func TestTextConfigBadFloats(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			c := tinyPosConfig()
			c.LayerNormEps = v
			testutil.NoPanic(t, "layer_norm_eps", func() {
				require.ErrorContains(t, c.Validate(), fmt.Sprintf("clip: text config: layer_norm_eps = %g, want a positive finite number", v))
				_, err := NewTextModel(nn.NewRandomBuilder(1, tensor.F32), c)
				require.ErrorContains(t, err, "want a positive finite number")
			})
		})
	}
}

// TestTextConfigGoodValues checks that the released configurations and
// small ones still pass.
func TestTextConfigGoodValues(t *testing.T) {
	for name, c := range map[string]TextConfig{"default": DefaultTextConfig(), "sd15": SD15TextConfig(),
		"sd21": SD21TextConfig(), "tiny": tinyPosConfig(), "sd2Tiny": sd2TinyConfig(),
		"one": {VocabSize: 1, HiddenSize: 1, IntermediateSize: 1, NumHiddenLayers: 1, NumAttentionHeads: 1,
			MaxPositionEmbeddings: 1, HiddenAct: "gelu", LayerNormEps: 1e-12}} {
		require.NoError(t, c.Validate(), name)
	}
}

// TestTextNumParams checks the parameter count that bounds configs against
// the model NewTextModel builds and SD 1.5's published count.
func TestTextNumParams(t *testing.T) {
	for _, c := range []TextConfig{tinyPosConfig(), sd2TinyConfig()} {
		b := nn.NewRandomBuilder(1, tensor.F32)
		_, err := NewTextModel(b, c)
		require.NoError(t, err)
		n := 0
		for _, p := range b.Params() {
			n += p.Tensor.Numel()
		}
		require.Equal(t, float64(n), c.numParams())
	}
	require.Equal(t, 123_060_480.0, SD15TextConfig().numParams())
}

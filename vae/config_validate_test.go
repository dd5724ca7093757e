package vae

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// sd15Blocks is the SD 1.x VAE's four levels, to which the JSON cases add
// one bad key.
const sd15Blocks = `"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2, "sample_size": 512,
  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"]`

// TestConfigBadValues feeds vae/config.json files with one bad value through
// ParseConfig (what LoadConfig, Load and the pipeline use) and requires an
// error naming the key and what was expected, never a panic.
func TestConfigBadValues(t *testing.T) {
	levels := func(n int) string {
		d := strings.TrimSuffix(strings.Repeat(`"DownEncoderBlock2D",`, n), ",")
		u := strings.TrimSuffix(strings.Repeat(`"UpDecoderBlock2D",`, n), ",")
		c := strings.TrimSuffix(strings.Repeat(`32,`, n), ",")
		return `"down_block_types": [` + d + `], "up_block_types": [` + u + `], "block_out_channels": [` + c + `]`
	}
	for _, tc := range []struct {
		json string
		want []string
	}{
		{`{"norm_num_groups": 0}`, []string{"norm_num_groups = 0, want a positive number"}},
		{`{"norm_num_groups": -32}`, []string{"norm_num_groups = -32, want a positive number"}},
		{`{"norm_num_groups": 131072}`, []string{"norm_num_groups = 131072, want at most 65536"}},
		{`{"in_channels": 0}`, []string{"in_channels = 0, want a positive number"}},
		{`{"out_channels": -3}`, []string{"out_channels = -3, want a positive number"}},
		{`{"out_channels": 70000}`, []string{"out_channels = 70000, want at most 65536"}},
		{`{"latent_channels": 0}`, []string{"latent_channels = 0, want a positive number"}},
		{`{"latent_channels": 1000000}`, []string{"latent_channels = 1000000, want at most 65536"}},
		{`{"layers_per_block": 0}`, []string{"layers_per_block = 0, want a positive number"}},
		{`{"layers_per_block": -1}`, []string{"layers_per_block = -1, want a positive number"}},
		{`{"layers_per_block": 100000}`, []string{"layers_per_block = 100000, want at most 65536"}},
		{`{"sample_size": 0}`, []string{"sample_size = 0, want a positive number"}},
		{`{"sample_size": [-512, -512]}`, []string{"sample_size = -512, want a positive number"}},
		{`{"sample_size": []}`, []string{"sample_size: want an integer or a list of integers"}},
		{`{"sample_size": 100000}`, []string{"sample_size = 100000, want at most 65536"}},
		// Tiled decoding panicked at run time on tiles of partial latents.
		{`{` + sd15Blocks + `, "sample_size": 4}`, []string{"sample_size = 4 does not split into tiles of whole latents", "want a multiple of 32"}},
		{`{` + sd15Blocks + `, "sample_size": 500}`, []string{"sample_size = 500 does not split"}},
		{`{` + sd15Blocks + `, "sample_size": 48}`, []string{"sample_size = 48 does not split"}},
		{`{"block_out_channels": [64, 0]}`, []string{"block_out_channels[1] = 0, want a positive multiple of norm_num_groups 32"}},
		{`{"block_out_channels": [-64]}`, []string{"block_out_channels[0] = -64, want a positive multiple"}},
		{`{"block_out_channels": [131072]}`, []string{"block_out_channels[0] = 131072, want a positive multiple of norm_num_groups 32 up to 65536"}},
		{`{"block_out_channels": []}`, []string{"block_out_channels is empty"}},
		{`{"down_block_types": []}`, []string{"0 down_block_types and 1 up_block_types for 1 block_out_channels"}},
		// 2^(levels-1) overflowed the downsampling factor.
		{`{` + levels(17) + `}`, []string{"block_out_channels has 17 entries, want at most 16"}},
		{`{` + levels(64) + `}`, []string{"block_out_channels has 64 entries, want at most 16"}},
		{`{"scaling_factor": 0}`, []string{"scaling_factor = 0, want a positive finite number"}},
		{`{"scaling_factor": -0.18215}`, []string{"scaling_factor = -0.18215, want a positive finite number"}},
		{`{"scaling_factor": 1e400}`, []string{"scaling_factor"}},
		// Sizes each allowed but together far too many parameters.
		{`{"block_out_channels": [65536], "layers_per_block": 1000}`,
			[]string{"block_out_channels [65536], layers_per_block 1000 and latent_channels 4", "parameters, want at most 17179869184"}},
		{`{"norm_num_groups": 2.5}`, []string{"norm_num_groups"}},
	} {
		t.Run(tc.json, func(t *testing.T) {
			testutil.NoPanic(t, tc.json, func() {
				_, err := ParseConfig([]byte(tc.json))
				require.Error(t, err, tc.json)
				require.True(t, strings.HasPrefix(err.Error(), "vae: config: "), err.Error())
				for _, w := range tc.want {
					require.Contains(t, err.Error(), w, tc.json)
				}
			})
		})
	}

	// LoadConfig names the file.
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"norm_num_groups": 0}`), 0o644))
	testutil.NoPanic(t, "LoadConfig", func() {
		_, err := LoadConfig(path)
		require.ErrorContains(t, err, "norm_num_groups = 0, want a positive number")
		require.ErrorContains(t, err, path)
	})
}

// TestConfigBadFloats sets scaling factors JSON cannot spell on a Config and
// requires Validate and New to refuse them by key.
func TestConfigBadFloats(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			c := tinyConfig()
			c.ScalingFactor = v
			testutil.NoPanic(t, "scaling_factor", func() {
				require.ErrorContains(t, c.Validate(), fmt.Sprintf("scaling_factor = %g, want a positive finite number", v))
				_, err := New(nn.NewRandomBuilder(1, tensor.F32), c)
				require.ErrorContains(t, err, "want a positive finite number")
			})
		})
	}
	c := tinyConfig()
	c.BlockOutChannels = nil
	testutil.NoPanic(t, "nil block_out_channels", func() {
		_, err := New(nn.NewRandomBuilder(1, tensor.F32), c)
		require.ErrorContains(t, err, "block_out_channels is empty")
	})
}

// TestConfigGoodValues checks that valid configs at the edges still pass,
// among them the sample sizes of released VAEs.
func TestConfigGoodValues(t *testing.T) {
	for _, js := range []string{
		`{}`,
		`{` + sd15Blocks + `}`,
		`{` + sd15Blocks + `, "sample_size": 768}`,
		`{` + sd15Blocks + `, "sample_size": 1024}`,
		`{` + sd15Blocks + `, "sample_size": 256}`,
		`{` + sd15Blocks + `, "sample_size": 32}`,
		`{"norm_num_groups": 1, "block_out_channels": [3], "sample_size": [4, 4]}`,
		`{"mid_block_add_attention": false, "scaling_factor": 0.13025, "force_upcast": true}`,
	} {
		testutil.NoPanic(t, js, func() {
			_, err := ParseConfig([]byte(js))
			require.NoError(t, err, js)
		})
	}
}

// TestNumParams checks the parameter count that bounds configs against the
// models New builds (random builders) and SD 1.5's published count.
func TestNumParams(t *testing.T) {
	noAttn := false
	for name, c := range map[string]Config{"default": DefaultConfig(), "tiny": tinyConfig()} {
		for _, attn := range []*bool{nil, &noAttn} {
			c.MidBlockAddAttention = attn
			c.InChannels, c.OutChannels, c.LatentChannels = 1, 2, 3
			b := nn.NewRandomBuilder(1, tensor.F32)
			_, err := New(b, c)
			require.NoError(t, err, name)
			n := 0
			for _, p := range b.Params() {
				n += p.Tensor.Numel()
			}
			require.Equal(t, float64(n), c.numParams(), name)
		}
	}
	c := SD15Config()
	require.Equal(t, 83_653_863.0, c.numParams())
}

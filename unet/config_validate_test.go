package unet

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

// TestConfigBadValues feeds config.json files with a bad value in one key
// through ParseConfig (what LoadConfig, Load and the pipeline use) and New:
// each is refused with an error naming the key and what was expected, never
// a panic or a silent default.
func TestConfigBadValues(t *testing.T) {
	for _, tc := range []struct {
		json string
		want []string
	}{
		// Issue 15, item 3: a zero group count divided by zero in plan, a
		// negative one panicked in nn.NewGroupNorm.
		{`{"norm_num_groups": 0}`, []string{"norm_num_groups = 0, want a positive integer"}},
		{`{"norm_num_groups": -32}`, []string{"norm_num_groups = -32, want a positive integer"}},
		{`{"norm_num_groups": 100000}`, []string{"norm_num_groups = 100000, want at most 65536"}},
		// Item 12: a non-positive sample_size became 512 pixels silently.
		{`{"sample_size": 0}`, []string{"sample_size = 0, want a positive integer"}},
		{`{"sample_size": -64}`, []string{"sample_size = -64, want a positive integer"}},
		{`{"sample_size": [64, 0]}`, []string{"sample_size[1] = 0, want a positive integer"}},
		{`{"sample_size": []}`, []string{"sample_size has 0 entries, want an integer or [height, width]"}},
		{`{"sample_size": [64, 64, 64]}`, []string{"sample_size has 3 entries"}},
		{`{"sample_size": 1000000}`, []string{"sample_size = 1000000, want at most 65536"}},
		{`{"in_channels": 0}`, []string{"in_channels = 0, want a positive integer"}},
		{`{"in_channels": -4}`, []string{"in_channels = -4, want a positive integer"}},
		{`{"out_channels": 0}`, []string{"out_channels = 0, want a positive integer"}},
		{`{"out_channels": 70000}`, []string{"out_channels = 70000, want at most 65536"}},
		{`{"block_out_channels": [320, 0, 1280, 1280]}`, []string{"block_out_channels[1] = 0, want a positive integer"}},
		{`{"block_out_channels": [-320, 640, 1280, 1280]}`, []string{"block_out_channels[0] = -320, want a positive integer"}},
		{`{"block_out_channels": [320, 640, 1280, 131072]}`, []string{"block_out_channels[3] = 131072, want at most 65536"}},
		{`{"layers_per_block": 0}`, []string{"layers_per_block = 0, want a positive integer"}},
		{`{"layers_per_block": [2, 2, -1, 2]}`, []string{"layers_per_block[2] = -1, want a positive integer"}},
		{`{"layers_per_block": 100000}`, []string{"layers_per_block = 100000, want at most 65536"}},
		{`{"layers_per_block": []}`, []string{"layers_per_block is empty"}},
		{`{"layers_per_block": [2, 2]}`, []string{"layers_per_block has 2 entries, down_block_types 4"}},
		{`{"cross_attention_dim": 0}`, []string{"cross_attention_dim = 0, want a positive integer"}},
		{`{"cross_attention_dim": []}`, []string{"cross_attention_dim is empty"}},
		{`{"cross_attention_dim": 1000000}`, []string{"cross_attention_dim = 1000000, want at most 65536"}},
		{`{"attention_head_dim": 0}`, []string{"attention_head_dim = 0, want a positive integer"}},
		{`{"attention_head_dim": -8}`, []string{"attention_head_dim = -8, want a positive integer"}},
		{`{"attention_head_dim": []}`, []string{"attention_head_dim is empty"}},
		{`{"attention_head_dim": 7}`, []string{"320 channels do not split into 7 attention heads"}},
		{`{"num_attention_heads": 0}`, []string{"num_attention_heads = 0, want a positive integer"}},
		{`{"num_attention_heads": [8, 8, 8]}`, []string{"num_attention_heads has 3 entries, down_block_types 4"}},
		{`{"num_attention_heads": 3}`, []string{"do not split into 3 attention heads"}},
		{`{"transformer_layers_per_block": 0}`, []string{"transformer_layers_per_block = [0] is not supported (want 1)"}},
		{`{"transformer_layers_per_block": 2}`, []string{"transformer_layers_per_block = [2] is not supported (want 1)"}},
		{`{"conv_in_kernel": 0}`, []string{"conv_in_kernel = 0, want an odd positive size"}},
		{`{"conv_in_kernel": -3}`, []string{"conv_in_kernel = -3, want an odd positive size"}},
		{`{"conv_out_kernel": 4}`, []string{"conv_out_kernel = 4, want an odd positive size"}},
		{`{"conv_out_kernel": 131073}`, []string{"conv_out_kernel = 131073, want an odd positive size up to 65536"}},
		{`{"downsample_padding": -1}`, []string{"downsample_padding = -1, want 0 or 1"}},
		{`{"norm_eps": 0}`, []string{"norm_eps = 0, want a positive finite number"}},
		{`{"norm_eps": -1e-5}`, []string{"norm_eps = -1e-05, want a positive finite number"}},
		{`{"mid_block_scale_factor": 0}`, []string{"mid_block_scale_factor = 0, want a positive finite number"}},
		{`{"mid_block_scale_factor": -1}`, []string{"mid_block_scale_factor = -1, want a positive finite number"}},
		{`{"freq_shift": 160}`, []string{"freq_shift = 160 equals half of block_out_channels[0] = 320"}},
		{`{"norm_num_groups": null}`, []string{"norm_num_groups = <nil> is not supported"}},
		{`{"down_block_types": []}`, []string{"down_block_types is empty"}},
		{`{"block_out_channels": []}`, []string{"block_out_channels has 0 entries, down_block_types 4"}},
		{`{"up_block_types": []}`, []string{"up_block_types has 0 entries, down_block_types 4"}},
		{`{"down_block_types": ["DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D","DownBlock2D"]}`,
			[]string{"down_block_types has 17 entries, want at most 16"}},
		// Sizes that are each allowed but together ask for terabytes.
		{`{"block_out_channels": [65536, 65536, 65536, 65536], "layers_per_block": 100, "norm_num_groups": 32}`,
			[]string{"block_out_channels [65536 65536 65536 65536], layers_per_block [100]", "parameters, want at most 17179869184"}},
		// Values JSON cannot put in the fields.
		{`{"norm_num_groups": 1e20}`, []string{"norm_num_groups"}},
		{`{"norm_eps": 1e50}`, []string{"norm_eps"}},
		{`{"layers_per_block": 2.5}`, []string{"want an integer or a list of integers"}},
	} {
		t.Run(tc.json, func(t *testing.T) {
			testutil.NoPanic(t, tc.json, func() {
				_, err := ParseConfig([]byte(tc.json))
				require.Error(t, err, tc.json)
				require.True(t, strings.HasPrefix(err.Error(), "unet: config: "), err.Error())
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
		require.ErrorContains(t, err, "unet: "+path+": config: norm_num_groups = 0, want a positive integer")
	})
}

// TestConfigBadFloats sets values JSON cannot spell (NaN, infinities) on a
// Config and requires Validate and New to refuse them by key.
func TestConfigBadFloats(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, tc := range []struct {
		set  func(c *Config)
		want string
	}{
		{func(c *Config) { c.NormEps = nan }, "norm_eps = NaN, want a positive finite number"},
		{func(c *Config) { c.NormEps = inf }, "norm_eps = +Inf, want a positive finite number"},
		{func(c *Config) { c.MidBlockScaleFactor = nan }, "mid_block_scale_factor = NaN, want a positive finite number"},
		{func(c *Config) { c.MidBlockScaleFactor = inf }, "mid_block_scale_factor = +Inf"},
		{func(c *Config) { c.FreqShift = nan }, "freq_shift = NaN, want a finite number"},
		{func(c *Config) { c.FreqShift = -inf }, "freq_shift = -Inf, want a finite number"},
		// Lists a Go caller may leave nil.
		{func(c *Config) { c.LayersPerBlock = nil }, "layers_per_block is empty"},
		{func(c *Config) { c.CrossAttentionDim = nil }, "cross_attention_dim is empty"},
		{func(c *Config) { c.AttentionHeadDim = nil }, "attention_head_dim is empty"},
		{func(c *Config) { c.BlockOutChannels = nil }, "block_out_channels has 0 entries"},
		{func(c *Config) { g := 0; c.NormNumGroups = &g }, "norm_num_groups = 0, want a positive integer"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			c := tinyConfig()
			tc.set(&c)
			testutil.NoPanic(t, tc.want, func() {
				require.ErrorContains(t, c.Validate(), tc.want)
				_, err := New(nn.NewRandomBuilder(1, tensor.F32), c)
				require.ErrorContains(t, err, tc.want)
				require.True(t, strings.HasPrefix(err.Error(), "unet: config: "), err.Error())
			})
		})
	}
}

// tinyConfig is a valid two-level U-Net (the golden model's shape).
func tinyConfig() Config {
	c := DefaultConfig()
	c.DownBlockTypes = []string{"DownBlock2D", "CrossAttnDownBlock2D"}
	c.UpBlockTypes = []string{"CrossAttnUpBlock2D", "UpBlock2D"}
	c.BlockOutChannels = []int{32, 64}
	c.CrossAttentionDim = IntList{32}
	c.SampleSize = IntList{8}
	return c
}

// TestConfigGoodValues checks that valid configs at the edges still pass:
// sample_size as a list, lists per block, one group, 1x1 kernels.
func TestConfigGoodValues(t *testing.T) {
	for _, js := range []string{
		`{}`,
		`{"sample_size": 64}`,
		`{"sample_size": [96, 64]}`,
		`{"sample_size": null}`,
		`{"layers_per_block": [1, 2, 3, 1], "cross_attention_dim": [768, 768, 1024, 1024]}`,
		`{"norm_num_groups": 1, "conv_in_kernel": 1, "conv_out_kernel": 7}`,
		`{"num_attention_heads": [5, 10, 20, 20], "attention_head_dim": [64, 64, 64, 64]}`,
		`{"freq_shift": 1}`,
		`{"transformer_layers_per_block": [1, 1, 1, 1]}`,
	} {
		testutil.NoPanic(t, js, func() {
			_, err := ParseConfig([]byte(js))
			require.NoError(t, err, js)
		})
	}
}

// TestNumParams checks the parameter count that bounds configs against the
// models New builds (random builders) and the published SD 1.5 / SD 2.1 counts.
func TestNumParams(t *testing.T) {
	for name, c := range map[string]Config{"tiny": tinyConfig(), "sd2Tiny": mustParse(sd2Tiny)} {
		c.ConvInKernel, c.ConvOutKernel = 5, 1 // other kernel sizes count too
		b := nn.NewRandomBuilder(1, tensor.F32)
		_, err := New(b, c)
		require.NoError(t, err, name)
		p, err := c.plan()
		require.NoError(t, err)
		require.Equal(t, float64(numParams(b.Params())), c.numParams(p), name)
	}
	for c, want := range map[*Config]float64{ptr(SD15Config()): 859_520_964, ptr(SD21Config()): 865_910_724} {
		p, err := c.plan()
		require.NoError(t, err)
		require.Equal(t, want, c.numParams(p), fmt.Sprint(c.CrossAttentionDim))
	}
}

func ptr[T any](v T) *T { return &v }

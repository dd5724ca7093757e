package sdckpt

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

// goldenModel returns the golden tiny-sd1 model folder, skipping the test
// when the golden data is absent (failing under ROENTGO_REQUIRE_GOLDEN=1).
func goldenModel(t testing.TB) string { return testutil.Golden(t, "model") }

func openST(t *testing.T, path string) *safetensors.File {
	t.Helper()
	f, err := safetensors.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

// TestGoldenTinySD1 maps the single-file golden checkpoint and compares every
// produced tensor with the diffusers folder holding the same weights.
func TestGoldenTinySD1(t *testing.T) {
	golden := goldenModel(t)
	single := openST(t, filepath.Join(golden, "tiny-sd1-fp32.safetensors"))
	folders := map[string]*safetensors.File{
		UNet:        openST(t, filepath.Join(golden, "diffusers/unet/diffusion_pytorch_model.safetensors")),
		VAE:         openST(t, filepath.Join(golden, "diffusers/vae/diffusion_pytorch_model.safetensors")),
		TextEncoder: openST(t, filepath.Join(golden, "diffusers/text_encoder/model.safetensors")),
	}
	// From the folders' config.json files (see the golden README).
	cfg := Config{
		UNetLayersPerBlock: 2, UNetBlocks: 2,
		UNetDownAttention: []bool{false, true}, UNetUpAttention: []bool{true, false},
		VAEBlocks: 2, VAELayersPerBlock: 1, VAEAttention: VAEAttnLegacy,
	}
	m, err := Convert(single.Names(), cfg)
	require.NoError(t, err)
	require.Empty(t, m.Unmapped)
	require.Empty(t, m.Ignored, "the golden file holds only model weights")

	produced := map[[2]string]int{}
	for _, orig := range single.Names() {
		src, ok := single.Get(orig)
		require.True(t, ok)
		for _, tg := range m.Targets[orig] {
			produced[[2]string{tg.Component, tg.Key}]++
			dst, ok := folders[tg.Component].Get(tg.Key)
			require.True(t, ok, "%s -> %s/%s: no such diffusers tensor", orig, tg.Component, tg.Key)
			shape, data, err := tg.Apply(src.Shape, src.Data, src.DType.Size())
			require.NoError(t, err)
			require.Equal(t, dst.DType, src.DType, tg.Key)
			require.Equal(t, dst.Shape, shape, "%s -> %s", orig, tg.Key)
			require.True(t, bytes.Equal(dst.Data, data), "%s -> %s/%s: bytes differ", orig, tg.Component, tg.Key)
		}
	}
	total := 0
	for comp, f := range folders {
		for _, k := range f.Names() {
			require.Equal(t, 1, produced[[2]string{comp, k}], "%s/%s produced %d times", comp, k, produced[[2]string{comp, k}])
		}
		total += len(f.Names())
	}
	require.Equal(t, total, len(produced))

	// The same through Sources, as a loader would use it.
	for comp, f := range folders {
		srcs := m.Sources(comp)
		require.Len(t, srcs, len(f.Names()))
	}
	// The decoder's up.3/up.2 (written by diffusers' script) land on up_blocks.0/1.
	require.Equal(t, "decoder.up_blocks.0.upsamplers.0.conv.weight",
		m.Targets["first_stage_model.decoder.up.3.upsample.conv.weight"][0].Key)
}

// The original LDM key lists below are derived from the module construction
// order of CompVis/stable-diffusion's ldm/modules/diffusionmodules/
// openaimodel.py (UNetModel) and model.py (Encoder/Decoder) with the SD v1
// configs (v1-inference.yaml: model_channels 320, channel_mult [1,2,4,4],
// num_res_blocks 2, attention_resolutions [4,2,1]; first stage ch 128,
// ch_mult [1,2,4,4], num_res_blocks 2). The expected diffusers lists follow
// diffusers' UNet2DConditionModel / AutoencoderKL module structure.

func wb(prefix string) []string { return []string{prefix + ".weight", prefix + ".bias"} }

func ldmResBlock(p string, skip bool) []string {
	var out []string
	for _, s := range []string{"in_layers.0", "in_layers.2", "emb_layers.1", "out_layers.0", "out_layers.3"} {
		out = append(out, wb(p+"."+s)...)
	}
	if skip {
		out = append(out, wb(p+".skip_connection")...)
	}
	return out
}

func diffResnet(p string, skip bool) []string {
	var out []string
	for _, s := range []string{"norm1", "conv1", "time_emb_proj", "norm2", "conv2"} {
		out = append(out, wb(p+"."+s)...)
	}
	if skip {
		out = append(out, wb(p+".conv_shortcut")...)
	}
	return out
}

// transformer lists a Transformer2DModel with one block; the names are the
// same in both layouts.
func transformer(p string) []string {
	out := append(wb(p+".norm"), wb(p+".proj_in")...)
	out = append(out, wb(p+".proj_out")...)
	b := p + ".transformer_blocks.0."
	for _, a := range []string{"attn1", "attn2"} {
		out = append(out, b+a+".to_q.weight", b+a+".to_k.weight", b+a+".to_v.weight")
		out = append(out, wb(b+a+".to_out.0")...)
	}
	for _, s := range []string{"ff.net.0.proj", "ff.net.2", "norm1", "norm2", "norm3"} {
		out = append(out, wb(b+s)...)
	}
	return out
}

func ldmUNetSD1() []string {
	mult := []int{1, 2, 4, 4}
	attnLevel := []bool{true, true, true, false}
	pre := "model.diffusion_model."
	keys := wb(pre + "time_embed.0")
	keys = append(keys, wb(pre+"time_embed.2")...)
	keys = append(keys, wb(pre+"input_blocks.0.0")...)
	ch, n := 320, 1
	chans := []int{320}
	for level, m := range mult {
		for r := 0; r < 2; r++ {
			p := fmt.Sprintf("%sinput_blocks.%d", pre, n)
			keys = append(keys, ldmResBlock(p+".0", ch != 320*m)...)
			ch = 320 * m
			if attnLevel[level] {
				keys = append(keys, transformer(p+".1")...)
			}
			chans = append(chans, ch)
			n++
		}
		if level != len(mult)-1 {
			keys = append(keys, wb(fmt.Sprintf("%sinput_blocks.%d.0.op", pre, n))...)
			chans = append(chans, ch)
			n++
		}
	}
	keys = append(keys, ldmResBlock(pre+"middle_block.0", false)...)
	keys = append(keys, transformer(pre+"middle_block.1")...)
	keys = append(keys, ldmResBlock(pre+"middle_block.2", false)...)
	n = 0
	for level := len(mult) - 1; level >= 0; level-- {
		for r := 0; r < 3; r++ {
			ich := chans[len(chans)-1]
			chans = chans[:len(chans)-1]
			p := fmt.Sprintf("%soutput_blocks.%d", pre, n)
			keys = append(keys, ldmResBlock(p+".0", ch+ich != 320*mult[level])...)
			ch = 320 * mult[level]
			slot := 1
			if attnLevel[level] {
				keys = append(keys, transformer(p+".1")...)
				slot = 2
			}
			if level > 0 && r == 2 {
				keys = append(keys, wb(fmt.Sprintf("%s.%d.conv", p, slot))...)
			}
			n++
		}
	}
	keys = append(keys, wb(pre+"out.0")...)
	return append(keys, wb(pre+"out.2")...)
}

func diffusersUNetSD1() []string {
	keys := append(wb("conv_in"), wb("time_embedding.linear_1")...)
	keys = append(keys, wb("time_embedding.linear_2")...)
	chans := []int{320, 640, 1280, 1280}
	for i := 0; i < 4; i++ {
		in := 320
		if i > 0 {
			in = chans[i-1]
		}
		for j := 0; j < 2; j++ {
			keys = append(keys, diffResnet(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), j == 0 && in != chans[i])...)
			if i < 3 {
				keys = append(keys, transformer(fmt.Sprintf("down_blocks.%d.attentions.%d", i, j))...)
			}
		}
		if i < 3 {
			keys = append(keys, wb(fmt.Sprintf("down_blocks.%d.downsamplers.0.conv", i))...)
		}
	}
	keys = append(keys, diffResnet("mid_block.resnets.0", false)...)
	keys = append(keys, transformer("mid_block.attentions.0")...)
	keys = append(keys, diffResnet("mid_block.resnets.1", false)...)
	for i := 0; i < 4; i++ {
		for j := 0; j < 3; j++ {
			keys = append(keys, diffResnet(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), true)...)
			if i > 0 {
				keys = append(keys, transformer(fmt.Sprintf("up_blocks.%d.attentions.%d", i, j))...)
			}
		}
		if i < 3 {
			keys = append(keys, wb(fmt.Sprintf("up_blocks.%d.upsamplers.0.conv", i))...)
		}
	}
	keys = append(keys, wb("conv_norm_out")...)
	return append(keys, wb("conv_out")...)
}

func ldmVAEResnet(p string, skip bool) []string {
	var out []string
	for _, s := range []string{"norm1", "conv1", "norm2", "conv2"} {
		out = append(out, wb(p+"."+s)...)
	}
	if skip {
		out = append(out, wb(p+".nin_shortcut")...)
	}
	return out
}

func ldmVAESD() []string {
	pre := "first_stage_model."
	mult := []int{1, 2, 4, 4}
	mid := func(p string) []string {
		out := ldmVAEResnet(p+".mid.block_1", false)
		for _, s := range []string{"norm", "q", "k", "v", "proj_out"} {
			out = append(out, wb(p+".mid.attn_1."+s)...)
		}
		return append(out, ldmVAEResnet(p+".mid.block_2", false)...)
	}
	keys := wb(pre + "encoder.conv_in")
	in := 128
	for l, m := range mult {
		for b := 0; b < 2; b++ {
			keys = append(keys, ldmVAEResnet(fmt.Sprintf("%sencoder.down.%d.block.%d", pre, l, b), in != 128*m)...)
			in = 128 * m
		}
		if l != 3 {
			keys = append(keys, wb(fmt.Sprintf("%sencoder.down.%d.downsample.conv", pre, l))...)
		}
	}
	keys = append(keys, mid(pre+"encoder")...)
	keys = append(keys, wb(pre+"encoder.norm_out")...)
	keys = append(keys, wb(pre+"encoder.conv_out")...)
	keys = append(keys, wb(pre+"decoder.conv_in")...)
	keys = append(keys, mid(pre+"decoder")...)
	in = 512
	for l := 3; l >= 0; l-- {
		for b := 0; b < 3; b++ {
			keys = append(keys, ldmVAEResnet(fmt.Sprintf("%sdecoder.up.%d.block.%d", pre, l, b), in != 128*mult[l])...)
			in = 128 * mult[l]
		}
		if l != 0 {
			keys = append(keys, wb(fmt.Sprintf("%sdecoder.up.%d.upsample.conv", pre, l))...)
		}
	}
	keys = append(keys, wb(pre+"decoder.norm_out")...)
	keys = append(keys, wb(pre+"decoder.conv_out")...)
	keys = append(keys, wb(pre+"quant_conv")...)
	return append(keys, wb(pre+"post_quant_conv")...)
}

func diffusersVAESD(modern bool) []string {
	names := []string{"group_norm", "query", "key", "value", "proj_attn"}
	if modern {
		names = []string{"group_norm", "to_q", "to_k", "to_v", "to_out.0"}
	}
	vres := func(p string, skip bool) []string {
		out := append(wb(p+".norm1"), wb(p+".conv1")...)
		out = append(out, wb(p+".norm2")...)
		out = append(out, wb(p+".conv2")...)
		if skip {
			out = append(out, wb(p+".conv_shortcut")...)
		}
		return out
	}
	mid := func(p string) []string {
		out := vres(p+".mid_block.resnets.0", false)
		for _, s := range names {
			out = append(out, wb(p+".mid_block.attentions.0."+s)...)
		}
		return append(out, vres(p+".mid_block.resnets.1", false)...)
	}
	chans := []int{128, 256, 512, 512}
	keys := wb("encoder.conv_in")
	for i := 0; i < 4; i++ {
		in := 128
		if i > 0 {
			in = chans[i-1]
		}
		for j := 0; j < 2; j++ {
			keys = append(keys, vres(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d", i, j), j == 0 && in != chans[i])...)
		}
		if i < 3 {
			keys = append(keys, wb(fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv", i))...)
		}
	}
	keys = append(keys, mid("encoder")...)
	keys = append(keys, wb("encoder.conv_norm_out")...)
	keys = append(keys, wb("encoder.conv_out")...)
	keys = append(keys, wb("decoder.conv_in")...)
	keys = append(keys, mid("decoder")...)
	rev := []int{512, 512, 256, 128}
	prev := 512
	for i := 0; i < 4; i++ {
		for j := 0; j < 3; j++ {
			keys = append(keys, vres(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d", i, j), j == 0 && prev != rev[i])...)
		}
		prev = rev[i]
		if i < 3 {
			keys = append(keys, wb(fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv", i))...)
		}
	}
	keys = append(keys, wb("decoder.conv_norm_out")...)
	keys = append(keys, wb("decoder.conv_out")...)
	keys = append(keys, wb("quant_conv")...)
	return append(keys, wb("post_quant_conv")...)
}

// produced returns the sorted target keys of one component, failing on duplicates.
func produced(t *testing.T, m *Mapping, comp string) []string {
	t.Helper()
	var out []string
	seen := map[string]bool{}
	for _, ts := range m.Targets {
		for _, tg := range ts {
			if tg.Component == comp {
				require.False(t, seen[tg.Key], "duplicate %s", tg.Key)
				seen[tg.Key] = true
				out = append(out, tg.Key)
			}
		}
	}
	sort.Strings(out)
	return out
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestSD1RealSizeKeys(t *testing.T) {
	unet, vae := ldmUNetSD1(), ldmVAESD()
	require.Len(t, unet, 686, "SD1.5 U-Net tensor count")
	require.Len(t, vae, 248, "SD VAE tensor count")
	keys := append(append([]string{}, unet...), vae...)
	keys = append(keys, "model_ema.decay", "model_ema.num_updates", "model_ema.diffusion_modelinput_blocks00weight",
		"betas", "alphas_cumprod", "posterior_mean_coef2", "logvar",
		"cond_stage_model.transformer.text_model.final_layer_norm.weight")
	for _, modern := range []bool{false, true} {
		cfg := SD1Config()
		if modern {
			cfg.VAEAttention = VAEAttnModern
		}
		m, err := Convert(keys, cfg)
		require.NoError(t, err)
		require.Empty(t, m.Unmapped)
		require.Len(t, m.Ignored, 7)
		require.Equal(t, sorted(diffusersUNetSD1()), produced(t, m, UNet))
		require.Equal(t, sorted(diffusersVAESD(modern)), produced(t, m, VAE))
		require.Equal(t, []string{"text_model.final_layer_norm.weight"}, produced(t, m, TextEncoder))
		// Spot checks of the arithmetic, from the LDM layout by hand.
		tg := m.Targets["model.diffusion_model.output_blocks.8.2.conv.weight"][0]
		require.Equal(t, "up_blocks.2.upsamplers.0.conv.weight", tg.Key)
		tg = m.Targets["model.diffusion_model.input_blocks.9.0.op.bias"][0]
		require.Equal(t, "down_blocks.2.downsamplers.0.conv.bias", tg.Key)
		tg = m.Targets["model.diffusion_model.output_blocks.2.1.conv.weight"][0]
		require.Equal(t, "up_blocks.0.upsamplers.0.conv.weight", tg.Key)
		tg = m.Targets["first_stage_model.decoder.up.0.block.2.conv2.weight"][0]
		require.Equal(t, "decoder.up_blocks.3.resnets.2.conv2.weight", tg.Key)
		tg = m.Targets["first_stage_model.encoder.mid.attn_1.q.weight"][0]
		require.Equal(t, Squeeze1x1, tg.Transform)
		tg = m.Targets["first_stage_model.encoder.mid.attn_1.q.bias"][0]
		require.Equal(t, Identity, tg.Transform)
	}
	// Without the attention lists the mapping is the same.
	cfg := SD1Config()
	cfg.UNetDownAttention, cfg.UNetUpAttention = nil, nil
	m, err := Convert(unet, cfg)
	require.NoError(t, err)
	require.Equal(t, sorted(diffusersUNetSD1()), produced(t, m, UNet))
}

func openCLIPKeys(layers int) []string {
	pre := "cond_stage_model.model."
	keys := []string{pre + "token_embedding.weight", pre + "positional_embedding", pre + "text_projection",
		pre + "logit_scale", pre + "ln_final.weight", pre + "ln_final.bias"}
	for n := 0; n < layers; n++ {
		p := fmt.Sprintf("%stransformer.resblocks.%d.", pre, n)
		keys = append(keys, p+"attn.in_proj_weight", p+"attn.in_proj_bias")
		for _, s := range []string{"ln_1", "ln_2", "attn.out_proj", "mlp.c_fc", "mlp.c_proj"} {
			keys = append(keys, wb(p+s)...)
		}
	}
	return keys
}

func TestSD2OpenCLIP(t *testing.T) {
	cfg := SD2Config()
	m, err := Convert(openCLIPKeys(24), cfg)
	require.NoError(t, err)
	require.Empty(t, m.Unmapped)
	te := produced(t, m, TextEncoder)
	require.Len(t, te, 2+2+23*16)
	require.Contains(t, m.Ignored, "cond_stage_model.model.transformer.resblocks.23.attn.in_proj_weight")
	require.Contains(t, m.Ignored, "cond_stage_model.model.text_projection")
	require.Contains(t, m.Ignored, "cond_stage_model.model.logit_scale")
	var want []string
	for n := 0; n < 23; n++ {
		p := fmt.Sprintf("text_model.encoder.layers.%d.", n)
		for _, s := range []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
			"layer_norm1", "layer_norm2", "mlp.fc1", "mlp.fc2"} {
			want = append(want, wb(p+s)...)
		}
	}
	want = append(want, "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight")
	want = append(want, wb("text_model.final_layer_norm")...)
	require.Equal(t, sorted(want), te)

	// The fused projection [3D, D] splits into q, k, v rows in that order.
	ts := m.Targets["cond_stage_model.model.transformer.resblocks.4.attn.in_proj_weight"]
	require.Len(t, ts, 3)
	const d = 2
	data := make([]byte, 3*d*d) // 1-byte elements 0..11: row r holds 2r, 2r+1
	for i := range data {
		data[i] = byte(i)
	}
	for p, name := range []string{"q_proj", "k_proj", "v_proj"} {
		require.Equal(t, "text_model.encoder.layers.4.self_attn."+name+".weight", ts[p].Key)
		shape, got, err := ts[p].Apply([]int{3 * d, d}, data, 1)
		require.NoError(t, err)
		require.Equal(t, []int{d, d}, shape)
		require.Equal(t, []byte{byte(4 * p), byte(4*p + 1), byte(4*p + 2), byte(4*p + 3)}, got)
	}

	cfg.TextProjection = true
	m, err = Convert(openCLIPKeys(1), cfg)
	require.NoError(t, err)
	tp := m.Targets["cond_stage_model.model.text_projection"][0]
	require.Equal(t, Target{Component: TextEncoder, Key: "text_projection.weight", Transform: Transpose}, tp)
	// [2, 3] -> [3, 2]: out[j][i] = in[i][j].
	shape, got, err := tp.Apply([]int{2, 3}, []byte{1, 2, 3, 4, 5, 6}, 1)
	require.NoError(t, err)
	require.Equal(t, []int{3, 2}, shape)
	require.Equal(t, []byte{1, 4, 2, 5, 3, 6}, got)
}

func TestApplyErrors(t *testing.T) {
	sq := Target{Key: "k", Transform: Squeeze1x1}
	_, _, err := sq.Apply([]int{4, 4, 3, 3}, make([]byte, 4*4*9), 1)
	require.ErrorContains(t, err, "expected a 1x1 convolution weight")
	shape, _, err := sq.Apply([]int{4, 4}, make([]byte, 16), 1)
	require.NoError(t, err)
	require.Equal(t, []int{4, 4}, shape)
	_, _, err = sq.Apply([]int{4, 4, 1, 1}, make([]byte, 15), 1)
	require.ErrorContains(t, err, "15 bytes for shape [4 4 1 1]")
	ch := Target{Key: "k", Transform: Chunk, Part: 1, Parts: 3}
	_, _, err = ch.Apply([]int{4, 2}, make([]byte, 8), 1)
	require.ErrorContains(t, err, "cannot take part 1 of 3")
	_, _, err = Target{Key: "k", Transform: Transpose}.Apply([]int{2, 2, 2}, make([]byte, 8), 1)
	require.ErrorContains(t, err, "expected a matrix")
}

func TestConvertErrors(t *testing.T) {
	cases := []struct {
		keys []string
		cfg  Config
		want string
	}{
		{[]string{"model.diffusion_model.input_blocks.13.0.in_layers.0.weight"}, SD1Config(), "input_blocks.13 is beyond 4 blocks"},
		{[]string{"model.diffusion_model.input_blocks.12.0.in_layers.0.weight"}, SD1Config(), "input_blocks.12 is a downsampler slot"},
		{[]string{"model.diffusion_model.output_blocks.12.0.in_layers.0.weight"}, SD1Config(), "output_blocks.12 is beyond 4 blocks"},
		{[]string{"model.diffusion_model.input_blocks.10.1.norm.weight"}, SD1Config(), "attention weights in down block 3"},
		{[]string{"model.diffusion_model.output_blocks.0.1.norm.weight"}, SD1Config(), "attention weights in up block 0"},
		{[]string{"model.diffusion_model.output_blocks.1.1.conv.weight"}, SD1Config(), "upsampler at output_blocks.1"},
		{[]string{"model.diffusion_model.input_blocks.12.0.op.weight"}, SD1Config(), "downsampler at input_blocks.12"},
		{[]string{"model.diffusion_model.input_blocks.99999999999999999999.0.op.weight"}, SD1Config(), "beyond 4 blocks"},
		{[]string{"model.diffusion_model.input_blocks.3.1.norm.weight"}, SD1Config(), "downsampler slot"},
		{[]string{"model.diffusion_model.input_blocks.1.0.in_layers.1.weight"}, SD1Config(), `unknown ResBlock parameter "in_layers.1.weight"`},
		{[]string{"model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.conv_in.weight"}, SD1Config(),
			"both map to unet/conv_in.weight"},
		{[]string{"first_stage_model.encoder.down.3.downsample.conv.weight"}, SD1Config(), "every block but the last"},
		{[]string{"first_stage_model.decoder.up.0.upsample.conv.weight"}, SD1Config(), "none in the last up block"},
		{[]string{"first_stage_model.encoder.down.0.block.0.nin_shortcutx.weight"}, SD1Config(), "unknown ResnetBlock parameter"},
		{[]string{"first_stage_model.decoder.up.9.block.0.conv1.weight", "first_stage_model.decoder.up.0.block.0.conv1.weight"},
			SD1Config(), "decoder.up.0 does not fit 4 VAE blocks (top index 9)"},
	}
	for _, c := range cases {
		_, err := Convert(c.keys, c.cfg)
		require.Error(t, err, "%v", c.keys)
		require.ErrorContains(t, err, c.want, "%v", c.keys)
		require.True(t, strings.HasPrefix(err.Error(), "sdckpt: "))
	}
	m, err := Convert([]string{"foo.bar", "model.diffusion_model.label_emb.0.0.weight", "cond_stage_model.model.whatever"}, SD1Config())
	require.NoError(t, err)
	require.Equal(t, []string{"cond_stage_model.model.whatever", "foo.bar", "model.diffusion_model.label_emb.0.0.weight"}, m.Unmapped)
}

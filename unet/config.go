package unet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
)

// IntList is a config value that diffusers accepts as one integer for every
// block or as a list with one integer per down block (attention_head_dim,
// layers_per_block, cross_attention_dim).
type IntList []int

// UnmarshalJSON accepts a number, a list of numbers or null (which leaves the list
// unchanged).
func (l *IntList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var v []int
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	var v int
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want an integer or a list of integers, got %s", b)
	}
	*l = IntList{v}
	return nil
}

// at returns the value for block i: the single value, or the i-th of a list.
func (l IntList) at(i int) int {
	if len(l) == 1 {
		return l[0]
	}
	return l[i]
}

// BoolList is only_cross_attention: one bool or a list with one per block.
type BoolList []bool

// UnmarshalJSON accepts a bool, a list of bools or null.
func (l *BoolList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '[' {
		var v []bool
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*l = v
		return nil
	}
	var v bool
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want a bool or a list of bools, got %s", b)
	}
	*l = BoolList{v}
	return nil
}

// Config is the configuration of a UNet2DConditionModel: the keys of a diffusers
// unet/config.json, with diffusers' defaults (DefaultConfig; SD1.x's values).
// Options that change the architecture beyond Stable Diffusion 1.x/2.x are
// listed too, so that a config setting one of them is refused by name rather
// than silently misread; they must keep their defaults.
type Config struct {
	SampleSize          IntList  `json:"sample_size"` // latent size the model was trained at (the default image size): an integer or [height, width]
	InChannels          int      `json:"in_channels"`
	OutChannels         int      `json:"out_channels"`
	CenterInputSample   bool     `json:"center_input_sample"` // sample = 2*sample - 1 first
	FlipSinToCos        bool     `json:"flip_sin_to_cos"`
	FreqShift           float32  `json:"freq_shift"`
	DownBlockTypes      []string `json:"down_block_types"` // CrossAttnDownBlock2D, DownBlock2D
	MidBlockType        *string  `json:"mid_block_type"`   // UNetMidBlock2DCrossAttn
	UpBlockTypes        []string `json:"up_block_types"`   // UpBlock2D, CrossAttnUpBlock2D
	OnlyCrossAttention  BoolList `json:"only_cross_attention"`
	BlockOutChannels    []int    `json:"block_out_channels"`
	LayersPerBlock      IntList  `json:"layers_per_block"`
	DownsamplePadding   int      `json:"downsample_padding"`
	MidBlockScaleFactor float32  `json:"mid_block_scale_factor"`
	ActFn               string   `json:"act_fn"`
	NormNumGroups       *int     `json:"norm_num_groups"`
	NormEps             float32  `json:"norm_eps"`
	CrossAttentionDim   IntList  `json:"cross_attention_dim"`
	// AttentionHeadDim is, in diffusers 0.16, the number of heads per block (the
	// head width is channels/heads). Newer configs may set NumAttentionHeads
	// instead, which takes precedence.
	AttentionHeadDim     IntList `json:"attention_head_dim"`
	NumAttentionHeads    IntList `json:"num_attention_heads"`
	DualCrossAttention   bool    `json:"dual_cross_attention"`
	UseLinearProjection  bool    `json:"use_linear_projection"`
	UpcastAttention      bool    `json:"upcast_attention"` // accepted: attention is always computed in float32
	ResnetTimeScaleShift string  `json:"resnet_time_scale_shift"`
	ResnetSkipTimeAct    bool    `json:"resnet_skip_time_act"`
	ResnetOutScaleFactor float32 `json:"resnet_out_scale_factor"`
	TimeEmbeddingType    string  `json:"time_embedding_type"`
	ConvInKernel         int     `json:"conv_in_kernel"`
	ConvOutKernel        int     `json:"conv_out_kernel"`
	// TransformerLayersPerBlock (newer diffusers): Transformer2D depth, 1 here.
	TransformerLayersPerBlock IntList `json:"transformer_layers_per_block"`

	// Unsupported options: they must stay null / false / their default.
	ClassEmbedType                    *string `json:"class_embed_type"`
	AdditionEmbedType                 *string `json:"addition_embed_type"`
	NumClassEmbeds                    *int    `json:"num_class_embeds"`
	TimeCondProjDim                   *int    `json:"time_cond_proj_dim"`
	EncoderHidDim                     *int    `json:"encoder_hid_dim"`
	EncoderHidDimType                 *string `json:"encoder_hid_dim_type"`
	TimeEmbeddingDim                  *int    `json:"time_embedding_dim"`
	TimeEmbeddingActFn                *string `json:"time_embedding_act_fn"`
	TimestepPostAct                   *string `json:"timestep_post_act"`
	ProjectionClassEmbeddingsInputDim *int    `json:"projection_class_embeddings_input_dim"`
	ClassEmbeddingsConcat             bool    `json:"class_embeddings_concat"`
	MidBlockOnlyCrossAttention        *bool   `json:"mid_block_only_cross_attention"`
	CrossAttentionNorm                *string `json:"cross_attention_norm"`
	AdditionTimeEmbedDim              *int    `json:"addition_time_embed_dim"`
	AttentionType                     string  `json:"attention_type"`
	ReverseTransformerLayersPerBlock  any     `json:"reverse_transformer_layers_per_block"`
	Dropout                           float32 `json:"dropout"`
}

// DefaultConfig returns diffusers' defaults of UNet2DConditionModel (0.16), which
// are Stable Diffusion 1.x's architecture except cross_attention_dim (1280 in
// diffusers, 768 in SD1.x).
func DefaultConfig() Config {
	mid := "UNetMidBlock2DCrossAttn"
	groups := 32
	return Config{
		InChannels: 4, OutChannels: 4,
		FlipSinToCos:         true,
		DownBlockTypes:       []string{"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"},
		MidBlockType:         &mid,
		UpBlockTypes:         []string{"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"},
		OnlyCrossAttention:   BoolList{false},
		BlockOutChannels:     []int{320, 640, 1280, 1280},
		LayersPerBlock:       IntList{2},
		DownsamplePadding:    1,
		MidBlockScaleFactor:  1,
		ActFn:                "silu",
		NormNumGroups:        &groups,
		NormEps:              1e-5,
		CrossAttentionDim:    IntList{1280},
		AttentionHeadDim:     IntList{8},
		ResnetTimeScaleShift: "default",
		ResnetOutScaleFactor: 1,
		TimeEmbeddingType:    "positional",
		ConvInKernel:         3, ConvOutKernel: 3,
		TransformerLayersPerBlock: IntList{1},
		AttentionType:             "default",
	}
}

// LoadConfig reads a diffusers unet/config.json: keys absent from the file keep
// diffusers' defaults. It returns an error naming the file and every problem
// (see Validate).
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, errctx.Wrap("unet", err)
	}
	c, err := parseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("unet: %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes and validates the JSON of a diffusers unet/config.json.
func ParseConfig(data []byte) (Config, error) {
	c, err := parseConfig(data)
	if err != nil {
		return Config{}, errctx.Wrap("unet", err)
	}
	return c, nil
}

func parseConfig(data []byte) (Config, error) {
	c := DefaultConfig()
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	return c, c.validate()
}

// Supported block types.
const (
	crossDown = "CrossAttnDownBlock2D"
	plainDown = "DownBlock2D"
	crossUp   = "CrossAttnUpBlock2D"
	plainUp   = "UpBlock2D"
	crossMid  = "UNetMidBlock2DCrossAttn"
)

// blockType returns t without diffusers' optional "UNetRes" prefix.
func blockType(t string) string { return strings.TrimPrefix(t, "UNetRes") }

// Validate checks that c describes a U-Net this package can build: known block
// types, consistent list lengths, positive sizes (channels, groups, heads,
// layers, kernels, sample_size) within nn.MaxDim and at most nn.MaxLevels
// blocks, positive finite norm_eps and mid_block_scale_factor, channel counts
// divisible by the group and head counts, at most nn.MaxParams parameters, and
// no unsupported option changed from its default. The error names the keys and
// lists every problem found.
func (c *Config) Validate() error {
	if err := c.validate(); err != nil {
		return errctx.Wrap("unet", err)
	}
	return nil
}

func (c *Config) validate() error {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	posInt := func(key string, v int) {
		switch {
		case v < 1:
			bad("%s = %d, want a positive integer", key, v)
		case v > nn.MaxDim:
			bad("%s = %d, want at most %d", key, v, nn.MaxDim)
		}
	}
	posInts := func(key string, l IntList) {
		for i, v := range l {
			k := key
			if len(l) > 1 {
				k = fmt.Sprintf("%s[%d]", key, i)
			}
			posInt(k, v)
		}
	}
	posFloat := func(key string, v float32) {
		if !(v > 0) || math.IsInf(float64(v), 0) {
			bad("%s = %g, want a positive finite number", key, v)
		}
	}
	unsupported := func(key string, isSet bool, v any) {
		if isSet {
			bad("%s = %v is not supported (want the default)", key, v)
		}
	}
	str := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	num := func(p *int) any {
		if p == nil {
			return nil
		}
		return *p
	}
	unsupported("class_embed_type", c.ClassEmbedType != nil, str(c.ClassEmbedType))
	unsupported("addition_embed_type", c.AdditionEmbedType != nil, str(c.AdditionEmbedType))
	unsupported("num_class_embeds", c.NumClassEmbeds != nil, num(c.NumClassEmbeds))
	unsupported("time_cond_proj_dim", c.TimeCondProjDim != nil, num(c.TimeCondProjDim))
	unsupported("encoder_hid_dim", c.EncoderHidDim != nil, num(c.EncoderHidDim))
	unsupported("encoder_hid_dim_type", c.EncoderHidDimType != nil, str(c.EncoderHidDimType))
	unsupported("time_embedding_dim", c.TimeEmbeddingDim != nil, num(c.TimeEmbeddingDim))
	unsupported("time_embedding_act_fn", c.TimeEmbeddingActFn != nil, str(c.TimeEmbeddingActFn))
	unsupported("timestep_post_act", c.TimestepPostAct != nil, str(c.TimestepPostAct))
	unsupported("projection_class_embeddings_input_dim", c.ProjectionClassEmbeddingsInputDim != nil, num(c.ProjectionClassEmbeddingsInputDim))
	unsupported("class_embeddings_concat", c.ClassEmbeddingsConcat, true)
	unsupported("mid_block_only_cross_attention", c.MidBlockOnlyCrossAttention != nil && *c.MidBlockOnlyCrossAttention, true)
	unsupported("cross_attention_norm", c.CrossAttentionNorm != nil, str(c.CrossAttentionNorm))
	unsupported("addition_time_embed_dim", c.AdditionTimeEmbedDim != nil, num(c.AdditionTimeEmbedDim))
	unsupported("attention_type", c.AttentionType != "default", fmt.Sprintf("%q", c.AttentionType))
	unsupported("reverse_transformer_layers_per_block", c.ReverseTransformerLayersPerBlock != nil, c.ReverseTransformerLayersPerBlock)
	unsupported("dual_cross_attention", c.DualCrossAttention, true)
	unsupported("resnet_skip_time_act", c.ResnetSkipTimeAct, true)
	unsupported("resnet_out_scale_factor", c.ResnetOutScaleFactor != 1, c.ResnetOutScaleFactor)
	unsupported("resnet_time_scale_shift", c.ResnetTimeScaleShift != "default", fmt.Sprintf("%q", c.ResnetTimeScaleShift))
	unsupported("time_embedding_type", c.TimeEmbeddingType != "positional", fmt.Sprintf("%q", c.TimeEmbeddingType))
	unsupported("act_fn", c.ActFn != "silu", fmt.Sprintf("%q", c.ActFn))
	unsupported("norm_num_groups", c.NormNumGroups == nil, nil)
	unsupported("only_cross_attention", slices.Contains(c.OnlyCrossAttention, true), []bool(c.OnlyCrossAttention))
	if c.MidBlockType == nil {
		bad("mid_block_type = null (no mid block) is not supported (want %q)", crossMid)
	} else if *c.MidBlockType != crossMid {
		bad("unknown mid_block_type %q (want %q)", *c.MidBlockType, crossMid)
	}
	for i, t := range c.DownBlockTypes {
		if bt := blockType(t); bt != crossDown && bt != plainDown {
			bad("unknown down_block_types[%d] %q (want %q or %q)", i, t, crossDown, plainDown)
		}
	}
	for i, t := range c.UpBlockTypes {
		if bt := blockType(t); bt != crossUp && bt != plainUp {
			bad("unknown up_block_types[%d] %q (want %q or %q)", i, t, crossUp, plainUp)
		}
	}
	n := len(c.DownBlockTypes)
	if n == 0 {
		bad("down_block_types is empty")
	}
	if n > nn.MaxLevels {
		bad("down_block_types has %d entries, want at most %d", n, nn.MaxLevels)
	}
	if len(c.UpBlockTypes) != n {
		bad("up_block_types has %d entries, down_block_types %d: they must match", len(c.UpBlockTypes), n)
	}
	if len(c.BlockOutChannels) != n {
		bad("block_out_channels has %d entries, down_block_types %d: they must match", len(c.BlockOutChannels), n)
	}
	lists := []struct {
		key string
		n   int
	}{
		{"attention_head_dim", len(c.AttentionHeadDim)}, {"num_attention_heads", len(c.NumAttentionHeads)},
		{"layers_per_block", len(c.LayersPerBlock)}, {"cross_attention_dim", len(c.CrossAttentionDim)},
		{"only_cross_attention", len(c.OnlyCrossAttention)}, {"transformer_layers_per_block", len(c.TransformerLayersPerBlock)},
	}
	for _, l := range lists {
		if l.n > 1 && l.n != n {
			bad("%s has %d entries, down_block_types %d: give one value or one per block", l.key, l.n, n)
		}
	}
	if len(c.AttentionHeadDim) == 0 && len(c.NumAttentionHeads) == 0 {
		bad("attention_head_dim is empty")
	}
	for _, k := range []struct {
		key string
		l   IntList
	}{{"layers_per_block", c.LayersPerBlock}, {"cross_attention_dim", c.CrossAttentionDim}, {"attention_head_dim", c.AttentionHeadDim}, {"num_attention_heads", c.NumAttentionHeads}} {
		if len(k.l) == 0 && (k.key == "layers_per_block" || k.key == "cross_attention_dim") {
			bad("%s is empty, want an integer or one per block", k.key)
		}
		posInts(k.key, k.l)
	}
	for _, v := range c.TransformerLayersPerBlock {
		if v != 1 {
			bad("transformer_layers_per_block = %v is not supported (want 1)", []int(c.TransformerLayersPerBlock))
			break
		}
	}
	// sample_size only sets the default image size, but a value that cannot
	// be one must not pass silently.
	if c.SampleSize != nil && (len(c.SampleSize) == 0 || len(c.SampleSize) > 2) {
		bad("sample_size has %d entries, want an integer or [height, width]", len(c.SampleSize))
	}
	posInts("sample_size", c.SampleSize)
	posInt("in_channels", c.InChannels)
	posInt("out_channels", c.OutChannels)
	for i, ch := range c.BlockOutChannels {
		posInt(fmt.Sprintf("block_out_channels[%d]", i), ch)
	}
	if c.NormNumGroups != nil {
		posInt("norm_num_groups", *c.NormNumGroups)
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"conv_in_kernel", c.ConvInKernel}, {"conv_out_kernel", c.ConvOutKernel}} {
		if k.v < 1 || k.v%2 == 0 || k.v > nn.MaxDim {
			bad("%s = %d, want an odd positive size up to %d", k.key, k.v, nn.MaxDim)
		}
	}
	if c.DownsamplePadding != 0 && c.DownsamplePadding != 1 {
		bad("downsample_padding = %d, want 0 or 1", c.DownsamplePadding)
	}
	posFloat("norm_eps", c.NormEps)
	posFloat("mid_block_scale_factor", c.MidBlockScaleFactor)
	if f := float64(c.FreqShift); math.IsNaN(f) || math.IsInf(f, 0) {
		bad("freq_shift = %g, want a finite number (0 or 1)", c.FreqShift)
	} else if len(c.BlockOutChannels) > 0 && float32(c.BlockOutChannels[0]/2) == c.FreqShift {
		// get_timestep_embedding divides by half_dim - freq_shift.
		bad("freq_shift = %g equals half of block_out_channels[0] = %d, which divides the timestep frequencies by zero", c.FreqShift, c.BlockOutChannels[0])
	}
	if len(errs) > 0 {
		return errors.New("config: " + strings.Join(errs, "; "))
	}
	// Channel arithmetic needs consistent lists; check it last.
	p, err := c.plan()
	if err != nil {
		return err
	}
	if np := c.numParams(p); np > nn.MaxParams {
		return fmt.Errorf("config: block_out_channels %v, layers_per_block %v and cross_attention_dim %v make a model of %.4g parameters, want at most %d",
			c.BlockOutChannels, []int(c.LayersPerBlock), []int(c.CrossAttentionDim), np, nn.MaxParams)
	}
	return nil
}

// resnetSpec is one ResnetBlock2D: in and out channels.
type resnetSpec struct{ in, out int }

// blockSpec describes one down or up block.
type blockSpec struct {
	resnets  []resnetSpec
	attn     bool // Transformer2D after each resnet
	heads    int  // attention heads (attention_head_dim in diffusers 0.16)
	cross    int  // cross_attention_dim
	resample bool // downsampler / upsampler
	out      int  // block output channels
}

// netPlan is the channel bookkeeping of the whole network.
type netPlan struct {
	down, up            []blockSpec
	midHeads, midCross  int
	midChannels, groups int
}

// heads returns the number of attention heads of down block i.
func (c *Config) heads(i int) int {
	if len(c.NumAttentionHeads) > 0 {
		return c.NumAttentionHeads.at(i)
	}
	return c.AttentionHeadDim.at(i)
}

// plan derives every block's channels as diffusers' UNet2DConditionModel does,
// and checks the group and head divisibility.
func (c *Config) plan() (*netPlan, error) {
	n := len(c.BlockOutChannels)
	boc := c.BlockOutChannels
	p := &netPlan{groups: *c.NormNumGroups, midChannels: boc[n-1], midHeads: c.heads(n - 1), midCross: c.CrossAttentionDim.at(n - 1)}
	var errs []string
	check := func(what string, ch int) {
		if ch < 1 || ch%p.groups != 0 {
			errs = append(errs, fmt.Sprintf("%s: %d channels are not a positive multiple of norm_num_groups %d", what, ch, p.groups))
		}
	}
	checkHeads := func(what string, ch, heads int) {
		if ch%heads != 0 {
			errs = append(errs, fmt.Sprintf("%s: %d channels do not split into %d attention heads", what, ch, heads))
		}
	}
	check("conv_norm_out", boc[0])
	out := boc[0]
	for i, t := range c.DownBlockTypes {
		in := out
		out = boc[i]
		s := blockSpec{attn: blockType(t) == crossDown, heads: c.heads(i), cross: c.CrossAttentionDim.at(i), resample: i < n-1, out: out}
		for j := 0; j < c.LayersPerBlock.at(i); j++ {
			r := resnetSpec{in: in, out: out}
			if j > 0 {
				r.in = out
			}
			check(fmt.Sprintf("down_blocks.%d.resnets.%d", i, j), r.in)
			s.resnets = append(s.resnets, r)
		}
		check(fmt.Sprintf("down_blocks.%d", i), out)
		if s.attn {
			checkHeads(fmt.Sprintf("down_blocks.%d.attentions", i), out, s.heads)
		}
		p.down = append(p.down, s)
	}
	checkHeads("mid_block.attentions.0", p.midChannels, p.midHeads)
	out = boc[n-1]
	for i, t := range c.UpBlockTypes {
		k := n - 1 - i // the matching down block
		prev := out
		out = boc[k]
		in := boc[max(k-1, 0)]
		s := blockSpec{attn: blockType(t) == crossUp, heads: c.heads(k), cross: c.CrossAttentionDim.at(k), resample: i < n-1, out: out}
		layers := c.LayersPerBlock.at(k) + 1
		for j := 0; j < layers; j++ {
			skip, rin := out, out
			if j == layers-1 {
				skip = in
			}
			if j == 0 {
				rin = prev
			}
			r := resnetSpec{in: rin + skip, out: out}
			check(fmt.Sprintf("up_blocks.%d.resnets.%d", i, j), r.in)
			s.resnets = append(s.resnets, r)
		}
		if s.attn {
			checkHeads(fmt.Sprintf("up_blocks.%d.attentions", i), out, s.heads)
		}
		p.up = append(p.up, s)
	}
	if len(errs) > 0 {
		return nil, errors.New("config: " + strings.Join(errs, "; "))
	}
	return p, nil
}

// numParams returns the number of parameters of the model p describes, as a
// float64 so that the sums of an absurd config cannot overflow (New creates
// exactly this many).
func (c *Config) numParams(p *netPlan) float64 {
	f := func(v int) float64 { return float64(v) }
	c0 := f(c.BlockOutChannels[0])
	temb := 4 * c0
	resnet := func(r resnetSpec) float64 {
		in, out := f(r.in), f(r.out)
		// norm1, conv1, time_emb_proj, norm2, conv2
		n := 2*in + 9*in*out + out + temb*out + out + 2*out + 9*out*out + out
		if r.in != r.out {
			n += in*out + out // conv_shortcut
		}
		return n
	}
	transformer := func(ch, cross int) float64 {
		d, x := f(ch), f(cross)
		return 2*d + 2*(d*d+d) + // norm, proj_in, proj_out
			3*2*d + // norm1, norm2, norm3
			4*d*d + d + // attn1: to_q, to_k, to_v, to_out.0
			2*d*d + 2*x*d + d + // attn2, keys and values from the context
			8*d*d + 8*d + 4*d*d + d // ff: GEGLU proj, out
	}
	resample := func(ch int) float64 { return 9*f(ch)*f(ch) + f(ch) }
	kin, kout := f(c.ConvInKernel), f(c.ConvOutKernel)
	n := f(c.InChannels)*c0*kin*kin + c0   // conv_in
	n += c0*temb + temb + temb*temb + temb // time_embedding
	for _, blocks := range [][]blockSpec{p.down, p.up} {
		for _, s := range blocks {
			for _, r := range s.resnets {
				n += resnet(r)
				if s.attn {
					n += transformer(s.out, s.cross)
				}
			}
			if s.resample {
				n += resample(s.out)
			}
		}
	}
	mc := p.midChannels
	n += 2*resnet(resnetSpec{mc, mc}) + transformer(mc, p.midCross)
	n += 2*c0 + c0*f(c.OutChannels)*kout*kout + f(c.OutChannels) // conv_norm_out, conv_out
	return n
}

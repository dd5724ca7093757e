package sdckpt

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Component names of a diffusers pipeline folder.
const (
	UNet        = "unet"
	VAE         = "vae"
	TextEncoder = "text_encoder"
)

// Transform says how a target tensor is derived from the original one.
type Transform uint8

const (
	// Identity copies the tensor unchanged.
	Identity Transform = iota
	// Squeeze1x1 reshapes a 1x1-convolution weight [C, C', 1, 1] to [C, C'].
	Squeeze1x1
	// Chunk takes equal part Part of Parts along dimension 0.
	Chunk
	// Transpose swaps the two dimensions of a matrix.
	Transpose
)

func (t Transform) String() string {
	switch t {
	case Identity:
		return "identity"
	case Squeeze1x1:
		return "squeeze1x1"
	case Chunk:
		return "chunk"
	case Transpose:
		return "transpose"
	}
	return fmt.Sprintf("Transform(%d)", uint8(t))
}

// Target is one diffusers tensor made from an original tensor.
type Target struct {
	Component string // UNet, VAE or TextEncoder
	Key       string // diffusers state-dict key within the component
	Transform Transform
	Part      int // for Chunk: which part (0-based) of Parts
	Parts     int
}

// VAEAttentionNames selects the parameter names of the VAE's mid-block
// attention, which diffusers renamed.
type VAEAttentionNames uint8

const (
	// VAEAttnLegacy: group_norm, query, key, value, proj_attn — what the
	// golden diffusers 0.16.1 folder (and folders saved by diffusers before
	// the rename) contain.
	VAEAttnLegacy VAEAttentionNames = iota
	// VAEAttnModern: group_norm, to_q, to_k, to_v, to_out.0 — what newer
	// diffusers releases save.
	VAEAttnModern
)

// Config holds the architecture facts the mapping needs. Zero values take
// the Stable Diffusion 1.x/2.x defaults; nil attention lists skip the checks.
type Config struct {
	// UNetLayersPerBlock is the U-Net's layers_per_block (default 2).
	UNetLayersPerBlock int
	// UNetBlocks is len(block_out_channels) of the U-Net (default 4).
	UNetBlocks int
	// UNetDownAttention[i] / UNetUpAttention[i] say whether down / up block
	// i has attentions (CrossAttn*Block2D). Optional: only checked.
	UNetDownAttention, UNetUpAttention []bool
	// VAEBlocks is len(block_out_channels) of the VAE (default 4).
	VAEBlocks int
	// VAELayersPerBlock is the VAE's layers_per_block (default 2): the
	// encoder has that many resnets per level, the decoder one more.
	VAELayersPerBlock int
	// VAEAttention selects the VAE attention names (default legacy).
	VAEAttention VAEAttentionNames
	// TextLayers, when > 0, is the text encoder's num_hidden_layers: OpenCLIP
	// layers at or beyond it are ignored (23 for SD2).
	TextLayers int
	// TextProjection maps OpenCLIP's text_projection to
	// text_projection.weight (transposed), as CLIPTextModelWithProjection
	// names it; otherwise it is ignored.
	TextProjection bool
}

// SD1Config returns the configuration of Stable Diffusion 1.x.
func SD1Config() Config {
	return Config{
		UNetLayersPerBlock: 2, UNetBlocks: 4,
		UNetDownAttention: []bool{true, true, true, false},
		UNetUpAttention:   []bool{false, true, true, true},
		VAEBlocks:         4, VAELayersPerBlock: 2,
	}
}

// SD2Config returns the configuration of Stable Diffusion 2.x (OpenCLIP
// text encoder with 23 of its 24 layers).
func SD2Config() Config {
	c := SD1Config()
	c.TextLayers = 23
	return c
}

func (c Config) withDefaults() Config {
	if c.UNetLayersPerBlock == 0 {
		c.UNetLayersPerBlock = 2
	}
	if c.UNetBlocks == 0 {
		c.UNetBlocks = 4
	}
	if c.VAEBlocks == 0 {
		c.VAEBlocks = 4
	}
	if c.VAELayersPerBlock == 0 {
		c.VAELayersPerBlock = 2
	}
	return c
}

// Mapping is the result of Convert.
type Mapping struct {
	// Targets maps each mapped original key to its diffusers targets (one,
	// or three for a fused OpenCLIP in_proj).
	Targets map[string][]Target
	// Ignored maps original keys that are skipped on purpose to the reason.
	Ignored map[string]string
	// Unmapped lists the original keys no rule matched, sorted.
	Unmapped []string
}

// Source is where a diffusers tensor comes from.
type Source struct {
	Key    string // original key
	Target Target
}

// Sources returns, for one component, the diffusers key -> source map a
// loader needs.
func (m *Mapping) Sources(component string) map[string]Source {
	out := map[string]Source{}
	for k, ts := range m.Targets {
		for _, t := range ts {
			if t.Component == component {
				out[t.Key] = Source{Key: k, Target: t}
			}
		}
	}
	return out
}

// state is the per-call context of the rules.
type state struct {
	cfg   Config
	vaeUp int // top index of the decoder's up levels
}

// A rule maps keys matching re (applied to the key after the component's
// prefix) with fn, which returns the targets or an error; a nil result with
// a non-empty reason means "ignored".
type rule struct {
	re *regexp.Regexp
	fn func(s *state, m []string) ([]Target, string, error)
}

// section is one component prefix of the original checkpoint.
type section struct {
	prefix string
	rules  []rule
}

var num = `(\d+)`

func r(pattern string, fn func(s *state, m []string) ([]Target, string, error)) rule {
	return rule{regexp.MustCompile("^" + pattern + "$"), fn}
}

// one builds a single-target result.
func one(component, key string, tr Transform) ([]Target, string, error) {
	return []Target{{Component: component, Key: key, Transform: tr}}, "", nil
}

func ignored(reason string) func(*state, []string) ([]Target, string, error) {
	return func(*state, []string) ([]Target, string, error) { return nil, reason, nil }
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n > 1<<20 {
		return 1 << 20 // rejected by the range checks
	}
	return n
}

// resnetLDM maps the inner names of an LDM ResBlock to diffusers'.
var resnetLDM = map[string]string{
	"in_layers.0":     "norm1",
	"in_layers.2":     "conv1",
	"emb_layers.1":    "time_emb_proj",
	"out_layers.0":    "norm2",
	"out_layers.3":    "conv2",
	"skip_connection": "conv_shortcut",
}

// unetResnet maps "<inner>.<weight|bias>" of a ResBlock.
func unetResnet(prefix, rest string) ([]Target, string, error) {
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return nil, "", fmt.Errorf("unknown ResBlock parameter %q", rest)
	}
	inner, ok := resnetLDM[rest[:i]]
	if !ok {
		return nil, "", fmt.Errorf("unknown ResBlock parameter %q", rest)
	}
	return one(UNet, prefix+inner+rest[i:], Identity)
}

// downSlot splits input_blocks.N (N >= 1) into level i and slot j.
func (s *state) downSlot(n int) (i, j int, err error) {
	per := s.cfg.UNetLayersPerBlock + 1
	i, j = (n-1)/per, (n-1)%per
	if n < 1 || i >= s.cfg.UNetBlocks {
		return 0, 0, fmt.Errorf("input_blocks.%d is beyond %d blocks of %d layers", n, s.cfg.UNetBlocks, s.cfg.UNetLayersPerBlock)
	}
	return i, j, nil
}

func (s *state) upSlot(n int) (i, j int, err error) {
	per := s.cfg.UNetLayersPerBlock + 1
	i, j = n/per, n%per
	if i >= s.cfg.UNetBlocks {
		return 0, 0, fmt.Errorf("output_blocks.%d is beyond %d blocks of %d layers", n, s.cfg.UNetBlocks, s.cfg.UNetLayersPerBlock)
	}
	return i, j, nil
}

func checkAttn(list []bool, kind string, i int) error {
	if list != nil && (i >= len(list) || !list[i]) {
		return fmt.Errorf("attention weights in %s block %d, which the config says has none", kind, i)
	}
	return nil
}

var unetRules = []rule{
	r(`time_embed\.0\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(UNet, "time_embedding.linear_1."+m[1], Identity)
	}),
	r(`time_embed\.2\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(UNet, "time_embedding.linear_2."+m[1], Identity)
	}),
	r(`input_blocks\.0\.0\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(UNet, "conv_in."+m[1], Identity)
	}),
	r(`out\.0\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(UNet, "conv_norm_out."+m[1], Identity)
	}),
	r(`out\.2\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(UNet, "conv_out."+m[1], Identity)
	}),
	r(`input_blocks\.`+num+`\.0\.op\.(.+)`, func(s *state, m []string) ([]Target, string, error) {
		i, j, err := s.downSlot(atoi(m[1]))
		if err != nil {
			return nil, "", err
		}
		if j != s.cfg.UNetLayersPerBlock || i == s.cfg.UNetBlocks-1 {
			return nil, "", fmt.Errorf("downsampler at input_blocks.%s, expected one after the last layer of every block but the last", m[1])
		}
		return one(UNet, fmt.Sprintf("down_blocks.%d.downsamplers.0.conv.%s", i, m[2]), Identity)
	}),
	r(`input_blocks\.`+num+`\.0\.(.+)`, func(s *state, m []string) ([]Target, string, error) {
		i, j, err := s.downSlot(atoi(m[1]))
		if err != nil {
			return nil, "", err
		}
		if j == s.cfg.UNetLayersPerBlock {
			return nil, "", fmt.Errorf("input_blocks.%s is a downsampler slot, expected only op.*", m[1])
		}
		return unetResnet(fmt.Sprintf("down_blocks.%d.resnets.%d.", i, j), m[2])
	}),
	r(`input_blocks\.`+num+`\.1\.(.+)`, func(s *state, m []string) ([]Target, string, error) {
		i, j, err := s.downSlot(atoi(m[1]))
		if err != nil {
			return nil, "", err
		}
		if j == s.cfg.UNetLayersPerBlock {
			return nil, "", fmt.Errorf("input_blocks.%s is a downsampler slot, expected no attention", m[1])
		}
		if err := checkAttn(s.cfg.UNetDownAttention, "down", i); err != nil {
			return nil, "", err
		}
		return one(UNet, fmt.Sprintf("down_blocks.%d.attentions.%d.%s", i, j, m[2]), Identity)
	}),
	r(`middle_block\.0\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return unetResnet("mid_block.resnets.0.", m[1])
	}),
	r(`middle_block\.1\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(UNet, "mid_block.attentions.0."+m[1], Identity)
	}),
	r(`middle_block\.2\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return unetResnet("mid_block.resnets.1.", m[1])
	}),
	r(`output_blocks\.`+num+`\.0\.(.+)`, func(s *state, m []string) ([]Target, string, error) {
		i, j, err := s.upSlot(atoi(m[1]))
		if err != nil {
			return nil, "", err
		}
		return unetResnet(fmt.Sprintf("up_blocks.%d.resnets.%d.", i, j), m[2])
	}),
	// An upsampler (Upsample has a single conv) after the resnet, or after
	// the transformer when the level has attention.
	r(`output_blocks\.`+num+`\.(1|2)\.conv\.(weight|bias)`, func(s *state, m []string) ([]Target, string, error) {
		i, j, err := s.upSlot(atoi(m[1]))
		if err != nil {
			return nil, "", err
		}
		if j != s.cfg.UNetLayersPerBlock || i == s.cfg.UNetBlocks-1 {
			return nil, "", fmt.Errorf("upsampler at output_blocks.%s, expected one in the last layer of every block but the last", m[1])
		}
		return one(UNet, fmt.Sprintf("up_blocks.%d.upsamplers.0.conv.%s", i, m[3]), Identity)
	}),
	r(`output_blocks\.`+num+`\.1\.(.+)`, func(s *state, m []string) ([]Target, string, error) {
		i, j, err := s.upSlot(atoi(m[1]))
		if err != nil {
			return nil, "", err
		}
		if err := checkAttn(s.cfg.UNetUpAttention, "up", i); err != nil {
			return nil, "", err
		}
		return one(UNet, fmt.Sprintf("up_blocks.%d.attentions.%d.%s", i, j, m[2]), Identity)
	}),
	// Modules a conversion script left with their diffusers names.
	r(`((?:conv_in|conv_out|conv_norm_out|time_embedding|down_blocks|up_blocks|mid_block)\..+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(UNet, m[1], Identity)
	}),
}

// vaeResnet maps a VAE ResnetBlock parameter (same names but the shortcut).
func vaeResnet(prefix, rest string) ([]Target, string, error) {
	inner, leaf, ok := strings.Cut(rest, ".")
	switch {
	case !ok:
	case inner == "nin_shortcut":
		return one(VAE, prefix+"conv_shortcut."+leaf, Identity)
	case inner == "norm1", inner == "norm2", inner == "conv1", inner == "conv2":
		return one(VAE, prefix+rest, Identity)
	}
	return nil, "", fmt.Errorf("unknown ResnetBlock parameter %q", rest)
}

var vaeAttnNames = [2]map[string]string{
	VAEAttnLegacy: {"norm": "group_norm", "q": "query", "k": "key", "v": "value", "proj_out": "proj_attn"},
	VAEAttnModern: {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"},
}

func (s *state) vaeUpLevel(n string) (int, error) {
	i := s.vaeUp - atoi(n)
	if i < 0 || i >= s.cfg.VAEBlocks {
		return 0, fmt.Errorf("decoder.up.%s does not fit %d VAE blocks (top index %d)", n, s.cfg.VAEBlocks, s.vaeUp)
	}
	return i, nil
}

var vaeRules = []rule{
	r(`((?:encoder|decoder)\.(?:conv_in|conv_out)\.(?:weight|bias))`, func(_ *state, m []string) ([]Target, string, error) {
		return one(VAE, m[1], Identity)
	}),
	r(`((?:quant_conv|post_quant_conv)\.(?:weight|bias))`, func(_ *state, m []string) ([]Target, string, error) {
		return one(VAE, m[1], Identity)
	}),
	r(`(encoder|decoder)\.norm_out\.(weight|bias)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(VAE, m[1]+".conv_norm_out."+m[2], Identity)
	}),
	r(`encoder\.down\.`+num+`\.block\.`+num+`\.(.+)`, func(s *state, m []string) ([]Target, string, error) {
		i, j := atoi(m[1]), atoi(m[2])
		if i >= s.cfg.VAEBlocks || j >= s.cfg.VAELayersPerBlock {
			return nil, "", fmt.Errorf("encoder.down.%d.block.%d is beyond %d blocks of %d layers", i, j, s.cfg.VAEBlocks, s.cfg.VAELayersPerBlock)
		}
		return vaeResnet(fmt.Sprintf("encoder.down_blocks.%d.resnets.%d.", i, j), m[3])
	}),
	r(`encoder\.down\.`+num+`\.downsample\.conv\.(weight|bias)`, func(s *state, m []string) ([]Target, string, error) {
		i := atoi(m[1])
		if i >= s.cfg.VAEBlocks-1 {
			return nil, "", fmt.Errorf("encoder.down.%d has a downsampler, expected one in every block but the last of %d", i, s.cfg.VAEBlocks)
		}
		return one(VAE, fmt.Sprintf("encoder.down_blocks.%d.downsamplers.0.conv.%s", i, m[2]), Identity)
	}),
	r(`decoder\.up\.`+num+`\.block\.`+num+`\.(.+)`, func(s *state, m []string) ([]Target, string, error) {
		i, err := s.vaeUpLevel(m[1])
		if err != nil {
			return nil, "", err
		}
		j := atoi(m[2])
		if j > s.cfg.VAELayersPerBlock {
			return nil, "", fmt.Errorf("decoder.up.%s.block.%d is beyond %d layers", m[1], j, s.cfg.VAELayersPerBlock+1)
		}
		return vaeResnet(fmt.Sprintf("decoder.up_blocks.%d.resnets.%d.", i, j), m[3])
	}),
	r(`decoder\.up\.`+num+`\.upsample\.conv\.(weight|bias)`, func(s *state, m []string) ([]Target, string, error) {
		i, err := s.vaeUpLevel(m[1])
		if err != nil {
			return nil, "", err
		}
		if i == s.cfg.VAEBlocks-1 {
			return nil, "", fmt.Errorf("decoder.up.%s has an upsampler, expected none in the last up block", m[1])
		}
		return one(VAE, fmt.Sprintf("decoder.up_blocks.%d.upsamplers.0.conv.%s", i, m[2]), Identity)
	}),
	r(`(encoder|decoder)\.mid\.block_(1|2)\.(.+)`, func(_ *state, m []string) ([]Target, string, error) {
		return vaeResnet(fmt.Sprintf("%s.mid_block.resnets.%d.", m[1], atoi(m[2])-1), m[3])
	}),
	r(`(encoder|decoder)\.mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)`, func(s *state, m []string) ([]Target, string, error) {
		tr := Identity
		if m[2] != "norm" && m[3] == "weight" {
			tr = Squeeze1x1
		}
		return one(VAE, fmt.Sprintf("%s.mid_block.attentions.0.%s.%s", m[1], vaeAttnNames[s.cfg.VAEAttention][m[2]], m[3]), tr)
	}),
	r(`loss\..+`, ignored("VAE training loss (LPIPS/discriminator)")),
}

// SD1: the Hugging Face CLIPTextModel, already in diffusers names (older
// transformers releases saved it without the text_model. prefix).
var clipHFRules = []rule{
	r(`(text_model\..+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(TextEncoder, m[1], Identity)
	}),
	r(`((?:embeddings|encoder|final_layer_norm)\..+)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(TextEncoder, "text_model."+m[1], Identity)
	}),
}

// openCLIPLayer maps the inner names of an OpenCLIP residual block.
var openCLIPLayer = map[string]string{
	"ln_1":          "layer_norm1",
	"ln_2":          "layer_norm2",
	"attn.out_proj": "self_attn.out_proj",
	"mlp.c_fc":      "mlp.fc1",
	"mlp.c_proj":    "mlp.fc2",
}

// SD2: OpenCLIP's text transformer.
var openCLIPRules = []rule{
	r(`token_embedding\.weight`, func(*state, []string) ([]Target, string, error) {
		return one(TextEncoder, "text_model.embeddings.token_embedding.weight", Identity)
	}),
	r(`positional_embedding`, func(*state, []string) ([]Target, string, error) {
		return one(TextEncoder, "text_model.embeddings.position_embedding.weight", Identity)
	}),
	r(`ln_final\.(weight|bias)`, func(_ *state, m []string) ([]Target, string, error) {
		return one(TextEncoder, "text_model.final_layer_norm."+m[1], Identity)
	}),
	r(`text_projection`, func(s *state, _ []string) ([]Target, string, error) {
		if !s.cfg.TextProjection {
			return nil, "text projection (unused by CLIPTextModel; set Config.TextProjection to keep it)", nil
		}
		return one(TextEncoder, "text_projection.weight", Transpose)
	}),
	r(`logit_scale`, ignored("CLIP contrastive temperature")),
	r(`attn_mask`, ignored("causal mask buffer")),
	r(`visual\..+`, ignored("OpenCLIP image tower")),
	r(`transformer\.resblocks\.`+num+`\.attn\.in_proj_(weight|bias)`, func(s *state, m []string) ([]Target, string, error) {
		n := atoi(m[1])
		if s.cfg.TextLayers > 0 && n >= s.cfg.TextLayers {
			return nil, fmt.Sprintf("text layer %d beyond the encoder's %d layers", n, s.cfg.TextLayers), nil
		}
		var ts []Target
		for p, name := range []string{"q_proj", "k_proj", "v_proj"} {
			ts = append(ts, Target{Component: TextEncoder, Key: fmt.Sprintf("text_model.encoder.layers.%d.self_attn.%s.%s", n, name, m[2]),
				Transform: Chunk, Part: p, Parts: 3})
		}
		return ts, "", nil
	}),
	r(`transformer\.resblocks\.`+num+`\.(ln_1|ln_2|attn\.out_proj|mlp\.c_fc|mlp\.c_proj)\.(weight|bias)`, func(s *state, m []string) ([]Target, string, error) {
		n := atoi(m[1])
		if s.cfg.TextLayers > 0 && n >= s.cfg.TextLayers {
			return nil, fmt.Sprintf("text layer %d beyond the encoder's %d layers", n, s.cfg.TextLayers), nil
		}
		return one(TextEncoder, fmt.Sprintf("text_model.encoder.layers.%d.%s.%s", n, openCLIPLayer[m[2]], m[3]), Identity)
	}),
}

// topIgnored are top-level keys of the LatentDiffusion module that are not
// model weights: the DDPM schedule buffers.
var topIgnored = map[string]bool{
	"betas": true, "alphas_cumprod": true, "alphas_cumprod_prev": true,
	"sqrt_alphas_cumprod": true, "sqrt_one_minus_alphas_cumprod": true,
	"log_one_minus_alphas_cumprod": true, "sqrt_recip_alphas_cumprod": true,
	"sqrt_recipm1_alphas_cumprod": true, "posterior_variance": true,
	"posterior_log_variance_clipped": true, "posterior_mean_coef1": true,
	"posterior_mean_coef2": true, "logvar": true, "lvlb_weights": true,
}

// sections is the table: component prefixes and their rules.
var sections = []section{
	{"model.diffusion_model.", unetRules},
	{"first_stage_model.", vaeRules},
	{"cond_stage_model.transformer.", clipHFRules},
	{"cond_stage_model.model.", openCLIPRules},
}

var decoderUp = regexp.MustCompile(`^first_stage_model\.decoder\.up\.(\d+)\.`)

// Convert maps the keys of an original checkpoint. It returns an error for
// keys that contradict the configuration (block indices out of range,
// attention where the config has none), for two keys that map to the same
// diffusers tensor, and for malformed parameters of known modules; keys that
// match no rule are listed in Mapping.Unmapped for the caller's report.
func Convert(keys []string, cfg Config) (*Mapping, error) {
	s := &state{cfg: cfg.withDefaults()}
	if s.cfg.UNetLayersPerBlock < 0 || s.cfg.UNetBlocks < 0 || s.cfg.VAEBlocks < 0 || s.cfg.VAELayersPerBlock < 0 {
		return nil, fmt.Errorf("sdckpt: negative sizes in config %+v", cfg)
	}
	s.vaeUp = s.cfg.VAEBlocks - 1
	for _, k := range keys {
		if m := decoderUp.FindStringSubmatch(k); m != nil {
			s.vaeUp = max(s.vaeUp, atoi(m[1]))
		}
	}
	mp := &Mapping{Targets: map[string][]Target{}, Ignored: map[string]string{}}
	owner := map[[2]string]string{}
	var errs []string
	for _, k := range keys {
		ts, reason, err := s.mapKey(k)
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %v", k, err))
		case reason != "":
			mp.Ignored[k] = reason
		case ts == nil:
			mp.Unmapped = append(mp.Unmapped, k)
		default:
			for _, t := range ts {
				id := [2]string{t.Component, t.Key}
				if prev, dup := owner[id]; dup && prev != k {
					errs = append(errs, fmt.Sprintf("%s and %s both map to %s/%s", prev, k, t.Component, t.Key))
				}
				owner[id] = k
			}
			mp.Targets[k] = ts
		}
	}
	sort.Strings(mp.Unmapped)
	if len(errs) > 0 {
		sort.Strings(errs)
		more := ""
		if len(errs) > 5 {
			more = fmt.Sprintf(" (and %d more)", len(errs)-5)
			errs = errs[:5]
		}
		return nil, fmt.Errorf("sdckpt: %s%s", strings.Join(errs, "; "), more)
	}
	return mp, nil
}

// mapKey applies the table to one key.
func (s *state) mapKey(k string) ([]Target, string, error) {
	if strings.HasPrefix(k, "model_ema.") {
		return nil, "EMA copy of the U-Net weights", nil
	}
	if topIgnored[k] {
		return nil, "DDPM schedule buffer", nil
	}
	for _, sec := range sections {
		rest, ok := strings.CutPrefix(k, sec.prefix)
		if !ok {
			continue
		}
		for _, ru := range sec.rules {
			if m := ru.re.FindStringSubmatch(rest); m != nil {
				return ru.fn(s, m)
			}
		}
		return nil, "", nil
	}
	return nil, "", nil
}

// Apply derives the target tensor from the original one: shape and raw bytes
// (elemSize bytes per element, C order). Identity, Squeeze1x1 and Chunk
// return a sub-slice of data; Transpose copies. Shapes that do not fit the
// transform are errors.
func (t Target) Apply(shape []int, data []byte, elemSize int) ([]int, []byte, error) {
	n := elemSize
	for _, d := range shape {
		n *= d
	}
	if elemSize <= 0 || n != len(data) {
		return nil, nil, fmt.Errorf("sdckpt: %s: %d bytes for shape %v of %d-byte elements", t.Key, len(data), shape, elemSize)
	}
	switch t.Transform {
	case Identity:
		return shape, data, nil
	case Squeeze1x1:
		switch {
		case len(shape) == 4 && shape[2] == 1 && shape[3] == 1:
			return []int{shape[0], shape[1]}, data, nil
		case len(shape) == 2:
			return shape, data, nil
		}
		return nil, nil, fmt.Errorf("sdckpt: %s: shape %v, expected a 1x1 convolution weight [C, C', 1, 1]", t.Key, shape)
	case Chunk:
		if len(shape) == 0 || t.Parts <= 0 || shape[0]%t.Parts != 0 || t.Part < 0 || t.Part >= t.Parts {
			return nil, nil, fmt.Errorf("sdckpt: %s: cannot take part %d of %d of shape %v along dim 0", t.Key, t.Part, t.Parts, shape)
		}
		out := append([]int{shape[0] / t.Parts}, shape[1:]...)
		size := len(data) / t.Parts
		return out, data[t.Part*size : (t.Part+1)*size], nil
	case Transpose:
		if len(shape) != 2 {
			return nil, nil, fmt.Errorf("sdckpt: %s: shape %v, expected a matrix to transpose", t.Key, shape)
		}
		rows, cols := shape[0], shape[1]
		out := make([]byte, len(data))
		for i := 0; i < rows; i++ {
			for j := 0; j < cols; j++ {
				copy(out[(j*rows+i)*elemSize:(j*rows+i+1)*elemSize], data[(i*cols+j)*elemSize:])
			}
		}
		return []int{cols, rows}, out, nil
	}
	return nil, nil, fmt.Errorf("sdckpt: %s: unknown transform %v", t.Key, t.Transform)
}

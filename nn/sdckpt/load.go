package sdckpt

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Variant is the Stable Diffusion generation of a single-file checkpoint,
// told by its text encoder's keys.
type Variant uint8

const (
	// VariantUnknown: the checkpoint has no text encoder keys.
	VariantUnknown Variant = iota
	// SD1: cond_stage_model.transformer.* (OpenAI CLIP ViT-L/14 in Hugging
	// Face layout): Stable Diffusion 1.x.
	SD1
	// SD2: cond_stage_model.model.* (OpenCLIP ViT-H/14): Stable Diffusion 2.x.
	SD2
)

func (v Variant) String() string {
	switch v {
	case SD1:
		return "SD1"
	case SD2:
		return "SD2"
	}
	return "unknown"
}

// DetectVariant tells SD1 from SD2 by the text encoder's keys. A checkpoint
// holding both layouts is an error; one holding neither is VariantUnknown.
func DetectVariant(keys []string) (Variant, error) {
	var sd1, sd2 bool
	for _, k := range keys {
		sd1 = sd1 || strings.HasPrefix(k, "cond_stage_model.transformer.")
		sd2 = sd2 || strings.HasPrefix(k, "cond_stage_model.model.")
	}
	switch {
	case sd1 && sd2:
		return VariantUnknown, fmt.Errorf("sdckpt: the checkpoint holds both cond_stage_model.transformer.* (SD1) and cond_stage_model.model.* (SD2) keys")
	case sd1:
		return SD1, nil
	case sd2:
		return SD2, nil
	}
	return VariantUnknown, nil
}

var (
	reUNetIn   = regexp.MustCompile(`^model\.diffusion_model\.input_blocks\.(\d+)\.`)
	reUNetOp   = regexp.MustCompile(`^model\.diffusion_model\.input_blocks\.(\d+)\.0\.op\.weight$`)
	reVAEDown  = regexp.MustCompile(`^first_stage_model\.encoder\.down\.(\d+)\.`)
	reVAEBlock = regexp.MustCompile(`^first_stage_model\.encoder\.down\.0\.block\.(\d+)\.`)
)

// InferConfig returns the Config of variant v (SD1Config, or SD2Config for
// SD2) with the sizes the keys reveal: the U-Net's number of levels (one more
// than its downsamplers) and layers per level (from the number of
// input_blocks), the VAE's levels and layers per level (from the encoder).
// The attention lists are left nil (unchecked).
func InferConfig(keys []string, v Variant) Config {
	cfg := SD1Config()
	if v == SD2 {
		cfg = SD2Config()
	}
	cfg.UNetDownAttention, cfg.UNetUpAttention = nil, nil
	maxIn, ops, vaeDown, vaeBlock := -1, 0, -1, -1
	for _, k := range keys {
		if m := reUNetIn.FindStringSubmatch(k); m != nil {
			maxIn = max(maxIn, atoi(m[1]))
		}
		if reUNetOp.MatchString(k) {
			ops++
		}
		if m := reVAEDown.FindStringSubmatch(k); m != nil {
			vaeDown = max(vaeDown, atoi(m[1]))
		}
		if m := reVAEBlock.FindStringSubmatch(k); m != nil {
			vaeBlock = max(vaeBlock, atoi(m[1]))
		}
	}
	if maxIn > 0 {
		blocks := ops + 1
		if (maxIn+1)%blocks == 0 && (maxIn+1)/blocks >= 2 {
			cfg.UNetBlocks, cfg.UNetLayersPerBlock = blocks, (maxIn+1)/blocks-1
		}
	}
	if vaeDown >= 0 {
		cfg.VAEBlocks = vaeDown + 1
	}
	if vaeBlock >= 0 {
		cfg.VAELayersPerBlock = vaeBlock + 1
	}
	return cfg
}

// Checkpoint is an open single-file Stable Diffusion checkpoint (.safetensors,
// or a PyTorch .ckpt) mapped to the diffusers names of its components.
type Checkpoint struct {
	// Path is the file ("" for NewCheckpoint).
	Path string
	// Variant is what DetectVariant found.
	Variant Variant
	// Config is the mapping configuration used.
	Config Config
	// Mapping is the key mapping (Targets, Ignored, Unmapped).
	Mapping *Mapping

	src    nn.Source
	closer io.Closer
	comps  map[string]*componentSource
}

// Open opens the single-file checkpoint at path: safetensors (memory-mapped)
// or a PyTorch zip checkpoint (.ckpt, .bin, .pt, .pth; read lazily through
// tensor/torchpickle, without executing the pickle), told by the file's first
// bytes. With a nil cfg the variant is detected from the keys and the sizes
// inferred (InferConfig); pass a Config for unusual architectures. Close the
// checkpoint when the models built from it are no longer used (a safetensors
// file is unmapped).
func Open(path string, cfg *Config) (*Checkpoint, error) {
	src, closer, err := openFile(path)
	if err != nil {
		return nil, err
	}
	ck, err := NewCheckpoint(src, cfg)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	ck.Path, ck.closer = path, closer
	return ck, nil
}

// openFile opens path as safetensors or as a PyTorch zip, by its magic.
func openFile(path string) (nn.Source, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, errctx.Wrap("sdckpt", err)
	}
	var magic [4]byte
	n, _ := io.ReadFull(f, magic[:])
	f.Close()
	if n == 4 && string(magic[:]) == "PK\x03\x04" {
		s, err := nn.OpenTorch(path)
		if err != nil {
			return nil, nil, errctx.Wrap("sdckpt", err)
		}
		return s, s, nil
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin" {
		return nil, nil, fmt.Errorf("sdckpt: %s is not a PyTorch zip checkpoint (torch.save with PyTorch >= 1.6); legacy tar/pickle checkpoints are not supported: re-save it or convert it to safetensors", path)
	}
	s, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, nil, errctx.Wrap("sdckpt", err)
	}
	return s, s, nil
}

// NewCheckpoint maps the keys of src, an original single-file state dict
// (see Open for cfg). The checkpoint does not own src.
func NewCheckpoint(src nn.Source, cfg *Config) (*Checkpoint, error) {
	keys := src.Keys()
	v, err := DetectVariant(keys)
	if err != nil {
		return nil, err
	}
	var c Config
	if cfg != nil {
		c = *cfg
	} else {
		c = InferConfig(keys, v)
	}
	m, err := Convert(keys, c)
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{Variant: v, Config: c, Mapping: m, src: src, comps: map[string]*componentSource{}}
	for _, comp := range []string{UNet, VAE, TextEncoder} {
		ck.comps[comp] = newComponentSource(src, comp, m.Sources(comp))
	}
	return ck, nil
}

// Source returns the tensors of one component (UNet, VAE or TextEncoder)
// under their diffusers names, transformed lazily on Load (Identity and
// Squeeze1x1 and Chunk are views of the stored tensor; Transpose copies). It
// panics for another component name.
func (c *Checkpoint) Source(component string) nn.Source {
	s, ok := c.comps[component]
	if !ok {
		panic(fmt.Sprintf("sdckpt: Checkpoint.Source: component %q, want %q, %q or %q", component, UNet, VAE, TextEncoder))
	}
	return s
}

// Has reports whether the checkpoint holds any weight of component.
func (c *Checkpoint) Has(component string) bool {
	s, ok := c.comps[component]
	return ok && len(s.keys) > 0
}

// Report summarises the mapping: tensors per component, ignored keys grouped
// by reason, and the keys no rule matched (the first few of each).
func (c *Checkpoint) Report() string {
	var sb strings.Builder
	name := c.Path
	if name == "" {
		name = "checkpoint"
	}
	fmt.Fprintf(&sb, "%s: %s layout;", name, c.Variant)
	for _, comp := range []string{UNet, VAE, TextEncoder} {
		fmt.Fprintf(&sb, " %s %d tensors;", comp, len(c.comps[comp].keys))
	}
	fmt.Fprintf(&sb, " %d ignored, %d unmapped", len(c.Mapping.Ignored), len(c.Mapping.Unmapped))
	byReason := map[string][]string{}
	for k, r := range c.Mapping.Ignored {
		byReason[r] = append(byReason[r], k)
	}
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		ks := byReason[r]
		sort.Strings(ks)
		fmt.Fprintf(&sb, "\n  ignored %d (%s): %s", len(ks), r, firstFew(ks, 3))
	}
	if len(c.Mapping.Unmapped) > 0 {
		fmt.Fprintf(&sb, "\n  unmapped %d: %s", len(c.Mapping.Unmapped), firstFew(c.Mapping.Unmapped, 10))
	}
	return sb.String()
}

// MissingError returns the error for a model of component whose builder
// lacked the diffusers keys missing: it names the component, the checkpoint
// and a few keys.
func (c *Checkpoint) MissingError(component string, missing []string) error {
	name := c.Path
	if name == "" {
		name = "the checkpoint"
	}
	if len(c.comps[component].keys) == 0 {
		return fmt.Errorf("sdckpt: %s holds no %s weights (no %s keys)", name, component, originalPrefix(component, c.Variant))
	}
	ms := slices.Clone(missing)
	sort.Strings(ms)
	return fmt.Errorf("sdckpt: %s lacks %d %s weights, e.g. %s", name, len(ms), component, firstFew(ms, 5))
}

func originalPrefix(component string, v Variant) string {
	switch component {
	case UNet:
		return "model.diffusion_model.*"
	case VAE:
		return "first_stage_model.*"
	case TextEncoder:
		if v == SD2 {
			return "cond_stage_model.model.*"
		}
		return "cond_stage_model.transformer.* or cond_stage_model.model.*"
	}
	return component
}

func firstFew(ks []string, n int) string {
	if len(ks) <= n {
		return strings.Join(ks, ", ")
	}
	return fmt.Sprintf("%s (and %d more)", strings.Join(ks[:n], ", "), len(ks)-n)
}

// Close closes the file (for Open) and drops the cache of transformed
// tensors. Models built from a safetensors checkpoint must not be used
// afterwards; those built from a PyTorch .ckpt stay valid (their tensors were
// read into memory), and closing frees the tensors they did not keep, such as
// F32 originals of a model converted to F16.
func (c *Checkpoint) Close() error {
	for _, s := range c.comps {
		s.mu.Lock()
		s.cache = map[string]*tensor.Tensor{}
		s.mu.Unlock()
	}
	if c.closer == nil {
		return nil
	}
	err := c.closer.Close()
	c.closer = nil
	return err
}

// componentSource is the nn.Source of one component.
type componentSource struct {
	base    nn.Source
	targets map[string]Source // diffusers key -> origin
	keys    []string

	mu    sync.Mutex
	cache map[string]*tensor.Tensor
}

func newComponentSource(base nn.Source, comp string, targets map[string]Source) *componentSource {
	keys := make([]string, 0, len(targets))
	for k := range targets {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return &componentSource{base: base, targets: targets, keys: keys, cache: map[string]*tensor.Tensor{}}
}

func (s *componentSource) Keys() []string { return slices.Clone(s.keys) }

func (s *componentSource) Info(name string) (string, []int, bool) {
	src, ok := s.targets[name]
	if !ok {
		return "", nil, false
	}
	dt, shape, ok := s.base.Info(src.Key)
	if !ok {
		return "", nil, false
	}
	if out, err := src.Target.shape(shape); err == nil {
		shape = out
	}
	return dt, shape, true
}

func (s *componentSource) Load(name string) (*tensor.Tensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.cache[name]; ok {
		return t, nil
	}
	src, ok := s.targets[name]
	if !ok {
		return nil, fmt.Errorf("sdckpt: no tensor %q", name)
	}
	t, err := s.base.Load(src.Key)
	if err != nil {
		return nil, err
	}
	out, err := src.Target.applyTensor(t)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, src.Key)
	}
	s.cache[name] = out
	return out, nil
}

// shape returns the target's shape for an original tensor of the given shape.
func (t Target) shape(in []int) ([]int, error) {
	switch t.Transform {
	case Identity:
		return in, nil
	case Squeeze1x1:
		switch {
		case len(in) == 4 && in[2] == 1 && in[3] == 1:
			return []int{in[0], in[1]}, nil
		case len(in) == 2:
			return in, nil
		}
		return nil, fmt.Errorf("sdckpt: %s: shape %v, expected a 1x1 convolution weight [C, C', 1, 1]", t.Key, in)
	case Chunk:
		if len(in) == 0 || t.Parts <= 0 || in[0]%t.Parts != 0 || t.Part < 0 || t.Part >= t.Parts {
			return nil, fmt.Errorf("sdckpt: %s: cannot take part %d of %d of shape %v along dim 0", t.Key, t.Part, t.Parts, in)
		}
		return append([]int{in[0] / t.Parts}, in[1:]...), nil
	case Transpose:
		if len(in) != 2 {
			return nil, fmt.Errorf("sdckpt: %s: shape %v, expected a matrix to transpose", t.Key, in)
		}
		return []int{in[1], in[0]}, nil
	}
	return nil, fmt.Errorf("sdckpt: %s: unknown transform %v", t.Key, t.Transform)
}

// applyTensor is Apply on a tensor: Identity returns x, Squeeze1x1 and Chunk
// views of x, Transpose a contiguous copy.
func (t Target) applyTensor(x *tensor.Tensor) (*tensor.Tensor, error) {
	out, err := t.shape(x.Shape())
	if err != nil {
		return nil, err
	}
	switch t.Transform {
	case Squeeze1x1:
		if x.Rank() == 4 {
			return x.Reshape(out...), nil
		}
	case Chunk:
		return x.Narrow(0, t.Part*out[0], out[0]), nil
	case Transpose:
		return x.Transpose(0, 1).Contiguous(), nil
	}
	return x, nil
}

// BuildModel builds the model of one component (UNet, VAE or TextEncoder) of ck
// with newModel (the model package's constructor), keeping its weights as dt
// (F32, F16 or BF16), and runs the builder's strict check. The config is *cfg, or
// when cfg is nil sd1() for an SD1 checkpoint and sd2() for an SD2 one. When keys
// are missing, the error says which component's weights the checkpoint lacks
// (MissingError) followed by the builder's report. The model does not own ck.
func BuildModel[M, C any](ck *Checkpoint, component string, cfg *C, sd1, sd2 func() C, dt tensor.DType, newModel func(*nn.Builder, C) (M, error)) (M, error) {
	if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
		var zero M
		return zero, fmt.Errorf("%s: dtype %v, want F32, F16 or BF16", component, dt)
	}
	var c C
	switch {
	case cfg != nil:
		c = *cfg
	case ck.Variant == SD2:
		c = sd2()
	default:
		c = sd1()
	}
	m, b, err := nn.Build(ck.Source(component), c, dt, newModel)
	if err != nil {
		if miss := b.Missing(); len(miss) > 0 {
			return m, fmt.Errorf("%w\n%v", ck.MissingError(component, miss), err)
		}
		return m, err
	}
	return m, nil
}

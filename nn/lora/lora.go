package lora

import (
	"errors"
	"fmt"
	"math"
	"path"
	"reflect"
	"sort"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/rng"
)

// Components of a pipeline that adapters attach to; they prefix the keys of
// files holding both ("unet.", "text_encoder.").
const (
	UNet        = "unet"
	TextEncoder = "text_encoder"
)

// Target name patterns for Config.Targets (see Config).
var (
	// AttentionTargets are the attention projections: the U-Net's to_q,
	// to_k, to_v and to_out.0 (what diffusers 0.16's LoRAAttnProcessor
	// adapts) and the CLIP text encoder's q_proj, k_proj, v_proj and
	// out_proj.
	AttentionTargets = []string{"to_q", "to_k", "to_v", "to_out.0",
		"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"}
	// FeedForwardTargets are the transformer MLPs: the U-Net's ff.net.0.proj
	// and ff.net.2, the text encoder's mlp.fc1 and mlp.fc2.
	FeedForwardTargets = []string{"ff.net.0.proj", "ff.net.2", "mlp.fc1", "mlp.fc2"}
	// ProjTargets are the U-Net transformers' proj_in and proj_out.
	ProjTargets = []string{"proj_in", "proj_out"}
	// ConvTargets are the U-Net's ResNet, down- and upsampling convolutions
	// (kohya's conv LoRA / LyCORIS LoCon).
	ConvTargets = []string{"*.resnets.*.conv1", "*.resnets.*.conv2", "*.resnets.*.conv_shortcut",
		"*.downsamplers.*.conv", "*.upsamplers.*.conv"}
)

// Init is how Attach initialises new adapters. Both start with up = 0, so a
// new network leaves the model's output unchanged.
type Init int

// The initialisations.
const (
	// InitDiffusers is diffusers 0.16.1's LoRALinearLayer: down and up are
	// built as torch.nn.Linear layers (drawing their default
	// Kaiming-uniform values from the generator, down first), then down is
	// redrawn from N(0, (1/rank)^2) and up set to 0. With the same seed and
	// targets in the same order this reproduces train_text_to_image_lora.py
	// after torch.manual_seed(seed) bit for bit.
	InitDiffusers Init = iota
	// InitKaiming is peft's: down Kaiming-uniform with a = sqrt(5) (bound
	// 1/sqrt(fan_in)), up 0.
	InitKaiming
)

// Config describes the adapters Attach adds.
type Config struct {
	// Rank is the inner dimension r (default 4, as diffusers' scripts).
	Rank int
	// Alpha gives scale = Alpha/Rank; 0 means Rank (scale 1, diffusers
	// 0.16, which had no alpha).
	Alpha float64
	// Targets are patterns of module paths: a pattern with *, ? or [ is a
	// glob over the whole path (path.Match; * also matches dots); any
	// other pattern matches the path equal to it or ending in "."+pattern
	// ("to_q" matches "mid_block.attentions.0.transformer_blocks.0.attn1.to_q").
	// Nil means AttentionTargets. Patterns that match no layer of the model
	// are allowed only when another pattern matches (the presets name both
	// models' layers); nothing matched is an error.
	Targets []string
	// Component is UNet (default) or TextEncoder: the model's place in a
	// pipeline, used in parameter names and files.
	Component string
	// Init selects the initialisation (InitDiffusers by default).
	Init Init
	// Seed seeds the torch-compatible generator of the initialisation
	// (torch.manual_seed(Seed)).
	Seed uint64
}

// Adapter is one LoRA on one layer. It implements nn.Adapter.
type Adapter struct {
	// Component is UNet or TextEncoder; Module the layer's diffusers module
	// path.
	Component, Module string
	// Down and Up are the low-rank factors: [r, in] and [out, r] for a
	// Linear (with trailing 1x1 dimensions when the layer's weight has
	// them), [r, in, kh, kw] and [out, r, 1, 1] for a Conv2d. Attach makes
	// them F32 host tensors.
	Down, Up *tensor.Tensor
	// Alpha is the file's alpha (scale = Multiplier*Alpha/rank).
	Alpha float64
	// Multiplier is the user's weight (1 when training).
	Multiplier float64

	linear *nn.Linear
	conv   *nn.Conv2d
	// orig is the layer's weight before Merge; nil when not merged.
	orig *tensor.Tensor
}

// Rank returns r.
func (a *Adapter) Rank() int { return a.Down.Dim(0) }

// Scale returns Multiplier*Alpha/rank as float32, the factor of up(down(x)).
func (a *Adapter) Scale() float32 {
	return float32(a.Multiplier * a.Alpha / float64(a.Rank()))
}

// Merged reports whether the adapter is merged into the layer's weight.
func (a *Adapter) Merged() bool { return a.orig != nil }

// weight returns the layer's weight (the current one, merged or not).
func (a *Adapter) weight() *tensor.Tensor {
	if a.linear != nil {
		return a.linear.Weight
	}
	return a.conv.Weight
}

func (a *Adapter) setWeight(w *tensor.Tensor) {
	if a.linear != nil {
		a.linear.Weight = w
	} else {
		a.conv.Weight = w
	}
}

// mat returns w as a matrix [rows, rest] (a view when w has more dimensions).
func mat(w *tensor.Tensor) *tensor.Tensor {
	if w.Rank() == 2 {
		return w
	}
	return w.Reshape(w.Dim(0), -1)
}

// Adapt returns y + scale * up(down(x)) (written into y), computed as
// diffusers' LoRAAttnProcessor does: the adapter's output from the same
// input as the layer's, multiplied by the scale (not when it is 1) and
// added. With scale 0 it returns y untouched.
func (a *Adapter) Adapt(x, y *tensor.Tensor) *tensor.Tensor {
	s := a.Scale()
	if s == 0 {
		return y
	}
	return tensor.Scope(func() *tensor.Tensor {
		var d *tensor.Tensor
		if a.conv != nil {
			h := tensor.Conv2d(x, a.Down, nil, a.conv.Opts)
			d = tensor.Conv2d(h, a.Up, nil, tensor.ConvOpts{})
		} else {
			d = tensor.Linear(tensor.Linear(x, mat(a.Down), nil), mat(a.Up), nil)
		}
		if s != 1 {
			d = d.MulScalar(s)
		}
		return y.AddInPlace(d)
	})
}

// stack is several unmerged adapters on one layer, applied in order.
type stack []*Adapter

// Adapt applies each adapter in turn.
func (s stack) Adapt(x, y *tensor.Tensor) *tensor.Tensor {
	for _, a := range s {
		y = a.Adapt(x, y)
	}
	return y
}

// slot returns the layer's adapter field.
func (a *Adapter) slot() *nn.Adapter {
	if a.linear != nil {
		return &a.linear.Adapter
	}
	return &a.conv.Adapter
}

// hook adds a to its layer's adapters.
func (a *Adapter) hook() {
	p := a.slot()
	switch cur := (*p).(type) {
	case nil:
		*p = a
	case *Adapter:
		*p = stack{cur, a}
	case stack:
		*p = append(cur[:len(cur):len(cur)], a)
	default:
		*p = stack{a} // a foreign adapter is replaced: cannot happen through this package
	}
}

// unhook removes a from its layer's adapters.
func (a *Adapter) unhook() {
	p := a.slot()
	switch cur := (*p).(type) {
	case *Adapter:
		if cur == a {
			*p = nil
		}
	case stack:
		var rest stack
		for _, b := range cur {
			if b != a {
				rest = append(rest, b)
			}
		}
		switch len(rest) {
		case 0:
			*p = nil
		case 1:
			*p = rest[0]
		default:
			*p = rest
		}
	}
}

// delta returns scale * up·down in the layer weight's shape, F32.
func (a *Adapter) delta() *tensor.Tensor {
	w := a.weight()
	d := mat(a.Up).To(tensor.F32).MatMul(mat(a.Down).To(tensor.F32)) // [out, in*kh*kw]
	if s := a.Scale(); s != 1 {
		d = d.MulScalar(s)
	}
	return d.Reshape(w.Shape()...)
}

// merge replaces the layer's weight by W + scale*up·down (a new tensor of
// W's dtype and device) and unhooks the adapter. Scale 0 keeps W itself.
func (a *Adapter) merge() error {
	if a.orig != nil {
		return nil
	}
	w := a.weight()
	if a.Scale() == 0 {
		a.orig = w
		a.unhook()
		return nil
	}
	var merged *tensor.Tensor
	err := tensor.Catch(func() {
		tensor.NoGrad(func() {
			tensor.Unscoped(func() {
				d := a.delta()
				if dev := w.Device(); dev != d.Device() {
					d = d.ToDevice(dev)
				}
				wf := w.To(tensor.F32)
				m := wf.Add(d)
				if w.DType() != tensor.F32 {
					m = m.To(w.DType())
				}
				merged = m
			})
		})
	})
	if err != nil {
		return errctx.Wrap("lora: merging into "+a.Module, err)
	}
	a.orig = w
	a.setWeight(merged)
	a.unhook()
	return nil
}

// unmerge puts the original weight back and hooks the adapter again.
func (a *Adapter) unmerge() {
	if a.orig == nil {
		return
	}
	if a.weight() != a.orig {
		a.setWeight(a.orig)
	}
	a.orig = nil
	a.hook()
}

// Network is a set of adapters on one or more models.
type Network struct {
	Adapters []*Adapter

	ps *nn.ParamSet // made by ParamSet
}

// Extend adds the adapters of other to n (for a network spanning the U-Net
// and the text encoder).
func (n *Network) Extend(other *Network) {
	n.Adapters = append(n.Adapters, other.Adapters...)
	n.ps = nil
}

// Merge merges every adapter into its layer's weight (see Adapter), after
// which the model runs at the base model's speed. The original weights are
// kept for Unmerge.
func (n *Network) Merge() error {
	for _, a := range n.Adapters {
		if err := a.merge(); err != nil {
			return err
		}
	}
	return nil
}

// Unmerge restores the weights Merge replaced (bit for bit: the original
// tensors) and hooks the adapters into their layers again.
func (n *Network) Unmerge() {
	for i := len(n.Adapters) - 1; i >= 0; i-- {
		n.Adapters[i].unmerge()
	}
}

// Commit makes the merge of the merged adapters permanent: the original
// weights Merge kept are dropped (their memory can go), and Unmerge and
// Remove no longer change those layers.
func (n *Network) Commit() {
	var rest []*Adapter
	for _, a := range n.Adapters {
		if a.orig != nil {
			a.orig = nil
			a.linear, a.conv = nil, nil
			continue
		}
		rest = append(rest, a)
	}
	n.Adapters = rest
}

// Remove unmerges the network and takes its adapters off their layers:
// the model is the base model again.
func (n *Network) Remove() {
	n.Unmerge()
	for _, a := range n.Adapters {
		a.unhook()
	}
}

// SetMultiplier sets every adapter's multiplier (unmerged adapters only:
// a merged network must be unmerged first).
func (n *Network) SetMultiplier(m float64) error {
	for _, a := range n.Adapters {
		if a.Merged() {
			return fmt.Errorf("lora: SetMultiplier: %s is merged; unmerge first", a.Module)
		}
	}
	for _, a := range n.Adapters {
		a.Multiplier = m
	}
	return nil
}

// ParamName returns the name of an adapter's factor ("down" or "up") as
// diffusers names it: "<attention>.processor.to_q_lora.down.weight" for
// the U-Net's attention projections (the save_attn_procs keys),
// "<self_attn>.to_q_lora.down.weight" for the text encoder's, and
// "<module>.lora.down.weight" for other layers; the text encoder's names
// are prefixed "text_encoder.".
func (a *Adapter) ParamName(factor string) string {
	name := diffusersKey(a.Component, a.Module, factor)
	if a.Component == TextEncoder {
		name = TextEncoder + "." + name
	}
	return name
}

// Params returns the adapters' factors as parameters named by ParamName, in
// the network's order (down, then up, per adapter).
func (n *Network) Params() []nn.Param {
	var ps []nn.Param
	for _, a := range n.Adapters {
		ps = append(ps, nn.Param{Name: a.ParamName("down"), Tensor: a.Down}, nn.Param{Name: a.ParamName("up"), Tensor: a.Up})
	}
	return ps
}

// ParamSet returns the nn.ParamSet of the adapters' factors (Params),
// made on the first call (add adapters before): a training loop uses it to
// collect gradients (CollectGrads), clear them (ZeroGrad) and save masters.
func (n *Network) ParamSet() (*nn.ParamSet, error) {
	if n.ps == nil {
		ps, err := nn.NewParamSet(nil, n.Params())
		if err != nil {
			return nil, err
		}
		n.ps = ps
	}
	return n.ps, nil
}

// Trainable returns the adapters' factors ready for an optimiser (the
// ParamSet's Trainable): F32 masters (the factors themselves), marked for
// autograd. The base model's parameters are not touched, so they get no
// gradients (frozen). A training step is then: forward, tensor.Backward,
// ParamSet().CollectGrads(1), the optimiser's Step, ParamSet().ZeroGrad().
func (n *Network) Trainable() ([]*nn.Trainable, error) {
	for _, a := range n.Adapters {
		if a.Merged() {
			return nil, fmt.Errorf("lora: Trainable: %s is merged into its layer; unmerge to train", a.Module)
		}
	}
	ps, err := n.ParamSet()
	if err != nil {
		return nil, err
	}
	return ps.Trainable()
}

// layer is a Linear or Conv2d of a model, by module path.
type layer struct {
	name   string
	linear *nn.Linear
	conv   *nn.Conv2d
}

func (l layer) weight() *tensor.Tensor {
	if l.linear != nil {
		return l.linear.Weight
	}
	return l.conv.Weight
}

var (
	linearType = reflect.TypeFor[*nn.Linear]()
	convType   = reflect.TypeFor[*nn.Conv2d]()
)

// topOrder ranks the U-Net's top-level modules in the order diffusers
// registers them (so the order of attn_processors: down, up, then mid).
var topOrder = map[string]int{"conv_in": 0, "time_proj": 1, "time_embedding": 2, "class_embedding": 3,
	"down_blocks": 4, "up_blocks": 5, "mid_block": 6, "conv_norm_out": 7, "conv_out": 8}

// layers returns the named Linear and Conv2d layers of model (reachable by
// exported fields, pointers, slices, arrays, maps and interfaces), each
// once, in diffusers' module order.
func layers(model any) []layer {
	var out []layer
	seen := map[uintptr]bool{}
	nn.Walk(reflect.ValueOf(model), func(p reflect.Value) bool {
		switch p.Type() {
		case linearType, convType:
			if !seen[p.Pointer()] {
				seen[p.Pointer()] = true
				if l, ok := p.Interface().(*nn.Linear); ok && l.Name != "" {
					out = append(out, layer{name: l.Name, linear: l})
				} else if c, ok := p.Interface().(*nn.Conv2d); ok && c.Name != "" {
					out = append(out, layer{name: c.Name, conv: c})
				}
			}
			return false
		}
		return true
	})
	rank := func(name string) int {
		top, _, _ := strings.Cut(name, ".")
		if r, ok := topOrder[top]; ok {
			return r
		}
		return len(topOrder)
	}
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i].name) < rank(out[j].name) })
	return out
}

// matchTarget reports whether module path name matches pattern (see
// Config.Targets).
func matchTarget(pattern, name string) (bool, error) {
	if strings.ContainsAny(pattern, "*?[") {
		ok, err := path.Match(pattern, name)
		if err != nil {
			return false, fmt.Errorf("lora: malformed target pattern %q: %v", pattern, err)
		}
		return ok, nil
	}
	return name == pattern || strings.HasSuffix(name, "."+pattern), nil
}

// Attach adds a new adapter, initialised as cfg says, to every Linear and
// Conv2d layer of model (a *unet.Model, *clip.TextModel or any model built
// from nn layers) whose module path matches cfg.Targets, unmerged, and
// returns them as a Network (Trainable gives the parameters to train). A
// layer may carry adapters of several networks. It is an error when no
// layer matches, or cfg is invalid.
func Attach(model any, cfg Config) (*Network, error) {
	if cfg.Rank == 0 {
		cfg.Rank = 4
	}
	if cfg.Rank < 1 || cfg.Rank > nn.MaxDim {
		return nil, fmt.Errorf("lora: rank %d, want 1 to %d", cfg.Rank, nn.MaxDim)
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = float64(cfg.Rank)
	}
	if !(cfg.Alpha > 0) || math.IsInf(cfg.Alpha, 0) {
		return nil, fmt.Errorf("lora: alpha %v, want a positive number (or 0 for the rank)", cfg.Alpha)
	}
	switch cfg.Component {
	case "":
		cfg.Component = UNet
	case UNet, TextEncoder:
	default:
		return nil, fmt.Errorf("lora: component %q, want %q or %q", cfg.Component, UNet, TextEncoder)
	}
	if cfg.Init != InitDiffusers && cfg.Init != InitKaiming {
		return nil, fmt.Errorf("lora: unknown initialisation %d", cfg.Init)
	}
	targets := cfg.Targets
	if targets == nil {
		targets = AttentionTargets
	}
	if len(targets) == 0 {
		return nil, errors.New("lora: no target patterns")
	}
	var sel []layer
	for _, l := range layers(model) {
		for _, pat := range targets {
			ok, err := matchTarget(pat, l.name)
			if err != nil {
				return nil, err
			}
			if ok {
				sel = append(sel, l)
				break
			}
		}
	}
	if len(sel) == 0 {
		return nil, fmt.Errorf("lora: the targets %q match no Linear or Conv2d layer of the %s", targets, cfg.Component)
	}
	g := rng.New(cfg.Seed)
	net := &Network{}
	for _, l := range sel {
		ws := l.weight().Shape()
		out, in := ws[0], ws[1]
		var downShape, upShape []int
		fanIn := in
		if l.conv != nil {
			downShape, upShape = []int{cfg.Rank, in, ws[2], ws[3]}, []int{out, cfg.Rank, 1, 1}
			fanIn = in * ws[2] * ws[3]
		} else if len(ws) == 4 { // a 1x1 convolution used as a Linear
			downShape, upShape = []int{cfg.Rank, in, 1, 1}, []int{out, cfg.Rank, 1, 1}
		} else {
			downShape, upShape = []int{cfg.Rank, in}, []int{out, cfg.Rank}
		}
		down := tensor.Zeros(tensor.F32, downShape...)
		up := tensor.Zeros(tensor.F32, upShape...)
		dd := down.F32Data()
		bound := func(fan int) float32 { return float32(math.Sqrt(3) * (math.Sqrt(1.0/3) / math.Sqrt(float64(fan)))) }
		switch cfg.Init {
		case InitDiffusers:
			// torch.nn.Linear's reset_parameters for down and up (values
			// discarded: only the draws count), then normal_(std=1/rank).
			b := bound(fanIn)
			g.Uniform(dd, -b, b)
			ub := bound(cfg.Rank)
			g.Uniform(up.F32Data(), -ub, ub)
			g.Normal64(dd, 0, 1/float64(cfg.Rank))
			clear(up.F32Data())
		case InitKaiming:
			b := bound(fanIn)
			g.Uniform(dd, -b, b)
		}
		a := &Adapter{Component: cfg.Component, Module: l.name, Down: down, Up: up,
			Alpha: cfg.Alpha, Multiplier: 1, linear: l.linear, conv: l.conv}
		net.Adapters = append(net.Adapters, a)
	}
	for _, a := range net.Adapters {
		a.hook()
	}
	return net, nil
}

package lora

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Layout is a LoRA file layout (see the package documentation).
type Layout int

// The layouts.
const (
	// LayoutDiffusers: diffusers 0.16's pytorch_lora_weights.safetensors
	// ("<attention>.processor.to_q_lora.down.weight").
	LayoutDiffusers Layout = iota
	// LayoutKohya: kohya / AUTOMATIC1111 / ComfyUI
	// ("lora_unet_<module>.lora_down.weight", ".alpha").
	LayoutKohya
	// LayoutPEFT: peft and diffusers >= 0.22 ("unet.<module>.lora_A.weight");
	// Read only.
	LayoutPEFT
)

// String returns "diffusers", "kohya" or "peft".
func (l Layout) String() string {
	switch l {
	case LayoutDiffusers:
		return "diffusers"
	case LayoutKohya:
		return "kohya"
	case LayoutPEFT:
		return "peft"
	}
	return "Layout(" + strconv.Itoa(int(l)) + ")"
}

// ParseLayout reads "diffusers" or "kohya" (the layouts Save writes).
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(s) {
	case "diffusers":
		return LayoutDiffusers, nil
	case "kohya", "a1111", "webui":
		return LayoutKohya, nil
	}
	return 0, fmt.Errorf("lora: layout %q, want diffusers or kohya", s)
}

// unetLeaf and textLeaf map diffusers 0.16's processor attribute (to_q_lora
// ...) to the projection's module name in the U-Net and the text encoder.
var (
	unetLeaf = map[string]string{"to_q": "to_q", "to_k": "to_k", "to_v": "to_v", "to_out": "to_out.0"}
	textLeaf = map[string]string{"to_q": "q_proj", "to_k": "k_proj", "to_v": "v_proj", "to_out": "out_proj"}
)

// diffusersKey returns the diffusers key of a factor ("down" or "up") of the
// adapter on module, without the component prefix.
func diffusersKey(comp, module, factor string) string {
	leaves := unetLeaf
	if comp == TextEncoder {
		leaves = textLeaf
	}
	for attr, leaf := range leaves {
		base, ok := strings.CutSuffix(module, "."+leaf)
		if !ok {
			continue
		}
		if comp == TextEncoder {
			if strings.HasSuffix(base, ".self_attn") {
				return base + "." + attr + "_lora." + factor + ".weight"
			}
			continue
		}
		return base + ".processor." + attr + "_lora." + factor + ".weight"
	}
	return module + ".lora." + factor + ".weight"
}

// flat returns kohya's name of a module path: dots become underscores.
func flat(module string) string { return strings.ReplaceAll(module, ".", "_") }

// kohyaPrefix returns "lora_unet_" or "lora_te_".
func kohyaPrefix(comp string) string {
	if comp == TextEncoder {
		return "lora_te_"
	}
	return "lora_unet_"
}

// Save writes the network's adapters to a safetensors file in layout (atomically),
// with optional metadata. The diffusers layout has no alpha: each up is
// written multiplied by alpha/rank when that is not 1, so the file computes
// the same function; the kohya layout writes alpha. Multipliers are not
// saved (they are chosen when a file is applied).
func (n *Network) Save(path string, layout Layout, metadata map[string]string) error {
	if len(n.Adapters) == 0 {
		return errors.New("lora: Save: the network has no adapters")
	}
	md := map[string]string{"format": "pt"}
	for k, v := range metadata {
		md[k] = v
	}
	both := false
	for _, a := range n.Adapters {
		if a.Component == TextEncoder {
			both = true
		}
	}
	var params []nn.Param
	var err error
	cerr := tensor.Catch(func() {
		tensor.NoGrad(func() {
			tensor.Unscoped(func() {
				for _, a := range n.Adapters {
					down, up := a.Down.Detach(), a.Up.Detach()
					switch layout {
					case LayoutDiffusers:
						if s := a.Alpha / float64(a.Rank()); s != 1 {
							up = up.To(tensor.F32).MulScalar(float32(s))
						}
						key := func(f string) string {
							k := diffusersKey(a.Component, a.Module, f)
							if both || a.Component == TextEncoder {
								k = a.Component + "." + k
							}
							return k
						}
						params = append(params, nn.Param{Name: key("down"), Tensor: down}, nn.Param{Name: key("up"), Tensor: up})
					case LayoutKohya:
						k := kohyaPrefix(a.Component) + flat(a.Module)
						alpha := tensor.FromFloat32([]float32{float32(a.Alpha)})
						alpha = alpha.Reshape()
						params = append(params, nn.Param{Name: k + ".lora_down.weight", Tensor: down},
							nn.Param{Name: k + ".lora_up.weight", Tensor: up}, nn.Param{Name: k + ".alpha", Tensor: alpha})
						md["ss_network_module"] = "networks.lora"
						md["ss_network_dim"] = strconv.Itoa(a.Rank())
						md["ss_network_alpha"] = strconv.FormatFloat(a.Alpha, 'g', -1, 64)
					default:
						err = fmt.Errorf("lora: Save: layout %v cannot be written; want diffusers or kohya", layout)
						return
					}
				}
			})
		})
	})
	if cerr != nil {
		return errctx.Wrap("lora: Save", cerr)
	}
	if err != nil {
		return err
	}
	for _, p := range params { // contiguous host tensors for the writer
		if p.Tensor.Device() != tensor.CPU {
			return fmt.Errorf("lora: Save: %s is on %v; move the network to the CPU first", p.Name, p.Tensor.Device())
		}
	}
	return errctx.Wrap("lora: Save", nn.SaveSafetensors(path, params, md))
}

// Entry is one layer's LoRA as read from a file.
type Entry struct {
	// Component is UNet or TextEncoder.
	Component string
	// Module is the module path for diffusers and peft keys; Flat is
	// kohya's (dots replaced by underscores), resolved against the model by
	// Apply. One of them is set.
	Module, Flat string
	// Down and Up are the factors as stored (any float dtype, in memory).
	Down, Up *tensor.Tensor
	// Alpha is the stored alpha, or NaN when the file has none (then alpha
	// = rank, scale 1).
	Alpha float64
	// Key is the down factor's key (or another of the entry's keys), for
	// messages.
	Key string
}

// File is a LoRA file read by Read.
type File struct {
	Path    string
	Layout  Layout
	Entries []*Entry
}

// source opens a safetensors or PyTorch zip file, told by its first bytes.
func source(path string) (nn.Source, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, 4)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("%s is too short to be a safetensors or PyTorch file", path)
	}
	if bytes.Equal(head[:2], []byte("PK")) {
		s, err := nn.OpenTorch(path)
		if err != nil {
			return nil, nil, err
		}
		return s, s, nil
	}
	s, err := nn.OpenSafetensors(path)
	if err != nil {
		return nil, nil, err
	}
	return s, s, nil
}

// unsupportedKey explains a key of a LoRA variant this package does not
// read.
func unsupportedKey(path, key string) error {
	for _, v := range []string{".hada_", ".lokr_", ".oft_", ".dora_scale", ".lora_mid", ".w_norm", ".b_norm"} {
		if strings.Contains(key, v) || strings.HasSuffix(key, ".diff") || strings.HasSuffix(key, ".diff_b") {
			return fmt.Errorf("lora: %s: key %q belongs to a LyCORIS variant (LoHa, LoKr, DoRA, OFT, full diff, ...) that roentgo does not read; expected plain LoRA factors", path, key)
		}
	}
	return fmt.Errorf("lora: %s: key %q fits no LoRA layout roentgo reads (diffusers \"<attention>.processor.to_q_lora.down.weight\", kohya \"lora_unet_<module>.lora_down.weight\", peft \"unet.<module>.lora_A.weight\")", path, key)
}

// parsedKey is what a key says: the entry it belongs to and the part.
type parsedKey struct {
	comp, module, flat string
	part               string // "down", "up" or "alpha"
	layout             Layout
}

// parseKey reads one key of a LoRA file.
func parseKey(key string) (parsedKey, bool) {
	for _, k := range []struct{ prefix, comp string }{{"lora_unet_", UNet}, {"lora_te_", TextEncoder}} {
		rest, ok := strings.CutPrefix(key, k.prefix)
		if !ok {
			continue
		}
		name, suffix, ok := strings.Cut(rest, ".")
		if !ok || name == "" {
			return parsedKey{}, false
		}
		part := map[string]string{"lora_down.weight": "down", "lora_up.weight": "up", "alpha": "alpha"}[suffix]
		if part == "" {
			return parsedKey{}, false
		}
		return parsedKey{comp: k.comp, flat: name, part: part, layout: LayoutKohya}, true
	}
	k := strings.TrimPrefix(key, "base_model.model.")
	comp := ""
	if rest, ok := strings.CutPrefix(k, UNet+"."); ok {
		comp, k = UNet, rest
	} else if rest, ok := strings.CutPrefix(k, TextEncoder+"."); ok {
		comp, k = TextEncoder, rest
	}
	if comp == "" {
		comp = UNet
		if strings.HasPrefix(k, "text_model.") {
			comp = TextEncoder
		}
	}
	pk := parsedKey{comp: comp, layout: LayoutDiffusers}
	for _, s := range []struct{ suffix, part string }{
		{".lora_A.weight", "down"}, {".lora_B.weight", "up"},
		{".lora_A.default.weight", "down"}, {".lora_B.default.weight", "up"},
		{".lora.down.weight", "down"}, {".lora.up.weight", "up"},
		{".lora_linear_layer.down.weight", "down"}, {".lora_linear_layer.up.weight", "up"},
		{".alpha", "alpha"},
	} {
		if m, ok := strings.CutSuffix(k, s.suffix); ok && m != "" {
			pk.module, pk.part = m, s.part
			if strings.HasPrefix(s.suffix, ".lora_A") || strings.HasPrefix(s.suffix, ".lora_B") {
				pk.layout = LayoutPEFT
			}
			return pk, true
		}
	}
	for attr := range unetLeaf {
		for _, f := range []string{"down", "up"} {
			base, ok := strings.CutSuffix(k, "."+attr+"_lora."+f+".weight")
			if !ok || base == "" {
				continue
			}
			base = strings.TrimSuffix(base, ".processor")
			leaf := unetLeaf[attr]
			if comp == TextEncoder {
				leaf = textLeaf[attr]
			}
			pk.module, pk.part = base+"."+leaf, f
			return pk, true
		}
	}
	return parsedKey{}, false
}

// Read reads a LoRA file (safetensors, or a PyTorch .bin zip) in any layout
// Read knows (see the package documentation) into memory. Keys that fit no
// layout, factors without their partner and malformed shapes are errors
// naming the key.
func Read(path string) (*File, error) {
	src, closer, err := source(path)
	if err != nil {
		return nil, errctx.Wrap("lora", err)
	}
	defer closer.Close()
	keys := src.Keys()
	sort.Strings(keys)
	if len(keys) == 0 {
		return nil, fmt.Errorf("lora: %s holds no tensors; expected LoRA factors", path)
	}
	byName := map[string]*Entry{}
	var order []string
	f := &File{Path: path, Layout: -1}
	for _, key := range keys {
		pk, ok := parseKey(key)
		if !ok {
			return nil, unsupportedKey(path, key)
		}
		if f.Layout < 0 || pk.layout == LayoutKohya || pk.layout == LayoutPEFT {
			f.Layout = pk.layout
		}
		id := pk.comp + "\x00" + pk.module + "\x00" + pk.flat
		e := byName[id]
		if e == nil {
			e = &Entry{Component: pk.comp, Module: pk.module, Flat: pk.flat, Alpha: math.NaN(), Key: key}
			byName[id] = e
			order = append(order, id)
		}
		var t *tensor.Tensor
		var lerr error
		err := tensor.Catch(func() {
			if t, lerr = src.Load(key); lerr != nil {
				return
			}
			if t.DType() == tensor.I64 {
				lerr = fmt.Errorf("dtype I64, want a float dtype")
				return
			}
			t = t.Clone() // own memory: the file is closed on return
			tensor.Persist(t)
		})
		if err == nil {
			err = lerr
		}
		if err != nil {
			return nil, fmt.Errorf("lora: %s: key %q: %w", path, key, err)
		}
		switch pk.part {
		case "alpha":
			if t.Numel() != 1 {
				return nil, fmt.Errorf("lora: %s: key %q has shape %v; expected a scalar alpha", path, key, t.Shape())
			}
			a := float64(t.Float32s()[0])
			if !(a > 0) || math.IsInf(a, 0) {
				return nil, fmt.Errorf("lora: %s: key %q: alpha %v; expected a positive number", path, key, a)
			}
			e.Alpha = a
		case "down":
			if t.Rank() != 2 && t.Rank() != 4 {
				return nil, fmt.Errorf("lora: %s: key %q has shape %v; expected a down factor [rank, in] or [rank, in, kh, kw]", path, key, t.Shape())
			}
			e.Down, e.Key = t, key
		case "up":
			if !(t.Rank() == 2 || t.Rank() == 4 && t.Dim(2) == 1 && t.Dim(3) == 1) {
				return nil, fmt.Errorf("lora: %s: key %q has shape %v; expected an up factor [out, rank] or [out, rank, 1, 1]", path, key, t.Shape())
			}
			e.Up = t
		}
	}
	for _, id := range order {
		e := byName[id]
		switch {
		case e.Down == nil:
			return nil, fmt.Errorf("lora: %s: key %q has no down factor beside it", path, e.Key)
		case e.Up == nil:
			return nil, fmt.Errorf("lora: %s: key %q has no up factor beside it", path, e.Key)
		case e.Up.Dim(1) != e.Down.Dim(0):
			return nil, fmt.Errorf("lora: %s: key %q: down %v and up %v have different ranks", path, e.Key, e.Down.Shape(), e.Up.Shape())
		}
		f.Entries = append(f.Entries, e)
	}
	return f, nil
}

// Apply hooks the file's adapters, with the given multiplier, into the
// layers of models (by component: models[UNet] a *unet.Model,
// models[TextEncoder] a *clip.TextModel), unmerged; call Merge on the
// result to merge them. The factors are shared with the file. A component
// the file needs but models lacks, a module the model does not have and a
// shape that does not fit the layer are errors naming the key (a LoRA for
// another architecture); nothing is applied then.
func (f *File) Apply(models map[string]any, multiplier float64) (*Network, error) {
	if math.IsNaN(multiplier) || math.IsInf(multiplier, 0) {
		return nil, fmt.Errorf("lora: %s: multiplier %v, want a finite number", f.Path, multiplier)
	}
	type index struct {
		byName, byFlat map[string]layer
	}
	idx := map[string]*index{}
	get := func(comp string) *index {
		if ix, ok := idx[comp]; ok {
			return ix
		}
		var ix *index
		if m := models[comp]; m != nil {
			ix = &index{byName: map[string]layer{}, byFlat: map[string]layer{}}
			for _, l := range layers(m) {
				ix.byName[l.name] = l
				ix.byFlat[flat(l.name)] = l
			}
		}
		idx[comp] = ix
		return ix
	}
	net := &Network{}
	used := map[string]string{} // comp/module -> key
	for _, e := range f.Entries {
		ix := get(e.Component)
		if ix == nil {
			return nil, fmt.Errorf("lora: %s: key %q adapts the %s, which was not given", f.Path, e.Key, strings.ReplaceAll(e.Component, "_", " "))
		}
		var l layer
		var ok bool
		if e.Flat != "" {
			l, ok = ix.byFlat[e.Flat]
		} else {
			l, ok = ix.byName[e.Module]
		}
		if !ok {
			return nil, fmt.Errorf("lora: %s: key %q: the %s has no layer %q (a LoRA for another architecture?)", f.Path, e.Key, strings.ReplaceAll(e.Component, "_", " "), orFlat(e))
		}
		id := e.Component + "/" + l.name
		if k, dup := used[id]; dup {
			return nil, fmt.Errorf("lora: %s: keys %q and %q both adapt %s", f.Path, k, e.Key, l.name)
		}
		used[id] = e.Key
		down, up, err := fitShapes(l, e)
		if err != nil {
			return nil, fmt.Errorf("lora: %s: key %q: %v (a LoRA for another architecture?)", f.Path, e.Key, err)
		}
		alpha := e.Alpha
		if math.IsNaN(alpha) {
			alpha = float64(down.Dim(0))
		}
		net.Adapters = append(net.Adapters, &Adapter{Component: e.Component, Module: l.name, Down: down, Up: up,
			Alpha: alpha, Multiplier: multiplier, linear: l.linear, conv: l.conv})
	}
	for _, a := range net.Adapters {
		a.hook()
	}
	return net, nil
}

// orFlat names an entry's module for messages.
func orFlat(e *Entry) string {
	if e.Flat != "" {
		return e.Flat
	}
	return e.Module
}

// fitShapes checks the entry's factors against the layer and returns them
// in the shapes the adapter uses.
func fitShapes(l layer, e *Entry) (down, up *tensor.Tensor, err error) {
	ws := l.weight().Shape()
	out, in := ws[0], ws[1]
	r := e.Down.Dim(0)
	ds, us := e.Down.Shape(), e.Up.Shape()
	what := fmt.Sprintf("layer %s has weight %v", l.name, ws)
	if us[0] != out {
		return nil, nil, fmt.Errorf("up factor %v, want [%d, %d]: %s", us, out, r, what)
	}
	if ds[1] != in {
		return nil, nil, fmt.Errorf("down factor %v, want [%d, %d, ...]: %s", ds, r, in, what)
	}
	if l.conv != nil {
		kh, kw := ws[2], ws[3]
		switch {
		case len(ds) == 4 && ds[2] == kh && ds[3] == kw:
			down = e.Down
		case len(ds) == 2 && kh == 1 && kw == 1:
			down = e.Down.Reshape(r, in, 1, 1)
		default:
			return nil, nil, fmt.Errorf("down factor %v, want [%d, %d, %d, %d]: %s", ds, r, in, kh, kw, what)
		}
		up = e.Up
		if len(us) == 2 {
			up = e.Up.Reshape(out, r, 1, 1)
		}
		return down, up, nil
	}
	if len(ds) == 4 && (ds[2] != 1 || ds[3] != 1) {
		return nil, nil, fmt.Errorf("down factor %v, want [%d, %d]: %s", ds, r, in, what)
	}
	return e.Down, e.Up, nil
}

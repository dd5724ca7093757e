package clip

// CLIP text encoder: Radford et al. 2021, "Learning Transferable Visual Models
// From Natural Language Supervision", https://arxiv.org/abs/2103.00020 (section
// 2.4: a 12-layer pre-LayerNorm Transformer with masked (causal) self-attention
// whose state at the EOS token is the text feature). Stable Diffusion conditions
// on its whole last hidden state.

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// TextConfig is transformers' CLIPTextConfig, read from a text_encoder/
// config.json; the json tags are its keys and DefaultTextConfig holds its
// defaults. Keys the model does not use (dropout, initializer_range, token
// ids, ...) are ignored.
type TextConfig struct {
	VocabSize             int     `json:"vocab_size"`
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	ProjectionDim         int     `json:"projection_dim"` // CLIPTextModelWithProjection only
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	HiddenAct             string  `json:"hidden_act"` // quick_gelu (SD1), gelu (SD2)
	LayerNormEps          float64 `json:"layer_norm_eps"`
}

// DefaultTextConfig returns transformers' CLIPTextConfig defaults (hidden 512,
// 12 layers, 8 heads, quick_gelu); Stable Diffusion 1.x's encoder (OpenAI
// ViT-L/14) has hidden 768, 12 heads and intermediate 3072, SD 2.x's (OpenCLIP
// ViT-H/14) hidden 1024, 23 layers, 16 heads and gelu.
func DefaultTextConfig() TextConfig {
	return TextConfig{
		VocabSize: 49408, HiddenSize: 512, IntermediateSize: 2048, ProjectionDim: 512,
		NumHiddenLayers: 12, NumAttentionHeads: 8, MaxPositionEmbeddings: 77,
		HiddenAct: "quick_gelu", LayerNormEps: 1e-5,
	}
}

// SD15TextConfig returns the configuration of Stable Diffusion 1.x's text
// encoder (openai/clip-vit-large-patch14's text model).
func SD15TextConfig() TextConfig {
	c := DefaultTextConfig()
	c.HiddenSize, c.IntermediateSize, c.ProjectionDim, c.NumAttentionHeads = 768, 3072, 768, 12
	return c
}

// Validate reports the first inconsistency of c as an error naming the key:
// sizes must be positive and at most nn.MaxDim (vocab_size nn.MaxVocab),
// hidden_size a multiple of num_attention_heads, layer_norm_eps positive and
// finite (also as float32), hidden_act known, and the model at most
// nn.MaxParams parameters. ProjectionDim is not used by the text model and
// not checked.
func (c TextConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{{"vocab_size", c.VocabSize, nn.MaxVocab}, {"hidden_size", c.HiddenSize, nn.MaxDim}, {"intermediate_size", c.IntermediateSize, nn.MaxDim},
		{"num_hidden_layers", c.NumHiddenLayers, nn.MaxDim}, {"num_attention_heads", c.NumAttentionHeads, nn.MaxDim},
		{"max_position_embeddings", c.MaxPositionEmbeddings, nn.MaxDim}} {
		if f.v < 1 {
			return fmt.Errorf("clip: text config: %s = %d, want a positive number", f.name, f.v)
		}
		if f.v > f.max {
			return fmt.Errorf("clip: text config: %s = %d, want at most %d", f.name, f.v, f.max)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("clip: text config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if !(c.LayerNormEps > 0) || math.IsInf(c.LayerNormEps, 0) || !(float32(c.LayerNormEps) > 0) || math.IsInf(float64(float32(c.LayerNormEps)), 0) {
		return fmt.Errorf("clip: text config: layer_norm_eps = %g, want a positive finite number (as float32)", c.LayerNormEps)
	}
	if _, err := nn.ParseActivation(c.HiddenAct); err != nil {
		return fmt.Errorf("clip: text config: hidden_act %q is not supported (want quick_gelu, gelu, gelu_new, gelu_pytorch_tanh or silu)", c.HiddenAct)
	}
	if np := c.numParams(); np > nn.MaxParams {
		return fmt.Errorf("clip: text config: vocab_size %d, hidden_size %d, intermediate_size %d and num_hidden_layers %d make a model of %.4g parameters, want at most %d",
			c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, np, nn.MaxParams)
	}
	return nil
}

// numParams returns the number of parameters of the text model c describes
// (the position_ids buffer is not one), as a float64 so that an absurd config
// cannot overflow it.
func (c TextConfig) numParams() float64 {
	d, i := float64(c.HiddenSize), float64(c.IntermediateSize)
	layer := 2*2*d + 4*(d*d+d) + d*i + i + i*d + d // layer norms, q/k/v/out, fc1, fc2
	return float64(c.VocabSize+c.MaxPositionEmbeddings)*d + float64(c.NumHiddenLayers)*layer + 2*d
}

// LoadTextConfig reads a transformers CLIPTextConfig config.json: keys absent
// from the file keep DefaultTextConfig's values. The result is validated.
func LoadTextConfig(path string) (TextConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return DefaultTextConfig(), errctx.Wrap("clip: text config", err)
	}
	c, err := decodeTextConfig(data)
	if err != nil {
		return c, fmt.Errorf("clip: text config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// ParseTextConfig decodes and validates the JSON of a transformers
// CLIPTextConfig config.json (as LoadTextConfig reads from a file): keys
// absent from data keep DefaultTextConfig's values.
func ParseTextConfig(data []byte) (TextConfig, error) {
	c, err := decodeTextConfig(data)
	if err != nil {
		return c, fmt.Errorf("clip: text config: %w", err)
	}
	return c, c.Validate()
}

// decodeTextConfig decodes data over DefaultTextConfig, without validating.
func decodeTextConfig(data []byte) (TextConfig, error) {
	c := DefaultTextConfig()
	err := json.Unmarshal(data, &c)
	return c, err
}

// TextModel is transformers' CLIPTextModel (its text_model): token and position
// embeddings, NumHiddenLayers pre-LayerNorm Transformer layers with causal
// self-attention, and a final LayerNorm. Keys (under text_model.):
// embeddings.{token_embedding,position_embedding}, encoder.layers.N,
// final_layer_norm, and the optional buffer embeddings.position_ids.
type TextModel struct {
	Config            TextConfig
	TokenEmbedding    *nn.Embedding // [vocab, D]
	PositionEmbedding *nn.Embedding // [max_pos, D]
	// PositionIDs [1, max_pos] (I64) indexes the position table when the
	// weights store position_ids: always 0..max_pos-1, whatever they store
	// (see NewTextModel); nil when they store none (the table is then used
	// in order, which is the same).
	PositionIDs    *tensor.Tensor
	Layers         []*EncoderLayer
	FinalLayerNorm *nn.LayerNorm
	// Warnings lists problems with the weights that loading worked around
	// (position_ids that were not 0..max_pos-1 in order, or not whole
	// numbers), one sentence each starting with "clip: ", for the caller to
	// show the user; nil when there were none. NewTextModel, LoadTextModel,
	// TextModelFromSource and TextModelFromCheckpoint fill it.
	Warnings []string

	closer func() error // the source opened by LoadTextModel
}

// EncoderLayer is CLIPEncoderLayer: x += attn(ln1(x)); x += mlp(ln2(x)).
// Keys: layer_norm1, self_attn, layer_norm2, mlp.
type EncoderLayer struct {
	LayerNorm1 *nn.LayerNorm
	SelfAttn   *SelfAttention
	LayerNorm2 *nn.LayerNorm
	MLP        *MLP
}

// SelfAttention is CLIPAttention with a causal mask: multi-head attention with
// biased projections q_proj, k_proj, v_proj, out_proj [D, D], scale
// head_dim^-0.5.
type SelfAttention struct {
	Heads                        int
	QProj, KProj, VProj, OutProj *nn.Linear
}

// MLP is CLIPMLP: fc2(act(fc1(x))) with fc1 [I, D], fc2 [D, I].
type MLP struct {
	Act      nn.Activation
	FC1, FC2 *nn.Linear
}

// NewTextModel returns the CLIPTextModel whose parameters b holds under
// text_model. (b at the root of a text_encoder state dict). It returns an error
// for an invalid config; missing or mis-shaped parameters are recorded in b as
// usual: call b.Check before use.
//
// position_ids: transformers' CLIPTextModel stores arange(max_pos) as an I64
// buffer [1, max_pos] (newer versions do not even read it back), but
// checkpoints in the wild store it as F16, BF16 or F32 (diffusers'
// convert_diffusers_to_original_stable_diffusion.py --half; merges that
// averaged it into values like 75.9999), and a few as F64 or I32. Every dtype
// is accepted, and the model always uses 0..max_pos-1 in order: float values
// are rounded to the nearest integer, and when they were not whole numbers,
// or the (rounded) values are not exactly 0..max_pos-1 in order, a warning in
// the model's Warnings says so and the stored values are ignored (a position
// table indexed out of order is a corrupt checkpoint, not a model anyone
// trained). A dtype the tensor package cannot read (F64, I32, ...) is skipped
// with a warning, since its values cannot be checked. A stored shape other
// than [1, max_pos] is an error recorded in b, like any misshapen parameter.
func NewTextModel(b *nn.Builder, c TextConfig) (*TextModel, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	act, _ := nn.ParseActivation(c.HiddenAct)
	d := c.HiddenSize
	eps := float32(c.LayerNormEps)
	tb := b.Sub("text_model")
	emb := tb.Sub("embeddings")
	m := &TextModel{
		Config:            c,
		TokenEmbedding:    nn.NewEmbedding(emb.Sub("token_embedding"), c.VocabSize, d),
		PositionEmbedding: nn.NewEmbedding(emb.Sub("position_embedding"), c.MaxPositionEmbeddings, d),
	}
	m.PositionIDs, m.Warnings = positionIDs(emb, c.MaxPositionEmbeddings)
	for i := 0; i < c.NumHiddenLayers; i++ {
		lb := tb.Path("encoder", "layers", i)
		ab := lb.Sub("self_attn")
		m.Layers = append(m.Layers, &EncoderLayer{
			LayerNorm1: nn.NewLayerNorm(lb.Sub("layer_norm1"), d, eps),
			SelfAttn: &SelfAttention{Heads: c.NumAttentionHeads,
				QProj:   nn.NewLinear(ab.Sub("q_proj"), d, d, true),
				KProj:   nn.NewLinear(ab.Sub("k_proj"), d, d, true),
				VProj:   nn.NewLinear(ab.Sub("v_proj"), d, d, true),
				OutProj: nn.NewLinear(ab.Sub("out_proj"), d, d, true)},
			LayerNorm2: nn.NewLayerNorm(lb.Sub("layer_norm2"), d, eps),
			MLP: &MLP{Act: act,
				FC1: nn.NewLinear(lb.Path("mlp", "fc1"), d, c.IntermediateSize, true),
				FC2: nn.NewLinear(lb.Path("mlp", "fc2"), c.IntermediateSize, d, true)},
		})
	}
	m.FinalLayerNorm = nn.NewLayerNorm(tb.Sub("final_layer_norm"), d, eps)
	return m, nil
}

// positionIDs reads the optional position_ids buffer under emb for a table
// of n positions as NewTextModel describes, and returns the ids the model
// uses (nil when the weights store none, or on an error recorded in emb) and
// the warnings to report.
func positionIDs(emb *nn.Builder, n int) (*tensor.Tensor, []string) {
	const name = "position_ids"
	dt, _, ok := emb.Info(name)
	if !ok {
		return nil, nil
	}
	key := emb.Prefix() + "." + name
	use := fmt.Sprintf("using positions 0..%d in order", n-1)
	arange := func() *tensor.Tensor {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(i)
		}
		return tensor.FromInt64(v, 1, n)
	}
	switch dt {
	case "F32", "F16", "BF16", "I64":
	default:
		emb.Skip(name, 1, n)
		return arange(), []string{fmt.Sprintf("clip: %s is stored as %s, whose values roentgo does not read; %s", key, dt, use)}
	}
	t := emb.GetStored(name, 1, n)
	if t == nil {
		return nil, nil // the builder recorded why
	}
	// The first value that is not a whole number and the first one that is
	// not its index after rounding, -1 for none.
	frac, moved := -1, -1
	var show func(i int) string // value i as stored
	if t.DType() == tensor.I64 {
		iv := t.Int64s()
		for i, v := range iv {
			if moved < 0 && v != int64(i) {
				moved = i
			}
		}
		show = func(i int) string { return strconv.FormatInt(iv[i], 10) }
	} else {
		fv := t.Float32s()
		for i, v := range fv {
			r := math.Round(float64(v))
			if frac < 0 && r != float64(v) {
				frac = i
			}
			if moved < 0 && r != float64(i) {
				moved = i
			}
		}
		show = func(i int) string { return strconv.FormatFloat(float64(fv[i]), 'g', -1, 32) }
	}
	var probs []string
	if frac >= 0 {
		probs = append(probs, fmt.Sprintf("is stored as %s with values that are not whole numbers (e.g. [%d] = %s)", dt, frac, show(frac)))
	}
	if moved >= 0 {
		probs = append(probs, fmt.Sprintf("is not 0..%d in order (e.g. [%d] = %s)", n-1, moved, show(moved)))
	}
	if probs != nil {
		return arange(), []string{fmt.Sprintf("clip: %s %s; %s", key, strings.Join(probs, " and "), use)}
	}
	if t.DType() == tensor.I64 {
		return t, nil
	}
	return arange(), nil
}

// LoadTextModel loads the text encoder of a diffusers folder: dir is the
// pipeline folder (with text_encoder/ inside) or the text_encoder folder
// itself, holding config.json and the weights: model.safetensors, a PyTorch
// pytorch_model.bin, their .fp16 variants or a sharded checkpoint (see
// nn.FindWeights). Within a variant safetensors are preferred over .bin; the weights are kept
// as dt (F32, F16 or BF16); the .fp16 variant is preferred for 16-bit dtypes,
// the full one for F32, and either is converted when it is the only one.
// Safetensors are memory-mapped; Close the model to unmap them. Any problem
// (not a text_encoder folder, config, missing, misshapen or unused tensors) is
// returned as one error.
func LoadTextModel(dir string, dt tensor.DType) (*TextModel, error) {
	if err := checkTextDType("LoadTextModel", dt); err != nil {
		return nil, err
	}
	dir, err := nn.ComponentDir(dir, "text_encoder")
	if err != nil {
		return nil, errctx.Wrap("clip", err)
	}
	c, err := LoadTextConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	w, err := nn.FindWeights(dir, dt != tensor.F32)
	if err != nil {
		return nil, errctx.Wrap("clip: text encoder", err)
	}
	src, closer, err := w.Open()
	if err != nil {
		return nil, errctx.Wrap("clip: text encoder", err)
	}
	m, err := buildText(src, c, dt)
	if err != nil {
		closer.Close()
		return nil, fmt.Errorf("clip: text encoder %s: %w", w, err)
	}
	if w.Mapped() {
		m.closer = closer.Close
	} else {
		closer.Close() // the tensors were read into memory: drop the reader's cache
	}
	return m, nil
}

// TextModelFromSource builds the text encoder from the weights of src (the
// state dict of a transformers CLIPTextModel, as in a diffusers
// text_encoder/ folder) with config c (e.g. from ParseTextConfig), kept as dt
// (F32, F16 or BF16), as LoadTextModel does for a folder: the same strict
// check of every tensor, position_ids handling and Warnings. The model does
// not own src: its Close does nothing, and a src whose tensors alias memory
// it releases (an nn.OpenSafetensors file) must stay open while the model is
// used. Any problem is returned as one error.
func TextModelFromSource(src nn.Source, c TextConfig, dt tensor.DType) (*TextModel, error) {
	if err := checkTextDType("TextModelFromSource", dt); err != nil {
		return nil, err
	}
	if src == nil {
		return nil, errors.New("clip: TextModelFromSource: no weights source given")
	}
	m, err := buildText(src, c, dt)
	if err != nil {
		return nil, errctx.Wrap("clip: text encoder", err)
	}
	return m, nil
}

// checkTextDType checks the weights dtype given to fn.
func checkTextDType(fn string, dt tensor.DType) error {
	if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
		return fmt.Errorf("clip: %s: dtype %v, want F32, F16 or BF16", fn, dt)
	}
	return nil
}

// Close releases the weights file of a model from LoadTextModel (a no-op for
// other models). The model must not be used afterwards.
func (m *TextModel) Close() error {
	if m.closer == nil {
		return nil
	}
	c := m.closer
	m.closer = nil
	return c()
}

// IDs returns token id rows (e.g. from Tokenizer.Encode) as the I64 tensor [N,
// S] that Forward takes. All rows must have the same length.
func IDs(rows ...[]int32) *tensor.Tensor {
	if len(rows) == 0 {
		panic("clip: IDs: no rows")
	}
	s := len(rows[0])
	data := make([]int64, 0, len(rows)*s)
	for i, r := range rows {
		if len(r) != s {
			panic(fmt.Sprintf("clip: IDs: row %d has %d ids, row 0 has %d", i, len(r), s))
		}
		for _, v := range r {
			data = append(data, int64(v))
		}
	}
	return tensor.FromInt64(data, len(rows), s)
}

// TextOutput holds what ForwardOutput computes.
type TextOutput struct {
	// LastHiddenState [N, S, D]: the last layer's output after final_layer_norm
	// (Stable Diffusion's prompt embeddings).
	LastHiddenState *tensor.Tensor
	// HiddenStates (with TextOptions.HiddenStates): NumHiddenLayers+1 tensors
	// [N, S, D] as transformers' output_hidden_states: [0] the embeddings, [i]
	// the output of layer i, without final_layer_norm.
	HiddenStates []*tensor.Tensor
	// PoolerOutput [N, D] (with TextOptions.Pooled): LastHiddenState at each
	// row's EOS token, found as the position of the largest id (the first one on
	// ties), as transformers 4.27 does.
	PoolerOutput *tensor.Tensor
}

// Release releases every tensor of o.
func (o *TextOutput) Release() {
	o.LastHiddenState.Release()
	for _, h := range o.HiddenStates {
		h.Release()
	}
	o.PoolerOutput.Release()
}

// TextOptions selects the optional outputs of ForwardOutput.
type TextOptions struct {
	HiddenStates bool // keep every hidden state (output_hidden_states=True)
	Pooled       bool // compute PoolerOutput
}

// Forward returns the last hidden state [N, S, D] (after final_layer_norm) of
// the token ids [N, S] (I64, S <= max_position_embeddings).
func (m *TextModel) Forward(ids *tensor.Tensor) *tensor.Tensor {
	return m.ForwardOutput(ids, TextOptions{}).LastHiddenState
}

// HiddenState returns hidden state i of ids [N, S] as transformers numbers them
// (0: the embeddings, i: the output of layer i; negative i counts from the end,
// so -1 is the last layer and -2 the penultimate, "clip skip 2"), with
// final_layer_norm applied when finalLN is set. Layers after i are not run.
func (m *TextModel) HiddenState(ids *tensor.Tensor, i int, finalLN bool) *tensor.Tensor {
	n := len(m.Layers)
	if i < 0 {
		i += n + 1
	}
	if i < 0 || i > n {
		panic(fmt.Sprintf("clip: TextModel.HiddenState: index %d out of range for %d layers", i, n))
	}
	return tensor.Scope(func() *tensor.Tensor {
		h := m.embed(ids)
		for _, l := range m.Layers[:i] {
			h = tensor.Chain(h, l.Forward)
		}
		if finalLN {
			h = tensor.Chain(h, m.FinalLayerNorm.Forward)
		}
		return h
	})
}

// ForwardOutput runs the model on ids [N, S] (I64) and returns the last hidden
// state and the optional outputs o asks for.
func (m *TextModel) ForwardOutput(ids *tensor.Tensor, o TextOptions) *TextOutput {
	out := &TextOutput{}
	tensor.Do(func() {
		h := m.embed(ids)
		for _, l := range m.Layers {
			if o.HiddenStates {
				out.HiddenStates = append(out.HiddenStates, h)
				h = l.Forward(h)
			} else {
				h = tensor.Chain(h, l.Forward)
			}
		}
		if o.HiddenStates {
			out.HiddenStates = append(out.HiddenStates, h)
		}
		out.LastHiddenState = m.FinalLayerNorm.Forward(h)
		if o.Pooled {
			out.PoolerOutput = pool(out.LastHiddenState, ids)
		}
		// The output holds them.
		tensor.Escape(out.HiddenStates...)
		tensor.Escape(out.LastHiddenState, out.PoolerOutput)
	})
	return out
}

// embed returns token_embedding(ids) + position_embedding(position_ids[:S]):
// [N, S, D].
func (m *TextModel) embed(ids *tensor.Tensor) *tensor.Tensor {
	if ids.Rank() != 2 || ids.DType() != tensor.I64 {
		panic(fmt.Sprintf("clip: TextModel: ids %v %v, want I64 [N, S]", ids.DType(), ids.Shape()))
	}
	s := ids.Dim(1)
	if s > m.Config.MaxPositionEmbeddings {
		panic(fmt.Sprintf("clip: TextModel: %d tokens, the model takes at most %d", s, m.Config.MaxPositionEmbeddings))
	}
	return tensor.Scope(func() *tensor.Tensor {
		var pos *tensor.Tensor // [1, S, D] or [S, D]
		if m.PositionIDs != nil {
			pos = m.PositionEmbedding.Forward(m.PositionIDs.Narrow(1, 0, s))
		} else {
			pos = m.PositionEmbedding.Weight.Narrow(0, 0, s)
		}
		return m.TokenEmbedding.Forward(ids).AddInPlace(pos)
	})
}

// pool returns h [N, S, D] at each row's largest id: [N, D].
func pool(h, ids *tensor.Tensor) *tensor.Tensor {
	n, s := ids.Dim(0), ids.Dim(1)
	v := ids.Int64s()
	return tensor.Scope(func() *tensor.Tensor {
		rows := make([]*tensor.Tensor, n)
		for r := range n {
			best := 0
			for j := 1; j < s; j++ {
				if v[r*s+j] > v[r*s+best] {
					best = j
				}
			}
			rows[r] = h.Select(0, r).Select(0, best)
		}
		return tensor.Stack(0, rows...)
	})
}

// Forward returns the layer applied to x [N, S, D].
func (l *EncoderLayer) Forward(x *tensor.Tensor) *tensor.Tensor {
	// One scope per residual branch; the second consumes h.
	return tensor.Scope(func() *tensor.Tensor {
		h := tensor.Scope(func() *tensor.Tensor { return l.SelfAttn.Forward(l.LayerNorm1.Forward(x)).AddInPlace(x) })
		return tensor.Scope(func() *tensor.Tensor { return l.MLP.Forward(l.LayerNorm2.Forward(h)).AddInPlace(h) }, h)
	})
}

// Forward returns causal multi-head self-attention of x [N, S, D].
func (a *SelfAttention) Forward(x *tensor.Tensor) *tensor.Tensor {
	scale := float32(1 / math.Sqrt(float64(x.Dim(-1)/a.Heads)))
	return tensor.Scope(func() *tensor.Tensor {
		// q, k and v go when the attention exists.
		o := tensor.Scope(func() *tensor.Tensor {
			return tensor.Attention(a.QProj.Forward(x), a.KProj.Forward(x), a.VProj.Forward(x), a.Heads, scale, true)
		})
		return a.OutProj.Forward(o)
	})
}

// Forward returns fc2(act(fc1(x))).
func (f *MLP) Forward(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		g := tensor.Scope(func() *tensor.Tensor { return f.Act.Forward(f.FC1.Forward(x)) }) // fc1's output goes here
		return f.FC2.Forward(g)
	})
}

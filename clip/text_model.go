package clip

// CLIP text encoder: Radford et al. 2021, "Learning Transferable Visual Models
// From Natural Language Supervision", https://arxiv.org/abs/2103.00020 (section
// 2.4: a 12-layer pre-LayerNorm Transformer with masked (causal) self-attention
// whose state at the EOS token is the text feature). Stable Diffusion conditions
// on its whole last hidden state.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

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

// Validate reports the first inconsistency of c as an error naming the key.
func (c TextConfig) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab_size", c.VocabSize}, {"hidden_size", c.HiddenSize}, {"intermediate_size", c.IntermediateSize},
		{"num_hidden_layers", c.NumHiddenLayers}, {"num_attention_heads", c.NumAttentionHeads},
		{"max_position_embeddings", c.MaxPositionEmbeddings}} {
		if f.v < 1 {
			return fmt.Errorf("clip: text config: %s = %d, want a positive number", f.name, f.v)
		}
	}
	if c.HiddenSize%c.NumAttentionHeads != 0 {
		return fmt.Errorf("clip: text config: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumAttentionHeads)
	}
	if !(c.LayerNormEps > 0) {
		return fmt.Errorf("clip: text config: layer_norm_eps = %g, want > 0", c.LayerNormEps)
	}
	if _, err := nn.ParseActivation(c.HiddenAct); err != nil {
		return fmt.Errorf("clip: text config: hidden_act %q is not supported (want quick_gelu, gelu, gelu_new, gelu_pytorch_tanh or silu)", c.HiddenAct)
	}
	return nil
}

// LoadTextConfig reads a transformers CLIPTextConfig config.json: keys absent
// from the file keep DefaultTextConfig's values. The result is validated.
func LoadTextConfig(path string) (TextConfig, error) {
	c := DefaultTextConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("clip: text config: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("clip: text config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// TextModel is transformers' CLIPTextModel (its text_model): token and position
// embeddings, NumHiddenLayers pre-LayerNorm Transformer layers with causal
// self-attention, and a final LayerNorm. Keys (under text_model.):
// embeddings.{token_embedding,position_embedding}, encoder.layers.N,
// final_layer_norm; embeddings.position_ids (I64) is used when present.
type TextModel struct {
	Config            TextConfig
	TokenEmbedding    *nn.Embedding // [vocab, D]
	PositionEmbedding *nn.Embedding // [max_pos, D]
	PositionIDs       *tensor.Tensor
	Layers            []*EncoderLayer
	FinalLayerNorm    *nn.LayerNorm

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
// for an invalid config or invalid stored position_ids; missing or mis-shaped
// parameters are recorded in b as usual: call b.Check before use.
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
	if emb.Has("position_ids") {
		// A buffer, not a parameter: transformers indexes the position table with it.
		m.PositionIDs = emb.GetInt64("position_ids", 1, c.MaxPositionEmbeddings)
		if m.PositionIDs != nil {
			for i, p := range m.PositionIDs.Int64s() {
				if p < 0 || p >= int64(c.MaxPositionEmbeddings) {
					return nil, fmt.Errorf("clip: text_model.embeddings.position_ids[%d] = %d, want 0 <= id < %d", i, p, c.MaxPositionEmbeddings)
				}
			}
		}
	}
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
	if dt != tensor.F32 && dt != tensor.F16 && dt != tensor.BF16 {
		return nil, fmt.Errorf("clip: LoadTextModel: dtype %v, want F32, F16 or BF16", dt)
	}
	dir, err := nn.ComponentDir(dir, "text_encoder")
	if err != nil {
		return nil, fmt.Errorf("clip: %w", err)
	}
	c, err := LoadTextConfig(filepath.Join(dir, "config.json"))
	if err != nil {
		return nil, err
	}
	w, err := nn.FindWeights(dir, dt != tensor.F32)
	if err != nil {
		return nil, fmt.Errorf("clip: text encoder: %w", err)
	}
	src, closer, err := w.Open()
	if err != nil {
		return nil, fmt.Errorf("clip: text encoder: %w", err)
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
	h := m.embed(ids)
	for _, l := range m.Layers[:i] {
		next := l.Forward(h)
		h.Release()
		h = next
	}
	if !finalLN {
		return h
	}
	y := m.FinalLayerNorm.Forward(h)
	h.Release()
	return y
}

// ForwardOutput runs the model on ids [N, S] (I64) and returns the last hidden
// state and the optional outputs o asks for.
func (m *TextModel) ForwardOutput(ids *tensor.Tensor, o TextOptions) *TextOutput {
	out := &TextOutput{}
	h := m.embed(ids)
	for _, l := range m.Layers {
		next := l.Forward(h)
		if o.HiddenStates {
			out.HiddenStates = append(out.HiddenStates, h)
		} else {
			h.Release()
		}
		h = next
	}
	out.LastHiddenState = m.FinalLayerNorm.Forward(h)
	if o.HiddenStates {
		out.HiddenStates = append(out.HiddenStates, h)
	} else {
		h.Release()
	}
	if o.Pooled {
		out.PoolerOutput = pool(out.LastHiddenState, ids)
	}
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
	var pos *tensor.Tensor // [1, S, D] or [S, D]
	if m.PositionIDs != nil {
		p := m.PositionIDs.Narrow(1, 0, s)
		pos = m.PositionEmbedding.Forward(p)
		p.Release()
	} else {
		pos = m.PositionEmbedding.Weight.Narrow(0, 0, s)
	}
	h := m.TokenEmbedding.Forward(ids).AddInPlace(pos)
	pos.Release()
	return h
}

// pool returns h [N, S, D] at each row's largest id: [N, D].
func pool(h, ids *tensor.Tensor) *tensor.Tensor {
	n, s := ids.Dim(0), ids.Dim(1)
	v := ids.Int64s()
	rows := make([]*tensor.Tensor, n)
	for r := range n {
		best := 0
		for j := 1; j < s; j++ {
			if v[r*s+j] > v[r*s+best] {
				best = j
			}
		}
		hr := h.Select(0, r)
		rows[r] = hr.Select(0, best)
		hr.Release()
	}
	y := tensor.Stack(0, rows...)
	for _, r := range rows {
		r.Release()
	}
	return y
}

// Forward returns the layer applied to x [N, S, D].
func (l *EncoderLayer) Forward(x *tensor.Tensor) *tensor.Tensor {
	n := l.LayerNorm1.Forward(x)
	h := l.SelfAttn.Forward(n).AddInPlace(x)
	n.Release()
	n = l.LayerNorm2.Forward(h)
	y := l.MLP.Forward(n).AddInPlace(h)
	n.Release()
	h.Release()
	return y
}

// Forward returns causal multi-head self-attention of x [N, S, D].
func (a *SelfAttention) Forward(x *tensor.Tensor) *tensor.Tensor {
	q, k, v := a.QProj.Forward(x), a.KProj.Forward(x), a.VProj.Forward(x)
	scale := float32(1 / math.Sqrt(float64(x.Dim(-1)/a.Heads)))
	o := tensor.Attention(q, k, v, a.Heads, scale, true)
	q.Release()
	k.Release()
	v.Release()
	y := a.OutProj.Forward(o)
	o.Release()
	return y
}

// Forward returns fc2(act(fc1(x))).
func (f *MLP) Forward(x *tensor.Tensor) *tensor.Tensor {
	h := f.FC1.Forward(x)
	g := f.Act.Forward(h)
	h.Release()
	y := f.FC2.Forward(g)
	g.Release()
	return y
}

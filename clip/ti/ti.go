// Package ti is textual inversion (Gal et al. 2022, "An Image is Worth One
// Word", https://arxiv.org/abs/2208.01618): a new token, such as
// "<cxr-opacity>", added to the CLIP tokenizer and given its own rows in the
// text encoder's token-embedding table, which are the only thing trained.
//
// AddToken does what diffusers' textual_inversion.py does before training:
// tokenizer.add_tokens (ids from the vocabulary's size upward, 49408 for
// CLIP), resize_token_embeddings, and the new rows set to the initializer
// token's embedding. Embedding.Trainable then gives the new rows as one
// nn.Trainable for an optimiser (nn/optim): the table receives its
// gradients as rows (tensor.Tensor.SetSparseGrad), CollectGrads moves the
// placeholder's rows into the parameter's gradient, and the optimiser's
// step writes the new values into the table's rows (nn.Trainable.SyncValue).
// Every other row and parameter stays as it was: diffusers trains the whole
// table with AdamW and restores the other rows after each step, which gives
// the placeholder rows the same values (AdamW is elementwise).
//
// Save writes diffusers' learned_embeds.safetensors ({placeholder: [n, D]});
// Load reads it (or learned_embeds.bin, or AUTOMATIC1111's "emb_params"
// safetensors) and adds the tokens, as diffusers' load_textual_inversion.
package ti

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/errctx"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
)

// Embedding is a token added to a tokenizer and a text encoder.
type Embedding struct {
	// Token is the placeholder as written in prompts.
	Token string
	// IDs are its consecutive ids (one per vector).
	IDs []int32

	text  *clip.TextModel
	param *nn.Trainable
}

// Add adds token to tok with the embedding rows [n, D] (or [D]) in text,
// and returns it. The tokenizer and the text encoder must agree on the
// vocabulary's size. Errors name what is wrong; on an error nothing is
// added.
func Add(tok *clip.CLIPTokenizer, text *clip.TextModel, token string, rows *tensor.Tensor) (*Embedding, error) {
	if tok == nil || text == nil {
		return nil, fmt.Errorf("ti: no tokenizer or text encoder")
	}
	if rows.Rank() == 1 {
		rows = rows.Reshape(1, -1)
	}
	if d := text.Config.HiddenSize; rows.Rank() != 2 || rows.Dim(1) != d {
		return nil, fmt.Errorf("ti: the embedding of %q has shape %v; this text encoder takes [n, %d] (an embedding for another model?)", token, rows.Shape(), d)
	}
	if v, n := tok.VocabSize(), text.TokenEmbedding.Weight.Dim(0); v != n {
		return nil, fmt.Errorf("ti: the tokenizer has %d tokens but the text encoder's embedding table %d rows", v, n)
	}
	if _, ok := tok.TokenID(token); ok {
		return nil, fmt.Errorf("ti: %q is already a token of the tokenizer; choose another placeholder", token)
	}
	first, err := text.AddTokenEmbeddings(rows)
	if err != nil {
		return nil, errctx.Wrap("ti: "+token, err)
	}
	ids, err := tok.AddToken(token, rows.Dim(0))
	if err != nil {
		// Take the rows off again.
		text.TokenEmbedding.Weight = text.TokenEmbedding.Weight.Narrow(0, 0, first).Contiguous()
		text.Config.VocabSize = first
		return nil, errctx.Wrap("ti", err)
	}
	if int(ids[0]) != first {
		return nil, fmt.Errorf("ti: internal error: token id %d, embedding row %d", ids[0], first)
	}
	return &Embedding{Token: token, IDs: ids, text: text}, nil
}

// AddToken adds placeholder to tok and text with vectors rows, each the
// embedding of initializer, which must be one token of the vocabulary
// ("haze"), as textual_inversion.py does before training.
func AddToken(tok *clip.CLIPTokenizer, text *clip.TextModel, placeholder, initializer string, vectors int) (*Embedding, error) {
	if vectors < 1 {
		return nil, fmt.Errorf("ti: %d vectors, want at least 1", vectors)
	}
	ids, err := tok.Tokens(initializer)
	if err != nil {
		return nil, errctx.Wrap("ti: initializer token", err)
	}
	if len(ids) != 1 {
		return nil, fmt.Errorf("ti: the initializer %q is %d tokens; it must be a single token of the vocabulary", initializer, len(ids))
	}
	row, err := text.TokenEmbeddingRows(int(ids[0]), 1)
	if err != nil {
		return nil, err
	}
	rows := row
	if vectors > 1 {
		rs := make([]*tensor.Tensor, vectors)
		for i := range rs {
			rs[i] = row
		}
		rows = tensor.Cat(0, rs...)
	}
	return Add(tok, text, placeholder, rows)
}

// Vectors returns the token's current rows as a new F32 host tensor [n, D].
func (e *Embedding) Vectors() (*tensor.Tensor, error) {
	return e.text.TokenEmbeddingRows(int(e.IDs[0]), len(e.IDs))
}

// Trainable returns the token's rows as a parameter for an optimiser,
// named by the token: its value is a view of the table's rows, its master
// an F32 copy [n, D], and its gradient is set by CollectGrads. It marks the
// table for row-sparse autograd (nothing else of the text encoder is
// marked, so nothing else gets a gradient). The table must be in host
// memory and writable (as AddToken leaves it); add every token before
// calling Trainable (adding one replaces the table, and the parameters
// made before would point at the old one). Calling it again returns the
// same parameter.
func (e *Embedding) Trainable() (*nn.Trainable, error) {
	if e.param != nil {
		return e.param, nil
	}
	w := e.text.TokenEmbedding.Weight
	if w.Device() != tensor.CPU || w.ReadOnly() || !w.IsContiguous() {
		return nil, fmt.Errorf("ti: the token embedding table must be a writable host tensor to train %q", e.Token)
	}
	master, err := e.Vectors()
	if err != nil {
		return nil, err
	}
	if !w.RequiresGrad() {
		w.SetRequiresGrad(true).SetName("text_model.embeddings.token_embedding.weight")
	}
	w.SetSparseGrad(true)
	view := w.Detach().Narrow(0, int(e.IDs[0]), len(e.IDs))
	e.param = &nn.Trainable{Param: nn.Param{Name: e.Token, Tensor: view}, Master: master}
	return e.param, nil
}

// CollectGrads moves the gradients Backward left in the token tables of
// embs (rows, see tensor.Tensor.SetSparseGrad) into each embedding's
// parameter: Grad += scale * the rows of its ids (a zero gradient when the
// batch did not use the token), and clears the tables' row gradients.
// Trainable must have been called.
func CollectGrads(scale float32, embs ...*Embedding) error {
	tables := map[*tensor.Tensor]bool{}
	for _, e := range embs {
		p := e.param
		if p == nil {
			return fmt.Errorf("ti: CollectGrads: %q is not being trained (call Trainable first)", e.Token)
		}
		w := e.text.TokenEmbedding.Weight
		tables[w] = true
		d := w.Dim(1)
		if p.Grad == nil {
			p.Grad = tensor.Zeros(tensor.F32, len(e.IDs), d)
		}
		dst := p.Grad.F32Data()
		rows, g := w.RowGrad()
		for k, r := range rows {
			if r < int64(e.IDs[0]) || r >= int64(e.IDs[0])+int64(len(e.IDs)) {
				continue
			}
			i := int(r - int64(e.IDs[0]))
			out, src := dst[i*d:(i+1)*d], g[k*d:(k+1)*d]
			for j, v := range src {
				out[j] += scale * v
			}
		}
		if dg := w.Grad(); dg != nil { // a dense gradient (no sparse marking): its rows
			gv := dg.Float32s()
			for i := range e.IDs {
				r := int(e.IDs[i])
				for j, v := range gv[r*d : (r+1)*d] {
					dst[i*d+j] += scale * v
				}
			}
		}
	}
	for w := range tables {
		w.ZeroRowGrad()
		if w.Grad() != nil {
			w.ZeroGrad()
		}
	}
	return nil
}

// Save writes embs as diffusers' learned_embeds.safetensors: one F32
// tensor [n, D] per placeholder, under its name (atomically).
func Save(path string, embs ...*Embedding) error {
	if len(embs) == 0 {
		return fmt.Errorf("ti: Save: no embeddings")
	}
	var params []nn.Param
	for _, e := range embs {
		v, err := e.Vectors()
		if err != nil {
			return err
		}
		params = append(params, nn.Param{Name: e.Token, Tensor: v})
	}
	return errctx.Wrap("ti: Save", nn.SaveSafetensors(path, params, map[string]string{"format": "pt"}))
}

// source opens a safetensors or PyTorch zip file, told by its first bytes.
func source(path string) (nn.Source, io.Closer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, 2)
	_, err = io.ReadFull(f, head)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("%s is too short to be a safetensors or PyTorch file", path)
	}
	if bytes.Equal(head, []byte("PK")) {
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

// Load reads a textual-inversion file and adds its tokens to tok and text
// (diffusers' load_textual_inversion): diffusers' learned_embeds
// (.safetensors or .bin, {token: [D] or [n, D]}), or AUTOMATIC1111's
// embeddings ("emb_params" safetensors, "string_to_param" .pt), whose token
// is the file's name without extension. A non-empty token replaces the
// file's (only for a file of one embedding). Embeddings of another width
// (SDXL's clip_l/clip_g, SD2 for SD1) and tokens already known are errors.
func Load(path, token string, tok *clip.CLIPTokenizer, text *clip.TextModel) ([]*Embedding, error) {
	src, closer, err := source(path)
	if err != nil {
		return nil, errctx.Wrap("ti", err)
	}
	defer closer.Close()
	keys := src.Keys()
	sort.Strings(keys)
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	type item struct {
		token, key string
	}
	var items []item
	for _, k := range keys {
		switch {
		case k == "clip_l" || k == "clip_g":
			return nil, fmt.Errorf("ti: %s: key %q: an SDXL embedding; this model has one CLIP text encoder", path, k)
		case k == "emb_params" || strings.HasPrefix(k, "string_to_param."):
			items = append(items, item{base, k})
		case strings.HasPrefix(k, "string_to_token") || k == "name" || k == "step" || k == "sd_checkpoint" || k == "sd_checkpoint_name":
			// AUTOMATIC1111 bookkeeping
		default:
			items = append(items, item{k, k})
		}
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("ti: %s holds no embedding; expected {token: [dim]} (diffusers' learned_embeds)", path)
	}
	if token != "" {
		if len(items) != 1 {
			return nil, fmt.Errorf("ti: %s holds %d embeddings; a token name can be given only for one", path, len(items))
		}
		items[0].token = token
	}
	var out []*Embedding
	for _, it := range items {
		var t *tensor.Tensor
		var lerr error
		err := tensor.Catch(func() {
			if t, lerr = src.Load(it.key); lerr == nil && t.DType() != tensor.I64 {
				t = t.To(tensor.F32).Clone()
				tensor.Persist(t)
			} else if lerr == nil {
				lerr = fmt.Errorf("dtype I64, want a float dtype")
			}
		})
		if err == nil {
			err = lerr
		}
		if err != nil {
			return out, fmt.Errorf("ti: %s: key %q: %w", path, it.key, err)
		}
		if t.Rank() != 1 && t.Rank() != 2 {
			return out, fmt.Errorf("ti: %s: key %q has shape %v; expected [dim] or [vectors, dim]", path, it.key, t.Shape())
		}
		for _, v := range t.Float32s() {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return out, fmt.Errorf("ti: %s: key %q holds values that are not finite", path, it.key)
			}
		}
		e, err := Add(tok, text, it.token, t)
		if err != nil {
			return out, fmt.Errorf("%w (in %s)", err, path)
		}
		out = append(out, e)
	}
	return out, nil
}

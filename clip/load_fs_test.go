package clip

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// TestTokenizerLoadFS: a tokenizer folder read through an fs.FS (the folder
// itself, or a subfolder of a MapFS) is the tokenizer Load reads from disk,
// configs included; problems are errors naming the file.
func TestTokenizerLoadFS(t *testing.T) {
	vocab, merges := tinyVocab()
	// The config files change the padding token and the length, so that
	// reading them is seen.
	dir := writeTokenizerDir(t, vocab, merges, `{"model_max_length": 9, "pad_token": "!"}`, `{"pad_token": {"content": "!</w>"}}`)
	ref, err := Load(dir)
	require.NoError(t, err)
	require.Equal(t, 9, ref.MaxLength())
	require.Equal(t, "!</w>", ref.Config().Pad)

	mfs := fstest.MapFS{}
	for _, name := range []string{"vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		require.NoError(t, err)
		mfs["tokenizer/"+name] = &fstest.MapFile{Data: data}
	}
	fromDir, err := LoadFS(os.DirFS(dir), ".")
	require.NoError(t, err)
	fromMap, err := LoadFS(mfs, "tokenizer")
	require.NoError(t, err)
	for _, tok := range []*CLIPTokenizer{fromDir, fromMap} {
		require.Equal(t, ref.Config(), tok.Config())
		require.Equal(t, ref.VocabSize(), tok.VocabSize())
		for _, s := range []string{"lower low", "ababc ooo", "x!", ""} {
			wi, wm, err := ref.Encode(s)
			require.NoError(t, err)
			gi, gm, err := tok.Encode(s)
			require.NoError(t, err)
			require.Equal(t, wi, gi, s)
			require.Equal(t, wm, gm, s)
		}
	}

	// Optional configs may be absent: DefaultConfig.
	bare := fstest.MapFS{"vocab.json": mfs["tokenizer/vocab.json"], "merges.txt": mfs["tokenizer/merges.txt"]}
	tok, err := LoadFS(bare, ".")
	require.NoError(t, err)
	require.Equal(t, DefaultConfig(), tok.Config())

	noMerges := fstest.MapFS{"tokenizer/vocab.json": mfs["tokenizer/vocab.json"]}
	_, err = LoadFS(noMerges, "tokenizer")
	require.ErrorContains(t, err, "clip: tokenizer folder tokenizer: merges.txt is missing")
	badJSON := fstest.MapFS{"tokenizer/vocab.json": mfs["tokenizer/vocab.json"], "tokenizer/merges.txt": mfs["tokenizer/merges.txt"],
		"tokenizer/special_tokens_map.json": {Data: []byte("{")}}
	_, err = LoadFS(badJSON, "tokenizer")
	require.ErrorContains(t, err, "tokenizer/special_tokens_map.json: expected a JSON object")
	badVocab := fstest.MapFS{"vocab.json": {Data: []byte(`["not", "a map"]`)}, "merges.txt": mfs["tokenizer/merges.txt"]}
	_, err = LoadFS(badVocab, ".")
	require.ErrorContains(t, err, "vocab.json")
	_, err = LoadFS(mfs, "/tokenizer")
	require.ErrorContains(t, err, "not a valid fs.FS path")
	_, err = LoadFS(nil, ".")
	require.ErrorContains(t, err, "no file system given")
}

// TestTextModelFromSource: a text encoder built from a config's bytes and an
// in-memory safetensors source is the one LoadTextModel loads from the same
// files: same weights, same position_ids handling and warnings, bit-identical
// outputs; problems are errors, not panics.
func TestTextModelFromSource(t *testing.T) {
	c := tinyPosConfig()
	params := posParams(t, c)
	// position_ids stored as F16 and out of order: a warning, ignored.
	params["text_model.embeddings.position_ids"] = posIDs(c.MaxPositionEmbeddings, func(v []float32) { v[3], v[4] = 4, 3 }).To(tensor.F16)
	var ps []nn.Param
	for k, v := range params {
		if k != "text_model.embeddings.position_ids" {
			v = v.To(tensor.F16)
		}
		ps = append(ps, nn.Param{Name: k, Tensor: v})
	}
	dir := filepath.Join(t.TempDir(), "text_encoder")
	require.NoError(t, os.MkdirAll(dir, 0o755))
	cfgJSON, err := json.Marshal(c)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), cfgJSON, 0o644))
	weights := filepath.Join(dir, "model.safetensors")
	require.NoError(t, nn.SaveSafetensors(weights, ps, nil))

	ids := posTokens(c.VocabSize)
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16} {
		ref, err := LoadTextModel(dir, dt)
		require.NoError(t, err)
		defer ref.Close()
		require.Len(t, ref.Warnings, 1)

		cfg, err := ParseTextConfig(cfgJSON)
		require.NoError(t, err)
		require.Equal(t, c, cfg)
		buf, err := os.ReadFile(weights)
		require.NoError(t, err)
		src, err := nn.ParseSafetensors("text_encoder/model.safetensors", buf)
		require.NoError(t, err)
		m, err := TextModelFromSource(src, cfg, dt)
		require.NoError(t, err)
		require.NoError(t, m.Close(), "a model from a source owns nothing")
		require.Equal(t, ref.Warnings, m.Warnings)
		require.Equal(t, ref.PositionIDs.Int64s(), m.PositionIDs.Int64s())
		require.Equal(t, dt, m.TokenEmbedding.Weight.DType())
		requireBitEqual(t, m.TokenEmbedding.Weight, ref.TokenEmbedding.Weight, "token embedding")
		requireBitEqual(t, m.Forward(ids), ref.Forward(ids), "hidden states")
		require.NoError(t, src.Close())
	}

	// Errors.
	_, err = ParseTextConfig([]byte(`{"hidden_size": "big"}`))
	require.ErrorContains(t, err, "clip: text config: ")
	_, err = ParseTextConfig([]byte(`{"hidden_size": 30, "num_attention_heads": 4}`))
	require.ErrorContains(t, err, "hidden_size 30 is not a multiple of num_attention_heads 4")
	src := nn.MapSource{}
	for k, v := range params {
		src[k] = v
	}
	_, err = TextModelFromSource(src, c, tensor.I64)
	require.ErrorContains(t, err, "dtype I64, want F32, F16 or BF16")
	_, err = TextModelFromSource(nil, c, tensor.F32)
	require.ErrorContains(t, err, "no weights source")
	delete(src, "text_model.final_layer_norm.weight")
	_, err = TextModelFromSource(src, c, tensor.F32)
	require.ErrorContains(t, err, "text_model.final_layer_norm.weight")
	wide := c
	wide.HiddenSize = 32
	_, err = TextModelFromSource(nn.MapSource(params), wide, tensor.F32)
	require.ErrorContains(t, err, "text_model.embeddings.token_embedding.weight")
}

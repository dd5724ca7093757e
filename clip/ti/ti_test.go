package ti_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/clip/ti"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/stretchr/testify/require"
)

// tiCase is what the test reads of textual_inversion in index.json.
type tiCase struct {
	Placeholder  string    `json:"placeholder_token"`
	IDs          []int32   `json:"placeholder_token_ids"`
	Initializer  string    `json:"initializer_token"`
	VocabAfter   int       `json:"vocab_size_after"`
	LossPerStep  []float64 `json:"loss_per_step"`
	LoadPrompt   string    `json:"load_check_prompt"`
	LoadCheckIDs []int32   `json:"load_check_ids"`
	Optimizer    struct {
		LR          float64   `json:"lr"`
		Betas       []float64 `json:"betas"`
		WeightDecay float64   `json:"weight_decay"`
		Eps         float64   `json:"eps"`
	} `json:"optimizer"`
	Steps []struct {
		Captions []string `json:"captions"`
	} `json:"steps"`
}

func readCase(t *testing.T) (string, tiCase) {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/textual_inversion")
	var index struct {
		Cases map[string]tiCase `json:"cases"`
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "index.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &index))
	return dir, index.Cases["textual_inversion"]
}

// tinyText loads the golden tokenizer and text encoder (F32).
func tinyText(t *testing.T) (*clip.CLIPTokenizer, *clip.TextModel) {
	model := filepath.Join(testutil.GoldenDir(t), "model", "diffusers")
	tok, err := clip.Load(filepath.Join(model, "tokenizer"))
	require.NoError(t, err)
	text, err := clip.LoadTextModel(model, tensor.F32)
	require.NoError(t, err)
	t.Cleanup(func() { text.Close() })
	return tok, text
}

func ids(t *testing.T, tok *clip.CLIPTokenizer, prompts ...string) *tensor.Tensor {
	var rows [][]int32
	for _, p := range prompts {
		r, _, err := tok.Encode(p)
		require.NoError(t, err)
		rows = append(rows, r)
	}
	return clip.IDs(rows...)
}

// relNorm returns ||a - b|| / ||b||.
func relNorm(a, b []float32) float64 {
	var d, n float64
	for i := range b {
		d += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d / n)
}

// TestGoldenTextualInversion: diffusers' textual_inversion.py on the tiny
// pipeline (tiny-sd1-train/textual_inversion): "<cxr-opacity>" gets id
// 49408 and the vocabulary 49409 rows, initialised from "haze"; over two
// steps the captions' ids, the text encoder's states, the loss, the
// embedding table's row gradients (every row of the batch) and the
// placeholder's gradient match, and AdamW on the placeholder rows gives
// diffusers' rows after each step and its moments. Textual inversion
// changes only the new token's row: every other row of the table is
// bit for bit what it was.
func TestGoldenTextualInversion(t *testing.T) {
	dir, tc := readCase(t)
	tok, text := tinyText(t)
	ucfg, err := unet.LoadConfig(filepath.Join(testutil.GoldenDir(t), "model", "diffusers", "unet", "config.json"))
	require.NoError(t, err)
	src, closer, err := nn.OpenComponent(filepath.Join(testutil.GoldenDir(t), "model", "diffusers", "unet"), false)
	require.NoError(t, err)
	defer closer.Close()
	u, _, err := nn.Build(src, ucfg, tensor.F32, unet.New)
	require.NoError(t, err)
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, filepath.FromSlash(f))) }

	before := text.TokenEmbedding.Weight.Float32s()
	emb, err := ti.AddToken(tok, text, tc.Placeholder, tc.Initializer, 1)
	require.NoError(t, err)
	require.Equal(t, tc.IDs, emb.IDs)
	require.Equal(t, tc.VocabAfter, tok.VocabSize())
	require.Equal(t, tc.VocabAfter, text.TokenEmbedding.Weight.Dim(0))
	require.Equal(t, tc.VocabAfter, text.Config.VocabSize)
	init, err := emb.Vectors()
	require.NoError(t, err)
	require.Equal(t, npy("initial_placeholder_rows.npy").Float32s(), init.Float32s())

	p, err := emb.Trainable()
	require.NoError(t, err)
	opt, err := optim.NewAdamW([]*nn.Trainable{p}, optim.AdamWConfig{Beta1: tc.Optimizer.Betas[0], Beta2: tc.Optimizer.Betas[1],
		Eps: tc.Optimizer.Eps, WeightDecay: tc.Optimizer.WeightDecay})
	require.NoError(t, err)
	table := text.TokenEmbedding.Weight
	for k, step := range tc.Steps {
		sd := "step" + string(rune('1'+k)) + "/"
		in := ids(t, tok, step.Captions...)
		require.Equal(t, npy(sd+"input_ids.npy").Int64s(), in.Int64s(), "input ids of %q", step.Captions)
		ehs := text.Forward(in)
		testutil.RequireClose(t, ehs, npy(sd+"encoder_hidden_states.npy"), 1e-5, 1e-4, sd+"encoder_hidden_states")
		pred := u.Forward(npy(sd+"noisy_latents.npy"), npy(sd+"timesteps.npy").To(tensor.F32), ehs)
		testutil.RequireClose(t, pred, npy(sd+"model_pred.npy"), 1e-5, 1e-4, sd+"model_pred")
		loss := tensor.MSELoss(pred, npy(sd+"noise.npy"))
		require.InDelta(t, tc.LossPerStep[k], float64(loss.Item()), 1e-5*tc.LossPerStep[k], "loss")
		require.NoError(t, tensor.Backward(loss))

		// Every row of the batch, as diffusers' sparse file stores them.
		gs, err := tensor.LoadSafetensors(filepath.Join(dir, sd+"grads_embedding.safetensors"))
		require.NoError(t, err)
		const tk = "text_model.embeddings.token_embedding.weight"
		wantRows, err := gs.Get(tk + ".rows")
		require.NoError(t, err)
		wantGrad, err := gs.Get(tk + ".rows_grad")
		require.NoError(t, err)
		rows, g := table.RowGrad()
		d := table.Dim(1)
		got := map[int64][]float32{}
		for i, r := range rows {
			got[r] = append(got[r], g[i*d:(i+1)*d]...)
		}
		wg := wantGrad.Float32s()
		for i, r := range wantRows.Int64s() {
			have := got[r]
			if have == nil {
				have = make([]float32, d)
			}
			if len(have) > d { // a row delivered twice: add
				sum := make([]float32, d)
				for j, v := range have {
					sum[j%d] += v
				}
				have = sum
			}
			testutil.RequireGradClose(t, sd+"row "+string(rune('0'+i%10)), have, wg[i*d:(i+1)*d], false, 1e-4)
		}
		gs.Close()

		require.NoError(t, ti.CollectGrads(1, emb))
		rel := testutil.RequireGradClose(t, sd+"placeholder_grad", p.Grad.Float32s(), npy(sd+"placeholder_grad.npy").Float32s(), false, 1e-4)
		t.Logf("%splaceholder gradient: %.3g of its norm", sd, rel)
		prev, err := emb.Vectors()
		require.NoError(t, err)
		require.NoError(t, opt.Step(tc.Optimizer.LR))
		after, err := emb.Vectors()
		require.NoError(t, err)
		want := npy(sd + "placeholder_rows_after.npy").Float32s()
		dGot, dWant := make([]float32, d), make([]float32, d)
		for j := range dGot {
			dGot[j] = after.Float32s()[j] - prev.Float32s()[j]
			dWant[j] = want[j] - prev.Float32s()[j]
		}
		r := relNorm(dGot, dWant)
		require.Less(t, r, 1e-3, "%s update of the placeholder row", sd)
		t.Logf("%supdate of the placeholder row: %.3g of its norm", sd, r)
		clear(p.Grad.F32Data())
	}
	m, v, _, ok := opt.State(tc.Placeholder)
	require.True(t, ok)
	require.Less(t, relNorm(m.Float32s(), npy("adamw_exp_avg_placeholder.npy").Float32s()), 1e-4)
	require.Less(t, relNorm(v.Float32s(), npy("adamw_exp_avg_sq_placeholder.npy").Float32s()), 1e-4)

	// Only the new row changed.
	now := table.Float32s()
	require.Len(t, now, len(before)+table.Dim(1))
	for i, b := range before {
		if now[i] != b {
			t.Fatalf("table element %d (row %d) changed: %v -> %v", i, i/table.Dim(1), b, now[i])
		}
	}
	newRow := now[len(before):]
	require.NotEqual(t, init.Float32s(), newRow, "the placeholder's row was trained")

	// Saved as learned_embeds.safetensors: {placeholder: [1, D]}.
	path := filepath.Join(t.TempDir(), "learned_embeds.safetensors")
	require.NoError(t, ti.Save(path, emb))
	a, err := tensor.LoadSafetensors(path)
	require.NoError(t, err)
	defer a.Close()
	require.Equal(t, []string{tc.Placeholder}, a.Names())
	st, err := a.Get(tc.Placeholder)
	require.NoError(t, err)
	require.Equal(t, tensor.Shape{1, table.Dim(1)}, st.Shape())
	require.Equal(t, newRow, st.Float32s())
}

// TestGoldenLoadTextualInversion: diffusers' learned_embeds.bin (a view
// into the whole 49409-row storage, at an offset) and learned_embeds.safetensors
// load to the same vector, and after loading the prompt with the token
// gives diffusers' ids and prompt embeddings.
func TestGoldenLoadTextualInversion(t *testing.T) {
	dir, tc := readCase(t)
	var vecs [][]float32
	for _, f := range []string{"learned_embeds.safetensors", "learned_embeds.bin"} {
		tok, text := tinyText(t)
		embs, err := ti.Load(filepath.Join(dir, "learned_embeds", f), "", tok, text)
		require.NoError(t, err, f)
		require.Len(t, embs, 1)
		require.Equal(t, tc.Placeholder, embs[0].Token)
		require.Equal(t, tc.IDs, embs[0].IDs)
		v, err := embs[0].Vectors()
		require.NoError(t, err)
		vecs = append(vecs, v.Float32s())
		in := ids(t, tok, tc.LoadPrompt)
		want := make([]int64, len(tc.LoadCheckIDs))
		for i, id := range tc.LoadCheckIDs {
			want[i] = int64(id)
		}
		require.Equal(t, want, in.Int64s())
		require.Equal(t, testutil.ReadNpy(t, filepath.Join(dir, "load_check", "input_ids.npy")).Int64s(), in.Int64s())
		testutil.RequireClose(t, text.Forward(in), testutil.ReadNpy(t, filepath.Join(dir, "load_check", "prompt_embeds.npy")), 1e-5, 1e-4, f+" prompt_embeds")
		// A second load of the same token is refused.
		_, err = ti.Load(filepath.Join(dir, "learned_embeds", f), "", tok, text)
		require.ErrorContains(t, err, "already a token")
	}
	require.Equal(t, vecs[0], vecs[1])
}

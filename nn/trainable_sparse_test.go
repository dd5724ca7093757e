package nn_test

import (
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/optim"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/unet"
	"github.com/stretchr/testify/require"
)

const tokenEmbedding = "text_model.embeddings.token_embedding.weight"

// sparseRun is what one training run of the text encoder produced.
type sparseRun struct {
	grads   []map[string][]float32 // per step, every trainable gradient after clipping
	norms   []float32
	masters map[string][]float32 // after the last step
	expAvg  []float32            // AdamW's first moment of the token embedding
	rows    [][]int64            // per step, the rows Backward delivered (row-sparse runs)
	alloc   uint64               // bytes allocated by the last step's Backward and CollectGrads
}

// trainTextEncoder runs dreambooth's --train_text_encoder step (text encoder
// trainable, U-Net frozen, epsilon loss) of the golden joint_text_encoder
// case twice — once with its captions, once with another case's — with
// clipping and AdamW, the token embedding's gradient dense or row-sparse.
func trainTextEncoder(t *testing.T, rowSparse bool) sparseRun {
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/joint_text_encoder")
	npy := func(f string) *tensor.Tensor { return testutil.ReadNpy(t, filepath.Join(dir, f)) }
	model := filepath.Join(testutil.GoldenDir(t), "model", "diffusers")
	tcfg, err := clip.LoadTextConfig(filepath.Join(model, "text_encoder", "config.json"))
	require.NoError(t, err)
	tsrc, tclose, err := nn.OpenComponent(filepath.Join(model, "text_encoder"), false)
	require.NoError(t, err)
	defer tclose.Close()
	text, tb, err := nn.Build(tsrc, tcfg, tensor.F32, clip.NewTextModel)
	require.NoError(t, err)
	ucfg, err := unet.LoadConfig(filepath.Join(model, "unet", "config.json"))
	require.NoError(t, err)
	usrc, uclose, err := nn.OpenComponent(filepath.Join(model, "unet"), false)
	require.NoError(t, err)
	defer uclose.Close()
	u, _, err := nn.Build(usrc, ucfg, tensor.F32, unet.New)
	require.NoError(t, err)

	var params []nn.Param
	for _, p := range tb.Params() {
		if p.Tensor.DType() != tensor.I64 { // position_ids: a buffer
			params = append(params, p)
		}
	}
	ps, err := nn.NewParamSet(text, params)
	require.NoError(t, err)
	if rowSparse {
		n, err := ps.SetRowSparse(tokenEmbedding)
		require.NoError(t, err)
		require.Equal(t, 1, n)
	}
	train, err := ps.Trainable()
	require.NoError(t, err)
	opt, err := optim.NewAdamW(train, optim.DefaultAdamW())
	require.NoError(t, err)
	tok := ps.Get(tokenEmbedding)
	require.Equal(t, rowSparse, tok.RowSparse())

	otherIDs := testutil.ReadNpy(t, filepath.Join(filepath.Dir(dir), "unet_eps", "input_ids.npy"))
	var run sparseRun
	for step, ids := range []*tensor.Tensor{npy("input_ids.npy"), otherIDs} {
		pred := u.Forward(npy("noisy_latents.npy"), npy("timesteps.npy").To(tensor.F32), text.Forward(ids))
		loss := tensor.MSELoss(pred, npy("noise.npy"))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		require.NoError(t, tensor.Backward(loss))
		if rowSparse {
			require.Nil(t, tok.Tensor.Grad(), "a row-sparse table gets no dense gradient")
			rows, g := tok.Tensor.RowGrad()
			require.NotEmpty(t, rows)
			require.Len(t, g, len(rows)*tok.Shape()[1])
			run.rows = append(run.rows, append([]int64(nil), rows...))
		}
		require.NoError(t, ps.CollectGrads(1))
		runtime.ReadMemStats(&after)
		run.alloc = after.TotalAlloc - before.TotalAlloc
		norm, err := optim.ClipGradNorm(train, 1)
		require.NoError(t, err)
		run.norms = append(run.norms, norm)
		grads := map[string][]float32{}
		for _, p := range train {
			grads[p.Name] = append([]float32(nil), p.Grad.F32Data()...)
		}
		run.grads = append(run.grads, grads)
		require.NoError(t, opt.Step(1e-3))
		ps.ZeroGrad()
		for _, p := range train {
			for i, v := range p.Grad.F32Data() {
				if v != 0 {
					t.Fatalf("step %d: %s[%d] = %v after ZeroGrad", step, p.Name, i, v)
				}
			}
		}
	}
	run.masters = map[string][]float32{}
	for _, p := range train {
		run.masters[p.Name] = append([]float32(nil), p.Master.F32Data()...)
	}
	m, _, _, ok := opt.State(tokenEmbedding)
	require.True(t, ok)
	run.expAvg = append([]float32(nil), m.F32Data()...)
	return run
}

// TestRowSparseEmbeddingGradients: with the token embedding marked
// row-sparse (ParamSet.SetRowSparse), Backward delivers only the rows of
// the ids in the batch (no dense 49408x32 gradient), and two training steps
// of the text encoder (joint_text_encoder's loss, clipping, AdamW with
// weight decay, different ids in each step so that ZeroGrad's row clearing
// matters) give bit for bit the gradients, norms, parameters and AdamW
// state of the dense path. The first step's rows and their gradient match
// diffusers' golden sparse gradient (1e-4 of its norm, the golden README's
// tolerance), every other row being exactly zero.
func TestRowSparseEmbeddingGradients(t *testing.T) {
	dense := trainTextEncoder(t, false)
	sparse := trainTextEncoder(t, true)
	same := func(what string, a, b []float32) {
		require.Len(t, b, len(a), what)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("%s[%d]: dense %v, row-sparse %v", what, i, a[i], b[i])
			}
		}
	}
	for k := range dense.grads {
		require.Equal(t, dense.norms[k], sparse.norms[k], "step %d: gradient norm", k)
		for name, g := range dense.grads[k] {
			same(name+" gradient", g, sparse.grads[k][name])
		}
	}
	for name, m := range dense.masters {
		same(name+" after two AdamW steps", m, sparse.masters[name])
	}
	same("AdamW exp_avg of the token embedding", dense.expAvg, sparse.expAvg)
	require.NotEqual(t, sparse.rows[0], sparse.rows[1], "the two steps look up different ids")
	// The dense rule allocates the [V, D] gradient; the row-sparse one not.
	table := uint64(len(dense.masters[tokenEmbedding]) * 4)
	t.Logf("second step's Backward + CollectGrads allocated %.1f MB dense, %.1f MB row-sparse (the token embedding is %.1f MB)",
		float64(dense.alloc)/1e6, float64(sparse.alloc)/1e6, float64(table)/1e6)
	require.Less(t, sparse.alloc+table/2, dense.alloc, "the row-sparse step must not allocate the table's gradient")

	// Against diffusers: the rows and their (unclipped) gradient. The
	// clipped gradient above is the raw one times the clip coefficient.
	dir := testutil.SharedDir(t, "golden/tiny-sd1-train/joint_text_encoder")
	tg, err := tensor.LoadSafetensors(filepath.Join(dir, "grads_text_encoder.safetensors"))
	require.NoError(t, err)
	defer tg.Close()
	rowsT, err := tg.Get(tokenEmbedding + ".rows")
	require.NoError(t, err)
	rowsGrad, err := tg.Get(tokenEmbedding + ".rows_grad")
	require.NoError(t, err)
	require.Equal(t, rowsT.Int64s(), sparse.rows[0], "rows of the batch's ids")
	c := optim.ClipCoefficient(sparse.norms[0], 1)
	g := sparse.grads[0][tokenEmbedding]
	d := rowsGrad.Dim(1)
	isRow := map[int64]bool{}
	var got []float32
	for _, r := range sparse.rows[0] {
		isRow[r] = true
		for _, v := range g[int(r)*d : int(r+1)*d] {
			got = append(got, v/c)
		}
	}
	rel := testutil.RequireGradClose(t, tokenEmbedding+" (rows)", got, rowsGrad.Float32s(), false, 1e-4)
	for r := 0; r < len(g)/d; r++ {
		if !isRow[int64(r)] {
			for _, v := range g[r*d : (r+1)*d] {
				require.Zero(t, v, "row %d is not in the batch", r)
			}
		}
	}
	t.Logf("row-sparse = dense bit for bit over 2 steps (%d and %d rows); golden rows within %.3g of the norm", len(sparse.rows[0]), len(sparse.rows[1]), rel)
}

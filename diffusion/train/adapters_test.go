package train

import (
	"bytes"
	"context"
	"image"
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/clip"
	"github.com/roentgo/roentgo/diffusion/pipeline"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// resumeMatches runs base for base.Steps steps straight and again as 2
// steps + checkpoint + Close + Resume + the rest, and requires the final
// checkpoints' files (expected: their names) and the output files (outputs,
// relative to Out/model) to be byte-identical. It returns the straight
// run's output folder.
func resumeMatches(t *testing.T, base Config, expected []string, outputs []string) string {
	t.Helper()
	a, err := New(base)
	require.NoError(t, err)
	require.NoError(t, a.Run(context.Background()))
	require.NoError(t, a.Close())

	split := base
	split.Out = t.TempDir()
	b, err := New(split)
	require.NoError(t, err)
	for i := 0; i < 2; i++ {
		_, err := b.Step()
		require.NoError(t, err)
	}
	_, err = b.Checkpoint()
	require.NoError(t, err)
	require.NoError(t, b.Close())
	r, err := Resume(split.Out, nil)
	require.NoError(t, err)
	require.Equal(t, 2, r.StepsDone())
	require.NoError(t, r.Run(context.Background()))
	require.NoError(t, r.Close())

	fa := checkpointFiles(t, filepath.Join(base.Out, CheckpointName(base.Steps)))
	fb := checkpointFiles(t, filepath.Join(split.Out, CheckpointName(base.Steps)))
	var names []string
	for n := range fa {
		names = append(names, n)
	}
	require.ElementsMatch(t, expected, names)
	for name, want := range fa {
		require.True(t, bytes.Equal(want, fb[name]), "%s differs between the straight and the resumed run", name)
	}
	for _, f := range outputs {
		x, err := os.ReadFile(filepath.Join(base.Out, "model", f))
		require.NoError(t, err)
		y, err := os.ReadFile(filepath.Join(split.Out, "model", f))
		require.NoError(t, err)
		require.True(t, bytes.Equal(x, y), "output %s differs", f)
	}
	return filepath.Join(base.Out, "model")
}

// generate returns the image of prompt (seed 3, 4 PNDM steps, guidance 4)
// from the tiny model loaded with o, as raw RGBA bytes.
func generate(t *testing.T, o pipeline.Options, prompt string) *image.NRGBA {
	t.Helper()
	p, err := pipeline.Load(tinyModel(t), o)
	require.NoError(t, err)
	defer p.Close()
	res, err := p.Txt2Img(context.Background(), pipeline.Request{Prompt: prompt, Height: 64, Width: 64, Steps: 4, Guidance: 4, Seed: 3})
	require.NoError(t, err)
	require.Len(t, res.Images, 1)
	return res.Images[0]
}

// TestLoRAResumeExact: LoRA training (mode lora+text: rank 4, alpha 8,
// attention and feed-forward adapters on the U-Net and the text encoder)
// with accumulation, EMA, conditioning dropout and a cosine schedule:
// 5 steps straight and 2 + checkpoint + Resume + 3 give byte-identical
// checkpoints (lora.safetensors: the factors' masters; AdamW; EMA) and
// output files in both layouts. The checkpoints hold no U-Net or
// text-encoder weights (the base models are frozen). The output loads into
// the txt2img pipeline (pipeline.Options.LoRAs) in either layout and
// generates; at scale 0 the image is the base model's, byte for byte; at
// scale 1 it differs, and the kohya file gives the diffusers file's image
// within 8-bit rounding.
func TestLoRAResumeExact(t *testing.T) {
	base := testConfig(t, writeData(t, 5))
	base.Mode = "lora+text"
	base.LoRA.Rank = 4
	base.LoRA.Alpha = 8
	base.LoRA.Targets = []string{"attention", "ff"}
	base.Steps = 5
	base.Accumulate = 2
	base.Schedule = "cosine"
	base.Warmup = 1
	base.EMA = true
	base.CondDropout = 0.3
	base.LR = 1e-2
	out := resumeMatches(t, base, []string{"lora.safetensors", optimizerFile, emaFile},
		[]string{LoRADiffusersFile, LoRAKohyaFile})

	// The adapters and nothing else: the factors' names.
	a, err := tensor.LoadSafetensors(filepath.Join(base.Out, CheckpointName(5), "lora.safetensors"))
	require.NoError(t, err)
	var unetN, textN int
	for _, n := range a.Names() {
		if bytes.HasPrefix([]byte(n), []byte("text_encoder.")) {
			textN++
		} else {
			unetN++
		}
	}
	a.Close()
	t.Logf("lora+text: %d U-Net and %d text-encoder factors", unetN, textN)
	require.Positive(t, unetN)
	require.Positive(t, textN)

	prompt := "left opacity"
	baseImg := generate(t, pipeline.Options{}, prompt)
	diff := filepath.Join(out, LoRADiffusersFile)
	kohya := filepath.Join(out, LoRAKohyaFile)
	zero := generate(t, pipeline.Options{LoRAs: []pipeline.LoRASpec{{Path: diff, Scale: 0}}}, prompt)
	require.Equal(t, baseImg.Pix, zero.Pix, "LoRA scale 0 must give the base model's image")
	one := generate(t, pipeline.Options{LoRAs: []pipeline.LoRASpec{{Path: diff, Scale: 1}}}, prompt)
	require.NotEqual(t, baseImg.Pix, one.Pix, "the trained LoRA changes the image")
	k := generate(t, pipeline.Options{LoRAs: []pipeline.LoRASpec{{Path: kohya, Scale: 1}}}, prompt)
	maxDiff := 0
	for i := range one.Pix {
		maxDiff = max(maxDiff, absInt(int(one.Pix[i])-int(k.Pix[i])))
	}
	changed := 0
	for i := range one.Pix {
		if one.Pix[i] != baseImg.Pix[i] {
			changed++
		}
	}
	t.Logf("scale 1: %d of %d bytes differ from the base image; kohya vs diffusers layout: max difference %d", changed, len(one.Pix), maxDiff)
	require.LessOrEqual(t, maxDiff, 1)
}

func absInt(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestTIResumeExact: textual inversion of "<cxr-op>" (2 vectors,
// initialised from "haze") with accumulation and EMA: 5 steps straight and
// 2 + checkpoint + Resume + 3 give byte-identical checkpoints
// (embeddings.safetensors: the rows' masters; AdamW; EMA) and
// learned_embeds.safetensors. Training changes only the new rows: every
// row of the original table is bit for bit the base model's. The output
// loads into the txt2img pipeline (pipeline.Options.Embeddings), which
// holds the trained rows after the base table, generates with the token,
// and gives the base model's image, byte for byte, for a prompt without it.
func TestTIResumeExact(t *testing.T) {
	const tok = "<cxr-op>"
	base := testConfig(t, writeDataCaptions(t, 5, "left "+tok, "right "+tok))
	base.Mode = "ti"
	base.TI = TIConfig{Placeholder: tok, Initializer: "haze", Vectors: 2}
	base.Steps = 5
	base.Accumulate = 2
	base.EMA = true
	base.LR = 5e-2
	out := resumeMatches(t, base, []string{"embeddings.safetensors", optimizerFile, emaFile}, []string{EmbeddingFile})

	// The trained rows, and the table of a resumed trainer: the base rows
	// unchanged.
	tr, err := Resume(base.Out, nil)
	require.NoError(t, err)
	defer tr.Close()
	table := tr.Pipeline().TextEncoder.TokenEmbedding.Weight.Float32s()
	baseText, err := clip.LoadTextModel(tinyModel(t), tensor.F32)
	require.NoError(t, err)
	defer baseText.Close()
	orig := baseText.TokenEmbedding.Weight.Float32s()
	d := baseText.Config.HiddenSize
	require.Len(t, table, len(orig)+2*d)
	require.True(t, equalF32(orig, table[:len(orig)]), "textual inversion must change only the new rows")
	emb := tr.Models().Embeddings[0]
	init, err := baseText.TokenEmbeddingRows(mustTokenID(t, tr, "haze"), 1)
	require.NoError(t, err)
	rows := table[len(orig):]
	require.False(t, equalF32(init.Float32s(), rows[:d]), "the new row was trained")
	require.Equal(t, []int32{int32(len(orig) / d), int32(len(orig)/d + 1)}, emb.IDs)

	f, err := tensor.LoadSafetensors(filepath.Join(out, EmbeddingFile))
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, []string{tok}, f.Names())
	v, err := f.Get(tok)
	require.NoError(t, err)
	require.Equal(t, tensor.Shape{2, d}, v.Shape())
	require.True(t, equalF32(tr.weight(mustParam(t, emb)).Float32s(), v.Float32s()), "the file holds the EMA rows")

	p, err := pipeline.Load(tinyModel(t), pipeline.Options{Embeddings: []string{filepath.Join(out, EmbeddingFile)}})
	require.NoError(t, err)
	loaded := p.TextEncoder.TokenEmbedding.Weight.Float32s()
	require.True(t, equalF32(orig, loaded[:len(orig)]))
	require.True(t, equalF32(v.Float32s(), loaded[len(orig):]))
	p.Close()
	with := generate(t, pipeline.Options{Embeddings: []string{filepath.Join(out, EmbeddingFile)}}, "left "+tok)
	require.Equal(t, 64, with.Bounds().Dx())
	plain := generate(t, pipeline.Options{Embeddings: []string{filepath.Join(out, EmbeddingFile)}}, "left opacity")
	require.Equal(t, generate(t, pipeline.Options{}, "left opacity").Pix, plain.Pix, "a prompt without the token is the base model's")
}

func mustTokenID(t *testing.T, tr *Trainer, s string) int {
	tok := tr.Pipeline().Tokenizer.(*clip.CLIPTokenizer)
	ids, err := tok.Tokens(s)
	require.NoError(t, err)
	require.Len(t, ids, 1)
	return int(ids[0])
}

func mustParam(t *testing.T, e interface {
	Trainable() (*nn.Trainable, error)
}) *nn.Trainable {
	p, err := e.Trainable()
	require.NoError(t, err)
	return p
}

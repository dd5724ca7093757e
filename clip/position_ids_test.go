package clip

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/internal/torchzip"
	"github.com/roentgo/roentgo/nn"
	"github.com/roentgo/roentgo/nn/sdckpt"
	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

// tinyPosConfig is a small SD 1.x-style (quick_gelu) text encoder with the
// usual 77 positions.
func tinyPosConfig() TextConfig {
	return TextConfig{VocabSize: 100, HiddenSize: 16, IntermediateSize: 24, ProjectionDim: 16,
		NumHiddenLayers: 2, NumAttentionHeads: 2, MaxPositionEmbeddings: 77, HiddenAct: "quick_gelu", LayerNormEps: 1e-5}
}

// posParams returns the random F32 parameters of c's text model by name.
func posParams(t *testing.T, c TextConfig) map[string]*tensor.Tensor {
	t.Helper()
	b := nn.NewRandomBuilder(11, tensor.F32)
	_, err := NewTextModel(b, c)
	require.NoError(t, err)
	p := map[string]*tensor.Tensor{}
	for _, q := range b.Params() {
		p[q.Name] = q.Tensor
	}
	return p
}

// posIDs returns the values 0..n-1 with edit applied, as F32 [1, n].
func posIDs(n int, edit func(v []float32)) *tensor.Tensor {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	if edit != nil {
		edit(v)
	}
	return tensor.FromFloat32(v, 1, n)
}

// posIDsI64 is 0..n-1 as I64 [1, n], transformers' buffer.
func posIDsI64(n int) *tensor.Tensor {
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(i)
	}
	return tensor.FromInt64(v, 1, n)
}

// posTokens is a batch of two rows of 77 token ids below vocab.
func posTokens(vocab int) *tensor.Tensor {
	rows := [][]int32{make([]int32, 77), make([]int32, 77)}
	for r := range rows {
		for j := range rows[r] {
			rows[r][j] = int32((j*31 + r*7 + 3) % vocab)
		}
	}
	return IDs(rows...)
}

// TestPositionIDsDTypes loads a text model whose position_ids are stored in
// every dtype, exact or damaged (issue 15, item 4): it loads, warns exactly
// when the stored values are not 0..76 in order or not whole numbers, and
// computes what the model with transformers' I64 arange computes.
func TestPositionIDsDTypes(t *testing.T) {
	c := tinyPosConfig()
	n := c.MaxPositionEmbeddings
	p := posParams(t, c)
	ids := posTokens(c.VocabSize)
	build := func(pid *tensor.Tensor, dt tensor.DType) (*TextModel, error) {
		src := nn.MapSource{}
		for k, v := range p {
			src[k] = v
		}
		if pid != nil {
			src["text_model.embeddings.position_ids"] = pid
		}
		var m *TextModel
		var err error
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("panic: %v", r)
				}
			}()
			m, err = buildText(src, c, dt)
		}()
		return m, err
	}
	ref, err := build(posIDsI64(n), tensor.F32)
	require.NoError(t, err)
	require.Empty(t, ref.Warnings)
	require.Equal(t, posIDsI64(n).Int64s(), ref.PositionIDs.Int64s())
	want := ref.Forward(ids)

	// Without stored position_ids the table is used in order: the same numbers.
	plain, err := build(nil, tensor.F32)
	require.NoError(t, err)
	require.Nil(t, plain.PositionIDs)
	require.Empty(t, plain.Warnings)
	requireBitEqual(t, plain.Forward(ids), want, "no position_ids")

	const key = "clip: text_model.embeddings.position_ids"
	for _, tc := range []struct {
		name string
		pid  *tensor.Tensor
		dt   tensor.DType // the model's dtype
		warn []string     // nil: no warning
	}{
		{"I64 arange", posIDsI64(n), tensor.F32, nil},
		{"F16 arange (convert --half)", posIDs(n, nil).To(tensor.F16), tensor.F32, nil},
		{"F16 arange, F16 model", posIDs(n, nil).To(tensor.F16), tensor.F16, nil},
		{"BF16 arange", posIDs(n, nil).To(tensor.BF16), tensor.F32, nil},
		{"F32 arange", posIDs(n, nil), tensor.F32, nil},
		{"F32 merge errors", posIDs(n, func(v []float32) { v[76], v[40] = 75.9999, 40.0001 }), tensor.F32,
			[]string{key + " is stored as F32 with values that are not whole numbers (e.g. [40] = 40.0001); using positions 0..76 in order"}},
		// The builder converts weights to F16 but reads position_ids as stored.
		{"F32 merge errors, F16 model", posIDs(n, func(v []float32) { v[76] = 75.9999 }), tensor.F16,
			[]string{"not whole numbers (e.g. [76] = 75.9999)"}},
		{"F16 not whole", posIDs(n, func(v []float32) { v[5] = 5.5 }).To(tensor.F16), tensor.F32,
			[]string{"stored as F16 with values that are not whole numbers (e.g. [5] = 5.5)", "is not 0..76 in order (e.g. [5] = 5.5)"}},
		{"F32 rounds elsewhere", posIDs(n, func(v []float32) { v[10] = 10.6 }), tensor.F32,
			[]string{"not whole numbers (e.g. [10] = 10.6) and is not 0..76 in order (e.g. [10] = 10.6); using positions 0..76 in order"}},
		{"F16 permuted", posIDs(n, func(v []float32) { v[3], v[4] = 4, 3 }).To(tensor.F16), tensor.F32,
			[]string{key + " is not 0..76 in order (e.g. [3] = 4); using positions 0..76 in order"}},
		{"F32 garbage", posIDs(n, func(v []float32) {
			for i := range v {
				v[i] = float32(math.Sin(float64(i))) * 1e6
			}
		}), tensor.F32, []string{"is not 0..76 in order (e.g. [1] = "}},
		{"F32 NaN", posIDs(n, func(v []float32) { v[0] = float32(math.NaN()) }), tensor.F32,
			[]string{"not whole numbers (e.g. [0] = NaN)"}},
		{"F32 negative", posIDs(n, func(v []float32) { v[9] = -1 }), tensor.F32, []string{"(e.g. [9] = -1)"}},
		{"F16 out of range", posIDs(n, func(v []float32) { v[76] = 77 }).To(tensor.F16), tensor.F32, []string{"(e.g. [76] = 77)"}},
		{"I64 out of range", func() *tensor.Tensor { v := posIDsI64(n).Int64s(); v[3] = 77; return tensor.FromInt64(v, 1, n) }(),
			tensor.F32, []string{key + " is not 0..76 in order (e.g. [3] = 77); using positions 0..76 in order"}},
		{"I64 reversed", func() *tensor.Tensor {
			v := posIDsI64(n).Int64s()
			slices.Reverse(v)
			return tensor.FromInt64(v, 1, n)
		}(), tensor.F32, []string{"(e.g. [0] = 76)"}},
	} {
		m, err := build(tc.pid, tc.dt)
		require.NoError(t, err, tc.name)
		if tc.warn == nil {
			require.Empty(t, m.Warnings, tc.name)
		} else {
			require.Len(t, m.Warnings, 1, tc.name)
			for _, w := range tc.warn {
				require.Contains(t, m.Warnings[0], w, tc.name)
			}
		}
		require.Equal(t, tensor.I64, m.PositionIDs.DType(), tc.name)
		require.Equal(t, posIDsI64(n).Int64s(), m.PositionIDs.Int64s(), tc.name)
		got := m.Forward(ids)
		if tc.dt == tensor.F32 {
			requireBitEqual(t, got, want, tc.name)
		} else {
			ref16, err := build(posIDsI64(n), tc.dt)
			require.NoError(t, err)
			requireBitEqual(t, got, ref16.Forward(ids), tc.name)
		}
	}

	// A shape other than [1, 77] is an error naming the key and both shapes.
	_, err = build(tensor.Zeros(tensor.F16, 1, 76), tensor.F32)
	require.ErrorContains(t, err, "text_model.embeddings.position_ids: shape [1, 76] in the source, want [1, 77]")
	_, err = build(tensor.Zeros(tensor.I64, 77), tensor.F32)
	require.ErrorContains(t, err, "text_model.embeddings.position_ids: shape [77] in the source, want [1, 77]")
}

// sd1Single returns p (diffusers text encoder names) in the original SD 1.x
// single-file layout, with position_ids pid (nil: none) stored under its
// original name.
func sd1Single(p map[string]*tensor.Tensor, pid *tensor.Tensor) map[string]*tensor.Tensor {
	out := map[string]*tensor.Tensor{}
	for k, v := range p {
		out["cond_stage_model.transformer."+k] = v
	}
	if pid != nil {
		out["cond_stage_model.transformer.text_model.embeddings.position_ids"] = pid
	}
	return out
}

// rawTensor returns x's little-endian bytes, in x's dtype.
func rawTensor(x *tensor.Tensor) (string, []byte) {
	var b []byte
	switch x.DType() {
	case tensor.F32:
		for _, v := range x.Float32s() {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	case tensor.F16, tensor.BF16:
		c := x.Contiguous()
		for _, v := range c.HalfData() {
			b = binary.LittleEndian.AppendUint16(b, v)
		}
	case tensor.I64:
		for _, v := range x.Int64s() {
			b = binary.LittleEndian.AppendUint64(b, uint64(v))
		}
	}
	return x.DType().String(), b
}

// TestPositionIDsSingleFile loads SD 1.x single-file checkpoints (through
// nn/sdckpt's key mapping) whose cond_stage_model position_ids are F16, as
// diffusers' convert_diffusers_to_original_stable_diffusion.py --half writes
// them, F32 with merge errors, and F64 or I32 (which the tensor package does
// not read), as safetensors and as .ckpt: each loads (the strict check sees
// the key used), warns when it should, and computes what the original does.
func TestPositionIDsSingleFile(t *testing.T) {
	c := tinyPosConfig()
	n := c.MaxPositionEmbeddings
	p := posParams(t, c)
	ids := posTokens(c.VocabSize)
	ref, err := buildText(nn.MapSource(p), c, tensor.F32)
	require.NoError(t, err)
	want := ref.Forward(ids)
	dir := t.TempDir()

	f64 := make([]byte, 0, 8*n)
	i32 := make([]byte, 0, 4*n)
	for i := range n {
		f64 = binary.LittleEndian.AppendUint64(f64, math.Float64bits(float64(i)))
		i32 = binary.LittleEndian.AppendUint32(i32, uint32(i))
	}
	type raw struct {
		dt   string
		data []byte
	}
	for _, tc := range []struct {
		name string
		pid  any // *tensor.Tensor or raw
		warn string
	}{
		{"f16", posIDs(n, nil).To(tensor.F16), ""},
		{"f32-merged", posIDs(n, func(v []float32) { v[76] = 75.9999 }), "stored as F32 with values that are not whole numbers (e.g. [76] = 75.9999)"},
		{"i64", posIDsI64(n), ""},
		{"f64", raw{"F64", f64}, "text_model.embeddings.position_ids is stored as F64, whose values roentgo does not read; using positions 0..76 in order"},
		{"i32", raw{"I32", i32}, "stored as I32, whose values roentgo does not read"},
	} {
		var infos []safetensors.TensorInfo
		for k, v := range sd1Single(p, nil) {
			dt, data := rawTensor(v)
			infos = append(infos, safetensors.TensorInfo{Name: k, DType: safetensors.DType(dt), Shape: v.Shape(), Data: data})
		}
		pk := "cond_stage_model.transformer.text_model.embeddings.position_ids"
		switch v := tc.pid.(type) {
		case *tensor.Tensor:
			dt, data := rawTensor(v)
			infos = append(infos, safetensors.TensorInfo{Name: pk, DType: safetensors.DType(dt), Shape: v.Shape(), Data: data})
		case raw:
			infos = append(infos, safetensors.TensorInfo{Name: pk, DType: safetensors.DType(v.dt), Shape: []int{1, n}, Data: v.data})
		}
		st := filepath.Join(dir, tc.name+".safetensors")
		require.NoError(t, safetensors.WriteFile(st, infos, nil))
		var ts []torchzip.Tensor
		for _, in := range infos {
			ts = append(ts, torchzip.Tensor{Name: in.Name, DType: string(in.DType), Shape: in.Shape, Data: in.Data})
		}
		ckpt := filepath.Join(dir, tc.name+".ckpt")
		require.NoError(t, torchzip.Write(ckpt, ts, true))

		for _, path := range []string{st, ckpt} {
			what := tc.name + " " + filepath.Ext(path)
			ck, err := sdckpt.Open(path, nil)
			require.NoError(t, err, what)
			require.Equal(t, sdckpt.SD1, ck.Variant)
			var m *TextModel
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s: panic: %v", what, r)
					}
				}()
				m, err = TextModelFromCheckpoint(ck, &c, tensor.F32)
			}()
			require.NoError(t, err, what)
			if tc.warn == "" {
				require.Empty(t, m.Warnings, what)
			} else {
				require.Len(t, m.Warnings, 1, what)
				require.Contains(t, m.Warnings[0], tc.warn, what)
				require.True(t, strings.HasPrefix(m.Warnings[0], "clip: "), m.Warnings[0])
			}
			require.Equal(t, posIDsI64(n).Int64s(), m.PositionIDs.Int64s(), what)
			requireBitEqual(t, m.Forward(ids), want, what)
			require.NoError(t, ck.Close())
		}
	}
}

package nn

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/roentgo/roentgo/internal/testutil"
	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// twoLinears is a small model for the registry tests.
type twoLinears struct {
	A, B *Linear
	Same *tensor.Tensor // holds A's weight a second time
}

// newTwoLinears builds the model with b and returns it with b's parameters.
func newTwoLinears(b *Builder) (*twoLinears, []Param) {
	m := &twoLinears{A: NewLinear(b.Sub("a"), 3, 2, true), B: NewLinear(b.Path("blocks", 1, "b"), 2, 4, false)}
	m.Same = m.A.Weight
	return m, b.Params()
}

// MatchName: globs over whole names (dots included), "prefix." prefixes, and
// module paths that stop at a dot.
func TestMatchName(t *testing.T) {
	for _, c := range []struct {
		pat, name string
		want      bool
	}{
		{"down_blocks.1.attentions.0.*", "down_blocks.1.attentions.0.proj_in.weight", true},
		{"down_blocks.1.attentions.0.*", "down_blocks.1.attentions.1.proj_in.weight", false},
		{"*.attn2.to_k.*", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight", true},
		{"*.attn2.to_k.*", "mid_block.attentions.0.transformer_blocks.0.attn1.to_k.weight", false},
		{"up_blocks.[01].*", "up_blocks.1.resnets.0.conv1.bias", true},
		{"up_blocks.[01].*", "up_blocks.2.resnets.0.conv1.bias", false},
		{"conv_in.", "conv_in.weight", true},
		{"conv_in.", "conv_in_x.weight", false},
		{"down_blocks.1", "down_blocks.1.norm.weight", true},
		{"down_blocks.1", "down_blocks.10.norm.weight", false},
		{"conv_out.bias", "conv_out.bias", true},
		{"conv_out.bias", "conv_out.bias2", false},
	} {
		got, err := MatchName(c.pat, c.name)
		require.NoError(t, err)
		require.Equal(t, c.want, got, "%q ~ %q", c.pat, c.name)
	}
	_, err := MatchName("down_blocks.[1", "down_blocks.1.x")
	require.ErrorContains(t, err, `malformed name pattern "down_blocks.[1"`)
}

// Freeze, Unfreeze and Only select by pattern, count what they matched,
// refuse patterns that match nothing (changing nothing), and Trainable
// lists the rest in order and marks them for autograd.
func TestParamSetFreezing(t *testing.T) {
	_, params := newTwoLinears(NewRandomBuilder(1, tensor.F32))
	ps, err := NewParamSet(nil, params)
	require.NoError(t, err)
	require.Equal(t, 3, ps.Len())
	names := func(ts []*Trainable) []string {
		var out []string
		for _, p := range ts {
			out = append(out, p.Name)
		}
		return out
	}
	tr, err := ps.Trainable()
	require.NoError(t, err)
	require.Equal(t, []string{"a.weight", "a.bias", "blocks.1.b.weight"}, names(tr))

	n, err := ps.Freeze("a")
	require.NoError(t, err)
	require.Equal(t, 2, n)
	tr, err = ps.Trainable()
	require.NoError(t, err)
	require.Equal(t, []string{"blocks.1.b.weight"}, names(tr))
	require.True(t, ps.Get("a.weight").Frozen())
	require.False(t, ps.Get("a.weight").Tensor.RequiresGrad(), "frozen values are unmarked")
	require.True(t, ps.Get("blocks.1.b.weight").Tensor.RequiresGrad())

	_, err = ps.Freeze("blocks.1.b.weight", "blocks.2")
	require.ErrorContains(t, err, `pattern "blocks.2" matches no parameter (names look like "a.weight")`)
	require.False(t, ps.Get("blocks.1.b.weight").Frozen(), "a failed Freeze changes nothing")

	n, err = ps.Unfreeze("*.bias")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	tr, err = ps.Trainable()
	require.NoError(t, err)
	require.Equal(t, []string{"a.bias", "blocks.1.b.weight"}, names(tr))

	n, err = ps.Only("blocks.*")
	require.NoError(t, err)
	require.Equal(t, 1, n)
	tr, err = ps.Trainable()
	require.NoError(t, err)
	require.Equal(t, []string{"blocks.1.b.weight"}, names(tr))

	_, err = ps.Only()
	require.ErrorContains(t, err, "no name pattern")
	_, err = ps.Unfreeze("[")
	require.ErrorContains(t, err, "malformed name pattern")
}

// NewParamSet refuses what it cannot register.
func TestNewParamSetErrors(t *testing.T) {
	w := tensor.Zeros(tensor.F32, 2)
	for _, c := range []struct {
		params []Param
		model  any
		want   string
	}{
		{[]Param{{Name: "", Tensor: w}}, nil, "empty name"},
		{[]Param{{Name: "w"}}, nil, `parameter "w" is nil`},
		{[]Param{{Name: "w", Tensor: w}, {Name: "w", Tensor: tensor.Zeros(tensor.F32, 2)}}, nil, `"w" appears twice`},
		{[]Param{{Name: "w", Tensor: w}, {Name: "v", Tensor: w}}, nil, `"w" and "v" are one tensor`},
		{[]Param{{Name: "ids", Tensor: tensor.FromInt64([]int64{1})}}, nil, `"ids" is I64`},
		{nil, twoLinears{}, "want a non-nil pointer"},
	} {
		_, err := NewParamSet(c.model, c.params)
		require.ErrorContains(t, err, c.want)
	}
}

// Masters: the value itself for F32, an F32 copy for F16/BF16 that SyncValue
// rounds back into the value (round to nearest even, as To does).
func TestMastersAndSync(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			_, params := newTwoLinears(NewRandomBuilder(2, dt))
			ps, err := NewParamSet(nil, params)
			require.NoError(t, err)
			tr, err := ps.Trainable()
			require.NoError(t, err)
			for _, p := range tr {
				require.Equal(t, tensor.F32, p.Master.DType())
				require.Equal(t, p.Tensor.Float32s(), p.Master.Float32s(), "the master starts as the value")
				if dt == tensor.F32 {
					require.Same(t, p.Tensor, p.Master)
				} else {
					require.False(t, p.Master.SharesStorage(p.Tensor))
				}
				m := p.Master.F32Data()
				for i := range m {
					m[i] = m[i]*1.001 + 1e-4*float32(i)
				}
				require.NoError(t, p.SyncValue())
				want := p.Master.Detach().To(dt).Float32s()
				require.Equal(t, want, p.Tensor.Float32s(), p.Name)
			}
		})
	}
}

// A parameter memory-mapped from a safetensors file (read-only) gets a
// writable copy, in the set and in every model field that held it; without a
// model it is an error, and nothing is replaced.
func TestReadOnlyParametersAreCopied(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	_, params := newTwoLinears(NewRandomBuilder(3, tensor.F32))
	require.NoError(t, SaveSafetensors(path, params, nil))
	src, err := OpenSafetensors(path)
	require.NoError(t, err)
	defer src.Close()
	require.False(t, writable(mustLoad(t, src, "a.weight")), "the mapping is read-only")

	m, params := newTwoLinears(NewBuilder(src))
	orig := m.A.Weight
	ps, err := NewParamSet(nil, params)
	require.NoError(t, err)
	_, err = ps.Trainable()
	require.ErrorContains(t, err, `parameter "a.weight" is read-only (memory-mapped from a file): pass the model`)
	require.Same(t, orig, ps.Get("a.weight").Tensor)
	require.Nil(t, ps.Get("a.weight").Master)

	// A model that does not hold the tensors cannot take the copies.
	other, _ := newTwoLinears(NewRandomBuilder(3, tensor.F32))
	ps, err = NewParamSet(other, params)
	require.NoError(t, err)
	_, err = ps.Trainable()
	require.ErrorContains(t, err, "does not hold it in a settable field")
	require.Same(t, orig, ps.Get("a.weight").Tensor)

	ps, err = NewParamSet(m, params)
	require.NoError(t, err)
	tr, err := ps.Trainable()
	require.NoError(t, err)
	require.NotSame(t, orig, m.A.Weight, "the model holds the copy")
	require.Same(t, m.A.Weight, m.Same, "in every field")
	require.Same(t, m.A.Weight, ps.Get("a.weight").Tensor)
	require.Same(t, m.A.Weight, ps.Get("a.weight").Master)
	require.True(t, writable(m.A.Weight))
	require.Equal(t, orig.Float32s(), m.A.Weight.Float32s())
	for _, p := range tr {
		p.Master.F32Data()[0] += 1 // would fault in the mapping
	}
	require.NotEqual(t, orig.Float32s()[0], m.A.Weight.Float32s()[0])
}

// mustLoad loads name from src.
func mustLoad(t *testing.T, src Source, name string) *tensor.Tensor {
	t.Helper()
	v, err := src.Load(name)
	require.NoError(t, err)
	return v
}

// A value on an accelerator (the simulated device) has a host master, and
// SyncValue uploads it in the value's dtype.
func TestMasterOfDeviceValue(t *testing.T) {
	dev, err := tensor.Open("sim:61")
	require.NoError(t, err)
	m, params := newTwoLinears(NewRandomBuilder(4, tensor.F32))
	require.NoError(t, ToDevice(m, dev))
	params = []Param{{Name: "a.weight", Tensor: m.A.Weight}, {Name: "a.bias", Tensor: m.A.Bias}}
	ps, err := NewParamSet(m, params)
	require.NoError(t, err)
	tr, err := ps.Trainable()
	require.NoError(t, err)
	for _, p := range tr {
		require.Equal(t, tensor.CPU, p.Master.Device())
		require.Equal(t, tensor.F32, p.Master.DType())
		// (Float32s of a device tensor that requires a gradient would
		// record a copy, which has no rule: read detached handles.)
		require.Equal(t, p.Tensor.Detach().Float32s(), p.Master.Float32s())
		p.Master.F32Data()[0] = 0.5
		require.NoError(t, p.SyncValue())
		require.Equal(t, dev, p.Tensor.Device())
		require.Equal(t, float32(0.5), p.Tensor.Detach().Float32s()[0])
	}
}

// Gradients: AddGrad converts and accumulates scale*g; CollectGrads takes
// autograd's gradients off the values (scaled, accumulating over
// micro-batches); ZeroGrad keeps zeroed buffers, DropGrads releases them.
func TestGradients(t *testing.T) {
	w := tensor.FromFloat32([]float32{1, 2, 3}, 3)
	ps, err := NewParamSet(nil, []Param{{Name: "w", Tensor: w}})
	require.NoError(t, err)
	tr, err := ps.Trainable()
	require.NoError(t, err)
	p := tr[0]
	require.Nil(t, p.Grad)

	// loss = sum(w * x): dloss/dw = x.
	for _, x := range [][]float32{{1, -2, 4}, {3, 0, -4}} {
		loss := w.Mul(tensor.FromFloat32(x, 3)).SumAll()
		require.NoError(t, tensor.Backward(loss))
		require.NoError(t, ps.CollectGrads(0.5))
		require.Nil(t, w.Grad(), "moved off the value")
	}
	require.Equal(t, []float32{2, -1, 0}, p.Grad.Float32s(), "mean over two micro-batches")

	require.NoError(t, p.AddGrad(tensor.FromFloat32([]float32{2, 2, 2}, 3).To(tensor.F16), 1))
	require.Equal(t, []float32{4, 1, 2}, p.Grad.Float32s())
	require.ErrorContains(t, p.AddGrad(tensor.Zeros(tensor.F32, 2), 1), `gradient of shape [2], want [3]`)
	require.ErrorContains(t, p.AddGrad(nil, 1), "nil")

	g := p.Grad
	ps.ZeroGrad()
	require.Same(t, g, p.Grad)
	require.Equal(t, []float32{0, 0, 0}, p.Grad.Float32s())
	ps.DropGrads()
	require.Nil(t, p.Grad)
}

// With scale 1 and no gradient held, CollectGrads moves autograd's F32
// gradient over (no copy); a second micro-batch then adds into it without
// touching anything else.
func TestCollectGradsMoves(t *testing.T) {
	w := tensor.FromFloat32([]float32{1, 2, 3}, 3)
	ps, err := NewParamSet(nil, []Param{{Name: "w", Tensor: w}})
	require.NoError(t, err)
	tr, err := ps.Trainable()
	require.NoError(t, err)
	p := tr[0]
	x1 := tensor.FromFloat32([]float32{1, -2, 4}, 3)
	require.NoError(t, tensor.Backward(w.Mul(x1).SumAll()))
	buf := &w.Grad().F32Data()[0]
	require.NoError(t, ps.CollectGrads(1))
	require.Nil(t, w.Grad())
	require.Equal(t, []float32{1, -2, 4}, p.Grad.Float32s())
	require.Same(t, buf, &p.Grad.F32Data()[0], "the autograd buffer itself")
	require.NoError(t, tensor.Backward(w.Mul(tensor.FromFloat32([]float32{0.5, 1, 1}, 3)).SumAll()))
	require.NoError(t, ps.CollectGrads(1))
	require.Equal(t, []float32{1.5, -1, 5}, p.Grad.Float32s())
	require.Equal(t, []float32{1, -2, 4}, x1.Float32s(), "inputs untouched")
}

// SaveWeights writes every parameter as the model holds it; SaveMasters and
// LoadMasters round-trip the trainable masters, and LoadMasters refuses
// files that do not fit, changing nothing.
func TestSaveLoadMasters(t *testing.T) {
	dir := t.TempDir()
	_, params := newTwoLinears(NewRandomBuilder(5, tensor.F16))
	ps, err := NewParamSet(nil, params)
	require.NoError(t, err)
	_, err = ps.Freeze("blocks")
	require.NoError(t, err)
	require.ErrorContains(t, ps.SaveMasters(filepath.Join(dir, "x.safetensors"), nil), "call Trainable first")
	tr, err := ps.Trainable()
	require.NoError(t, err)

	weights := filepath.Join(dir, "weights.safetensors")
	require.NoError(t, ps.SaveWeights(weights, nil))
	a, err := tensor.LoadSafetensors(weights)
	require.NoError(t, err)
	require.Equal(t, []string{"a.bias", "a.weight", "blocks.1.b.weight"}, a.Names())
	require.Equal(t, "pt", a.Metadata["format"])
	dt, _, _ := a.Info("a.weight")
	require.Equal(t, "F16", dt)
	require.NoError(t, a.Close())

	masters := filepath.Join(dir, "masters.safetensors")
	require.NoError(t, ps.SaveMasters(masters, map[string]string{"step": "7"}))
	before := tr[0].Master.Float32s()
	tr[0].Master.F32Data()[0] = 42
	require.NoError(t, ps.LoadMasters(masters))
	require.Equal(t, before, tr[0].Master.Float32s())
	require.Equal(t, tr[0].Master.Detach().To(tensor.F16).Float32s(), tr[0].Tensor.Float32s(), "values synced")

	// Files that do not fit.
	write := func(name string, ts map[string]*tensor.Tensor) string {
		p := filepath.Join(dir, name)
		require.NoError(t, tensor.SaveSafetensors(p, ts, nil))
		return p
	}
	wA, bA := tr[0].Master, tr[1].Master
	extra := tensor.Zeros(tensor.F32, 1)
	corrupt := filepath.Join(dir, "corrupt.safetensors")
	require.NoError(t, os.WriteFile(corrupt, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{not json}"), 0o644))
	for _, c := range []struct {
		path, want string
	}{
		{write("missing.safetensors", map[string]*tensor.Tensor{"a.weight": wA}), `no tensor "a.bias"`},
		{write("shape.safetensors", map[string]*tensor.Tensor{"a.weight": wA, "a.bias": tensor.Zeros(tensor.F32, 3)}), `tensor "a.bias" (trainable parameter) has shape [3], want [2]`},
		{write("dtype.safetensors", map[string]*tensor.Tensor{"a.weight": wA, "a.bias": tensor.Zeros(tensor.F16, 2)}), `tensor "a.bias" (trainable parameter) is F16, want F32`},
		{write("extra.safetensors", map[string]*tensor.Tensor{"a.weight": wA, "a.bias": bA, "blocks.1.b.weight": extra}), `1 unexpected tensor (not a trainable parameter of this set): "blocks.1.b.weight"`},
		{corrupt, "nn: LoadMasters:"},
		{filepath.Join(dir, "absent.safetensors"), "nn: LoadMasters:"},
	} {
		tr[0].Master.F32Data()[0] = 42
		testutil.NoPanic(t, c.path, func() {
			err := ps.LoadMasters(c.path)
			require.ErrorContains(t, err, c.want)
			require.ErrorContains(t, err, c.path)
		})
		require.Equal(t, float32(42), tr[0].Master.F32Data()[0], "nothing loaded from %s", c.path)
	}
}

package nn

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/roentgo/roentgo/tensor/safetensors"
	"github.com/stretchr/testify/require"
)

func TestBuilderPaths(t *testing.T) {
	b := NewRandomBuilder(1, tensor.F32)
	require.Equal(t, "", b.Prefix())
	require.Equal(t, "down_blocks.1", b.Sub("down_blocks").Sub(1).Prefix())
	sub := b.Path("down_blocks", 1, "attentions", 0, "transformer_blocks", 0)
	require.Equal(t, "down_blocks.1.attentions.0.transformer_blocks.0", sub.Prefix())
	NewAttention(sub.Sub("attn2"), 320, 768, 8, 40)
	var names []string
	for _, p := range b.Params() {
		names = append(names, p.Name)
	}
	pre := "down_blocks.1.attentions.0.transformer_blocks.0.attn2."
	require.Equal(t, []string{pre + "to_q.weight", pre + "to_k.weight", pre + "to_v.weight",
		pre + "to_out.0.weight", pre + "to_out.0.bias"}, names)
	require.Equal(t, tensor.Shape{320, 768}, b.Params()[1].Tensor.Shape())
	require.NoError(t, b.Check())
	require.Panics(t, func() { b.Path(1.5) })
	require.Panics(t, func() { b.Sub("") })
}

// linearSource holds the parameters of a Linear(3 -> 2) at "blk.lin" plus extras.
func linearSource() MapSource {
	return MapSource{
		"blk.lin.weight": tensor.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3),
		"blk.lin.bias":   tensor.FromFloat32([]float32{0.5, -0.5}, 2),
	}
}

func TestBuilderLoads(t *testing.T) {
	src := linearSource()
	b := NewBuilder(src)
	l := NewLinear(b.Path("blk", "lin"), 3, 2, true)
	require.NoError(t, b.Err())
	require.NoError(t, b.Check())
	require.Same(t, src["blk.lin.weight"], l.Weight) // used as stored
	y := l.Forward(tensor.FromFloat32([]float32{1, 1, 1}, 1, 3))
	require.Equal(t, []float32{6.5, 14.5}, y.Float32s())
	// Asking again returns the same tensor.
	require.Same(t, l.Weight, b.Sub("blk").Sub("lin").Get("weight", 2, 3))
	require.Len(t, b.Params(), 2)
	require.True(t, b.Sub("blk").Has("lin.bias"))
	require.False(t, b.Has("lin.bias"))
}

func TestBuilderMissing(t *testing.T) {
	src := linearSource()
	delete(src, "blk.lin.bias")
	b := NewBuilder(src)
	l := NewLinear(b.Path("blk", "lin"), 3, 2, true)
	require.Nil(t, l.Bias)
	err := b.Err()
	require.Error(t, err)
	require.Contains(t, err.Error(), "blk.lin.bias")
	require.Contains(t, err.Error(), "missing")
	require.Contains(t, err.Error(), "[2]")
	require.Equal(t, []string{"blk.lin.bias"}, b.Missing())
	err = b.Check()
	require.ErrorContains(t, err, "1 missing, 0 other errors, 0 unused keys")
}

func TestBuilderWrongShape(t *testing.T) {
	b := NewBuilder(linearSource())
	l := NewLinear(b.Path("blk", "lin"), 2, 3, true) // transposed sizes
	require.Nil(t, l.Weight)
	require.Nil(t, l.Bias)
	msg := b.Err().Error()
	require.Contains(t, msg, "nn: blk.lin.weight: shape [2, 3] in the source, want [3, 2]")
	require.Contains(t, msg, "nn: blk.lin.bias: shape [2] in the source, want [3]")
	// Keys that were found with the wrong shape are not also reported unused.
	require.Empty(t, b.Unused())
	require.ErrorContains(t, b.Check(), "0 missing, 2 other errors, 0 unused keys")
	// Requesting a loaded key with another shape is an error too.
	b2 := NewBuilder(linearSource())
	b2.Get("blk.lin.bias", 2)
	require.Nil(t, b2.Get("blk.lin.bias", 1, 2))
	require.ErrorContains(t, b2.Err(), "blk.lin.bias: requested again with shape [1, 2], first as [2]")
}

func TestBuilderUnused(t *testing.T) {
	src := linearSource()
	src["blk.extra.weight"] = tensor.Zeros(tensor.F32, 4)
	src["other"] = tensor.Zeros(tensor.F32, 1)
	b := NewBuilder(src)
	NewLinear(b.Path("blk", "lin"), 3, 2, true)
	require.NoError(t, b.Err())
	require.Equal(t, []string{"blk.extra.weight", "other"}, b.Unused())
	err := b.Check()
	require.Error(t, err)
	require.Contains(t, err.Error(), "0 missing, 0 other errors, 2 unused keys")
	require.Contains(t, err.Error(), "nn: blk.extra.weight: unused")
	require.Contains(t, err.Error(), "nn: other: unused")
}

func TestBuilderDType(t *testing.T) {
	// An integer tensor where a float parameter is expected.
	src := linearSource()
	src["blk.lin.bias"] = tensor.FromInt64([]int64{1, 2}, 2)
	b := NewBuilder(src)
	l := NewLinear(b.Path("blk", "lin"), 3, 2, true)
	require.Nil(t, l.Bias)
	require.ErrorContains(t, b.Err(), "nn: blk.lin.bias: dtype I64, want a floating-point tensor")
	require.Equal(t, []int64{1, 2}, NewBuilder(src).GetInt64("blk.lin.bias", 2).Int64s())
	b3 := NewBuilder(src)
	b3.GetInt64("blk.lin.weight", 2, 3)
	require.ErrorContains(t, b3.Err(), "nn: blk.lin.weight: dtype F32, want I64")

	// A dtype of the safetensors format that roentgo does not compute with.
	path := filepath.Join(t.TempDir(), "f64.safetensors")
	require.NoError(t, safetensors.WriteFile(path, []safetensors.TensorInfo{
		{Name: "w", DType: safetensors.F64, Shape: []int{2}, Data: make([]byte, 16)},
		{Name: "h", DType: safetensors.F16, Shape: []int{2}, Data: []byte{0, 0x3c, 0, 0xc0}},
	}, nil))
	st, err := OpenSafetensors(path)
	require.NoError(t, err)
	defer st.Close()
	b4 := NewBuilder(st)
	require.Nil(t, b4.Get("w", 2))
	require.ErrorContains(t, b4.Err(), `nn: w (F64 [2]): tensor: tensor "w": stored dtype F64 is not supported`)
	h := b4.Get("h", 2)
	require.Equal(t, tensor.F16, h.DType())
	require.Equal(t, []float32{1, -2}, h.Float32s())

	// WithDType converts on load.
	b5 := NewBuilder(linearSource()).WithDType(tensor.BF16)
	l5 := NewLinear(b5.Path("blk", "lin"), 3, 2, true)
	require.Equal(t, tensor.BF16, l5.Weight.DType())
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6}, l5.Weight.Float32s())
}

func TestOpenSafetensorsErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenSafetensors(filepath.Join(dir, "absent.safetensors"))
	require.ErrorContains(t, err, "absent.safetensors")
	bad := filepath.Join(dir, "bad.safetensors")
	require.NoError(t, os.WriteFile(bad, []byte("not a safetensors file"), 0o644))
	_, err = OpenSafetensors(bad)
	require.Error(t, err)
	// The same name in two shards.
	a, c := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "c.safetensors")
	one := []safetensors.TensorInfo{{Name: "x", DType: safetensors.F32, Shape: []int{1}, Data: make([]byte, 4)}}
	require.NoError(t, safetensors.WriteFile(a, one, nil))
	require.NoError(t, safetensors.WriteFile(c, one, nil))
	_, err = OpenSafetensors(a, c)
	require.ErrorContains(t, err, `tensor "x" is in both`)
}

// TestShardsAndSave builds a model from random weights, saves them in two shards
// (by splitting the parameter list), loads both shards as one source, and checks
// that the strict report passes and every value survives.
func TestShardsAndSave(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.F16, tensor.BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			cfg := ResnetBlock2DConfig{In: 8, Out: 16, TembChannels: 12, Groups: 4}
			rb := NewRandomBuilder(7, dt)
			NewResnetBlock2D(rb, cfg)
			ps := rb.Params()
			require.Len(t, ps, 12)
			dir := t.TempDir()
			p1, p2 := filepath.Join(dir, "m-1.safetensors"), filepath.Join(dir, "m-2.safetensors")
			require.NoError(t, SaveSafetensors(p1, ps[:5], nil))
			require.NoError(t, SaveSafetensors(p2, ps[5:], map[string]string{"format": "pt"}))
			src, err := OpenSafetensors(p1, p2)
			require.NoError(t, err)
			defer src.Close()
			b := NewBuilder(src)
			NewResnetBlock2D(b, cfg)
			require.NoError(t, b.Check())
			got := b.Params()
			require.Len(t, got, len(ps))
			for i := range ps {
				require.Equal(t, ps[i].Name, got[i].Name)
				require.Equal(t, dt, got[i].Tensor.DType(), got[i].Name)
				require.Equal(t, ps[i].Tensor.Shape(), got[i].Tensor.Shape())
				require.Equal(t, ps[i].Tensor.Float32s(), got[i].Tensor.Float32s(), ps[i].Name)
			}
		})
	}
	err := SaveSafetensors(filepath.Join(t.TempDir(), "x.safetensors"), []Param{{Name: "a"}}, nil)
	require.ErrorContains(t, err, `parameter "a" is nil`)
}

// TestRandomInit checks PyTorch's default initialisations by their moments on
// layers large enough for tight bounds: U(-k, k) has mean 0 and variance k^2/3
// (the sample mean's standard deviation is k/sqrt(3n)); N(0, 1) mean 0, variance 1.
func TestRandomInit(t *testing.T) {
	b := NewRandomBuilder(42, tensor.F32)
	lin := NewLinear(b.Sub("lin"), 1024, 768, true)
	conv := NewConv2d(b.Sub("conv"), 320, 640, 3, 1, 1)
	gn := NewGroupNorm(b.Sub("gn"), 32, 320, 1e-6)
	ln := NewLayerNorm(b.Sub("ln"), 768, 1e-5)
	emb := NewEmbedding(b.Sub("emb"), 1000, 768)
	require.NoError(t, b.Check())

	uniform := func(name string, x *tensor.Tensor, k float64) {
		v := x.Float32s()
		n := float64(len(v))
		var s, s2, mx float64
		for _, f := range v {
			s += float64(f)
			s2 += float64(f) * float64(f)
			mx = max(mx, math.Abs(float64(f)))
		}
		mean, variance := s/n, s2/n-(s/n)*(s/n)
		require.LessOrEqual(t, mx, k, "%s: |max| %g > bound %g", name, mx, k)
		require.Greater(t, mx, 0.99*k, "%s: max |x| %g, bound %g", name, mx, k)
		require.Less(t, math.Abs(mean), 5*k/math.Sqrt(3*n), "%s: mean %g", name, mean)
		// Var of the sample variance of U(-k,k): (k^4/5 - k^4/9)/n.
		require.InDelta(t, k*k/3, variance, 5*k*k*math.Sqrt(4.0/45/n), "%s: variance", name)
	}
	uniform("linear weight", lin.Weight, 1/math.Sqrt(1024))
	uniform("linear bias", lin.Bias, 1/math.Sqrt(1024))
	uniform("conv weight", conv.Weight, 1/math.Sqrt(320*9))
	uniform("conv bias", conv.Bias, 1/math.Sqrt(320*9))
	for _, f := range gn.Weight.Float32s() {
		require.Equal(t, float32(1), f)
	}
	for _, f := range ln.Bias.Float32s() {
		require.Equal(t, float32(0), f)
	}
	v := emb.Weight.Float32s()
	n := float64(len(v))
	var s, s2 float64
	for _, f := range v {
		s += float64(f)
		s2 += float64(f) * float64(f)
	}
	require.Less(t, math.Abs(s/n), 5/math.Sqrt(n))
	require.InDelta(t, 1, s2/n-(s/n)*(s/n), 5*math.Sqrt(2/n))
}

// TestRandomDeterminism: the same seed gives the same values whatever the order
// of construction and the storage dtype only rounds them; another seed differs.
func TestRandomDeterminism(t *testing.T) {
	build := func(seed uint64, dt tensor.DType, reverse bool) map[string][]float32 {
		b := NewRandomBuilder(seed, dt)
		if reverse {
			NewFeedForward(b.Sub("ff"), 16, 4)
			NewAttention(b.Sub("attn"), 16, 8, 2, 8)
		} else {
			NewAttention(b.Sub("attn"), 16, 8, 2, 8)
			NewFeedForward(b.Sub("ff"), 16, 4)
		}
		require.NoError(t, b.Check())
		m := map[string][]float32{}
		for _, p := range b.Params() {
			require.Equal(t, dt, p.Tensor.DType())
			m[p.Name] = p.Tensor.Float32s()
		}
		return m
	}
	a := build(3, tensor.F32, false)
	require.Equal(t, a, build(3, tensor.F32, false))
	require.Equal(t, a, build(3, tensor.F32, true))
	other := build(4, tensor.F32, false)
	for k := range a {
		require.NotEqual(t, a[k], other[k], k)
	}
	// Parameters of one builder differ from each other (seeded by name).
	require.NotEqual(t, a["attn.to_k.weight"], a["attn.to_v.weight"])
	half := build(3, tensor.F16, false)
	for k, v := range a {
		rounded := tensor.FromFloat32(v).To(tensor.F16).Float32s()
		require.Equal(t, rounded, half[k], k)
	}
}

// Filling in the background gives the same parameters as filling at once,
// in every dtype, and Check waits for them.
func TestFillInBackground(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16} {
		build := func(async bool) map[string][]float32 {
			b := NewRandomBuilder(5, dt)
			if async {
				require.Same(t, b, b.FillInBackground())
			}
			NewAttention(b.Sub("attn"), 64, 32, 4, 16)
			NewFeedForward(b.Sub("ff"), 64, 4)
			require.NoError(t, b.Check())
			m := map[string][]float32{}
			for _, p := range b.Params() {
				require.Equal(t, dt, p.Tensor.DType())
				m[p.Name] = p.Tensor.Float32s()
			}
			return m
		}
		require.Equal(t, build(false), build(true), "%v", dt)
	}
	// Over a Source it changes nothing.
	b := NewBuilder(MapSource{"w": tensor.Ones(tensor.F32, 2)}).FillInBackground()
	require.Equal(t, []float32{1, 1}, b.Get("w", 2).Float32s())
}

func TestCheckListsAtMost50Unused(t *testing.T) {
	src := MapSource{}
	for i := 0; i < 60; i++ {
		src[strings.Repeat("k", 1)+string(rune('A'+i))] = tensor.Zeros(tensor.F32, 1)
	}
	err := NewBuilder(src).Check()
	require.ErrorContains(t, err, "60 unused keys")
	require.ErrorContains(t, err, "... and 10 more unused keys")
}

// TestTransformerKeys checks the diffusers key layout of a two-layer
// Transformer2DModel and that it runs without a context (self-attention only).
func TestTransformerKeys(t *testing.T) {
	b := NewRandomBuilder(9, tensor.F32)
	m := NewTransformer2DModel(b.Path("mid_block", "attentions", 0),
		Transformer2DConfig{Channels: 16, Heads: 2, DimHead: 4, Layers: 2, Groups: 4})
	require.NoError(t, b.Check())
	ps := b.Params()
	require.Len(t, ps, 6+2*20)
	names := map[string]tensor.Shape{}
	for _, p := range ps {
		names[p.Name] = p.Tensor.Shape()
	}
	pre := "mid_block.attentions.0."
	for k, s := range map[string]tensor.Shape{
		"norm.weight": {16}, "proj_in.weight": {8, 16, 1, 1}, "proj_out.bias": {16},
		"transformer_blocks.1.attn2.to_k.weight": {8, 8}, "transformer_blocks.1.ff.net.0.proj.weight": {64, 8},
		"transformer_blocks.1.ff.net.2.weight": {8, 32}, "transformer_blocks.0.norm3.bias": {8},
		"transformer_blocks.0.attn1.to_out.0.bias": {8},
	} {
		require.Equal(t, s, names[pre+k], k)
	}
	x := tensor.Randn(rngFor(1), 1, 16, 3, 2)
	y := m.Forward(x, nil)
	require.Equal(t, x.Shape(), y.Shape())
}

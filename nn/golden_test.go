package nn

import (
	"fmt"
	"testing"

	"github.com/roentgo/roentgo/tensor"
	"github.com/stretchr/testify/require"
)

// The golden cases of scripts/golden_nn.py: each builds a layer at the root of a
// builder and runs it on the case's inputs <name>.in0.npy, <name>.in1.npy, ...
// against <name>.out.npy (PyTorch, float32 on the CPU).
type goldenCase struct {
	name  string
	nIn   int
	layer func(b *Builder) func(in []*tensor.Tensor) *tensor.Tensor
	atol  float64 // F32 tolerance; 0 means 1e-5
	rtol  float64 // 0 means 1e-4
}

var goldenCases = []goldenCase{
	{name: "linear", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		l := NewLinear(b, 12, 7, true)
		return func(in []*tensor.Tensor) *tensor.Tensor { return l.Forward(in[0]) }
	}},
	{name: "conv3x3", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		c := NewConv2d(b, 5, 6, 3, 1, 1)
		return func(in []*tensor.Tensor) *tensor.Tensor { return c.Forward(in[0]) }
	}},
	{name: "conv3x3s2", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		c := NewConv2d(b, 5, 6, 3, 2, 1)
		return func(in []*tensor.Tensor) *tensor.Tensor { return c.Forward(in[0]) }
	}},
	{name: "conv1x1", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		c := NewConv2d(b, 6, 4, 1, 1, 0)
		return func(in []*tensor.Tensor) *tensor.Tensor { return c.Forward(in[0]) }
	}},
	{name: "groupnorm", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		g := NewGroupNorm(b, 4, 8, 1e-6)
		return func(in []*tensor.Tensor) *tensor.Tensor { return g.Forward(in[0]) }
	}},
	{name: "layernorm", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		l := NewLayerNorm(b, 16, 1e-5)
		return func(in []*tensor.Tensor) *tensor.Tensor { return l.Forward(in[0]) }
	}},
	{name: "attn_self", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		a := NewAttention(b, 16, 0, 2, 8)
		return func(in []*tensor.Tensor) *tensor.Tensor { return a.Forward(in[0], nil) }
	}},
	{name: "attn_cross", nIn: 2, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		a := NewAttention(b, 16, 12, 4, 5)
		return func(in []*tensor.Tensor) *tensor.Tensor { return a.Forward(in[0], in[1]) }
	}},
	{name: "feedforward", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		f := NewFeedForward(b, 8, 4)
		return func(in []*tensor.Tensor) *tensor.Tensor { return f.Forward(in[0]) }
	}},
	{name: "transformer_block", nIn: 2, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		blk := NewBasicTransformerBlock(b, 16, 12, 2, 8)
		return func(in []*tensor.Tensor) *tensor.Tensor { return blk.Forward(in[0], in[1]) }
	}},
	{name: "transformer2d_conv", nIn: 2, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		m := NewTransformer2DModel(b, Transformer2DConfig{Channels: 16, Heads: 2, DimHead: 8, CrossDim: 12, Groups: 4})
		return func(in []*tensor.Tensor) *tensor.Tensor { return m.Forward(in[0], in[1]) }
	}},
	{name: "transformer2d_linear", nIn: 2, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		m := NewTransformer2DModel(b, Transformer2DConfig{Channels: 16, Heads: 2, DimHead: 8, CrossDim: 12, Groups: 4, UseLinearProjection: true})
		return func(in []*tensor.Tensor) *tensor.Tensor { return m.Forward(in[0], in[1]) }
	}},
	{name: "resnet_shortcut", nIn: 2, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		r := NewResnetBlock2D(b, ResnetBlock2DConfig{In: 8, Out: 12, TembChannels: 10, Groups: 4})
		return func(in []*tensor.Tensor) *tensor.Tensor { return r.Forward(in[0], in[1]) }
	}},
	{name: "resnet_notemb", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		r := NewResnetBlock2D(b, ResnetBlock2DConfig{In: 8, Groups: 4})
		return func(in []*tensor.Tensor) *tensor.Tensor { return r.Forward(in[0], nil) }
	}},
	{name: "downsample_pad1", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		d := NewDownsample2D(b, 8, 8, 1)
		return func(in []*tensor.Tensor) *tensor.Tensor { return d.Forward(in[0]) }
	}},
	{name: "downsample_pad0", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		d := NewDownsample2D(b, 8, 8, 0)
		return func(in []*tensor.Tensor) *tensor.Tensor { return d.Forward(in[0]) }
	}},
	{name: "upsample", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		u := NewUpsample2D(b, 8, 8)
		return func(in []*tensor.Tensor) *tensor.Tensor { return u.Forward(in[0]) }
	}},
	{name: "upsample_size", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		u := NewUpsample2D(b, 8, 6)
		return func(in []*tensor.Tensor) *tensor.Tensor { return u.ForwardSize(in[0], 5, 7) }
	}},
	{name: "timestep_embedding", nIn: 1, layer: func(b *Builder) func([]*tensor.Tensor) *tensor.Tensor {
		e := NewTimestepEmbedding(b, 16, 24, 0)
		return func(in []*tensor.Tensor) *tensor.Tensor { return e.Forward(in[0]) }
	}},
}

func (c goldenCase) inputs(t testing.TB) []*tensor.Tensor {
	var in []*tensor.Tensor
	for i := 0; i < c.nIn; i++ {
		in = append(in, readNpy(t, fmt.Sprintf("%s.in%d.npy", c.name, i)))
	}
	return in
}

// run builds the case's layer from src, checks the builder's strict report, and
// returns the output; it also checks that Forward left its inputs intact.
func (c goldenCase) run(t *testing.T, src Source) *tensor.Tensor {
	t.Helper()
	b := NewBuilder(src)
	f := c.layer(b)
	require.NoError(t, b.Check())
	in := c.inputs(t)
	var before [][]float32
	for _, x := range in {
		before = append(before, x.Float32s())
	}
	y := f(in)
	for i, x := range in {
		require.Equal(t, before[i], x.Float32s(), "input %d changed by Forward", i)
	}
	// A second call gives the same result (no state, buffers recycled correctly).
	y2 := f(in)
	require.Equal(t, y.Float32s(), y2.Float32s(), "second Forward differs")
	y2.Release()
	return y
}

// TestGolden runs every layer with its PyTorch parameters in F32 against
// PyTorch's output: |got-want| <= 1e-5 + 1e-4 |want| (float32 sums in another
// order differ by a few ulps of the largest partial sum; outputs are O(1-10)).
func TestGolden(t *testing.T) {
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			atol, rtol := c.atol, c.rtol
			if atol == 0 {
				atol, rtol = 1e-5, 1e-4
			}
			y := c.run(t, openCase(t, c.name))
			requireClose(t, y, readNpy(t, c.name+".out.npy"), atol, rtol, c.name)
		})
	}
}

// TestGoldenHalf runs every layer with its parameters stored as F16 and as BF16
// (used as such by Linear and Conv2d, converted by the other ops):
//
//   - against the same layer with F32 parameters holding the same rounded
//     values, at the F32 tolerance: storage in 16 bits must change nothing but
//     the rounding of the weights;
//   - against PyTorch's F32 output, at a tolerance set by the rounding: a
//     weight is off by at most 2^-12 (F16) or 2^-9 (BF16) relatively, so an
//     output that sums weighted terms of total magnitude sum|w x| = O(10) moves
//     by up to about 2.5e-3 (F16) or 2e-2 (BF16); chained layers (transformer
//     blocks, two-conv ResNet blocks) add theirs up. The bound used is
//     atol = rtol = 5e-3 for F16 and 4e-2 for BF16 (observed: at most 40% of it).
func TestGoldenHalf(t *testing.T) {
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
		for _, c := range goldenCases {
			t.Run(dt.String()+"/"+c.name, func(t *testing.T) {
				half, rounded := halfSource(t, openCase(t, c.name), dt)
				y := c.run(t, half)
				yr := c.run(t, rounded)
				requireClose(t, y, yr, 1e-5, 1e-4, "16-bit vs rounded F32")
				tol := 5e-3
				if dt == tensor.BF16 {
					tol = 4e-2
				}
				requireClose(t, y, readNpy(t, c.name+".out.npy"), tol, tol, "16-bit vs PyTorch F32")
			})
		}
	}
}

// TestGoldenHalfFile loads an F16 safetensors file (written by SaveSafetensors,
// read back memory-mapped) and checks that the parameters stay F16 and compute
// what F32 parameters with the same values compute.
func TestGoldenHalfFile(t *testing.T) {
	var c goldenCase
	for _, gc := range goldenCases {
		if gc.name == "transformer2d_conv" { // many weights of every kind
			c = gc
		}
	}
	half, rounded := halfSource(t, openCase(t, c.name), tensor.F16)
	var params []Param
	for _, k := range half.Keys() {
		params = append(params, Param{Name: k, Tensor: half[k]})
	}
	path := t.TempDir() + "/half.safetensors"
	require.NoError(t, SaveSafetensors(path, params, map[string]string{"format": "pt"}))
	src, err := OpenSafetensors(path)
	require.NoError(t, err)
	defer src.Close()
	b := NewBuilder(src)
	f := c.layer(b)
	require.NoError(t, b.Check())
	for _, p := range b.Params() {
		require.Equal(t, tensor.F16, p.Tensor.DType(), p.Name)
	}
	in := c.inputs(t)
	y := f(in)
	yr := c.run(t, rounded)
	requireClose(t, y, yr, 1e-5, 1e-4, "F16 file vs rounded F32")
}

func TestActivations(t *testing.T) {
	x := readNpy(t, "act.in0.npy")
	for name, file := range map[string]string{
		"silu": "act.silu.npy", "gelu": "act.gelu.npy", "gelu_pytorch_tanh": "act.gelu_tanh.npy",
		"quick_gelu": "act.quick_gelu.npy",
	} {
		a, err := ParseActivation(name)
		require.NoError(t, err)
		require.Equal(t, name, a.String())
		requireClose(t, a.Forward(x), readNpy(t, file), 1e-5, 1e-4, name)
	}
	_, err := ParseActivation("relu6")
	require.ErrorContains(t, err, `"relu6"`)
}

func TestEmbedding(t *testing.T) {
	b := NewBuilder(openCase(t, "embedding"))
	e := NewEmbedding(b, 20, 6)
	require.NoError(t, b.Check())
	y := e.Forward(readNpy(t, "embedding.ids.npy"))
	// Rows are copied: exact.
	requireClose(t, y, readNpy(t, "embedding.out.npy"), 0, 0, "embedding")
}

func TestTimesteps(t *testing.T) {
	ts := readNpy(t, "time_proj.t.npy")
	// sin/cos of arguments up to 999: float32 argument rounding dominates
	// (|t*f| ~ 1e3, ulp 6e-5), as in PyTorch's own float32 computation.
	requireClose(t, NewTimesteps(32, true, 0).Forward(ts), readNpy(t, "time_proj.flip.npy"), 2e-4, 1e-4, "flip")
	requireClose(t, NewTimesteps(33, false, 1).Forward(ts), readNpy(t, "time_proj.noflip_shift1.npy"), 2e-4, 1e-4, "noflip_shift1")
}

func TestNearestResize(t *testing.T) {
	x := readNpy(t, "nearest.in0.npy")
	for _, sz := range [][2]int{{9, 13}, {3, 4}, {7, 17}, {10, 12}} {
		name := fmt.Sprintf("nearest.%dx%d.npy", sz[0], sz[1])
		y := NearestResize(x, sz[0], sz[1])
		if sz == [2]int{10, 12} {
			requireClose(t, y, tensor.Upsample2xNearest(x), 0, 0, "2x")
			continue
		}
		requireClose(t, y, readNpy(t, name), 0, 0, name)
	}
}

func TestPadRightBottom(t *testing.T) {
	x := tensor.Arange(tensor.F32, 1, 7, 1).Reshape(1, 1, 2, 3)
	p := PadRightBottom(x, 1, 2)
	require.Equal(t, tensor.Shape{1, 1, 3, 5}, p.Shape())
	require.Equal(t, []float32{1, 2, 3, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0, 0, 0}, p.Float32s())
}

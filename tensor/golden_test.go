package tensor

import (
	"encoding/json"
	"os"
	"strconv"
	"testing"
)

// Golden cases computed by PyTorch (scripts/golden_tensor.py).

type goldenArray struct {
	Shape []int         `json:"shape"`
	Data  []goldenFloat `json:"data"`
}

// goldenFloat is a JSON number, or "inf", "-inf", "nan".
type goldenFloat float64

func (g *goldenFloat) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		v, err := strconv.ParseFloat(s, 64)
		*g = goldenFloat(v)
		return err
	}
	var v float64
	err := json.Unmarshal(b, &v)
	*g = goldenFloat(v)
	return err
}

type goldenCase struct {
	Inputs  map[string]goldenArray `json:"inputs"`
	Outputs map[string]goldenArray `json:"outputs"`
	Params  map[string]any         `json:"params"`
}

func loadGolden(t *testing.T) map[string]goldenCase {
	t.Helper()
	b, err := os.ReadFile("testdata/golden_tensor.json")
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases map[string]goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g.Cases
}

func (a goldenArray) tensor() *Tensor {
	f := make([]float32, len(a.Data))
	for i, v := range a.Data {
		f[i] = float32(v)
	}
	return FromFloat32(f, a.Shape...)
}

func (a goldenArray) f32() []float32 {
	f := make([]float32, len(a.Data))
	for i, v := range a.Data {
		f[i] = float32(v)
	}
	return f
}

func checkGolden(t *testing.T, name string, got *Tensor, want goldenArray, atol, rtol float64) {
	t.Helper()
	if !got.Shape().Equal(want.Shape) {
		t.Fatalf("%s: shape %v, want %v", name, got.Shape(), want.Shape)
	}
	requireClose(t, name, got.Float32s(), want.f32(), atol, rtol)
}

func TestGoldenPyTorch(t *testing.T) {
	cases := loadGolden(t)
	const atol, rtol = 1e-5, 1e-5
	c := cases["broadcast"]
	a, b := c.Inputs["a"].tensor(), c.Inputs["b"].tensor()
	checkGolden(t, "add", a.Add(b), c.Outputs["add"], atol, rtol)
	checkGolden(t, "sub", a.Sub(b), c.Outputs["sub"], atol, rtol)
	checkGolden(t, "mul", a.Mul(b), c.Outputs["mul"], atol, rtol)
	checkGolden(t, "div", a.Div(b), c.Outputs["div"], atol, rtol)
	checkGolden(t, "maximum", a.Maximum(b), c.Outputs["maximum"], atol, rtol)

	c = cases["reduce"]
	x := c.Inputs["x"].tensor()
	checkGolden(t, "sum1", x.Sum(1, false), c.Outputs["sum1"], atol, rtol)
	checkGolden(t, "mean2", x.Mean(2, true), c.Outputs["mean2"], atol, rtol)
	checkGolden(t, "max0", x.Max(0, false), c.Outputs["max0"], 0, 0)
	checkGolden(t, "var1", x.Var(1, false), c.Outputs["var1"], atol, rtol)
	checkGolden(t, "argmax2", x.ArgMax(2, false), c.Outputs["argmax2"], 0, 0)
	checkGolden(t, "sumall", x.SumAll(), c.Outputs["sumall"], atol, rtol)

	c = cases["matmul"]
	checkGolden(t, "matmul", c.Inputs["a"].tensor().MatMul(c.Inputs["b"].tensor()), c.Outputs["out"], atol, rtol)
	c = cases["matmul_nt"]
	checkGolden(t, "matmul_nt", c.Inputs["a"].tensor().MatMul(c.Inputs["b"].tensor().T2()), c.Outputs["out"], atol, rtol)

	c = cases["linear_f16"]
	w16 := c.Inputs["w"].tensor().To(F16)
	for i, bits := range w16.HalfData() {
		if float64(bits) != float64(c.Outputs["w_bits"].Data[i]) {
			t.Fatalf("f16 weight bits [%d]: %#x, torch %#x", i, bits, int(c.Outputs["w_bits"].Data[i]))
		}
	}
	checkGolden(t, "linear_f16", Linear(c.Inputs["x"].tensor(), w16, c.Inputs["b"].tensor()), c.Outputs["out"], atol, rtol)

	c = cases["conv2d_s2p1"]
	checkGolden(t, "conv2d", Conv2d(c.Inputs["x"].tensor(), c.Inputs["w"].tensor(), c.Inputs["b"].tensor(), ConvSquare(2, 1)), c.Outputs["out"], 1e-4, 1e-4)

	c = cases["groupnorm"]
	x, g, be := c.Inputs["x"].tensor(), c.Inputs["gamma"].tensor(), c.Inputs["beta"].tensor()
	checkGolden(t, "groupnorm", GroupNorm(x, 4, g, be, 1e-6, false), c.Outputs["out"], 1e-5, 1e-4)
	checkGolden(t, "groupnorm_silu", GroupNorm(x, 4, g, be, 1e-6, true), c.Outputs["out_silu"], 1e-5, 1e-4)

	c = cases["layernorm"]
	checkGolden(t, "layernorm", LayerNorm(c.Inputs["x"].tensor(), c.Inputs["gamma"].tensor(), c.Inputs["beta"].tensor(), 1e-5), c.Outputs["out"], 1e-5, 1e-4)

	c = cases["softmax"]
	checkGolden(t, "softmax", Softmax(c.Inputs["x"].tensor()), c.Outputs["out"], 1e-6, 1e-5)

	c = cases["activations"]
	x = c.Inputs["x"].tensor()
	checkGolden(t, "silu", SiLU(x), c.Outputs["silu"], 1e-6, 1e-5)
	checkGolden(t, "gelu", GELU(x), c.Outputs["gelu"], 1e-6, 1e-5)
	checkGolden(t, "gelu_tanh", GELUTanh(x), c.Outputs["gelu_tanh"], 1e-6, 1e-5)
	checkGolden(t, "quick_gelu", QuickGELU(x), c.Outputs["quick_gelu"], 1e-6, 1e-5)
	checkGolden(t, "sigmoid", x.Sigmoid(), c.Outputs["sigmoid"], 1e-6, 1e-5)

	c = cases["geglu"]
	checkGolden(t, "geglu", GEGLU(c.Inputs["x"].tensor()), c.Outputs["out"], 1e-6, 1e-5)
	c = cases["upsample"]
	checkGolden(t, "upsample", Upsample2xNearest(c.Inputs["x"].tensor()), c.Outputs["out"], 0, 0)

	c = cases["attention"]
	checkGolden(t, "attention", Attention(c.Inputs["q"].tensor(), c.Inputs["k"].tensor(), c.Inputs["v"].tensor(), 2, 0, false), c.Outputs["out"], 1e-5, 1e-4)

	for _, name := range []string{"timestep_shift1_flip0", "timestep_shift0_flip1"} {
		c = cases[name]
		ts := make([]int64, len(c.Inputs["t"].Data))
		for i, v := range c.Inputs["t"].Data {
			ts[i] = int64(v)
		}
		shift := float32(c.Params["shift"].(float64))
		flip := c.Params["flip"].(bool)
		// float32 sin/cos of arguments up to 999: allow the float32 argument rounding.
		checkGolden(t, name, TimestepEmbedding(FromInt64(ts), 16, flip, shift, 1, 10000), c.Outputs["out"], 2e-5, 1e-5)
	}

	c = cases["half"]
	x = c.Inputs["x"].tensor()
	h, bf := x.To(F16), x.To(BF16)
	for i := range x.Float32s() {
		if float64(h.HalfData()[i]) != float64(c.Outputs["f16_bits"].Data[i]) || float64(bf.HalfData()[i]) != float64(c.Outputs["bf16_bits"].Data[i]) {
			t.Fatalf("half bits [%d] of %v: f16 %#x bf16 %#x, torch %#x %#x", i, x.At(i), h.HalfData()[i], bf.HalfData()[i],
				int(c.Outputs["f16_bits"].Data[i]), int(c.Outputs["bf16_bits"].Data[i]))
		}
	}
	checkGolden(t, "f16", h, c.Outputs["f16"], 0, 0)
	checkGolden(t, "bf16", bf, c.Outputs["bf16"], 0, 0)
}

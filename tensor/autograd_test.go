package tensor

import (
	"errors"
	"math"
	"math/rand"
	"strings"
	"testing"
)

// leaf returns a random F32 leaf that requires a gradient (values scaled by
// s and shifted by c, to keep Log/Sqrt/Div in their domains).
func leaf(r *rand.Rand, s, c float32, shape ...int) *Tensor {
	x := randT(r, shape...)
	y := x.Affine(s, c)
	x.Release()
	return y.SetRequiresGrad(true)
}

// weightedLoss returns sum(R .* y) for a fixed random R of y's shape (so that
// every output element gets a distinct gradient), and R.
func weightedLoss(r *rand.Rand, y *Tensor) (loss, R *Tensor) {
	R = randT(r, y.Shape()...)
	p := y.Mul(R)
	loss = p.SumAll()
	p.Release()
	return loss, R
}

// numGrad returns the central-difference gradient of f at x (x's values are
// perturbed in place under NoGrad), computed in float64 from F32 forwards.
func numGrad(x *Tensor, f func() float64, h float32) []float64 {
	d := x.F32Data()
	g := make([]float64, len(d))
	for i := range d {
		old := d[i]
		d[i] = old + h
		fp := f()
		d[i] = old - h
		fm := f()
		d[i] = old
		g[i] = (fp - fm) / (2 * float64(h))
	}
	return g
}

// TestGradFiniteDifferences checks every recorded op's rule against central
// differences of the loss sum(R .* f(x)): an independent check of each rule
// (F32 forwards, h = 1e-2: tolerance 2e-2 of the largest gradient; sign,
// transpose or broadcast-reduction mistakes are O(1)).
func TestGradFiniteDifferences(t *testing.T) {
	for _, c := range gradCases() {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewSource(1))
			in := c.make(r)
			y := c.f(in)
			loss, R := weightedLoss(r, y)
			if err := Backward(loss); err != nil {
				t.Fatal(err)
			}
			eval := func() float64 {
				var v float64
				NoGrad(func() {
					out := c.f(in)
					p := out.Mul(R)
					v = float64(p.SumAll().Item())
				})
				return v
			}
			for k, x := range in {
				g := x.Grad()
				if g == nil {
					t.Fatalf("input %d has no gradient", k)
				}
				if !g.Shape().Equal(x.Shape()) {
					t.Fatalf("input %d: gradient shape %v, want %v", k, g.Shape(), x.Shape())
				}
				num := numGrad(x, eval, 1e-2)
				got := g.Float32s()
				scale := 0.0
				for _, v := range num {
					scale = math.Max(scale, math.Abs(v))
				}
				for i := range num {
					if math.Abs(float64(got[i])-num[i]) > 2e-2*math.Max(scale, 1) {
						t.Fatalf("input %d [%d]: analytic %v, numerical %v (scale %v)", k, i, got[i], num[i], scale)
					}
				}
			}
		})
	}
}

// gradCase is one recorded computation of the rule tests: make returns its
// leaf inputs (on the CPU), f computes the output from inputs on any device.
type gradCase struct {
	name string
	make func(r *rand.Rand) []*Tensor
	f    func(in []*Tensor) *Tensor
}

// gradCases covers every backward rule of the package (TestGradFiniteDifferences
// on the CPU, TestGradAccelMatchesCPU on the simulated device).
func gradCases() []gradCase {
	type inputs = []*Tensor
	return []gradCase{
		{"Add broadcast", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4), leaf(r, 1, 0, 4)} }, func(in inputs) *Tensor { return in[0].Add(in[1]) }},
		{"Sub broadcast", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 1, 3), leaf(r, 1, 0, 4, 1)} }, func(in inputs) *Tensor { return in[0].Sub(in[1]) }},
		{"Mul broadcast", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4), leaf(r, 1, 0, 3, 1)} }, func(in inputs) *Tensor { return in[0].Mul(in[1]) }},
		{"Div", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4), leaf(r, 0.2, 2, 4)} }, func(in inputs) *Tensor { return in[0].Div(in[1]) }},
		{"Affine", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 5)} }, func(in inputs) *Tensor { return in[0].Affine(-1.5, 2) }},
		{"Exp", func(r *rand.Rand) inputs { return inputs{leaf(r, 0.5, 0, 5)} }, func(in inputs) *Tensor { return in[0].Exp() }},
		{"Log", func(r *rand.Rand) inputs { return inputs{leaf(r, 0.2, 2, 5)} }, func(in inputs) *Tensor { return in[0].Log() }},
		{"Sqrt", func(r *rand.Rand) inputs { return inputs{leaf(r, 0.2, 2, 5)} }, func(in inputs) *Tensor { return in[0].Sqrt() }},
		{"Rsqrt", func(r *rand.Rand) inputs { return inputs{leaf(r, 0.2, 2, 5)} }, func(in inputs) *Tensor { return in[0].Rsqrt() }},
		{"Square", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 5)} }, func(in inputs) *Tensor { return in[0].Square() }},
		{"Pow", func(r *rand.Rand) inputs { return inputs{leaf(r, 0.2, 2, 5)} }, func(in inputs) *Tensor { return in[0].Pow(1.7) }},
		{"Recip", func(r *rand.Rand) inputs { return inputs{leaf(r, 0.2, 2, 5)} }, func(in inputs) *Tensor { return in[0].Recip() }},
		{"Sin Cos", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 5)} }, func(in inputs) *Tensor {
			a, b := in[0].Sin(), in[0].Cos()
			return a.Mul(b)
		}},
		{"Tanh", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 5)} }, func(in inputs) *Tensor { return in[0].Tanh() }},
		{"Sigmoid", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 5)} }, func(in inputs) *Tensor { return in[0].Sigmoid() }},
		{"Sum keepdim", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4)} }, func(in inputs) *Tensor { return in[0].Sum(1, true) }},
		{"Mean", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4)} }, func(in inputs) *Tensor { return in[0].Mean(0, false) }},
		{"MeanAll", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4)} }, func(in inputs) *Tensor { return in[0].MeanAll() }},
		{"Reshape Permute", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 3, 4)} }, func(in inputs) *Tensor {
			return in[0].Reshape(6, 4).Transpose(0, 1).Reshape(2, 2, 6).Permute(2, 0, 1)
		}},
		{"Slice Select Narrow", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 4, 5)} }, func(in inputs) *Tensor {
			a := in[0].Slice(1, 1, 4)
			b := in[0].Select(0, 2).Unsqueeze(0)
			c := in[0].Narrow(0, -2, 1)
			return Cat(0, a.Narrow(1, 0, 3), b.Narrow(1, 2, 3), c.Narrow(1, 1, 3))
		}},
		{"Expand Squeeze", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 1)} }, func(in inputs) *Tensor {
			return in[0].Expand(2, 3, 4).Squeeze().Contiguous()
		}},
		{"Cat Stack Chunk", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 3), leaf(r, 1, 0, 2, 3)} }, func(in inputs) *Tensor {
			s := Stack(1, in[0], in[1]) // [2, 2, 3]
			parts := s.Chunk(2, 2)
			return Cat(2, parts[1], parts[0], in[0].Unsqueeze(1).Expand(2, 2, 3))
		}},
		{"MatMul batched broadcast", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 3, 4), leaf(r, 1, 0, 4, 5)} }, func(in inputs) *Tensor { return in[0].MatMul(in[1]) }},
		{"MatMul vector", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 4), leaf(r, 1, 0, 4, 3)} }, func(in inputs) *Tensor { return in[0].MatMul(in[1]) }},
		{"MatMul transposed view", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4), leaf(r, 1, 0, 5, 4)} }, func(in inputs) *Tensor { return in[0].MatMul(in[1].T2()) }},
		{"Linear", func(r *rand.Rand) inputs {
			return inputs{leaf(r, 1, 0, 2, 3, 4), leaf(r, 1, 0, 5, 4), leaf(r, 1, 0, 5)}
		}, func(in inputs) *Tensor { return Linear(in[0], in[1], in[2]) }},
		{"MSELoss", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 3), leaf(r, 1, 0, 2, 3)} }, func(in inputs) *Tensor { return MSELoss(in[0], in[1]) }},
		{"GroupNorm SiLU", func(r *rand.Rand) inputs {
			return inputs{leaf(r, 1, 0.3, 2, 4, 3, 2), leaf(r, 0.5, 1, 4), leaf(r, 1, 0, 4)}
		}, func(in inputs) *Tensor {
			return GroupNorm(in[0], 2, in[1], in[2], 1e-5, true)
		}},
		{"GroupNorm plain", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 6, 5), leaf(r, 0.5, 1, 6), leaf(r, 1, 0, 6)} }, func(in inputs) *Tensor {
			return GroupNorm(in[0], 3, in[1], in[2], 1e-6, false)
		}},
		{"LayerNorm", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 7), leaf(r, 0.5, 1, 7), leaf(r, 1, 0, 7)} }, func(in inputs) *Tensor {
			return LayerNorm(in[0], in[1], in[2], 1e-5)
		}},
		{"Softmax", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 5)} }, func(in inputs) *Tensor { return Softmax(in[0]) }},
		{"Activations", func(r *rand.Rand) inputs { return inputs{leaf(r, 2, 0, 8)} }, func(in inputs) *Tensor {
			return Cat(0, SiLU(in[0]), GELU(in[0]), GELUTanh(in[0]), QuickGELU(in[0]))
		}},
		{"GEGLU", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 8)} }, func(in inputs) *Tensor { return GEGLU(in[0]) }},
		{"Upsample", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 1, 2, 3, 2)} }, func(in inputs) *Tensor { return Upsample2xNearest(in[0]) }},
		{"Embedding", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 5, 3)} }, func(in inputs) *Tensor {
			ids := FromInt64([]int64{4, 1, 4, 0}, 2, 2)
			return Embedding(ids.ToDevice(in[0].Device()), in[0]) // I64 ids are host memory anywhere
		}},
		{"Conv2d 3x3 pad 1", func(r *rand.Rand) inputs {
			return inputs{leaf(r, 1, 0, 2, 3, 5, 4), leaf(r, 0.3, 0, 4, 3, 3, 3), leaf(r, 1, 0, 4)}
		}, func(in inputs) *Tensor {
			return Conv2d(in[0], in[1], in[2], ConvSquare(1, 1))
		}},
		{"Conv2d stride 2", func(r *rand.Rand) inputs {
			return inputs{leaf(r, 1, 0, 1, 2, 7, 6), leaf(r, 0.3, 0, 3, 2, 3, 3), leaf(r, 1, 0, 3)}
		}, func(in inputs) *Tensor {
			return Conv2d(in[0], in[1], in[2], ConvSquare(2, 1))
		}},
		{"Conv2d 1x1 no bias", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 3, 2, 3), leaf(r, 0.5, 0, 5, 3, 1, 1)} }, func(in inputs) *Tensor {
			return Conv2d(in[0], in[1], nil, ConvOpts{})
		}},
		{"Attention self", func(r *rand.Rand) inputs {
			return inputs{leaf(r, 1, 0, 2, 5, 8), leaf(r, 1, 0, 2, 5, 8), leaf(r, 1, 0, 2, 5, 8)}
		}, func(in inputs) *Tensor {
			return Attention(in[0], in[1], in[2], 2, 0, false)
		}},
		{"Attention causal", func(r *rand.Rand) inputs {
			return inputs{leaf(r, 1, 0, 2, 4, 6), leaf(r, 1, 0, 2, 4, 6), leaf(r, 1, 0, 2, 4, 6)}
		}, func(in inputs) *Tensor {
			return Attention(in[0], in[1], in[2], 3, 0, true)
		}},
		{"Attention cross fused views", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 1, 4, 6), leaf(r, 1, 0, 1, 3, 12)} }, func(in inputs) *Tensor {
			k, v := in[1].Narrow(2, 0, 6), in[1].Narrow(2, 6, 6)
			return Attention(in[0], k, v, 3, 0.7, false)
		}},
		{"Attention wide head", func(r *rand.Rand) inputs { // unfused on accelerators
			return inputs{leaf(r, 0.3, 0, 1, 3, 264), leaf(r, 0.3, 0, 1, 4, 264), leaf(r, 1, 0, 1, 4, 264)}
		}, func(in inputs) *Tensor {
			return Attention(in[0], in[1], in[2], 1, 0, false)
		}},
		{"Clone Split Flatten scalar ops", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 2, 4)} }, func(in inputs) *Tensor {
			parts := in[0].Clone().Split([]int{1, 3}, 1)
			return Cat(1, parts[1].Neg().AddScalar(1), parts[0].MulScalar(2)).Flatten(0, 1)
		}},
		{"Pad2d Clamp", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 1, 2, 3, 2)} }, func(in inputs) *Tensor {
			return Pad2d(in[0], 1, 2, 0, 1).Clamp(-0.7, 0.8)
		}},
		{"AddInPlace rebase", func(r *rand.Rand) inputs { return inputs{leaf(r, 1, 0, 3, 4), leaf(r, 1, 0, 4)} }, func(in inputs) *Tensor {
			h := in[0].Mul(in[0]) // saves its inputs, not its output
			h.AddInPlace(in[1])
			h.MulScalarInPlace(3)
			h.SubInPlace(in[0])
			return h.Tanh()
		}},
	}
}

// TestGradHandDerived compares gradients with formulas evaluated in float64
// loops: loss = sum(R .* (A B + bias)) gives dA = R B^T, dB = A^T R, dbias =
// column sums of R; MSE gives 2 (p - t) / n.
func TestGradHandDerived(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	const m, k, n = 5, 7, 3
	A, B, bias := leaf(r, 1, 0, m, k), leaf(r, 1, 0, k, n), leaf(r, 1, 0, n)
	y := A.MatMul(B).Add(bias)
	loss, R := weightedLoss(r, y)
	if err := Backward(loss); err != nil {
		t.Fatal(err)
	}
	a, b, rr := A.Float32s(), B.Float32s(), R.Float32s()
	wantA := make([]float32, m*k)
	wantB := make([]float32, k*n)
	wantBias := make([]float32, n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			wantBias[j] += rr[i*n+j]
			for p := 0; p < k; p++ {
				wantA[i*k+p] += float32(float64(rr[i*n+j]) * float64(b[p*n+j]))
				wantB[p*n+j] += float32(float64(a[i*k+p]) * float64(rr[i*n+j]))
			}
		}
	}
	requireClose(t, "dA", A.Grad().Float32s(), wantA, 1e-5, 1e-5)
	requireClose(t, "dB", B.Grad().Float32s(), wantB, 1e-5, 1e-5)
	requireClose(t, "dbias", bias.Grad().Float32s(), wantBias, 1e-5, 1e-5)

	p, q := leaf(r, 1, 0, 4, 6), randT(r, 4, 6)
	l := MSELoss(p, q)
	if err := Backward(l); err != nil {
		t.Fatal(err)
	}
	pv, qv := p.Float32s(), q.Float32s()
	want := make([]float32, len(pv))
	for i := range pv {
		want[i] = float32(2 * (float64(pv[i]) - float64(qv[i])) / float64(len(pv)))
	}
	requireClose(t, "dMSE", p.Grad().Float32s(), want, 1e-7, 1e-5)
	if q.Grad() != nil {
		t.Fatal("a tensor that does not require a gradient got one")
	}
}

// TestGradAccumulatesAndReleases: gradients add up over Backward calls and
// over several uses of a leaf; releasing intermediate handles during the
// forward (as model code does) does not disturb the saved values.
func TestGradAccumulatesAndReleases(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	x := leaf(r, 1, 0, 6)
	run := func() {
		a := x.Mul(x)      // x^2
		b := a.Mul(x)      // x^3
		a.Release()        // a is saved by b's rule through its own handle
		c := b.Add(x)      // x^3 + x
		b.Release()        // released before Backward
		loss := c.SumAll() // d/dx = 3x^2 + 1
		c.Release()
		if err := Backward(loss); err != nil {
			t.Fatal(err)
		}
	}
	run()
	run()
	xv := x.Float32s()
	want := make([]float32, len(xv))
	for i, v := range xv {
		want[i] = 2 * (3*v*v + 1)
	}
	requireClose(t, "two backwards", x.Grad().Float32s(), want, 1e-5, 1e-5)
	x.ZeroGrad()
	if x.Grad() != nil {
		t.Fatal("ZeroGrad left a gradient")
	}
}

// TestBackwardErrors: bad uses give errors (or, for programmer errors,
// panics), never silent wrong gradients.
func TestBackwardErrors(t *testing.T) {
	r := rand.New(rand.NewSource(4))
	x := leaf(r, 1, 0, 3)
	y := x.Mul(x)
	if err := Backward(y); err == nil || !strings.Contains(err.Error(), "expected a scalar") {
		t.Fatalf("non-scalar loss: %v", err)
	}
	plain := randT(r, 3).SumAll()
	if err := Backward(plain); err == nil || !strings.Contains(err.Error(), "does not require a gradient") {
		t.Fatalf("loss without gradient: %v", err)
	}
	var nog *Tensor
	NoGrad(func() { nog = x.Mul(x).SumAll() })
	if nog.RequiresGrad() {
		t.Fatal("NoGrad recorded")
	}
	if err := Backward(nog); err == nil {
		t.Fatal("Backward through a NoGrad result succeeded")
	}

	// Twice over a freed graph; RetainGraph keeps it.
	loss := y.SumAll()
	if err := Backward(loss, BackwardOptions{RetainGraph: true}); err != nil {
		t.Fatal(err)
	}
	if err := Backward(loss); err != nil {
		t.Fatalf("second Backward after RetainGraph: %v", err)
	}
	if err := Backward(loss); !errors.Is(err, ErrGraphFreed) {
		t.Fatalf("third Backward: %v, want ErrGraphFreed", err)
	}

	// A saved value modified in place (under NoGrad, so that the write
	// itself is allowed) is detected at Backward.
	x.ZeroGrad()
	e := x.Exp() // saves its output
	l2 := e.SumAll()
	NoGrad(func() { e.MulScalarInPlace(2) })
	if err := Backward(l2); !errors.Is(err, ErrModifiedInPlace) || !strings.Contains(err.Error(), "Exp") {
		t.Fatalf("modified saved value: %v", err)
	}
	if x.Grad() != nil {
		t.Fatal("a failed Backward left a gradient")
	}

	// In-place writes into a leaf that requires a gradient, or into a shared
	// recorded value, panic while recording.
	requirePanic(t, "in-place leaf", func() { x.AddScalarInPlace(1) })
	z := x.Mul(x)
	v := z.Detach()
	requirePanic(t, "in-place shared", func() { z.AddInPlace(x) })
	v.Release()
	// An in-place write into a value a rule saved is recorded, and
	// Backward then reports it.
	x.ZeroGrad()
	ex := x.Exp() // saves its output
	ex.AddInPlace(x)
	if err := Backward(ex.SumAll()); !errors.Is(err, ErrModifiedInPlace) {
		t.Fatalf("in-place write into a saved output: %v", err)
	}
	// Ops without a rule refuse to record instead of cutting the graph.
	requirePanic(t, "no rule Max", func() { x.Max(0, false) })
	requirePanic(t, "no rule Abs", func() { x.Abs() })
	// Under NoGrad they run.
	NoGrad(func() { x.Abs().Release() })

	// Reading values out (Float32s, Item, SaveSafetensors' bytes) works on
	// tensors that require a gradient and records nothing that matters.
	if got := x.Float32s(); len(got) != 3 {
		t.Fatalf("Float32s of a leaf: %v", got)
	}
	if b := appendBytes(nil, x); len(b) != 12 {
		t.Fatalf("appendBytes of a leaf: %d bytes", len(b))
	}

	// Detach cuts the graph: only the attached path contributes.
	x.ZeroGrad()
	d := x.Detach()
	l3 := x.Mul(d).SumAll() // d/dx = d = x
	if err := Backward(l3); err != nil {
		t.Fatal(err)
	}
	requireClose(t, "detach", x.Grad().Float32s(), x.Float32s(), 0, 0)
}

// TestInferenceRecordsNothing: without a tensor that requires a gradient no
// op attaches autograd state.
func TestInferenceRecordsNothing(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	a, b := randT(r, 3, 4), randT(r, 4, 2)
	for _, y := range []*Tensor{a.MatMul(b), a.Exp().Add(a), Linear(a, b.T2(), nil), a.Reshape(12).Slice(0, 2, 5), Cat(0, a, a)} {
		if y.ag != nil {
			t.Fatalf("inference output carries autograd state: %+v", y.ag)
		}
	}
}

// TestCheckpointSameGradients: a block run through Checkpoint gives
// bit-identical gradients for its input and the parameters it uses, also
// when the input itself needs no gradient, and keeps no intermediate of the
// block in the graph (its node saves only the inputs).
func TestCheckpointSameGradients(t *testing.T) {
	r := rand.New(rand.NewSource(6))
	w1, b1 := leaf(r, 0.5, 0, 6, 4), leaf(r, 1, 0, 6)
	w2 := leaf(r, 0.5, 0, 4, 6)
	block := func(in []*Tensor) *Tensor {
		h := GELU(Linear(in[0], w1, b1))
		return Linear(h, w2, nil).Tanh().Add(in[0])
	}
	run := func(ck bool, xReq bool) ([][]float32, *Tensor) {
		for _, p := range []*Tensor{w1, b1, w2} {
			p.ZeroGrad()
		}
		x := randT(rand.New(rand.NewSource(7)), 3, 4)
		if xReq {
			x.SetRequiresGrad(true)
		}
		var y *Tensor
		if ck {
			y = Checkpoint(block, x)
			if len(y.ag.node.saved) != 1 {
				t.Fatalf("the checkpoint node saves %d values, want only its input", len(y.ag.node.saved))
			}
		} else {
			y = block([]*Tensor{x})
		}
		loss, _ := weightedLoss(rand.New(rand.NewSource(8)), y.Square())
		if err := Backward(loss); err != nil {
			t.Fatal(err)
		}
		out := [][]float32{w1.Grad().Float32s(), b1.Grad().Float32s(), w2.Grad().Float32s()}
		if xReq {
			out = append(out, x.Grad().Float32s())
		}
		return out, x
	}
	for _, xReq := range []bool{true, false} {
		plain, _ := run(false, xReq)
		ck, _ := run(true, xReq)
		if len(plain) != len(ck) {
			t.Fatalf("%d gradients with checkpointing, %d without", len(ck), len(plain))
		}
		for i := range plain {
			requireClose(t, "checkpointed gradient", ck[i], plain[i], 0, 0)
		}
	}
	// Under NoGrad (inference) Checkpoint is the plain call.
	NoGrad(func() {
		y := Checkpoint(block, randT(r, 3, 4))
		if y.ag != nil {
			t.Fatal("Checkpoint recorded under NoGrad")
		}
	})
}

// TestCheckpointBitIdenticalSharedInputs checks the summation order: an
// input used before, inside (twice) and after checkpointed blocks, and a
// context tensor used twice by each of two blocks, get bit-identical
// gradients with and without checkpointing.
func TestCheckpointBitIdenticalSharedInputs(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	w1, w2 := leaf(r, 0.5, 0, 5, 5), leaf(r, 0.5, 0, 5, 5)
	wk, wv := leaf(r, 0.5, 0, 5, 5), leaf(r, 0.5, 0, 5, 5)
	block := func(w *Tensor) func(in []*Tensor) *Tensor {
		return func(in []*Tensor) *Tensor {
			x, ctx := in[0], in[1]
			h := Linear(x, w, nil).Tanh()
			k := Linear(ctx, wk, nil)
			v := Linear(ctx, wv, nil).Sigmoid()
			return h.Mul(k).Add(v).Add(x).Mul(x)
		}
	}
	run := func(ck bool) [][]float32 {
		for _, p := range []*Tensor{w1, w2, wk, wv} {
			p.ZeroGrad()
		}
		x := randT(rand.New(rand.NewSource(10)), 4, 5).SetRequiresGrad(true)
		ctx := randT(rand.New(rand.NewSource(11)), 4, 5).SetRequiresGrad(true)
		pre := x.Square() // a consumer of x before the blocks
		call := func(f func([]*Tensor) *Tensor, in ...*Tensor) *Tensor {
			if ck {
				return Checkpoint(f, in...)
			}
			return f(in)
		}
		y1 := call(block(w1), x, ctx)
		y2 := call(block(w2), y1, ctx)
		out := y2.Add(pre).Add(x).Add(y1) // consumers after the blocks
		loss, _ := weightedLoss(rand.New(rand.NewSource(12)), out)
		if err := Backward(loss); err != nil {
			t.Fatal(err)
		}
		return [][]float32{x.Grad().Float32s(), ctx.Grad().Float32s(), w1.Grad().Float32s(),
			w2.Grad().Float32s(), wk.Grad().Float32s(), wv.Grad().Float32s()}
	}
	plain, ck := run(false), run(true)
	names := []string{"x", "ctx", "w1", "w2", "wk", "wv"}
	for i := range plain {
		for j := range plain[i] {
			if plain[i][j] != ck[i][j] {
				t.Fatalf("%s[%d]: checkpointed %v, plain %v: not bit-identical", names[i], j, ck[i][j], plain[i][j])
			}
		}
	}
}

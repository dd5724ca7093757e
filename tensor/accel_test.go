package tensor

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"strings"
	"testing"
)

// The accelerator code path (accel.go) is checked on the simulated device:
// every op runs on "sim" from the same inputs (and the same views of them) as
// on the CPU, and the results are compared. With compute dtype F32 they must
// agree to float rounding; with F16 and BF16 within the error of 16-bit
// storage. The CUDA device runs the same accelBackend with other kernels (its
// kernels are checked against kernels/cpu by kernels/kerneltest).

// openSim opens a fresh simulated device with compute dtype dt.
func openSim(t *testing.T, idx int, dt DType) Device {
	t.Helper()
	d, err := Open(fmt.Sprintf("sim:%d", idx))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetComputeDType(d, dt); err != nil {
		t.Fatal(err)
	}
	return d
}

// tolFor returns the tolerances for results computed in dt from N(0,1) data.
func tolFor(dt DType) (atol, rtol float64) {
	switch dt {
	case F16:
		return 2e-2, 1e-2
	case BF16:
		return 1.5e-1, 4e-2
	}
	return 1e-5, 1e-5
}

type accelCase struct {
	name string
	// in are the CPU inputs; fn builds the result from inputs on one device
	// (it may take views of them).
	in func(r *rand.Rand) []*Tensor
	fn func(in []*Tensor) *Tensor
	// scale widens the absolute tolerance for ops whose results grow with
	// the inputs (long sums).
	scale float64
	// copies marks data movement (views, copies, conversions), whose result
	// keeps its input's dtype instead of taking the compute dtype.
	copies bool
}

func rt(shape ...int) func(r *rand.Rand) *Tensor {
	return func(r *rand.Rand) *Tensor { return randT(r, shape...) }
}

func inputs(fs ...func(r *rand.Rand) *Tensor) func(r *rand.Rand) []*Tensor {
	return func(r *rand.Rand) []*Tensor {
		out := make([]*Tensor, len(fs))
		for i, f := range fs {
			out[i] = f(r)
		}
		return out
	}
}

func accelCases() []accelCase {
	half := func(f func(r *rand.Rand) *Tensor) func(r *rand.Rand) *Tensor {
		return func(r *rand.Rand) *Tensor { return f(r).To(F16) }
	}
	pos := func(f func(r *rand.Rand) *Tensor) func(r *rand.Rand) *Tensor {
		return func(r *rand.Rand) *Tensor { return f(r).Abs().AddScalar(0.5) }
	}
	return []accelCase{
		{name: "Add broadcast", in: inputs(rt(2, 3, 5), rt(3, 1)), fn: func(x []*Tensor) *Tensor { return x[0].Add(x[1]) }},
		{name: "Sub transposed", in: inputs(rt(4, 6), rt(6, 4)), fn: func(x []*Tensor) *Tensor { return x[0].Sub(x[1].T2()) }},
		{name: "Mul scalar-like", in: inputs(rt(3, 7), rt(1)), fn: func(x []*Tensor) *Tensor { return x[0].Mul(x[1]) }},
		{name: "Div", in: inputs(rt(17), pos(rt(17))), fn: func(x []*Tensor) *Tensor { return x[0].Div(x[1]) }},
		{name: "Maximum", in: inputs(rt(2, 9), rt(2, 9)), fn: func(x []*Tensor) *Tensor { return x[0].Maximum(x[1]) }},
		{name: "Minimum half input", in: inputs(rt(5, 3), half(rt(5, 3))), fn: func(x []*Tensor) *Tensor { return x[0].Minimum(x[1]) }},
		{name: "AddInPlace broadcast", in: inputs(rt(2, 4, 3, 3), rt(2, 4, 1, 1)), fn: func(x []*Tensor) *Tensor {
			y := x[0].MulScalar(1)
			return y.AddInPlace(x[1])
		}},
		{name: "MulInPlace into a slice", in: inputs(rt(6, 8), rt(8)), fn: func(x []*Tensor) *Tensor {
			y := x[0].MulScalar(2)
			v := y.Narrow(0, 1, 3)
			v.MulInPlace(x[1])
			v.Release()
			return y
		}},
		{name: "Affine", in: inputs(rt(33)), fn: func(x []*Tensor) *Tensor { return x[0].Affine(-1.5, 0.25) }},
		{name: "Exp permuted", in: inputs(rt(3, 4, 5)), fn: func(x []*Tensor) *Tensor { return x[0].Permute(2, 0, 1).Exp() }},
		{name: "Sqrt", in: inputs(pos(rt(40))), fn: func(x []*Tensor) *Tensor { return x[0].Sqrt() }},
		{name: "Clamp", in: inputs(rt(40)), fn: func(x []*Tensor) *Tensor { return x[0].Clamp(-0.5, 0.7) }},
		{name: "Tanh", in: inputs(rt(5, 5)), fn: func(x []*Tensor) *Tensor { return x[0].Tanh() }},
		{name: "Sum", in: inputs(rt(4, 6, 5)), scale: 3, fn: func(x []*Tensor) *Tensor { return x[0].Sum(1, false) }},
		{name: "Mean keepdim", in: inputs(rt(4, 6, 5)), fn: func(x []*Tensor) *Tensor { return x[0].Mean(-1, true) }},
		{name: "Var", in: inputs(rt(3, 50)), fn: func(x []*Tensor) *Tensor { return x[0].Var(1, false) }},
		{name: "MaxAll", in: inputs(rt(7, 3)), fn: func(x []*Tensor) *Tensor { return x[0].MaxAll() }},
		{name: "ArgMax", in: inputs(rt(4, 9)), fn: func(x []*Tensor) *Tensor { return x[0].ArgMax(1, false) }},
		{name: "Contiguous of a permutation", copies: true, in: inputs(rt(2, 3, 4, 5)), fn: func(x []*Tensor) *Tensor { return x[0].Permute(0, 2, 3, 1).Contiguous() }},
		{name: "Cat", copies: true, in: inputs(rt(2, 3, 4), rt(2, 5, 4)), fn: func(x []*Tensor) *Tensor { return Cat(1, x[0], x[1]) }},
		{name: "Stack", copies: true, in: inputs(rt(3, 4), rt(3, 4)), fn: func(x []*Tensor) *Tensor { return Stack(0, x[0], x[1]) }},
		{name: "Expand then Clone", copies: true, in: inputs(rt(3, 1)), fn: func(x []*Tensor) *Tensor { return x[0].Expand(2, 3, 4).Clone() }},
		{name: "CopyFrom broadcast", in: inputs(rt(4, 6), rt(6)), fn: func(x []*Tensor) *Tensor {
			y := x[0].MulScalar(1)
			v := y.Slice(0, 1, 3)
			v.CopyFrom(x[1])
			v.Release()
			return y
		}},
		{name: "To F16 and back", copies: true, in: inputs(rt(9, 2)), fn: func(x []*Tensor) *Tensor { return x[0].To(F16).To(F32) }},
		{name: "To BF16", copies: true, in: inputs(rt(9, 2)), fn: func(x []*Tensor) *Tensor { return x[0].To(BF16) }},
		{name: "MatMul batched transposed", in: inputs(rt(3, 5, 16), rt(3, 7, 16)), scale: 3, fn: func(x []*Tensor) *Tensor { return x[0].MatMul(x[1].T2()) }},
		{name: "MatMul broadcast batch", in: inputs(rt(2, 1, 4, 8), rt(3, 8, 6)), scale: 3, fn: func(x []*Tensor) *Tensor { return x[0].MatMul(x[1]) }},
		{name: "MatMul vector", in: inputs(rt(8), rt(8, 5)), scale: 3, fn: func(x []*Tensor) *Tensor { return x[0].MatMul(x[1]) }},
		{name: "Linear F32 weight", in: inputs(rt(2, 3, 24), rt(10, 24), rt(10)), scale: 4, fn: func(x []*Tensor) *Tensor { return Linear(x[0], x[1], x[2]) }},
		{name: "Linear F16 weight, no bias", in: inputs(rt(5, 32), half(rt(12, 32))), scale: 4, fn: func(x []*Tensor) *Tensor { return Linear(x[0], x[1], nil) }},
		{name: "Linear on a narrowed input", in: inputs(rt(4, 40), rt(8, 16), rt(8)), scale: 4, fn: func(x []*Tensor) *Tensor {
			return Linear(x[0].Narrow(1, 8, 16), x[1], x[2])
		}},
		{name: "Conv2d 3x3", in: inputs(rt(2, 5, 9, 7), rt(6, 5, 3, 3), rt(6)), scale: 5, fn: func(x []*Tensor) *Tensor {
			return Conv2d(x[0], x[1], x[2], ConvSquare(1, 1))
		}},
		{name: "Conv2d stride 2 F16 weight", in: inputs(rt(1, 4, 8, 8), half(rt(3, 4, 3, 3)), rt(3)), scale: 5, fn: func(x []*Tensor) *Tensor {
			return Conv2d(x[0], x[1], x[2], ConvSquare(2, 1))
		}},
		{name: "Conv2d 1x1 no bias", in: inputs(rt(2, 8, 3, 5), rt(4, 8, 1, 1)), scale: 3, fn: func(x []*Tensor) *Tensor {
			return Conv2d(x[0], x[1], nil, ConvOpts{})
		}},
		{name: "GroupNorm SiLU", in: inputs(rt(2, 8, 5, 3), rt(8), rt(8)), fn: func(x []*Tensor) *Tensor { return GroupNorm(x[0], 4, x[1], x[2], 1e-5, true) }},
		{name: "GroupNorm no affine", in: inputs(rt(1, 6, 10)), fn: func(x []*Tensor) *Tensor { return GroupNorm(x[0], 3, nil, nil, 1e-6, false) }},
		{name: "LayerNorm", in: inputs(rt(3, 4, 20), rt(20), rt(20)), fn: func(x []*Tensor) *Tensor { return LayerNorm(x[0], x[1], x[2], 1e-5) }},
		{name: "Softmax", in: inputs(rt(6, 11)), fn: func(x []*Tensor) *Tensor { return Softmax(x[0]) }},
		{name: "SiLU", in: inputs(rt(50)), fn: func(x []*Tensor) *Tensor { return SiLU(x[0]) }},
		{name: "GELU", in: inputs(rt(50)), fn: func(x []*Tensor) *Tensor { return GELU(x[0]) }},
		{name: "QuickGELU", in: inputs(rt(50)), fn: func(x []*Tensor) *Tensor { return QuickGELU(x[0]) }},
		{name: "GEGLU", in: inputs(rt(3, 2, 12)), fn: func(x []*Tensor) *Tensor { return GEGLU(x[0]) }},
		{name: "Upsample2xNearest", in: inputs(rt(2, 3, 4, 5)), fn: func(x []*Tensor) *Tensor { return Upsample2xNearest(x[0]) }},
		{name: "TimestepEmbedding", in: inputs(func(*rand.Rand) *Tensor { return FromFloat32([]float32{1, 500, 999}) }), fn: func(x []*Tensor) *Tensor {
			return TimestepEmbedding(x[0], 32, true, 0, 1, 10000)
		}},
		{name: "Attention", in: inputs(rt(2, 9, 16), rt(2, 7, 16), rt(2, 7, 16)), fn: func(x []*Tensor) *Tensor { return Attention(x[0], x[1], x[2], 2, 0, false) }},
		{name: "Attention causal on fused qkv views", in: inputs(rt(2, 6, 24)), fn: func(x []*Tensor) *Tensor {
			qkv := x[0].Chunk(3, -1)
			return Attention(qkv[0], qkv[1], qkv[2], 2, 0, true)
		}},
		{name: "Attention with a wide head (unfused)", in: inputs(rt(2, 12, 2*300), rt(2, 5, 2*300), rt(2, 5, 2*300)), fn: func(x []*Tensor) *Tensor {
			return Attention(x[0], x[1], x[2], 2, 0.05, false)
		}},
		{name: "Attention, single wide head on views", in: inputs(rt(1, 9, 3*272)), fn: func(x []*Tensor) *Tensor {
			qkv := x[0].Chunk(3, -1)
			return Attention(qkv[0], qkv[1], qkv[2], 1, 0.05, false)
		}},
		{name: "Embedding", in: inputs(func(*rand.Rand) *Tensor { return FromInt64([]int64{3, 0, 3, 9, 1, 2}, 2, 3) }, rt(10, 8)), fn: func(x []*Tensor) *Tensor {
			return Embedding(x[0], x[1])
		}},
	}
}

func TestAccelMatchesCPU(t *testing.T) {
	for i, dt := range []DType{F32, F16, BF16} {
		runAccelCases(t, openSim(t, 10+i, dt), dt)
	}
}

// runAccelCases runs accelCases on dev (computing in dt) against the CPU.
func runAccelCases(t *testing.T, dev Device, dt DType) {
	atol, rtol := tolFor(dt)
	for _, c := range accelCases() {
		t.Run(fmt.Sprintf("%v/%s", dt, c.name), func(t *testing.T) {
			r := rand.New(rand.NewSource(int64(len(c.name))))
			in := c.in(r)
			want := c.fn(in)
			din := make([]*Tensor, len(in))
			for j, x := range in {
				din[j] = x.ToDevice(dev)
			}
			got := c.fn(din)
			if got.Device() != dev {
				t.Fatalf("result on %v, want %v", got.Device(), dev)
			}
			if !got.Shape().Equal(want.Shape()) {
				t.Fatalf("shape %v, want %v", got.Shape(), want.Shape())
			}
			switch {
			case want.DType() == I64:
				if got.DType() != I64 {
					t.Fatalf("dtype %v, want I64", got.DType())
				}
				if fmt.Sprint(got.Int64s()) != fmt.Sprint(want.Int64s()) {
					t.Fatalf("got %v, want %v", got.Int64s(), want.Int64s())
				}
				return
			case c.copies && got.DType() != want.DType():
				t.Fatalf("result dtype %v, want %v as on the CPU", got.DType(), want.DType())
			case !c.copies && got.DType() != dt:
				t.Fatalf("result dtype %v, want the compute dtype %v", got.DType(), dt)
			}
			s := max(c.scale, 1)
			requireClose(t, c.name, got.Float32s(), want.Float32s(), atol*s, rtol)
		})
	}
}

// A round trip to the device and back is exact in every dtype, for any view.
func TestAccelTransfers(t *testing.T) {
	checkTransfers(t, openSim(t, 20, F16))
	// Device to device goes through the host.
	dev, d2 := openSim(t, 24, F16), openSim(t, 21, F32)
	x := randT(rand.New(rand.NewSource(1)), 3, 4, 5)
	a := x.ToDevice(dev).ToDevice(d2)
	if a.Device() != d2 || fmt.Sprint(a.Float32s()) != fmt.Sprint(x.Float32s()) {
		t.Fatal("sim:24 -> sim:21 copy differs")
	}
}

func checkTransfers(t *testing.T, dev Device) {
	r := rand.New(rand.NewSource(1))
	x := randT(r, 3, 4, 5)
	for _, dt := range []DType{F32, F16, BF16, I64} {
		src := x.MulScalar(10).To(dt)
		v := src.Permute(2, 0, 1).Narrow(0, 1, 3)
		d := v.ToDevice(dev)
		if d.DType() != dt || d.Device() != dev {
			t.Fatalf("%v: on device as %v %v", dt, d.DType(), d.Device())
		}
		back := d.ToDevice(CPU)
		if fmt.Sprint(back.Float32s()) != fmt.Sprint(v.Float32s()) {
			t.Fatalf("%v: round trip changed the values", dt)
		}
		if got, want := d.At(2, 1, 3), v.At(2, 1, 3); got != want {
			t.Fatalf("%v: At %v, want %v", dt, got, want)
		}
	}
}

// Released device tensors give their memory back; outputs are fully written
// (fresh simulated buffers hold NaN, which would show in results).
func TestAccelMemory(t *testing.T) {
	dev := openSim(t, 22, F16)
	checkMemory(t, dev)
	if m := DeviceMemory(dev); m.InUse != 0 {
		t.Fatalf("%d bytes in use after releasing every tensor of the device", m.InUse)
	}
}

// checkMemory checks that released tensors give their memory back and that
// outputs are fully written. Other tests' dropped tensors may be collected
// meanwhile (their memory returns too), so it checks the drop on release.
func checkMemory(t *testing.T, dev Device) {
	r := rand.New(rand.NewSource(2))
	x := randT(r, 2, 4, 8, 8).ToDevice(dev)
	w := randT(r, 4, 4, 3, 3).To(F16).ToDevice(dev)
	const bytes = 2*4*8*8*4 + 4*4*9*2
	for range 3 {
		y := Conv2d(x, w, nil, ConvSquare(1, 1))
		z := SiLU(y)
		y.Release()
		for _, v := range z.Float32s() {
			if math.IsNaN(float64(v)) {
				t.Fatal("NaN in a result: an output element was never written")
			}
		}
		z.Release()
	}
	before := DeviceMemory(dev).InUse
	x.Release()
	w.Release()
	if after := DeviceMemory(dev).InUse; before-after < bytes {
		t.Fatalf("releasing %d bytes of tensors took in-use memory from %d to %d bytes", bytes, before, after)
	}
}

// DeviceFLOPs counts 2 per multiply-add of the products queued.
func TestDeviceFLOPs(t *testing.T) {
	dev := openSim(t, 25, F16)
	r := rand.New(rand.NewSource(4))
	x, w := randT(r, 3, 5, 16).ToDevice(dev), randT(r, 7, 16).ToDevice(dev)
	f0 := DeviceFLOPs(dev)
	Linear(x, w, nil).Release()
	if got, want := DeviceFLOPs(dev)-f0, int64(2*15*7*16); got != want {
		t.Fatalf("Linear: %d FLOPs, want %d", got, want)
	}
	f0 = DeviceFLOPs(dev)
	img, k := randT(r, 2, 3, 6, 6).ToDevice(dev), randT(r, 4, 3, 3, 3).ToDevice(dev)
	Conv2d(img, k, nil, ConvSquare(2, 1)).Release()
	if got, want := DeviceFLOPs(dev)-f0, int64(2*2*4*3*3*27); got != want {
		t.Fatalf("Conv2d: %d FLOPs, want %d", got, want)
	}
	f0 = DeviceFLOPs(dev)
	q := randT(r, 2, 9, 16).ToDevice(dev)
	Attention(q, q, q, 2, 0, false).Release()
	if got, want := DeviceFLOPs(dev)-f0, int64(4*2*2*9*9*8); got != want {
		t.Fatalf("Attention: %d FLOPs, want %d", got, want)
	}
	if DeviceFLOPs(CPU) != 0 {
		t.Fatal("the CPU counts no FLOPs")
	}
}

func TestDeviceNamesAndErrors(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Device
	}{{"cpu", CPU}, {"CUDA", Device{Kind: KindCUDA}}, {"cuda:3", Device{Kind: KindCUDA, Index: 3}}, {"sim:2", Device{Kind: KindSim, Index: 2}}} {
		d, err := ParseDevice(c.in)
		if err != nil || d != c.want {
			t.Fatalf("ParseDevice(%q) = %v, %v; want %v", c.in, d, err, c.want)
		}
	}
	for _, bad := range []string{"tpu", "cuda:x", "cuda:-1", "cpu:1", ""} {
		if _, err := ParseDevice(bad); err == nil {
			t.Fatalf("ParseDevice(%q): no error", bad)
		}
	}
	if err := SetComputeDType(CPU, F16); err == nil {
		t.Fatal("CPU accepted F16 compute")
	}
	dev := openSim(t, 23, F16)
	if err := SetComputeDType(dev, I64); err == nil {
		t.Fatal("I64 compute accepted")
	}
	requirePanic(t, "mixed devices", func() { randT(rand.New(rand.NewSource(3)), 2).ToDevice(dev).Add(Zeros(F32, 2)) })
	requirePanic(t, "closed device", func() { Zeros(F32, 2).ToDevice(Device{Kind: KindSim, Index: 99}) })
	if !strings.Contains(fmt.Sprint(Device{Kind: KindSim, Index: 4}), "sim:4") {
		t.Fatal("device name")
	}
	// Catch turns device failures into errors and lets other panics through.
	de := &DeviceError{Device: dev, Op: "alloc", Err: errors.New("out of memory")}
	err := Catch(func() { panic(de) })
	if !errors.Is(err, de.Err) || !strings.Contains(err.Error(), "sim:23 alloc: out of memory") {
		t.Fatalf("Catch returned %v", err)
	}
	requirePanic(t, "Catch passes other panics", func() { _ = Catch(func() { panic("tensor: other") }) })
}

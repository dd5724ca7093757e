package tensor

import (
	"math/rand"
	"testing"

	"github.com/roentgo/roentgo/kernels/cpu"
)

func TestPoolOps(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	x := randT(r, 2, 3, 9, 7)
	xv := values(x)
	o := PoolSquare(3, 2, 1)
	p := cpu.PoolParams{NC: 6, H: 9, W: 7, KH: 3, KW: 3, StrideH: 2, StrideW: 2, PadH: 1, PadW: 1}
	want := make([]float32, 6*5*4)

	y := MaxPool2d(nonContig(x), o)
	requireShape(t, y, 2, 3, 5, 4)
	cpu.MaxPool2dRef(p, xv, want)
	requireClose(t, "MaxPool2d", values(y), want, 0, 0)

	for _, inc := range []bool{false, true} {
		y = AvgPool2d(x, o, inc)
		cpu.AvgPool2dRef(p, inc, xv, want)
		requireClose(t, "AvgPool2d", values(y), want, 1e-6, 1e-6)
	}
	// Stride 0 means the window size.
	y = AvgPool2d(x, PoolOpts{KH: 2, KW: 2}, true)
	requireShape(t, y, 2, 3, 4, 3)

	y = AdaptiveAvgPool2d(x, 1, 1)
	requireShape(t, y, 2, 3, 1, 1)
	m := x.Mean(3, false).Mean(2, false)
	requireClose(t, "global average", values(y), values(m), 1e-6, 1e-5)

	sc, sh := randT(r, 3), randT(r, 3)
	y = ChannelAffine(x, sc, sh, true)
	ref := x.Mul(sc.View(1, 3, 1, 1)).Add(sh.View(1, 3, 1, 1))
	rv := values(ref)
	for i, v := range rv {
		rv[i] = max(v, 0)
	}
	requireClose(t, "ChannelAffine", values(y), rv, 1e-6, 1e-6)
	// A channel slice of a wider tensor (samples contiguous but apart) is
	// read in place and gives what its contiguous copy gives.
	wide := randT(r, 2, 5, 9, 7)
	view := wide.Narrow(1, 1, 3)
	if _, ok := batchStrided(view); !ok {
		t.Fatalf("a channel slice %v with strides %v is not taken as batch-strided", view.Shape(), view.Strides())
	}
	y = ChannelAffine(view, sc, sh, true)
	requireShape(t, y, 2, 3, 9, 7)
	requireClose(t, "ChannelAffine of a channel slice", values(y), values(ChannelAffine(view.Contiguous(), sc, sh, true)), 0, 0)
	if _, ok := batchStrided(x); ok {
		t.Fatal("a contiguous tensor takes the batch-strided path")
	}
	y = ReLU(x)
	for i, v := range xv {
		xv[i] = max(v, 0)
	}
	requireClose(t, "ReLU", values(y), xv, 0, 0)

	requirePanic(t, "window too large", func() { MaxPool2d(x, PoolSquare(11, 1, 0)) })
	requirePanic(t, "padding over half", func() { MaxPool2d(x, PoolSquare(3, 1, 2)) })
	requirePanic(t, "rank", func() { AvgPool2d(x.View(6, 9, 7), o, true) })
	requirePanic(t, "scale shape", func() { ChannelAffine(x, randT(r, 4), nil, false) })
	g := randT(r, 2, 3, 9, 7)
	g.SetRequiresGrad(true)
	requirePanic(t, "no backward rule", func() { MaxPool2d(g, o) })
	NoGrad(func() { MaxPool2d(g, o) })
}

// On an accelerator the ops round-trip through the host and give the CPU's
// values in the device's compute dtype.
func TestPoolOpsSim(t *testing.T) {
	dev, err := Open("sim")
	if err != nil {
		t.Skip(err)
	}
	if err := SetComputeDType(dev, F32); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(4))
	x := randT(r, 1, 2, 6, 6)
	xd := x.ToDevice(dev)
	for name, f := range map[string]func(*Tensor) *Tensor{
		"max":      func(v *Tensor) *Tensor { return MaxPool2d(v, PoolSquare(3, 1, 1)) },
		"avg":      func(v *Tensor) *Tensor { return AvgPool2d(v, PoolSquare(3, 2, 0), false) },
		"adaptive": func(v *Tensor) *Tensor { return AdaptiveAvgPool2d(v, 2, 3) },
		"relu":     ReLU,
	} {
		want := f(x)
		got := f(xd)
		if got.Device() != dev {
			t.Fatalf("%s: result on %v", name, got.Device())
		}
		requireClose(t, name, got.Float32s(), values(want), 0, 0)
	}
}

// TestConv2dFused: Conv2dFused equals ChannelAffine, Conv2d and ReLU run
// one after the other, on a contiguous x and on a channel slice of a wider
// tensor (read in place), for 1x1 and padded 3x3 convolutions.
func TestConv2dFused(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	wide := randT(r, 3, 7, 6, 5)
	sc, sh := randT(r, 4), randT(r, 4)
	for _, x := range []*Tensor{wide.Narrow(1, 0, 4).Contiguous(), wide.Narrow(1, 2, 4)} {
		for _, k := range []int{1, 3} {
			w, b := randT(r, 6, 4, k, k), randT(r, 6)
			o := ConvSquare(1, k/2)
			for _, f := range []ConvFusion{
				{InScale: sc, InShift: sh, InReLU: true},
				{OutReLU: true},
				{InShift: sh, InReLU: true, OutReLU: true},
			} {
				want := x
				if f.InScale != nil || f.InShift != nil || f.InReLU {
					want = ChannelAffine(x, f.InScale, f.InShift, f.InReLU)
				}
				want = Conv2d(want, w, b, o)
				if f.OutReLU {
					want = ReLU(want)
				}
				got := Conv2dFused(x, w, b, o, f)
				requireShape(t, got, 3, 6, 6, 5)
				requireClose(t, "Conv2dFused", values(got), values(want), 1e-5, 1e-5)
				if !f.OutReLU {
					continue
				}
				for i, v := range values(got) {
					if v < 0 {
						t.Fatalf("output %d is %v after the ReLU", i, v)
					}
				}
			}
		}
	}
	requirePanic(t, "InScale shape", func() { Conv2dFused(wide, randT(r, 2, 7, 1, 1), nil, ConvOpts{}, ConvFusion{InScale: sc}) })
	g := randT(r, 2, 7, 1, 1)
	g.SetRequiresGrad(true)
	requirePanic(t, "no backward rule", func() { Conv2dFused(wide, g, nil, ConvOpts{}, ConvFusion{}) })
}

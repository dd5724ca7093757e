package cpu

import (
	"fmt"
	"math"
	"testing"
)

// TestConv2dFused checks Conv2dFused against Conv2dFusedRef (the input map,
// the convolution and the output ReLU as separate passes) on every path of
// Conv2d: the per-tile products (1x1 and 3x3, strides 1 and 2, several tiles
// and row blocks), convSplitK (many channels over few columns), convBiasRow
// (small C*R*S with a bias), with samples of x apart (XStride), each map part
// alone and together, on 1 to 3 goroutines. The shifts are large enough that
// mapping the zero padding too, or forgetting the map, fails the comparison.
func TestConv2dFused(t *testing.T) {
	cases := []convCase{
		{n: 2, c: 17, h: 9, w: 11, k: 5, r: 1, s: 1, sh: 1, sw: 1},                // 1x1: mapped, so expanded
		{n: 2, c: 17, h: 9, w: 11, k: 33, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // 3x3, padding
		{n: 1, c: 6, h: 15, w: 13, k: 7, r: 3, s: 3, sh: 2, sw: 2, ph: 1, pw: 1},  // stride 2
		{n: 1, c: 300, h: 48, w: 48, k: 9, r: 1, s: 1, sh: 1, sw: 1},              // tiles, row blocks
		{n: 2, c: 40, h: 4, w: 4, k: 160, r: 1, s: 1, sh: 1, sw: 1},               // convSplitK, 1x1
		{n: 2, c: 40, h: 4, w: 4, k: 160, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1}, // convSplitK, 3x3
		{n: 2, c: 3, h: 20, w: 17, k: 8, r: 3, s: 3, sh: 1, sw: 1, ph: 1, pw: 1},  // convBiasRow (with bias)
	}
	fusions := []struct {
		name                 string
		scale, shift, inReLU bool
		outReLU              bool
		extraChannels        int
	}{
		{"affine+relu in", true, true, true, false, 0},
		{"relu out", false, false, false, true, 0},
		{"all, x apart", true, true, true, true, 3},
		{"shift only, x apart", false, true, false, true, 2},
		{"none, x apart", false, false, false, false, 1},
	}
	for _, th := range []int{1, 2, 3} {
		old := SetThreads(th)
		for _, cc := range cases {
			for _, fz := range fusions {
				for _, withBias := range []bool{false, true} {
					name := fmt.Sprintf("%v/%s/bias=%v/threads=%d", cc, fz.name, withBias, th)
					p := cc.params()
					crs := p.C * p.R * p.S
					xs := (p.C + fz.extraChannels) * p.H * p.W
					x := convTestData(p.N*xs, uint64(5+p.C))
					wf := convTestData(p.K*crs, uint64(6+p.K))
					for i := range wf {
						wf[i] /= float32(math.Sqrt(float64(crs)))
					}
					w := F32Mat(wf, crs, false)
					var bias []float32
					if withBias {
						bias = convTestData(p.K, 7)
					}
					f := ConvFusion{InReLU: fz.inReLU, OutReLU: fz.outReLU}
					if fz.extraChannels > 0 {
						f.XStride = xs
					}
					if fz.scale {
						f.InScale = convTestData(p.C, 8)
					}
					if fz.shift {
						f.InShift = convTestData(p.C, 9)
						for i := range f.InShift {
							f.InShift[i] += 0.5 // padding mapped by mistake would show
						}
					}
					ny := p.N * p.K * p.OutH() * p.OutW()
					want, got := make([]float32, ny), make([]float32, ny)
					Conv2dFusedRef(p, x, w, bias, want, f)
					for i := range got {
						got[i] = float32(math.NaN())
					}
					Conv2dFused(p, x, w, bias, got, f)
					convCompare(t, name, got, want, 2e-5*math.Sqrt(float64(crs)), 1e-5)
					if f.OutReLU {
						for i, v := range got {
							if v < 0 {
								t.Fatalf("%s: output %d is %v after the ReLU", name, i, v)
							}
						}
					}
				}
			}
		}
		SetThreads(old)
	}
}

// TestConv2dFusedPanics: a too-small XStride or map, or a short x, panics
// with a message instead of reading the wrong samples.
func TestConv2dFusedPanics(t *testing.T) {
	p := ConvParams{N: 2, C: 2, H: 3, W: 3, K: 1, R: 1, S: 1, StrideH: 1, StrideW: 1}
	w := F32Mat([]float32{1, 1}, 2, false)
	y := make([]float32, 18)
	for name, f := range map[string]func(){
		"XStride":   func() { Conv2dFused(p, make([]float32, 40), w, nil, y, ConvFusion{XStride: 17}) },
		"InScale":   func() { Conv2dFused(p, make([]float32, 36), w, nil, y, ConvFusion{InScale: []float32{1}}) },
		"x samples": func() { Conv2dFused(p, make([]float32, 40), w, nil, y, ConvFusion{XStride: 30}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

package cpu

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// poolBenchCase is one pooling or channel-affine call of the FID feature
// extractors (Inception-v3 at 299x299, DenseNet-121 at 224x224, batch 8).
type poolBenchCase struct {
	name string
	in   int // floats read
	out  int // floats written
	fast func(x, y []float32)
	ref  func(x, y []float32)
}

func poolBenchCases() []poolBenchCase {
	var cs []poolBenchCase
	pool := func(name string, avg, inc bool, nc, h, w, k, s, pad int) {
		p := PoolParams{NC: nc, H: h, W: w, KH: k, KW: k, StrideH: s, StrideW: s, PadH: pad, PadW: pad}
		c := poolBenchCase{name: fmt.Sprintf("%s_%dx%dx%d", name, nc, h, w), in: nc * h * w, out: nc * p.OutH() * p.OutW()}
		if avg {
			c.fast = func(x, y []float32) { AvgPool2d(p, inc, x, y) }
			c.ref = func(x, y []float32) { AvgPool2dRef(p, inc, x, y) }
		} else {
			c.fast = func(x, y []float32) { MaxPool2d(p, x, y) }
			c.ref = func(x, y []float32) { MaxPool2dRef(p, x, y) }
		}
		cs = append(cs, c)
	}
	affine := func(name string, n, ch, hw int, perChannel bool) {
		var sc, sh []float32
		if perChannel {
			sc, sh = make([]float32, ch), make([]float32, ch)
			for i := range sc {
				sc[i], sh[i] = 0.5+float32(i%7)*0.1, float32(i%5)*0.1-0.2
			}
		}
		cs = append(cs, poolBenchCase{
			name: fmt.Sprintf("%s_%dx%dx%d", name, n, ch, hw), in: n * ch * hw, out: n * ch * hw,
			fast: func(x, y []float32) { ChannelAffine(n, ch, hw, x, sc, sh, true, y) },
			ref:  func(x, y []float32) { ChannelAffineRef(n, ch, hw, x, sc, sh, true, y) },
		})
	}
	// Inception: the stem's and Mixed_6a/7a's 3x3 stride-2 max pools, the
	// blocks' 3x3 stride-1 average pools (count_include_pad=False) and
	// Mixed_7c's 3x3 stride-1 max pool.
	pool("max3s2", false, false, 8*64, 147, 147, 3, 2, 0)
	pool("max3s2", false, false, 8*192, 71, 71, 3, 2, 0)
	pool("max3s2", false, false, 8*288, 35, 35, 3, 2, 0)
	pool("max3s2", false, false, 8*768, 17, 17, 3, 2, 0)
	pool("avg3s1p1", true, false, 8*192, 35, 35, 3, 1, 1)
	pool("avg3s1p1", true, false, 8*768, 17, 17, 3, 1, 1)
	pool("avg3s1p1", true, false, 8*1280, 8, 8, 3, 1, 1)
	pool("max3s1p1", false, false, 8*2048, 8, 8, 3, 1, 1)
	// DenseNet: the stem's 3x3 stride-2 max pool (padding 1), the transitions'
	// 2x2 average pool, BatchNorm+ReLU before the dense layers, and ReLU
	// (tensor.ReLU: rows of the last dimension, here 17 wide).
	pool("max3s2p1", false, false, 8*64, 112, 112, 3, 2, 1)
	pool("avg2s2", true, true, 8*128, 56, 56, 2, 2, 0)
	affine("bnrelu", 8, 256, 56*56, true)
	affine("bnrelu", 8, 512, 28*28, true)
	affine("bnrelu", 8, 1024, 7*7, true)
	affine("relu", 8*768*17, 1, 17, false)
	return cs
}

// BenchmarkPool times the pooling and channel-affine kernels on the shapes of
// the FID feature extractors, in GB/s of bytes read plus written; "ref" is
// the naive reference beside each ("fast").
//
//	go test ./kernels/cpu -run '^$' -bench Pool -benchtime 20x
func BenchmarkPool(b *testing.B) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, c := range poolBenchCases() {
		x, y := make([]float32, c.in), make([]float32, c.out)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for _, impl := range []struct {
			name string
			fn   func(x, y []float32)
		}{{"fast", c.fast}, {"ref", c.ref}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				impl.fn(x, y)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					impl.fn(x, y)
				}
				bwReport(b, 4*(c.in+c.out))
			})
		}
	}
}

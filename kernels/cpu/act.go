package cpu

import (
	"fmt"
	"math"
)

// actGrain is the smallest number of elements worth a goroutine of its own.
const actGrain = 16384

// Activate applies f elementwise (see ActivateRef). y may alias x. It uses the
// float32 approximations of mathfast.go (a few ulp), eight lanes at a time with
// AVX2/FMA where available, split over ParallelFor.
func Activate(f Activation, x, y []float32) {
	checkLen("Activate", "y", len(y), len(x))
	var k, c float32
	switch f {
	case Identity:
		if len(x) > 0 && len(y) > 0 && &x[0] == &y[0] {
			return
		}
	case SiLU:
		k = 1
	case QuickGELU:
		k = 1.702
	case GELUTanh:
		// (1 + tanh(u))/2 = sigmoid(2u), u = sqrt(2/pi)*(v + 0.044715 v^3)
		k, c = float32(2*math.Sqrt(2/math.Pi)), 0.044715
	case GELU:
	default:
		panic(fmt.Sprintf("cpu: Activate: unknown activation %d", f))
	}
	ParallelFor(len(x), actGrain, func(lo, hi int) {
		xs, ys := x[lo:hi], y[lo:hi]
		switch f {
		case Identity:
			copy(ys, xs)
		case GELU:
			vecGELU(xs, ys)
		default:
			vecSigmul(xs, ys, 0, 1, 0, k, c)
		}
	})
}

// GEGLU computes y [rows, d] = x[:, :d] * gelu(x[:, d:]) for x [rows, 2d] (see
// GEGLURef), with the exact erf GELU.
func GEGLU(x, y []float32, rows, d int) {
	checkLen("GEGLU", "x", len(x), rows*2*d)
	checkLen("GEGLU", "y", len(y), rows*d)
	if d == 0 {
		return
	}
	ParallelFor(rows, max(1, actGrain/d), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row := x[r*2*d : (r+1)*2*d]
			vecGEGLU(row[:d], row[d:], y[r*d:(r+1)*d])
		}
	})
}

// Upsample2x is nearest-neighbour 2x upsampling of x [nc, h, w] into y [nc, 2h, 2w]
// (see Upsample2xRef): each input row is widened once and the result copied.
func Upsample2x(x, y []float32, nc, h, w int) {
	checkLen("Upsample2x", "x", len(x), nc*h*w)
	checkLen("Upsample2x", "y", len(y), nc*h*w*4)
	if w == 0 {
		return
	}
	ParallelFor(nc*h, max(1, actGrain/(4*w)), func(lo, hi int) {
		for t := lo; t < hi; t++ {
			src := x[t*w : (t+1)*w]
			// output rows 2t and 2t+1 (c*2h + 2i = 2(c*h + i))
			d0 := y[2*t*2*w : (2*t+1)*2*w]
			d1 := y[(2*t+1)*2*w : (2*t+2)*2*w]
			d0 = d0[:2*len(src)]
			for j, v := range src {
				d0[2*j] = v
				d0[2*j+1] = v
			}
			copy(d1, d0)
		}
	})
}

// TimestepEmbedding writes sinusoidal timestep embeddings (see TimestepEmbeddingRef)
// with the same float32 rounding of the frequencies and arguments, so the result
// matches the reference exactly; the frequencies are computed once per call.
func TimestepEmbedding(t []float32, dim int, flipSinToCos bool, shift, scale, maxPeriod float32, out []float32) {
	checkLen("TimestepEmbedding", "out", len(out), len(t)*dim)
	half := dim / 2
	freq := make([]float32, half)
	lmp := float32(-math.Log(float64(maxPeriod)))
	for j := range freq {
		e := lmp * float32(j) / (float32(half) - shift)
		freq[j] = float32(math.Exp(float64(e)))
	}
	for i, ts := range t {
		row := out[i*dim : (i+1)*dim]
		for j, f := range freq {
			arg := float64(scale * (ts * f))
			s, c := float32(math.Sin(arg)), float32(math.Cos(arg))
			if flipSinToCos {
				row[j], row[half+j] = c, s
			} else {
				row[j], row[half+j] = s, c
			}
		}
		if dim%2 == 1 {
			row[dim-1] = 0
		}
	}
}

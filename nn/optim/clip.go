package optim

import (
	"fmt"
	"math"

	"github.com/roentgo/roentgo/nn"
)

// GradNorm returns the global 2-norm of the gradients of params as
// torch.nn.utils.clip_grad_norm_ computes it: the 2-norm of the vector of
// the per-parameter 2-norms, each rounded to float32 (torch's norms are
// float32 tensors), with sums of squares accumulated in float64 (torch
// accumulates in float32; the difference is a few float32 roundings).
// Parameters without a gradient are left out (no gradient at all: 0). A
// non-finite gradient element is a *NonFiniteError naming the first one,
// with the (non-finite) total.
func GradNorm(params []*nn.Trainable) (float32, error) {
	idx, err := withGrads("GradNorm", params)
	if err != nil {
		return 0, err
	}
	return gradNorm(params, idx)
}

// gradNorm is GradNorm over params[idx].
func gradNorm(params []*nn.Trainable, idx []int) (float32, error) {
	n := make([]int, len(idx))
	for k, i := range idx {
		n[k] = params[i].Grad.Numel()
	}
	spans := makeSpans(n)
	part := make([]float64, len(spans))
	forSpans(spans, func(k int, s span) {
		var a0, a1, a2, a3 float64
		g := params[idx[s.i]].Grad.F32Data()[s.lo:s.hi]
		j := 0
		for ; j+4 <= len(g); j += 4 {
			x0, x1, x2, x3 := float64(g[j]), float64(g[j+1]), float64(g[j+2]), float64(g[j+3])
			a0 += x0 * x0
			a1 += x1 * x1
			a2 += x2 * x2
			a3 += x3 * x3
		}
		for ; j < len(g); j++ {
			x := float64(g[j])
			a0 += x * x
		}
		part[k] = (a0 + a1) + (a2 + a3)
	})
	sums := make([]float64, len(idx))
	for k, s := range spans {
		sums[s.i] += part[k]
	}
	var total float64
	for k, s := range sums {
		if math.IsNaN(s) || math.IsInf(s, 0) {
			nf := firstNonFinite(params, idx[k:k+1])
			t := float32(math.Sqrt(s))
			if nf == nil { // cannot happen: squares of finite float32 values do not overflow float64
				return t, fmt.Errorf("optim: the gradient norm of %s is %v", params[idx[k]].Name, t)
			}
			return t, nf
		}
		ni := float64(float32(math.Sqrt(s)))
		total += ni * ni
	}
	return float32(math.Sqrt(total)), nil
}

// ClipCoefficient returns the factor torch 1.13's clip_grad_norm_ multiplies
// every gradient by, in float32: min(1, (1/(total + 1e-6)) * maxNorm) (torch
// evaluates max_norm / tensor as reciprocal times max_norm).
func ClipCoefficient(total float32, maxNorm float64) float32 {
	c := (1 / (total + float32(1e-6))) * float32(maxNorm)
	return min(c, 1)
}

// ClipGradNorm is torch.nn.utils.clip_grad_norm_(params, maxNorm) (2-norm,
// PyTorch 1.13): it computes the global norm (GradNorm) and multiplies every
// gradient by ClipCoefficient(total, maxNorm), and returns the total norm
// before clipping. Torch multiplies even when the factor is 1; multiplying by
// 1 changes no float32 value, so this skips that pass. A non-finite gradient
// (torch with error_if_nonfinite=True) is a *NonFiniteError naming the first
// offending element, and no gradient is changed; a negative or NaN maxNorm is
// an error.
func ClipGradNorm(params []*nn.Trainable, maxNorm float64) (float32, error) {
	if !(maxNorm >= 0) {
		return 0, fmt.Errorf("optim: ClipGradNorm: max norm %v, want >= 0", maxNorm)
	}
	idx, err := withGrads("ClipGradNorm", params)
	if err != nil {
		return 0, err
	}
	total, err := gradNorm(params, idx)
	if err != nil {
		return total, err
	}
	if c := ClipCoefficient(total, maxNorm); c != 1 {
		scaleGrads(params, idx, c)
	}
	return total, nil
}

// ScaleGrads multiplies every gradient of params by c (in float32).
func ScaleGrads(params []*nn.Trainable, c float32) error {
	idx, err := withGrads("ScaleGrads", params)
	if err != nil {
		return err
	}
	scaleGrads(params, idx, c)
	return nil
}

// scaleGrads multiplies the gradients of params[idx] by c.
func scaleGrads(params []*nn.Trainable, idx []int, c float32) {
	n := make([]int, len(idx))
	for k, i := range idx {
		n[k] = params[i].Grad.Numel()
	}
	forSpans(makeSpans(n), func(_ int, s span) {
		g := params[idx[s.i]].Grad.F32Data()[s.lo:s.hi]
		for j := range g {
			g[j] *= c
		}
	})
}

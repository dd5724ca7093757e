package diffusion

import (
	"fmt"

	"github.com/roentgo/roentgo/tensor"
)

// Guide applies classifier-free guidance (Ho & Salimans 2022) to a model
// output for a doubled batch out = [uncond; cond] ([2B, ...], the
// unconditional half first, as diffusers' pipelines concatenate it):
// uncond + scale (cond - uncond), [B, ...].
//
// The unconditional half is the model evaluated with the embedding of the
// negative prompt, or of the empty prompt "" when there is none (both
// tokenized to the full 77 tokens like the prompt); forming it is the
// pipeline's business. A scale of 1 returns cond.
func Guide(out *tensor.Tensor, scale float64) *tensor.Tensor {
	if out.Rank() < 1 || out.Dim(0)%2 != 0 {
		panic(fmt.Sprintf("diffusion: Guide: expected a doubled batch [uncond; cond], got shape %v", out.Shape()))
	}
	b := out.Dim(0) / 2
	return tensor.Scope(func() *tensor.Tensor {
		uncond, cond := out.Narrow(0, 0, b), out.Narrow(0, b, b)
		return cond.Sub(uncond).MulScalarInPlace(float32(scale)).AddInPlace(uncond)
	})
}

// RescaleGuidance is diffusers' rescale_noise_cfg (Lin et al. 2023,
// "Common Diffusion Noise Schedules and Sample Steps are Flawed", sec. 3.4),
// meant for v-prediction models: the guided output g is rescaled so that its
// standard deviation per batch row matches that of the conditional output,
// and mixed with g: phi g std(cond)/std(g) + (1 - phi) g. Standard
// deviations are torch.std's (unbiased) over all dimensions but the batch.
// guided and cond are [B, ...]; phi = 0 returns a copy of guided.
func RescaleGuidance(guided, cond *tensor.Tensor, phi float64) *tensor.Tensor {
	if !guided.Shape().Equal(cond.Shape()) || guided.Rank() < 2 {
		panic(fmt.Sprintf("diffusion: RescaleGuidance: shapes %v and %v", guided.Shape(), cond.Shape()))
	}
	shape := make([]int, guided.Rank())
	for i := range shape {
		shape[i] = 1
	}
	shape[0] = guided.Dim(0)
	return tensor.Scope(func() *tensor.Tensor {
		// factor = phi * std(cond)/std(guided) + (1 - phi), per row.
		f := rowStd(cond).Div(rowStd(guided)).MulScalarInPlace(float32(phi)).AddScalarInPlace(float32(1 - phi))
		return guided.Mul(f.Reshape(shape...))
	})
}

// rowStd returns the unbiased standard deviation of each batch row of x, [B].
func rowStd(x *tensor.Tensor) *tensor.Tensor {
	return tensor.Scope(func() *tensor.Tensor {
		flat := x.Reshape(x.Dim(0), -1)
		n := flat.Dim(1)
		v := flat.Var(1, false) // biased
		if n > 1 {
			v.MulScalarInPlace(float32(n) / float32(n-1))
		}
		return v.Sqrt()
	})
}

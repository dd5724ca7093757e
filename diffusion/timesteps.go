package diffusion

import (
	"fmt"
	"math"
	"sort"
)

// npLinspace returns numpy.linspace(start, stop, n) (endpoint included):
// i*((stop-start)/(n-1)) + start, with the last value exactly stop.
func npLinspace(start, stop float64, n int) []float64 {
	out := make([]float64, n)
	if n == 1 {
		out[0] = start
		return out
	}
	step := (stop - start) / float64(n-1)
	for i := range out {
		out[i] = float64(i)*step + start
	}
	out[n-1] = stop
	return out
}

// npInterp returns numpy.interp(x, [0, 1, ..., len(fp)-1], fp) for x within
// [0, len(fp)-1], computed as numpy does: fp[j] at a node, otherwise
// slope*(x-j) + fp[j] with slope = (fp[j+1]-fp[j]) / 1.
func npInterp(x float64, fp []float32) float64 {
	n := len(fp)
	if x <= 0 {
		return float64(fp[0])
	}
	if x >= float64(n-1) {
		return float64(fp[n-1])
	}
	j := int(math.Floor(x))
	if float64(j) == x {
		return float64(fp[j])
	}
	slope := float64(fp[j+1]) - float64(fp[j])
	return slope*(x-float64(j)) + float64(fp[j])
}

func reverse[T any](s []T) {
	for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
		s[i], s[j] = s[j], s[i]
	}
}

// spacedTimesteps returns n descending timesteps in [0, T) for a spacing
// (diffusers' set_timesteps of DDIM, DDPM, Euler, ...):
//
//	linspace: linspace(0, T-1, n), rounded to integers if round is set
//	leading:  (0, 1, ..., n-1) * (T div n) + offset
//	trailing: round(T - i T/n) - 1 for i < n (diffusers: round(arange(T, 0, -T/n)) - 1)
func spacedTimesteps(spacing string, T, n, offset int, round bool) []float64 {
	var ts []float64
	switch spacing {
	case SpacingLinspace:
		ts = npLinspace(0, float64(T-1), n)
		if round {
			for i := range ts {
				ts[i] = math.RoundToEven(ts[i])
			}
		}
		reverse(ts)
	case SpacingLeading:
		ratio := T / n
		ts = make([]float64, n)
		for i := range ts {
			ts[n-1-i] = float64(i*ratio + offset)
		}
	case SpacingTrailing:
		// diffusers: round(numpy.arange(T, 0, -ratio)) - 1, whose values are
		// T - i*ratio. numpy sizes the range as ceil(T/ratio), which is n+1
		// for some n (61, 103, 121, ... with T = 1000) by rounding, adding
		// the timestep -1 (alphas_cumprod[-1] in torch: the last one). We take
		// the n values i < n, all in [0, T).
		ratio := float64(T) / float64(n)
		ts = make([]float64, n)
		for i := range ts {
			ts[i] = math.RoundToEven(float64(T)-float64(i)*ratio) - 1
		}
	default:
		panic(fmt.Sprintf("diffusion: unknown timestep spacing %q", spacing))
	}
	return ts
}

// trainSigmas returns sqrt((1-acp)/acp) per training timestep in float32
// (ascending with the timestep).
func trainSigmas(s *Schedule) []float32 {
	out := make([]float32, len(s.AlphasCumprod))
	for i, a := range s.AlphasCumprod {
		out[i] = sqrt32((1 - a) / a)
	}
	return out
}

// karrasSigmas returns the n noise levels of Karras et al. 2022 (eq. 5,
// rho = 7) from sigmaMax down to sigmaMin:
// (max^(1/rho) + ramp (min^(1/rho) - max^(1/rho)))^rho, ramp = linspace(0, 1, n).
func karrasSigmas(sigmaMin, sigmaMax float64, n int) []float64 {
	const rho = 7.0
	ramp := npLinspace(0, 1, n)
	minInv := math.Pow(sigmaMin, 1/rho)
	maxInv := math.Pow(sigmaMax, 1/rho)
	out := make([]float64, n)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+r*(minInv-maxInv), rho)
	}
	return out
}

// sigmaToT maps a noise level to a fractional training timestep by linear
// interpolation of log sigma between the two training sigmas around it
// (diffusers' _sigma_to_t); logSigmas ascending, float32 as numpy has them.
func sigmaToT(sigma float64, logSigmas []float32) float64 {
	ls := math.Log(sigma)
	n := len(logSigmas)
	// low = the last index with log_sigmas[i] <= log sigma (0 if none),
	// at most n-2.
	low := sort.Search(n, func(i int) bool { return float64(logSigmas[i]) > ls }) - 1
	if low < 0 {
		low = 0
	}
	if low > n-2 {
		low = n - 2
	}
	lo, hi := float64(logSigmas[low]), float64(logSigmas[low+1])
	w := (lo - ls) / (lo - hi)
	w = math.Max(0, math.Min(1, w))
	return (1-w)*float64(low) + w*float64(low+1)
}

// logSigmas32 returns float32 log of the training sigmas (numpy's float32 log).
func logSigmas32(sig []float32) []float32 {
	out := make([]float32, len(sig))
	for i, s := range sig {
		out[i] = float32(math.Log(float64(s)))
	}
	return out
}

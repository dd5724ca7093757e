package cpu

import (
	"fmt"
	"math"
)

// GroupNorm normalises x [n, c, hw] over groups of channels, with optional fused
// SiLU (see GroupNormRef). y may alias x. gamma and beta (length c) may be nil.
//
// Each (batch, group) slab is one task of ParallelFor. Its statistics come from
// meanVar (a shifted one-pass sum, with a corrected second pass when the shift was
// poor), accumulated in float32 vector lanes over blocks of 1024 elements and in
// float64 across blocks; the output pass is one fused multiply-add per element
// (plus the sigmoid when silu), with the mean split into a float32 part subtracted
// exactly and a remainder folded into the offset.
func GroupNorm(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool) {
	groupNorm("GroupNorm", x, y, n, c, hw, groups, eps, gamma, beta, silu, nil, nil)
}

// groupNorm is GroupNorm; when mean and rstd are not nil (GroupNormSave) it also
// stores each (batch, group)'s mean and 1/sqrt(var+eps) there, rounded to float32.
func groupNorm(op string, x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool, mean, rstd []float32) {
	if groups <= 0 || c%groups != 0 {
		panic(fmt.Sprintf("cpu: %s: %d channels do not split into %d groups", op, c, groups))
	}
	size := n * c * hw
	checkLen(op, "x", len(x), size)
	checkLen(op, "y", len(y), size)
	if gamma != nil {
		checkLen(op, "gamma", len(gamma), c)
	}
	if beta != nil {
		checkLen(op, "beta", len(beta), c)
	}
	cg := c / groups
	cnt := cg * hw
	if cnt == 0 {
		return
	}
	ParallelFor(n*groups, 1, func(lo, hi int) {
		for t := lo; t < hi; t++ {
			b, g := t/groups, t%groups
			base := (b*c + g*cg) * hw
			mu, variance := meanVar(x[base : base+cnt])
			inv := 1 / math.Sqrt(variance+float64(eps))
			if mean != nil {
				mean[t], rstd[t] = float32(mu), float32(inv)
			}
			mh := float32(mu)
			ml := mu - float64(mh)
			for ch := g * cg; ch < (g+1)*cg; ch++ {
				ga, be := 1.0, 0.0
				if gamma != nil {
					ga = float64(gamma[ch])
				}
				if beta != nil {
					be = float64(beta[ch])
				}
				a := inv * ga
				off := (b*c + ch) * hw
				xs, ys := x[off:off+hw], y[off:off+hw]
				if silu {
					vecSigmul(xs, ys, mh, float32(a), float32(be-ml*a), 1, 0)
				} else {
					// prefetch the same channel of the next task's group, which
					// this goroutine normalises next
					pf := xs
					if t+1 < hi {
						pf = x[off+cnt : off+cnt+hw]
					}
					vecAffinePrefetch(xs, ys, pf, mh, float32(a), float32(be-ml*a))
				}
			}
		}
	})
}

// LayerNorm normalises each row of x [rows, cols] (see LayerNormRef). y may alias
// x. gamma and beta (length cols) may be nil. Rows are split over ParallelFor; the
// statistics are computed as in GroupNorm.
func LayerNorm(x, y []float32, rows, cols int, eps float32, gamma, beta []float32) {
	layerNorm("LayerNorm", x, y, rows, cols, eps, gamma, beta, nil, nil)
}

// layerNorm is LayerNorm; when mean and rstd are not nil (LayerNormSave) it also
// stores each row's mean and 1/sqrt(var+eps) there, rounded to float32.
func layerNorm(op string, x, y []float32, rows, cols int, eps float32, gamma, beta, mean, rstd []float32) {
	size := rows * cols
	checkLen(op, "x", len(x), size)
	checkLen(op, "y", len(y), size)
	if cols == 0 {
		return
	}
	if gamma != nil || beta != nil {
		if gamma == nil {
			gamma = filled(cols, 1)
		}
		if beta == nil {
			beta = filled(cols, 0)
		}
		checkLen(op, "gamma", len(gamma), cols)
		checkLen(op, "beta", len(beta), cols)
	}
	ParallelFor(rows, max(1, 16384/cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row, out := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
			mu, variance := meanVar(row)
			inv := 1 / math.Sqrt(variance+float64(eps))
			if mean != nil {
				mean[r], rstd[r] = float32(mu), float32(inv)
			}
			mh := float32(mu)
			b := float32(-(mu - float64(mh)) * inv)
			if gamma == nil {
				vecAffine(row, out, mh, float32(inv), b)
			} else {
				vecGammaBeta(row, out, gamma, beta, mh, float32(inv), b)
			}
		}
	})
}

// Softmax computes a softmax over each row of x [rows, cols] (see SoftmaxRef). y may
// alias x. Each row takes three passes: the maximum, exp(x - max) written to y with
// its sum (float32 lanes per block of 1024, float64 across blocks), and the scaling.
func Softmax(x, y []float32, rows, cols int) {
	size := rows * cols
	checkLen("Softmax", "x", len(x), size)
	checkLen("Softmax", "y", len(y), size)
	if cols == 0 {
		return
	}
	ParallelFor(rows, max(1, 8192/cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			row, out := x[r*cols:(r+1)*cols], y[r*cols:(r+1)*cols]
			m := vecMax(row)
			sum := vecExpSum(row, out, m)
			vecAffine(out, out, 0, float32(1/sum), 0)
		}
	})
}

// checkLen panics unless have >= want.
func checkLen(op, name string, have, want int) {
	if have < want {
		panic(fmt.Sprintf("cpu: %s: len(%s) = %d, need %d", op, name, have, want))
	}
}

// filled returns a new slice of n copies of v.
func filled(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

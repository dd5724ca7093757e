package cpu

import (
	"fmt"
	"sync"
)

// Backward kernels of the normalisations and softmax, and the forward variants
// that save the statistics they read. Gradients are F32 and overwrite their
// outputs; the caller accumulates.

// GroupNormSave is GroupNorm (same code path, same output) that also writes each
// (batch, group)'s mean and rstd = 1/sqrt(var+eps) to mean and rstd [n*groups]
// (index b*groups+g), rounded to float32 as PyTorch's native_group_norm saves
// them, for GroupNormBackward. See GroupNormSaveRef.
func GroupNormSave(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool, mean, rstd []float32) {
	checkLen("GroupNormSave", "mean", len(mean), n*max(groups, 0))
	checkLen("GroupNormSave", "rstd", len(rstd), n*max(groups, 0))
	groupNorm("GroupNormSave", x, y, n, c, hw, groups, eps, gamma, beta, silu, mean, rstd)
}

// LayerNormSave is LayerNorm (same code path, same output) that also writes each
// row's mean and rstd = 1/sqrt(var+eps) to mean and rstd [rows], rounded to
// float32, for LayerNormBackward. See LayerNormSaveRef.
func LayerNormSave(x, y []float32, rows, cols int, eps float32, gamma, beta, mean, rstd []float32) {
	checkLen("LayerNormSave", "mean", len(mean), rows)
	checkLen("LayerNormSave", "rstd", len(rstd), rows)
	layerNorm("LayerNormSave", x, y, rows, cols, eps, gamma, beta, mean, rstd)
}

// GroupNormBackward computes the gradients of GroupNorm (with or without its fused
// SiLU) from dy [n, c, hw] and the statistics GroupNormSave wrote (see
// GroupNormBackwardRef for the formulas). gamma and beta (length c) may be nil;
// beta is read only when silu. Each of dx [n, c, hw], dgamma and dbeta (length c)
// may be nil when not wanted. dx may alias dy, not x.
//
// Each (batch, group) slab is one task of ParallelFor, taking two passes over it:
// the first forms dz (dy, or dy times the SiLU derivative at the recomputed
// pre-activation, written to dx) and each channel's sums of dz and dz*(x-mean)
// (float32 lanes per block of 1024, float64 across blocks), the second writes
// dx = dz*rstd*gamma + (x-mean)*k2 + k3, one fused multiply-add pair per element.
// dgamma and dbeta are reduced from the per-(batch, channel) sums in a fixed
// order, so the results do not depend on the number of threads.
func GroupNormBackward(x, dy, dx []float32, n, c, hw, groups int, mean, rstd, gamma, beta []float32, silu bool, dgamma, dbeta []float32) {
	const op = "GroupNormBackward"
	if groups <= 0 || c%groups != 0 {
		panic(fmt.Sprintf("cpu: %s: %d channels do not split into %d groups", op, c, groups))
	}
	size := n * c * hw
	checkLen(op, "x", len(x), size)
	checkLen(op, "dy", len(dy), size)
	if dx != nil {
		checkLen(op, "dx", len(dx), size)
	}
	checkLen(op, "mean", len(mean), n*groups)
	checkLen(op, "rstd", len(rstd), n*groups)
	for _, p := range []struct {
		name string
		s    []float32
	}{{"gamma", gamma}, {"beta", beta}, {"dgamma", dgamma}, {"dbeta", dbeta}} {
		if p.s != nil {
			checkLen(op, p.name, len(p.s), c)
		}
	}
	cg := c / groups
	cnt := cg * hw
	if cnt == 0 || n == 0 {
		clear(dgamma[:min(len(dgamma), c)])
		clear(dbeta[:min(len(dbeta), c)])
		return
	}
	// per (batch, channel): sum of dz and of dz*(x-mean)
	s1 := make([]float64, n*c)
	s2 := make([]float64, n*c)
	ParallelFor(n*groups, 1, func(lo, hi int) {
		var scratch []float32 // dz when dx is nil and silu
		if dx == nil && silu {
			scratch = make([]float32, hw)
		}
		for t := lo; t < hi; t++ {
			b, g := t/groups, t%groups
			m, r := mean[t], float64(rstd[t])
			var a1, a2 float64 // sums of dxhat and dxhat*(x-mean) over the group
			for ch := g * cg; ch < (g+1)*cg; ch++ {
				off := (b*c + ch) * hw
				xs, dys := x[off:off+hw], dy[off:off+hw]
				ga := paramOr(gamma, ch, 1)
				var u, v float64
				if silu {
					dz := scratch
					if dx != nil {
						dz = dx[off : off+hw]
					}
					u, v = vecGNSumsSiLU(xs, dys, dz, m, float32(r*ga), float32(paramOr(beta, ch, 0)))
				} else {
					u, v = vecGNSums(xs, dys, m)
				}
				s1[b*c+ch], s2[b*c+ch] = u, v
				a1 += ga * u
				a2 += ga * v
			}
			if dx == nil {
				continue
			}
			// dx = r*(gamma*dz - a1/cnt - xhat*r*a2/cnt), xhat = (x-m)*r
			k2 := float32(-r * r * r * a2 / float64(cnt))
			k3 := float32(-r * a1 / float64(cnt))
			for ch := g * cg; ch < (g+1)*cg; ch++ {
				off := (b*c + ch) * hw
				dz := dy[off : off+hw]
				if silu {
					dz = dx[off : off+hw]
				}
				vecBwdApply(dz, x[off:off+hw], dx[off:off+hw], float32(r*paramOr(gamma, ch, 1)), m, k2, k3)
			}
		}
	})
	for ch := 0; ch < c; ch++ {
		var dg, db float64
		for b := 0; b < n; b++ {
			dg += s2[b*c+ch] * float64(rstd[b*groups+ch/cg])
			db += s1[b*c+ch]
		}
		if dgamma != nil {
			dgamma[ch] = float32(dg)
		}
		if dbeta != nil {
			dbeta[ch] = float32(db)
		}
	}
}

// lnBwdBufs holds LayerNormBackward's buffers of partial dgamma/dbeta sums
// (up to 128 blocks x 2 x cols floats), reused across calls.
var lnBwdBufs = sync.Pool{New: func() any { return new([]float32) }}

// lnBwdBlockRows returns the number of rows whose dgamma/dbeta contributions
// LayerNormBackward sums into one partial (a function of rows only, so the
// result does not depend on the number of threads).
func lnBwdBlockRows(rows int) int { return max(16, (rows+127)/128) }

// LayerNormBackward computes the gradients of LayerNorm from dy [rows, cols] and
// the statistics LayerNormSave wrote (see LayerNormBackwardRef for the formulas).
// gamma (length cols) may be nil. Each of dx [rows, cols], dgamma and dbeta
// (length cols) may be nil when not wanted. dx may alias dy, not x.
//
// Blocks of rows (lnBwdBlockRows) are split over ParallelFor. Each row takes two
// passes: sums of dy*gamma and dy*gamma*(x-mean) (adding the row's terms to its
// block's partial dgamma and dbeta on the way), then dx = dy*gamma*rstd +
// (x-mean)*k2 + k3. The block partials are summed in float64 in block order.
func LayerNormBackward(x, dy, dx []float32, rows, cols int, mean, rstd, gamma, dgamma, dbeta []float32) {
	const op = "LayerNormBackward"
	size := rows * cols
	checkLen(op, "x", len(x), size)
	checkLen(op, "dy", len(dy), size)
	if dx != nil {
		checkLen(op, "dx", len(dx), size)
	}
	checkLen(op, "mean", len(mean), rows)
	checkLen(op, "rstd", len(rstd), rows)
	for _, p := range []struct {
		name string
		s    []float32
	}{{"gamma", gamma}, {"dgamma", dgamma}, {"dbeta", dbeta}} {
		if p.s != nil {
			checkLen(op, p.name, len(p.s), cols)
		}
	}
	if cols == 0 {
		return
	}
	if gamma == nil {
		gamma = filled(cols, 1)
	}
	params := dgamma != nil || dbeta != nil
	blk := lnBwdBlockRows(rows)
	nb := (rows + blk - 1) / blk
	var part []float32 // [nb][2][cols]: dgamma then dbeta partials per block
	if params {
		bp := lnBwdBufs.Get().(*[]float32)
		defer lnBwdBufs.Put(bp)
		if cap(*bp) < nb*2*cols {
			*bp = make([]float32, nb*2*cols)
		}
		part = (*bp)[:nb*2*cols]
		clear(part)
	}
	ParallelFor(nb, 1, func(lo, hi int) {
		var scratch []float32
		if !params {
			scratch = make([]float32, 2*cols)
		}
		for bi := lo; bi < hi; bi++ {
			acc := scratch
			if params {
				acc = part[bi*2*cols : (bi+1)*2*cols]
			}
			dg, db := acc[:cols], acc[cols:]
			for r := bi * blk; r < min(rows, (bi+1)*blk); r++ {
				xs, dys := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
				m, rs := mean[r], float64(rstd[r])
				a1, a2 := vecLNSums(xs, dys, gamma, dg, db, m, float32(rs))
				if dx == nil {
					continue
				}
				k2 := float32(-rs * rs * rs * a2 / float64(cols))
				k3 := float32(-rs * a1 / float64(cols))
				vecLNApply(xs, dys, gamma, dx[r*cols:(r+1)*cols], m, float32(rs), k2, k3)
			}
		}
	})
	if !params {
		return
	}
	sum := make([]float64, 2*cols)
	for bi := 0; bi < nb; bi++ {
		for j, v := range part[bi*2*cols : (bi+1)*2*cols] {
			sum[j] += float64(v)
		}
	}
	storeGrad(dgamma, sum[:cols])
	storeGrad(dbeta, sum[cols:])
}

// SoftmaxBackward computes the gradient of Softmax from its output y and dy
// [rows, cols] (see SoftmaxBackwardRef): per row, the sum of dy*y (float32 lanes
// per block of 1024, float64 across blocks), then dx = y*(dy - sum). dx may
// alias y or dy.
func SoftmaxBackward(y, dy, dx []float32, rows, cols int) {
	size := rows * cols
	checkLen("SoftmaxBackward", "y", len(y), size)
	checkLen("SoftmaxBackward", "dy", len(dy), size)
	checkLen("SoftmaxBackward", "dx", len(dx), size)
	if cols == 0 {
		return
	}
	ParallelFor(rows, max(1, 8192/cols), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			ys, dys := y[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols]
			s := vecDot(ys, dys)
			vecSoftmaxBwd(ys, dys, dx[r*cols:(r+1)*cols], float32(s))
		}
	})
}

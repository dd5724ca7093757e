package tensor

import (
	"fmt"
)

// GroupNorm and LayerNorm: forwards (saving mean and rstd when recording)
// and backward rules.

// GroupNorm normalises x [N, C, ...] over groups of C/groups channels (and all
// positions), then scales by gamma [C] and shifts by beta [C] (either may be nil);
// with silu set it applies SiLU to the result (the fused GroupNorm+SiLU of the
// U-Net and VAE ResNet blocks).
func GroupNorm(x *Tensor, groups int, gamma, beta *Tensor, eps float32, silu bool) *Tensor {
	dev := sameDevice("GroupNorm", x, gamma, beta)
	if x.Rank() < 2 || groups < 1 || x.Dim(1)%groups != 0 {
		panic(fmt.Sprintf("tensor: GroupNorm: x %v with %d groups (want [N, C, ...], C divisible by groups)", x.shape, groups))
	}
	n, c := x.Dim(0), x.Dim(1)
	hw := x.Numel() / max(n*c, 1)
	checkVec("GroupNorm", "gamma", gamma, c)
	checkVec("GroupNorm", "beta", beta, c)
	xc, rx := computeContig(x)
	defer rx()
	gc, rg := f32Contig(gamma)
	defer rg()
	bc, rb := f32Contig(beta)
	defer rb()
	y := newTensor(dev, xc.DType(), x.shape, false)
	if !needsGrad(x, gamma, beta) || y.Numel() == 0 {
		if y.Numel() > 0 {
			backendFor(dev).groupNorm(xc, y, n, c, hw, groups, eps, gc, bc, silu)
		}
		return y
	}
	// Recording: the forward saves the statistics backward needs.
	mean, rstd := newTensor(dev, F32, Shape{n * groups}, false), newTensor(dev, F32, Shape{n * groups}, false)
	backendFor(dev).groupNormSave(xc, y, n, c, hw, groups, eps, gc, bc, silu, mean, rstd)
	sx, sg, sb := save(xc), save(gc), save(bc)
	smean, srstd := keep(mean), keep(rstd)
	sv := []savedValue{sx, smean, srstd}
	if gc != nil {
		sv = append(sv, sg)
	}
	if bc != nil {
		sv = append(sv, sb)
	}
	return record(y, "GroupNorm", []*Tensor{x, gamma, beta}, sv, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(dev, ComputeDType(dev), sx.t.shape, false)
		var dg, db *Tensor
		if sg.t != nil {
			dg = newTensor(dev, F32, Shape{c}, false)
		}
		if sb.t != nil {
			db = newTensor(dev, F32, Shape{c}, false)
		}
		backendFor(dev).groupNormBackward(sx.t, gy, dx, n, c, hw, groups, smean.t, srstd.t, sg.t, sb.t, silu, dg, db)
		return []*Tensor{dx, dg, db}
	})
}

func checkVec(op, name string, v *Tensor, n int) {
	if v != nil && (v.Rank() != 1 || v.Dim(0) != n) {
		panic(fmt.Sprintf("tensor: %s: %s has shape %v, want [%d]", op, name, v.shape, n))
	}
}

// LayerNorm normalises x [..., D] over its last dimension, then scales by gamma
// [D] and shifts by beta [D] (either may be nil).
func LayerNorm(x, gamma, beta *Tensor, eps float32) *Tensor {
	dev := sameDevice("LayerNorm", x, gamma, beta)
	if x.Rank() < 1 {
		panic("tensor: LayerNorm: scalar input")
	}
	d := x.Dim(-1)
	checkVec("LayerNorm", "gamma", gamma, d)
	checkVec("LayerNorm", "beta", beta, d)
	xc, rx := computeContig(x)
	defer rx()
	gc, rg := f32Contig(gamma)
	defer rg()
	bc, rb := f32Contig(beta)
	defer rb()
	y := newTensor(dev, xc.DType(), x.shape, false)
	rows := x.Numel() / max(d, 1)
	if !needsGrad(x, gamma, beta) || y.Numel() == 0 {
		if y.Numel() > 0 {
			backendFor(dev).layerNorm(xc, y, rows, d, eps, gc, bc)
		}
		return y
	}
	mean, rstd := newTensor(dev, F32, Shape{rows}, false), newTensor(dev, F32, Shape{rows}, false)
	backendFor(dev).layerNormSave(xc, y, rows, d, eps, gc, bc, mean, rstd)
	sx, sg := save(xc), save(gc)
	smean, srstd := keep(mean), keep(rstd)
	sv := []savedValue{sx, smean, srstd}
	if gc != nil {
		sv = append(sv, sg)
	}
	hasGamma, hasBeta := gamma != nil, beta != nil
	return record(y, "LayerNorm", []*Tensor{x, gamma, beta}, sv, func(g *Tensor) []*Tensor {
		gy, rg := computeContig(g)
		defer rg()
		dx := newTensor(dev, ComputeDType(dev), sx.t.shape, false)
		var dg, db *Tensor
		if hasGamma {
			dg = newTensor(dev, F32, Shape{d}, false)
		}
		if hasBeta {
			db = newTensor(dev, F32, Shape{d}, false)
		}
		backendFor(dev).layerNormBackward(sx.t, gy, dx, rows, d, smean.t, srstd.t, sg.t, dg, db)
		return []*Tensor{dx, dg, db}
	})
}

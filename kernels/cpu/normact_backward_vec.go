package cpu

// Slice-level wrappers over the backward kernels, as norm_vec.go and act_vec.go
// are for the forward ones: the assembly (when vecAsm) takes the longest prefix
// whose length is a multiple of 8 and Go finishes the tail (or does everything
// in a purego build). Reductions accumulate in float32 lanes over blocks of
// sumBlock elements and in float64 across blocks.

// mfInvSqrt2Pi is 1/sqrt(2*pi), the standard normal density at 0.
const mfInvSqrt2Pi = 0.3989422804014327

// mfSigmulGradClamp bounds |u| in mfSigmulGradf: exp(88) = 1.7e38 is finite in
// float32 (exp(88.73) is not).
const mfSigmulGradClamp = 88

// mfSigmulGradf returns the derivative of v*sigmoid(k*v*(1 + c*v*v)) (see
// mfSigmulf) with respect to v:
//
//	s*(1 + kd*v*(1-s)),  s = sigmoid(u), u = k*v*(1 + c*v*v), kd = k*(1 + 3*c*v*v)
//
// with 1-s formed as exp(-u)*s. Where u < -88 it returns 0 (|f'| < 6e-37 there)
// and where u > 88 it returns 1 (exact in float32): the limits, which keep
// exp(-u) and 1 + exp(-u) finite.
func mfSigmulGradf(v, k, c float32) float32 {
	u, kd := k*v, k
	if c != 0 {
		vv := v * v
		u *= 1 + c*vv
		kd *= 1 + 3*c*vv
	}
	if u < -mfSigmulGradClamp {
		return 0
	}
	if u > mfSigmulGradClamp {
		return 1
	}
	e := mfExpf(-u)
	s := 1 / (1 + e)
	return s + s*((e*s)*v*kd)
}

// mfGeluGradf returns the derivative of the exact GELU, Phi(x) + x*phi(x), with
// phi(x) = exp(-x*x/2)/sqrt(2*pi) formed from x clamped to [-14.5, 14.5] (beyond,
// x*phi(x) is 0 in float32) and x*x split into a float32 and its rounding error
// as in mfPhif.
func mfGeluGradf(x float32) float32 {
	xc := min(max(x, -mfGeluClamp), mfGeluClamp) // keeps NaN
	xx := xc * xc
	pdf := mfExp2f(-0.5*xx, -0.5*mfLowSquare(xc, xx)) * mfInvSqrt2Pi
	return mfPhif(x) + xc*pdf
}

// vecSigmulGrad sets dx[i] = dy[i] * mfSigmulGradf(x[i], k, c). dx may alias x or dy.
func vecSigmulGrad(x, dy, dx []float32, k, c float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			bwdSigmulGradAVX2(&x[0], &dy[0], &dx[0], n, -k, c, k, 3*c)
		}
	}
	for i := n; i < len(x); i++ {
		dx[i] = dy[i] * mfSigmulGradf(x[i], k, c)
	}
}

// vecGELUGrad sets dx[i] = dy[i] * gelu'(x[i]) (exact erf form). dx may alias x or dy.
func vecGELUGrad(x, dy, dx []float32) {
	dy, dx = dy[:len(x)], dx[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			bwdGELUGradAVX2(&x[0], &dy[0], &dx[0], n)
		}
	}
	for i := n; i < len(x); i++ {
		dx[i] = dy[i] * mfGeluGradf(x[i])
	}
}

// vecGEGLUGrad sets da[i] = dy[i]*gelu(g[i]) and dg[i] = dy[i]*a[i]*gelu'(g[i]).
// da may alias a and dg may alias g.
func vecGEGLUGrad(a, g, dy, da, dg []float32) {
	g, dy, da, dg = g[:len(a)], dy[:len(a)], da[:len(a)], dg[:len(a)]
	n := 0
	if vecAsm {
		if n = len(a) &^ 7; n > 0 {
			bwdGEGLUGradAVX2(&a[0], &g[0], &dy[0], &da[0], &dg[0], n)
		}
	}
	for i := n; i < len(a); i++ {
		av, gv, e := a[i], g[i], dy[i]
		da[i] = e * mfGeluf(gv)
		dg[i] = e * av * mfGeluGradf(gv)
	}
}

// vecGNSums returns sum(dy[i]) and sum(dy[i]*(x[i]-m)).
func vecGNSums(x, dy []float32, m float32) (s, sd float64) {
	dy = dy[:len(x)]
	for len(x) > 0 {
		bx, bd := x[:min(len(x), sumBlock)], dy[:min(len(x), sumBlock)]
		x, dy = x[len(bx):], dy[len(bx):]
		n := 0
		if vecAsm {
			if n = len(bx) &^ 7; n > 0 {
				bs, bq := bwdSumsAVX2(&bx[0], &bd[0], n, m)
				s += float64(bs)
				sd += float64(bq)
			}
		}
		if n < len(bx) {
			bs, bq := gnSumsGo(bx[n:], bd[n:], m)
			s += float64(bs)
			sd += float64(bq)
		}
	}
	return s, sd
}

// gnSumsGo is the pure-Go kernel of vecGNSums (4 accumulators each).
func gnSumsGo(x, dy []float32, m float32) (s, sd float32) {
	dy = dy[:len(x)]
	var s0, s1, s2, s3, q0, q1, q2, q3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		e0, e1, e2, e3 := dy[i], dy[i+1], dy[i+2], dy[i+3]
		s0, s1, s2, s3 = s0+e0, s1+e1, s2+e2, s3+e3
		q0 += e0 * (x[i] - m)
		q1 += e1 * (x[i+1] - m)
		q2 += e2 * (x[i+2] - m)
		q3 += e3 * (x[i+3] - m)
	}
	for ; i < len(x); i++ {
		s0 += dy[i]
		q0 += dy[i] * (x[i] - m)
	}
	return (s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3)
}

// vecGNSumsSiLU sets dz[i] = dy[i]*silu'(z[i]) with z[i] = (x[i]-m)*a + b and
// returns sum(dz[i]) and sum(dz[i]*(x[i]-m)). dz may alias dy, not x.
func vecGNSumsSiLU(x, dy, dz []float32, m, a, b float32) (s, sd float64) {
	dy, dz = dy[:len(x)], dz[:len(x)]
	for len(x) > 0 {
		k := min(len(x), sumBlock)
		bx, bd, bz := x[:k], dy[:k], dz[:k]
		x, dy, dz = x[k:], dy[k:], dz[k:]
		n := 0
		if vecAsm {
			if n = k &^ 7; n > 0 {
				bs, bq := bwdSumsSiLUAVX2(&bx[0], &bd[0], &bz[0], n, m, a, b)
				s += float64(bs)
				sd += float64(bq)
			}
		}
		var ts, tq float32
		for i := n; i < k; i++ {
			d := bx[i] - m
			g := bd[i] * mfSigmulGradf(d*a+b, 1, 0)
			bz[i] = g
			ts += g
			tq += g * d
		}
		s += float64(ts)
		sd += float64(tq)
	}
	return s, sd
}

// vecBwdApply sets dx[i] = dz[i]*k1 + (x[i]-m)*k2 + k3. dx may alias dz, not x
// unless it is x itself element for element.
func vecBwdApply(dz, x, dx []float32, k1, m, k2, k3 float32) {
	x, dx = x[:len(dz)], dx[:len(dz)]
	n := 0
	if vecAsm {
		if n = len(dz) &^ 7; n > 0 {
			bwdApplyAVX2(&dz[0], &x[0], &dx[0], n, k1, m, k2, k3)
		}
	}
	for i := n; i < len(dz); i++ {
		dx[i] = dz[i]*k1 + ((x[i]-m)*k2 + k3)
	}
}

// vecLNSums returns sum(dy[j]*g[j]) and sum(dy[j]*g[j]*(x[j]-m)) over a row and
// adds dy[j]*(x[j]-m)*r to dg[j] and dy[j] to db[j].
func vecLNSums(x, dy, g, dg, db []float32, m, r float32) (s, sd float64) {
	dy, g, dg, db = dy[:len(x)], g[:len(x)], dg[:len(x)], db[:len(x)]
	for len(x) > 0 {
		k := min(len(x), sumBlock)
		bx, bdy, bg, bdg, bdb := x[:k], dy[:k], g[:k], dg[:k], db[:k]
		x, dy, g, dg, db = x[k:], dy[k:], g[k:], dg[k:], db[k:]
		n := 0
		if vecAsm {
			if n = k &^ 7; n > 0 {
				bs, bq := bwdLNSumsAVX2(&bx[0], &bdy[0], &bg[0], &bdg[0], &bdb[0], n, m, r)
				s += float64(bs)
				sd += float64(bq)
			}
		}
		var ts, tq float32
		for i := n; i < k; i++ {
			d, e := bx[i]-m, bdy[i]
			t := e * bg[i]
			ts += t
			tq += t * d
			bdg[i] += e * d * r
			bdb[i] += e
		}
		s += float64(ts)
		sd += float64(tq)
	}
	return s, sd
}

// vecLNApply sets dx[j] = dy[j]*g[j]*k1 + (x[j]-m)*k2 + k3. dx may alias dy.
func vecLNApply(x, dy, g, dx []float32, m, k1, k2, k3 float32) {
	dy, g, dx = dy[:len(x)], g[:len(x)], dx[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			bwdLNApplyAVX2(&x[0], &dy[0], &g[0], &dx[0], n, m, k1, k2, k3)
		}
	}
	for i := n; i < len(x); i++ {
		dx[i] = (dy[i]*g[i])*k1 + ((x[i]-m)*k2 + k3)
	}
}

// vecDot returns sum(a[i]*b[i]).
func vecDot(a, b []float32) float64 {
	b = b[:len(a)]
	var s float64
	for len(a) > 0 {
		k := min(len(a), sumBlock)
		ba, bb := a[:k], b[:k]
		a, b = a[k:], b[k:]
		n := 0
		if vecAsm {
			if n = k &^ 7; n > 0 {
				s += float64(bwdDotAVX2(&ba[0], &bb[0], n))
			}
		}
		var s0, s1, s2, s3 float32
		i := n
		for ; i+4 <= k; i += 4 {
			s0 += ba[i] * bb[i]
			s1 += ba[i+1] * bb[i+1]
			s2 += ba[i+2] * bb[i+2]
			s3 += ba[i+3] * bb[i+3]
		}
		for ; i < k; i++ {
			s0 += ba[i] * bb[i]
		}
		s += float64((s0 + s1) + (s2 + s3))
	}
	return s
}

// vecSoftmaxBwd sets dx[i] = y[i]*(dy[i] - s). dx may alias y or dy.
func vecSoftmaxBwd(y, dy, dx []float32, s float32) {
	dy, dx = dy[:len(y)], dx[:len(y)]
	n := 0
	if vecAsm {
		if n = len(y) &^ 7; n > 0 {
			bwdSoftmaxAVX2(&y[0], &dy[0], &dx[0], n, s)
		}
	}
	for i := n; i < len(y); i++ {
		dx[i] = y[i] * (dy[i] - s)
	}
}

package cpu

// Slice-level wrappers over the normalisation kernels: the assembly (when vecAsm)
// takes the longest prefix whose length is a multiple of 8 and Go finishes the tail.

// sumBlock is the length of the blocks whose sums are accumulated in float32 lanes;
// the block sums are added in float64, so long reductions stay accurate.
const sumBlock = 1024

// vecSumDiff returns sum(x[i] - m) and sum((x[i] - m)^2).
func vecSumDiff(x []float32, m float32) (s, sq float64) {
	for len(x) > 0 {
		blk := x[:min(len(x), sumBlock)]
		x = x[len(blk):]
		n := 0
		if vecAsm {
			if n = len(blk) &^ 7; n > 0 {
				bs, bq := normSumDiffAVX2(&blk[0], n, m)
				s += float64(bs)
				sq += float64(bq)
			}
		}
		if n < len(blk) {
			bs, bq := sumDiffGo(blk[n:], m)
			s += float64(bs)
			sq += float64(bq)
		}
	}
	return s, sq
}

// sumDiffGo is the pure-Go kernel of vecSumDiff (4 accumulators each).
func sumDiffGo(x []float32, m float32) (s, sq float32) {
	var s0, s1, s2, s3, q0, q1, q2, q3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := x[i]-m, x[i+1]-m, x[i+2]-m, x[i+3]-m
		s0, s1, s2, s3 = s0+d0, s1+d1, s2+d2, s3+d3
		q0, q1, q2, q3 = q0+d0*d0, q1+d1*d1, q2+d2*d2, q3+d3*d3
	}
	for ; i < len(x); i++ {
		d := x[i] - m
		s0 += d
		q0 += d * d
	}
	return (s0 + s1) + (s2 + s3), (q0 + q1) + (q2 + q3)
}

// meanVar returns the mean and the biased variance of x (len(x) > 0), accurate to
// float32 rounding of the data even when the mean is large against the spread.
// It sums x - K and (x - K)^2 for a shift K, the mean of the first (up to) 256
// elements: var = E[(x-K)^2] - (E[x]-K)^2 loses nothing while (E[x]-K)^2 <= var.
// Otherwise (the first elements were unrepresentative) a second pass about the
// mean computes the corrected two-pass variance.
func meanVar(x []float32) (mean, variance float64) {
	n := float64(len(x))
	k := min(len(x), 256)
	s0, _ := vecSumDiff(x[:k], 0)
	shift := float32(s0 / float64(k))
	s, sq := vecSumDiff(x, shift)
	d := s / n
	variance = sq/n - d*d
	if !(d*d <= variance) && variance == variance {
		shift = float32(float64(shift) + d)
		s, sq = vecSumDiff(x, shift)
		d = s / n
		variance = sq/n - d*d
	}
	return float64(shift) + d, max(variance, 0)
}

// vecMax returns the largest element of x (len(x) >= 1). NaNs may or may not win.
func vecMax(x []float32) float32 {
	m := x[0]
	n := 0
	if vecAsm && len(x) >= 8 {
		n = len(x) &^ 7
		m = normMaxAVX2(&x[0], n)
	}
	for _, v := range x[n:] {
		m = max(m, v)
	}
	return m
}

// vecAffine sets y[i] = (x[i] - m)*a + b. y may alias x.
func vecAffine(x, y []float32, m, a, b float32) { vecAffinePrefetch(x, y, x, m, a, b) }

// vecAffinePrefetch is vecAffine that also prefetches pf (at least as long as x)
// into the cache, overlapping the next read with this pass.
func vecAffinePrefetch(x, y, pf []float32, m, a, b float32) {
	y, pf = y[:len(x)], pf[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			normAffineAVX2(&x[0], &y[0], &pf[0], n, m, a, b)
		}
	}
	for i := n; i < len(x); i++ {
		y[i] = (x[i]-m)*a + b
	}
}

// vecGammaBeta sets y[i] = ((x[i] - m)*a + b)*g[i] + bt[i]. y may alias x.
func vecGammaBeta(x, y, g, bt []float32, m, a, b float32) {
	y, g, bt = y[:len(x)], g[:len(x)], bt[:len(x)]
	n := 0
	if vecAsm {
		if n = len(x) &^ 7; n > 0 {
			normGammaBetaAVX2(&x[0], &y[0], &g[0], &bt[0], n, m, a, b)
		}
	}
	for i := n; i < len(x); i++ {
		y[i] = ((x[i]-m)*a+b)*g[i] + bt[i]
	}
}

package cpu

import (
	"fmt"
	"math"
)

// Naive references of the backward kernels (and of the forward variants that save
// statistics for them). As in ref.go, each doc comment is the loop the function
// computes; they accumulate in float64. Gradients are F32 and, unless a comment
// says otherwise, overwrite their outputs (the caller accumulates).

// GroupNormSaveRef is GroupNormRef that also writes each (batch, group)'s
// statistics, indexed b*groups+g:
//
//	mean[b*groups+g] = mean of x[b, g*cg:(g+1)*cg, :]
//	rstd[b*groups+g] = 1/sqrt(var + eps)   (biased variance)
func GroupNormSaveRef(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool, mean, rstd []float32) {
	cg := c / groups
	cnt := cg * hw
	for t := 0; t < n*groups; t++ {
		m, v := meanVarRef(x[t*cnt : (t+1)*cnt])
		mean[t], rstd[t] = float32(m), float32(1/math.Sqrt(v+float64(eps)))
	}
	GroupNormRef(x, y, n, c, hw, groups, eps, gamma, beta, silu)
}

// LayerNormSaveRef is LayerNormRef that also writes each row's statistics:
//
//	mean[r] = mean of x[r, :];  rstd[r] = 1/sqrt(var + eps)   (biased variance)
func LayerNormSaveRef(x, y []float32, rows, cols int, eps float32, gamma, beta, mean, rstd []float32) {
	for r := 0; r < rows; r++ {
		m, v := meanVarRef(x[r*cols : (r+1)*cols])
		mean[r], rstd[r] = float32(m), float32(1/math.Sqrt(v+float64(eps)))
	}
	LayerNormRef(x, y, rows, cols, eps, gamma, beta)
}

// meanVarRef is the two-pass float64 mean and biased variance of x (len(x) > 0).
func meanVarRef(x []float32) (mean, variance float64) {
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		variance += d * d
	}
	return mean, variance / float64(len(x))
}

// GroupNormBackwardRef computes the gradients of GroupNormRef (same x, sizes,
// gamma, beta, silu) from dy [n, c, hw] and the saved statistics mean, rstd
// [n*groups] (GroupNormSave):
//
//	for each (b, g): r = rstd[b*groups+g], m = mean[b*groups+g], cnt = cg*hw, and
//	  for each element i of the group (channel ch):
//	    xhat[i] = (x[i]-m)*r;  z[i] = xhat[i]*gamma[ch] + beta[ch]
//	    dz[i] = dy[i], or if silu: dy[i] * s*(1 + z[i]*(1-s)) with s = sigmoid(z[i])
//	    dxhat[i] = dz[i]*gamma[ch]
//	  dx[i] = r * (dxhat[i] - sum(dxhat)/cnt - xhat[i]*sum(dxhat*xhat)/cnt)
//	dgamma[ch] = sum over b, i in ch of dz[i]*xhat[i]
//	dbeta[ch]  = sum over b, i in ch of dz[i]
//
// gamma and beta may be nil (1 and 0; beta matters only with silu). Each of dx,
// dgamma and dbeta may be nil (not computed). dx may alias dy, not x.
func GroupNormBackwardRef(x, dy, dx []float32, n, c, hw, groups int, mean, rstd, gamma, beta []float32, silu bool, dgamma, dbeta []float32) {
	cg := c / groups
	cnt := cg * hw
	dg := make([]float64, c)
	db := make([]float64, c)
	dz := make([]float64, cnt)
	xh := make([]float64, cnt)
	for b := 0; b < n; b++ {
		for g := 0; g < groups; g++ {
			t := b*groups + g
			r, m := float64(rstd[t]), float64(mean[t])
			base := (b*c + g*cg) * hw
			var s1, s2 float64
			for i := 0; i < cnt; i++ {
				ch := g*cg + i/hw
				ga, be := paramOr(gamma, ch, 1), paramOr(beta, ch, 0)
				xh[i] = (float64(x[base+i]) - m) * r
				dz[i] = float64(dy[base+i])
				if silu {
					z := xh[i]*ga + be
					s := 1 / (1 + math.Exp(-z))
					dz[i] *= s * (1 + z*(1-s))
				}
				dg[ch] += dz[i] * xh[i]
				db[ch] += dz[i]
				s1 += dz[i] * ga
				s2 += dz[i] * ga * xh[i]
			}
			if dx == nil {
				continue
			}
			for i := 0; i < cnt; i++ {
				ga := paramOr(gamma, g*cg+i/hw, 1)
				dx[base+i] = float32(r * (dz[i]*ga - s1/float64(cnt) - xh[i]*s2/float64(cnt)))
			}
		}
	}
	storeGrad(dgamma, dg)
	storeGrad(dbeta, db)
}

// LayerNormBackwardRef computes the gradients of LayerNormRef (same x, sizes and
// gamma) from dy [rows, cols] and the saved statistics mean, rstd [rows]
// (LayerNormSave):
//
//	for each row r: xhat[j] = (x[r,j]-mean[r])*rstd[r];  dxhat[j] = dy[r,j]*gamma[j]
//	  dx[r,j] = rstd[r] * (dxhat[j] - sum(dxhat)/cols - xhat[j]*sum(dxhat*xhat)/cols)
//	dgamma[j] = sum over r of dy[r,j]*xhat[r,j];  dbeta[j] = sum over r of dy[r,j]
//
// gamma may be nil (1). Each of dx, dgamma and dbeta may be nil (not computed).
// dx may alias dy, not x.
func LayerNormBackwardRef(x, dy, dx []float32, rows, cols int, mean, rstd, gamma, dgamma, dbeta []float32) {
	dg := make([]float64, cols)
	db := make([]float64, cols)
	xh := make([]float64, cols)
	for r := 0; r < rows; r++ {
		rs, m := float64(rstd[r]), float64(mean[r])
		var s1, s2 float64
		for j := 0; j < cols; j++ {
			d := float64(dy[r*cols+j])
			xh[j] = (float64(x[r*cols+j]) - m) * rs
			dg[j] += d * xh[j]
			db[j] += d
			s1 += d * paramOr(gamma, j, 1)
			s2 += d * paramOr(gamma, j, 1) * xh[j]
		}
		if dx == nil {
			continue
		}
		for j := 0; j < cols; j++ {
			d := float64(dy[r*cols+j]) * paramOr(gamma, j, 1)
			dx[r*cols+j] = float32(rs * (d - s1/float64(cols) - xh[j]*s2/float64(cols)))
		}
	}
	storeGrad(dgamma, dg)
	storeGrad(dbeta, db)
}

// paramOr returns p[i], or def when p is nil.
func paramOr(p []float32, i int, def float64) float64 {
	if p == nil {
		return def
	}
	return float64(p[i])
}

// storeGrad rounds g into dst unless dst is nil.
func storeGrad(dst []float32, g []float64) {
	if dst == nil {
		return
	}
	for i, v := range g {
		dst[i] = float32(v)
	}
}

// SoftmaxBackwardRef computes the gradient of SoftmaxRef from its output y and dy,
// both [rows, cols]:
//
//	for each row r: dx[r,j] = y[r,j] * (dy[r,j] - sum_k dy[r,k]*y[r,k])
//
// dx may alias y or dy.
func SoftmaxBackwardRef(y, dy, dx []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		var s float64
		for j := 0; j < cols; j++ {
			s += float64(dy[r*cols+j]) * float64(y[r*cols+j])
		}
		for j := 0; j < cols; j++ {
			dx[r*cols+j] = float32(float64(y[r*cols+j]) * (float64(dy[r*cols+j]) - s))
		}
	}
}

// ActivateBackwardRef computes the gradient of ActivateRef:
//
//	for i: dx[i] = dy[i] * f'(x[i])
//
// with f' as activationGrad64 defines it. dx may alias x or dy.
func ActivateBackwardRef(f Activation, x, dy, dx []float32) {
	for i, v := range x {
		dx[i] = float32(float64(dy[i]) * activationGrad64(f, float64(v)))
	}
}

// activationGrad64 returns the derivative of f at x in float64, by PyTorch's
// backward formulas:
//
//	SiLU:      s*(1 + x*(1-s)),  s = sigmoid(x)                       (silu_backward)
//	GELU:      Phi(x) + x*exp(-x*x/2)/sqrt(2*pi)                       (gelu_backward, "none")
//	GELUTanh:  0.5*(1+t) + 0.5*x*(1-t*t)*b*(1 + 3*k*x*x),
//	           t = tanh(b*(x + k*x^3)), b = sqrt(2/pi), k = 0.044715    (gelu_backward, "tanh";
//	           evaluated through sigmoid(2*b*(x + k*x^3)) = (1+t)/2, accurate in the tail)
//	QuickGELU: s + 1.702*x*s*(1-s),  s = sigmoid(1.702*x)             (autograd of x*sigmoid(1.702x))
//	Identity:  1
//
// At x = ±Inf it returns the limits (0 at -Inf, 1 at +Inf) where the formulas
// would give NaN (0*Inf); NaN gives NaN.
func activationGrad64(f Activation, x float64) float64 {
	if math.IsInf(x, 0) && f != Identity {
		if x > 0 {
			return 1
		}
		return 0
	}
	switch f {
	case Identity:
		return 1
	case SiLU:
		s := 1 / (1 + math.Exp(-x))
		return s * (1 + x*(1-s))
	case QuickGELU:
		s := 1 / (1 + math.Exp(-1.702*x))
		return s + 1.702*x*s*(1-s)
	case GELU:
		// Phi through erfc keeps its relative accuracy in the negative tail
		return 0.5*math.Erfc(-x/math.Sqrt2) + x*math.Exp(-0.5*x*x)/math.Sqrt(2*math.Pi)
	case GELUTanh:
		// with (1+t)/2 = sigmoid(2v) = s and (1-t*t)/2 = 2*s*(1-s), v = b*(x + k*x^3),
		// 1-s as exp(-2v)*s: the same function, accurate in the negative tail where
		// 1-t*t rounds to 0
		const b, k = 0.7978845608028654, 0.044715 // sqrt(2/pi)
		e := math.Exp(-2 * b * (x + k*x*x*x))
		s := 1 / (1 + e)
		if math.IsInf(e, 1) {
			return 0
		}
		return s + x*2*s*(e*s)*b*(1+3*k*x*x)
	}
	panic(fmt.Sprintf("cpu: activationGrad64: unknown activation %d", f))
}

// GEGLUBackwardRef computes the gradient of GEGLURef: for x [rows, 2d] (a = x[:, :d],
// g = x[:, d:]) and dy [rows, d], dx [rows, 2d] is
//
//	for r, j < d: dx[r,j]   = dy[r,j] * gelu(g[r,j])
//	              dx[r,d+j] = dy[r,j] * a[r,j] * gelu'(g[r,j])   (exact erf GELU)
//
// dx may alias x.
func GEGLUBackwardRef(x, dy, dx []float32, rows, d int) {
	for r := 0; r < rows; r++ {
		for j := 0; j < d; j++ {
			a := float64(x[r*2*d+j])
			g := float64(x[r*2*d+d+j])
			e := float64(dy[r*d+j])
			dx[r*2*d+j] = float32(e * 0.5 * g * math.Erfc(-g/math.Sqrt2))
			dx[r*2*d+d+j] = float32(e * a * activationGrad64(GELU, g))
		}
	}
}

// Upsample2xBackwardRef computes the gradient of Upsample2xRef: dy [nc, 2h, 2w]
// summed over each 2x2 block into dx [nc, h, w]:
//
//	dx[c, i, j] = sum_{a, b < 2} dy[c, 2i+a, 2j+b]
func Upsample2xBackwardRef(dy, dx []float32, nc, h, w int) {
	for c := 0; c < nc; c++ {
		for i := 0; i < h; i++ {
			for j := 0; j < w; j++ {
				var s float64
				for a := 0; a < 2; a++ {
					for b := 0; b < 2; b++ {
						s += float64(dy[(c*2*h+2*i+a)*2*w+2*j+b])
					}
				}
				dx[(c*h+i)*w+j] = float32(s)
			}
		}
	}
}

// EmbeddingBackwardRef computes the dense gradient of an embedding lookup
// (out[p, :] = table[ids[p], :]) from dy [len(ids), d] into dw [vocab, d]:
//
//	dw = 0;  for p: dw[ids[p], :] += dy[p, :]
//
// It panics if an id is outside [0, vocab).
func EmbeddingBackwardRef(ids []int64, dy []float32, d, vocab int, dw []float32) {
	acc := make([]float64, vocab*d)
	for p, id := range ids {
		if id < 0 || id >= int64(vocab) {
			panic(fmt.Sprintf("cpu: EmbeddingBackwardRef: id %d out of range [0, %d)", id, vocab))
		}
		for j := 0; j < d; j++ {
			acc[int(id)*d+j] += float64(dy[p*d+j])
		}
	}
	for i, v := range acc {
		dw[i] = float32(v)
	}
}

// EmbeddingBackwardSparseRef computes the gradient rows of an embedding lookup
// for the ids in rows (as EmbeddingGradRows returns them) from dy [len(ids), d]
// into grad [len(rows), d]:
//
//	for k: grad[k, :] = sum over p with ids[p] == rows[k] of dy[p, :]
//
// It panics if an id is not among rows.
func EmbeddingBackwardSparseRef(ids []int64, dy []float32, d int, rows []int64, grad []float32) {
	slot := make(map[int64]int, len(rows))
	for k, id := range rows {
		slot[id] = k
	}
	acc := make([]float64, len(rows)*d)
	for p, id := range ids {
		k, ok := slot[id]
		if !ok {
			panic(fmt.Sprintf("cpu: EmbeddingBackwardSparseRef: id %d not among the rows", id))
		}
		for j := 0; j < d; j++ {
			acc[k*d+j] += float64(dy[p*d+j])
		}
	}
	for i, v := range acc {
		grad[i] = float32(v)
	}
}

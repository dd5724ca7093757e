package cpu

import "math"

// This file holds the naive reference implementations. Each doc comment is the
// loop the function computes; the fast paths elsewhere in the package must agree
// with these within the tolerances of the conformance suite (kernels/kerneltest).
// They favour clarity over speed and accumulate in float64 where that is free.

// GemmRef computes C = alpha*op(A)*op(B) + beta*C where op(A) is m x k, op(B) is
// k x n and C is m x n row-major with row stride ldc:
//
//	for i < m, j < n: C[i*ldc+j] = alpha * sum_p A(i,p)*B(p,j) + beta*C[i*ldc+j]
//
// When beta is 0, C is not read (NaNs in C do not propagate), as in BLAS.
func GemmRef(m, n, k int, alpha float32, a, b Mat, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				s += float64(a.At(i, p)) * float64(b.At(p, j))
			}
			v := alpha * float32(s)
			if beta != 0 {
				v += beta * c[i*ldc+j]
			}
			c[i*ldc+j] = v
		}
	}
}

// Conv2dRef computes the convolution described by p. w is the weight matrix
// [K, C*R*S] (row stride w.Stride, not transposed), bias (length K) may be nil:
//
//	for n, k, oh, ow:
//	  y[n,k,oh,ow] = bias[k] + sum_{c,r,s} x[n,c,oh*sh-ph+r,ow*sw-pw+s] * w[k, (c*R+r)*S+s]
//
// with out-of-range input positions reading as zero.
func Conv2dRef(p ConvParams, x []float32, w Mat, bias []float32, y []float32) {
	oh, ow := p.OutH(), p.OutW()
	for n := 0; n < p.N; n++ {
		for k := 0; k < p.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					var s float64
					if bias != nil {
						s = float64(bias[k])
					}
					for c := 0; c < p.C; c++ {
						for r := 0; r < p.R; r++ {
							ih := i*p.StrideH - p.PadH + r
							if ih < 0 || ih >= p.H {
								continue
							}
							for q := 0; q < p.S; q++ {
								iw := j*p.StrideW - p.PadW + q
								if iw < 0 || iw >= p.W {
									continue
								}
								xv := x[((n*p.C+c)*p.H+ih)*p.W+iw]
								s += float64(xv) * float64(w.At(k, (c*p.R+r)*p.S+q))
							}
						}
					}
					y[((n*p.K+k)*oh+i)*ow+j] = float32(s)
				}
			}
		}
	}
}

// AttentionRef computes o = softmax(scale * q k^T [+ causal mask]) v per batch and head
// (a query row that the causal mask leaves with no key gets zeros):
//
//	for b, h, i:
//	  s_j = scale * sum_d q[b,i,h,d]*k[b,j,h,d]   (j allowed by the mask)
//	  o[b,i,h,:] = sum_j exp(s_j - max s) v[b,j,h,:] / sum_j exp(s_j - max s)
func AttentionRef(p AttnParams, q, k, v, o []float32) {
	qs, ks, vs, os := p.Strides()
	s := make([]float64, p.Sk)
	for b := 0; b < p.B; b++ {
		for h := 0; h < p.H; h++ {
			for i := 0; i < p.Sq; i++ {
				qi := q[b*p.Sq*qs+i*qs+h*p.D:]
				n := p.Sk
				if p.Causal {
					n = max(0, min(p.Sk, i+p.Sk-p.Sq+1))
				}
				mx := math.Inf(-1)
				for j := 0; j < n; j++ {
					kj := k[b*p.Sk*ks+j*ks+h*p.D:]
					var d float64
					for t := 0; t < p.D; t++ {
						d += float64(qi[t]) * float64(kj[t])
					}
					s[j] = d * float64(p.Scale)
					mx = math.Max(mx, s[j])
				}
				var sum float64
				for j := 0; j < n; j++ {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				oi := o[b*p.Sq*os+i*os+h*p.D:]
				for t := 0; t < p.D; t++ {
					var acc float64
					for j := 0; j < n; j++ {
						acc += s[j] * float64(v[b*p.Sk*vs+j*vs+h*p.D+t])
					}
					if n == 0 {
						oi[t] = 0
					} else {
						oi[t] = float32(acc / sum)
					}
				}
			}
		}
	}
}

// GroupNormRef normalises x [n, c, hw] over each of the groups of c/groups channels:
//
//	for each (n, g): mean, var over x[n, g*cg:(g+1)*cg, :] (biased variance)
//	  y[n,ch,i] = (x[n,ch,i]-mean)/sqrt(var+eps)*gamma[ch] + beta[ch]
//	  if silu: y = y * sigmoid(y)
//
// gamma and beta (length c) may be nil, meaning 1 and 0. y may alias x.
func GroupNormRef(x, y []float32, n, c, hw, groups int, eps float32, gamma, beta []float32, silu bool) {
	cg := c / groups
	for b := 0; b < n; b++ {
		for g := 0; g < groups; g++ {
			base := (b*c + g*cg) * hw
			cnt := cg * hw
			var sum float64
			for i := 0; i < cnt; i++ {
				sum += float64(x[base+i])
			}
			mean := sum / float64(cnt)
			var sq float64
			for i := 0; i < cnt; i++ {
				d := float64(x[base+i]) - mean
				sq += d * d
			}
			inv := 1 / math.Sqrt(sq/float64(cnt)+float64(eps))
			for ch := g * cg; ch < (g+1)*cg; ch++ {
				ga, be := 1.0, 0.0
				if gamma != nil {
					ga = float64(gamma[ch])
				}
				if beta != nil {
					be = float64(beta[ch])
				}
				for i := 0; i < hw; i++ {
					idx := (b*c+ch)*hw + i
					v := (float64(x[idx])-mean)*inv*ga + be
					if silu {
						v = v / (1 + math.Exp(-v))
					}
					y[idx] = float32(v)
				}
			}
		}
	}
}

// LayerNormRef normalises each row of x [rows, cols]:
//
//	y[r,j] = (x[r,j]-mean_r)/sqrt(var_r+eps)*gamma[j] + beta[j]
//
// gamma and beta may be nil (1 and 0). y may alias x.
func LayerNormRef(x, y []float32, rows, cols int, eps float32, gamma, beta []float32) {
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		var sum float64
		for _, v := range row {
			sum += float64(v)
		}
		mean := sum / float64(cols)
		var sq float64
		for _, v := range row {
			d := float64(v) - mean
			sq += d * d
		}
		inv := 1 / math.Sqrt(sq/float64(cols)+float64(eps))
		out := y[r*cols : (r+1)*cols]
		for j := range out {
			ga, be := 1.0, 0.0
			if gamma != nil {
				ga = float64(gamma[j])
			}
			if beta != nil {
				be = float64(beta[j])
			}
			out[j] = float32((float64(row[j])-mean)*inv*ga + be)
		}
	}
}

// SoftmaxRef computes a softmax over each row of x [rows, cols]:
//
//	y[r,j] = exp(x[r,j] - max_r) / sum_j exp(x[r,j] - max_r)
//
// y may alias x.
func SoftmaxRef(x, y []float32, rows, cols int) {
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var sum float64
		e := make([]float64, cols)
		for j, v := range row {
			e[j] = math.Exp(float64(v) - mx)
			sum += e[j]
		}
		out := y[r*cols : (r+1)*cols]
		for j := range out {
			out[j] = float32(e[j] / sum)
		}
	}
}

// ActivateRef applies f elementwise: for i: y[i] = f(x[i]). y may alias x.
func ActivateRef(f Activation, x, y []float32) {
	for i, v := range x {
		y[i] = float32(f.ActivateScalar(float64(v)))
	}
}

// GEGLURef computes the gated GELU of diffusers' GEGLU on x [rows, 2*d]:
//
//	y[r,j] = x[r,j] * gelu(x[r,d+j])   for j < d   (exact erf GELU)
func GEGLURef(x, y []float32, rows, d int) {
	for r := 0; r < rows; r++ {
		for j := 0; j < d; j++ {
			a := float64(x[r*2*d+j])
			g := float64(x[r*2*d+d+j])
			y[r*d+j] = float32(a * GELU.ActivateScalar(g))
		}
	}
}

// Upsample2xRef doubles the height and width of x [nc, h, w] by nearest-neighbour
// repetition into y [nc, 2h, 2w]:
//
//	y[c, i, j] = x[c, i/2, j/2]
func Upsample2xRef(x, y []float32, nc, h, w int) {
	for c := 0; c < nc; c++ {
		for i := 0; i < 2*h; i++ {
			for j := 0; j < 2*w; j++ {
				y[(c*2*h+i)*2*w+j] = x[(c*h+i/2)*w+j/2]
			}
		}
	}
}

// TimestepEmbeddingRef writes the sinusoidal embedding of each timestep t[i] into
// out[i*dim:(i+1)*dim], with diffusers' get_timestep_embedding semantics:
//
//	half = dim/2; freq_j = exp(-ln(maxPeriod) * j / (half - shift))  for j < half
//	arg_j = scale * t * freq_j
//	emb = [sin(arg), cos(arg)], or [cos(arg), sin(arg)] if flipSinToCos
//	odd dim: a zero is appended.
//
// diffusers computes the exponent and product in float32; this does the same.
func TimestepEmbeddingRef(t []float32, dim int, flipSinToCos bool, shift, scale, maxPeriod float32, out []float32) {
	half := dim / 2
	for i, ts := range t {
		row := out[i*dim : (i+1)*dim]
		for j := 0; j < half; j++ {
			e := float32(-math.Log(float64(maxPeriod))) * float32(j) / (float32(half) - shift)
			freq := float32(math.Exp(float64(e)))
			arg := scale * (ts * freq)
			s, c := float32(math.Sin(float64(arg))), float32(math.Cos(float64(arg)))
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

// Conv2dFusedRef computes what Conv2dFused(p, x, w, bias, y, f) does, as
// three separate passes: every input value mapped (sample n of x starting
// at n*f.XStride, or n*C*H*W when XStride is 0),
//
//	x'[n,c,h,w] = x[n,c,h,w]*InScale[c] + InShift[c], then 0 if InReLU and x' < 0
//
// (scale 1 and shift 0 when nil), Conv2dRef on x' (zero padding added after
// the map), and y = 0 where y < 0 when OutReLU is set (NaN stays NaN).
func Conv2dFusedRef(p ConvParams, x []float32, w Mat, bias []float32, y []float32, f ConvFusion) {
	chw := p.C * p.H * p.W
	xs := f.XStride
	if xs == 0 {
		xs = chw
	}
	xm := make([]float32, p.N*chw)
	for n := 0; n < p.N; n++ {
		for c := 0; c < p.C; c++ {
			a, b := float32(1), float32(0)
			if f.InScale != nil {
				a = f.InScale[c]
			}
			if f.InShift != nil {
				b = f.InShift[c]
			}
			for i := 0; i < p.H*p.W; i++ {
				v := float32(x[n*xs+c*p.H*p.W+i]*a) + b
				if f.InReLU && v < 0 {
					v = 0
				}
				xm[n*chw+c*p.H*p.W+i] = v
			}
		}
	}
	Conv2dRef(p, xm, w, bias, y)
	if f.OutReLU {
		for i, v := range y[:p.N*p.K*p.OutH()*p.OutW()] {
			if v < 0 {
				y[i] = 0
			}
		}
	}
}

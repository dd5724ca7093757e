package cpu

import "math"

// Naive references of the backward (gradient) kernels of convolution and
// attention, in the manner of ref.go: each doc comment is the loop the function
// computes, in float64. The fast paths (conv_backward.go, attention_backward.go)
// must agree with these; the tests check these against finite differences of
// Conv2dRef and AttentionRef.

// Conv2dBackwardDataRef computes dx [N, C, H, W], the gradient of the
// convolution p (see Conv2dRef) with respect to its input, from dy
// [N, K, OutH, OutW] and the weights w [K, C*R*S] (not transposed):
//
//	dx = 0
//	for n, k, oh, ow, c, r, s:
//	  ih, iw = oh*sh-ph+r, ow*sw-pw+s
//	  if ih, iw inside the image:
//	    dx[n,c,ih,iw] += dy[n,k,oh,ow] * w[k, (c*R+r)*S+s]
func Conv2dBackwardDataRef(p ConvParams, dy []float32, w Mat, dx []float32) {
	oh, ow := p.OutH(), p.OutW()
	acc := make([]float64, p.C*p.H*p.W)
	for n := 0; n < p.N; n++ {
		clear(acc)
		for k := 0; k < p.K; k++ {
			for i := 0; i < oh; i++ {
				for j := 0; j < ow; j++ {
					g := float64(dy[((n*p.K+k)*oh+i)*ow+j])
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
								acc[(c*p.H+ih)*p.W+iw] += g * float64(w.At(k, (c*p.R+r)*p.S+q))
							}
						}
					}
				}
			}
		}
		dxn := dx[n*p.C*p.H*p.W : (n+1)*p.C*p.H*p.W]
		for i, v := range acc {
			dxn[i] = float32(v)
		}
	}
}

// Conv2dBackwardWeightRef computes dw [K, C*R*S] (dense rows), the gradient of
// the convolution p with respect to its weights, summed over the batch, from
// x [N, C, H, W] and dy [N, K, OutH, OutW]:
//
//	for k, c, r, s:
//	  dw[k, (c*R+r)*S+s] = sum_{n,oh,ow} dy[n,k,oh,ow] * x[n,c,oh*sh-ph+r,ow*sw-pw+s]
//
// with out-of-range input positions reading as zero.
func Conv2dBackwardWeightRef(p ConvParams, x, dy, dw []float32) {
	oh, ow := p.OutH(), p.OutW()
	crs := p.C * p.R * p.S
	for k := 0; k < p.K; k++ {
		for c := 0; c < p.C; c++ {
			for r := 0; r < p.R; r++ {
				for q := 0; q < p.S; q++ {
					var s float64
					for n := 0; n < p.N; n++ {
						for i := 0; i < oh; i++ {
							ih := i*p.StrideH - p.PadH + r
							if ih < 0 || ih >= p.H {
								continue
							}
							for j := 0; j < ow; j++ {
								iw := j*p.StrideW - p.PadW + q
								if iw < 0 || iw >= p.W {
									continue
								}
								s += float64(dy[((n*p.K+k)*oh+i)*ow+j]) * float64(x[((n*p.C+c)*p.H+ih)*p.W+iw])
							}
						}
					}
					dw[k*crs+(c*p.R+r)*p.S+q] = float32(s)
				}
			}
		}
	}
}

// Conv2dBackwardBiasRef computes db [K], the gradient of the convolution p with
// respect to its bias, from dy [N, K, OutH, OutW]:
//
//	for k: db[k] = sum_{n,oh,ow} dy[n,k,oh,ow]
func Conv2dBackwardBiasRef(p ConvParams, dy, db []float32) {
	ohw := p.OutH() * p.OutW()
	for k := 0; k < p.K; k++ {
		var s float64
		for n := 0; n < p.N; n++ {
			for _, v := range dy[(n*p.K+k)*ohw : (n*p.K+k+1)*ohw] {
				s += float64(v)
			}
		}
		db[k] = float32(s)
	}
}

// AttentionWithLSERef is AttentionRef that also stores, for every batch b, head
// h and query i, the log-sum-exp of the query's scaled scores over the keys the
// mask allows (-Inf when it allows none):
//
//	for b, h, i:
//	  s_j = scale * sum_d q[b,i,h,d]*k[b,j,h,d]   (j allowed by the mask)
//	  lse[(b*H+h)*Sq+i] = log sum_j exp(s_j)
//	  o[b,i,h,:] = sum_j exp(s_j - lse) v[b,j,h,:]
func AttentionWithLSERef(p AttnParams, q, k, v, o, lse []float32) {
	qs, ks, vs, os := p.Strides()
	s := make([]float64, p.Sk)
	for b := 0; b < p.B; b++ {
		for h := 0; h < p.H; h++ {
			for i := 0; i < p.Sq; i++ {
				n := attnRefVisible(p, i)
				mx := attnRefScores(p, q[b*p.Sq*qs+i*qs+h*p.D:], k, b*p.Sk*ks+h*p.D, ks, n, s)
				var sum float64
				for j := 0; j < n; j++ {
					sum += math.Exp(s[j] - mx)
				}
				l := mx + math.Log(sum) // -Inf when n == 0
				lse[(b*p.H+h)*p.Sq+i] = float32(l)
				oi := o[b*p.Sq*os+i*os+h*p.D:]
				for t := 0; t < p.D; t++ {
					var acc float64
					for j := 0; j < n; j++ {
						acc += math.Exp(s[j]-l) * float64(v[b*p.Sk*vs+j*vs+h*p.D+t])
					}
					oi[t] = float32(acc)
				}
			}
		}
	}
}

// attnRefVisible returns the number of keys query i may see.
func attnRefVisible(p AttnParams, i int) int {
	if !p.Causal {
		return p.Sk
	}
	return max(0, min(p.Sk, i+p.Sk-p.Sq+1))
}

// attnRefScores sets s[j] = scale * q_i . k_j for j < n (key 0 of the head at
// k[k0], row stride ks) and returns their maximum (-Inf when n == 0).
func attnRefScores(p AttnParams, qi, k []float32, k0, ks, n int, s []float64) float64 {
	mx := math.Inf(-1)
	for j := 0; j < n; j++ {
		var d float64
		for t := 0; t < p.D; t++ {
			d += float64(qi[t]) * float64(k[k0+j*ks+t])
		}
		s[j] = d * float64(p.Scale)
		mx = math.Max(mx, s[j])
	}
	return mx
}

// AttentionBackwardRef computes the gradients dq, dk, dv of attention (see
// AttentionRef) from the gradient do of its output, materialising the
// probabilities of each query row in float64. o and lse (the forward's output
// and log-sum-exp, which AttentionBackward reads) are not read here: the
// softmax is recomputed from q and k. dq is laid out like q (row stride
// QStride), dk like k, dv like v, do like o; only the H*D columns of each row
// are written:
//
//	dq = dk = dv = 0
//	for b, h, i:
//	  P_j  = softmax_j(scale * q_i . k_j)          (j allowed by the mask)
//	  dP_j = do_i . v_j
//	  dS_j = P_j * (dP_j - sum_l P_l dP_l)
//	  dq_i += scale * sum_j dS_j k_j
//	  for j: dk_j += scale * dS_j q_i;  dv_j += P_j do_i
func AttentionBackwardRef(p AttnParams, do, q, k, v, o, lse, dq, dk, dv []float32) {
	qs, ks, vs, os := p.Strides()
	D := p.D
	sc := float64(p.Scale)
	s := make([]float64, p.Sk)
	dp := make([]float64, p.Sk)
	dkAcc := make([]float64, p.Sk*D)
	dvAcc := make([]float64, p.Sk*D)
	for b := 0; b < p.B; b++ {
		for h := 0; h < p.H; h++ {
			clear(dkAcc)
			clear(dvAcc)
			k0, v0 := b*p.Sk*ks+h*D, b*p.Sk*vs+h*D // key 0 of the head
			for i := 0; i < p.Sq; i++ {
				qi := q[b*p.Sq*qs+i*qs+h*D:]
				doi := do[b*p.Sq*os+i*os+h*D:]
				n := attnRefVisible(p, i)
				mx := attnRefScores(p, qi, k, k0, ks, n, s)
				var sum float64
				for j := 0; j < n; j++ {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				var dsum float64
				for j := 0; j < n; j++ {
					s[j] /= sum
					var d float64
					for t := 0; t < D; t++ {
						d += float64(doi[t]) * float64(v[v0+j*vs+t])
					}
					dp[j] = d
					dsum += s[j] * d
				}
				dqi := dq[b*p.Sq*qs+i*qs+h*D:]
				for t := 0; t < D; t++ {
					var acc float64
					for j := 0; j < n; j++ {
						acc += s[j] * (dp[j] - dsum) * float64(k[k0+j*ks+t])
					}
					dqi[t] = float32(sc * acc)
				}
				for j := 0; j < n; j++ {
					ds := s[j] * (dp[j] - dsum)
					for t := 0; t < D; t++ {
						dkAcc[j*D+t] += sc * ds * float64(qi[t])
						dvAcc[j*D+t] += s[j] * float64(doi[t])
					}
				}
			}
			for j := 0; j < p.Sk; j++ {
				for t := 0; t < D; t++ {
					dk[b*p.Sk*ks+j*ks+h*D+t] = float32(dkAcc[j*D+t])
					dv[b*p.Sk*vs+j*vs+h*D+t] = float32(dvAcc[j*D+t])
				}
			}
		}
	}
}

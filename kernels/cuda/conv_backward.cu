// conv_backward.cu — gradients of the 2-D convolution of conv.cu (groups = 1,
// any kernel size, stride and padding), as SIMT implicit GEMMs with F32
// accumulation; semantics of kernels/cpu's Conv2dBackward*Ref. Operands have
// run-time DT_* dtypes (F32, F16, BF16); dw and db are F32.
//
// x [N, C, H, W], w [K, C*R*S] (row stride ldw), dy [N, K, OH, OW]:
//
// conv2d_bwd_data(dy, w, dx, ...)     GEMM rows = input channels c (M = C),
//     columns = input positions (n, ih, iw), depth = (k, r, s):
//       dx[n,c,ih,iw] = sum_{k,r,s} dy[n,k,oh,ow] * w[k,(c*R+r)*S+s]
//     over oh = (ih+ph-r)/sh, ow = (iw+pw-s)/sw where the division is exact
//     and in range. 64x64 tiles, 256 threads of 4x4 outputs.
// conv2d_bwd_weight(x, dy, ws, ...)   GEMM rows = k, columns = (c, r, s), depth =
//     (n, oh, ow), split into gridDim.z chunks: chunk z writes its partial
//     product to ws + z*K*CRS (dense [K, C*R*S]);
// conv2d_bwd_weight_reduce(ws, dw, n, splits)  dw[i] = sum over z of ws[z*n + i], in order.
// conv2d_bwd_bias(dy, db, N, K, OHW)  block per k: db[k] = sum_{n,p} dy[n,k,p].
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
    conv2d_bwd_data(const void* __restrict__ dy, const void* __restrict__ w,
                    void* __restrict__ dx, int Nimg, int C, int H, int W, int K, int Rk, int Sk,
                    int OH_, int OW_, int sh, int sw, int ph, int pw, int ldw, int dtDY, int dtW,
                    int dtDX) {
  constexpr int TS = 64, TK = 16;
  __shared__ float As[TK][TS + 1];
  __shared__ float Bs[TK][TS + 1];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * TS, n0 = blockIdx.x * TS;
  const int HW = H * W, NHW = Nimg * HW, RS = Rk * Sk, Kd = K * RS;
  const i64 OHW = (i64)OH_ * OW_;
  // This thread's column of the B tile (fixed) and its rows q0 + 4i.
  const int bj = tid & (TS - 1), q0 = tid >> 6;
  const int gn = n0 + bj;
  int img = 0, ih = 0, iw = 0;
  if (gn < NHW) {
    img = gn / HW;
    int p = gn - img * HW;
    ih = p / W;
    iw = p - ih * W;
  }
  float acc[4][4] = {};
  for (int k0 = 0; k0 < Kd; k0 += TK) {
    // A tile: As[p][i] = w[k, (c*R + r)*S + s] for c = m0+i, (k, r, s) = k0+p.
    for (int e = tid; e < TS * TK; e += 256) {
      int p = e % TK, i = e / TK;
      int c = m0 + i, gk = k0 + p;
      float v = 0.f;
      if (c < C && gk < Kd) {
        int k = gk / RS, rs = gk - k * RS;
        v = ld_any(w, (i64)k * ldw + (i64)c * RS + rs, dtW);
      }
      As[p][i] = v;
    }
    // B tile: Bs[q][j] = dy[img, k, oh, ow] for the column's (img, ih, iw).
#pragma unroll
    for (int t = 0; t < TK / 4; t++) {
      int q = q0 + 4 * t, gq = k0 + q;
      float v = 0.f;
      if (gn < NHW && gq < Kd) {
        int k = gq / RS, rs = gq - k * RS;
        int r = rs / Sk, s = rs - r * Sk;
        int hn = ih + ph - r, wn = iw + pw - s;
        if (hn >= 0 && wn >= 0) {
          int oh = hn / sh, ow = wn / sw;
          if (oh * sh == hn && ow * sw == wn && oh < OH_ && ow < OW_)
            v = ld_any(dy, ((i64)img * K + k) * OHW + (i64)oh * OW_ + ow, dtDY);
        }
      }
      Bs[q][bj] = v;
    }
    __syncthreads();
    simt_tile_fma<TK, TS>(As, Bs, ty, tx, acc);
    __syncthreads();
  }
#pragma unroll
  for (int v = 0; v < 4; v++) {
    int col = n0 + tx + 16 * v;
    if (col >= NHW) continue;
    int im = col / HW, p = col - im * HW;
#pragma unroll
    for (int u = 0; u < 4; u++) {
      int c = m0 + ty + 16 * u;
      if (c < C) st_any(dx, ((i64)im * C + c) * HW + p, dtDX, acc[u][v]);
    }
  }
}

extern "C" __global__ void __launch_bounds__(256)
    conv2d_bwd_weight(const void* __restrict__ x, const void* __restrict__ dy,
                      float* __restrict__ ws, int Nimg, int C, int H, int W, int K, int Rk,
                      int Sk, int OH_, int OW_, int sh, int sw, int ph, int pw, int dtX,
                      int dtDY) {
  constexpr int TS = 64, TK = 16;
  __shared__ float As[TK][TS + 1];
  __shared__ float Bs[TK][TS + 1];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * TS, n0 = blockIdx.x * TS;
  const int OHW = OH_ * OW_, RS = Rk * Sk, CRS = C * RS;
  const i64 NPQ = (i64)Nimg * OHW, HW = (i64)H * W;
  const i64 chunk = ((NPQ + gridDim.z - 1) / gridDim.z + TK - 1) / TK * TK;
  const i64 lo = min(NPQ, (i64)blockIdx.z * chunk), hi = min(NPQ, lo + chunk);
  // This thread's column (c, r, s) of the B tile, and its rows q0 + 4i.
  const int bj = tid & (TS - 1), q0 = tid >> 6;
  const int gc = n0 + bj;
  int c = 0, r = 0, s = 0;
  if (gc < CRS) {
    c = gc / RS;
    int rs = gc - c * RS;
    r = rs / Sk;
    s = rs - r * Sk;
  }
  float acc[4][4] = {};
  for (i64 t0 = lo; t0 < hi; t0 += TK) {
    // A tile: As[p][i] = dy[n, k, pq] for k = m0+i, (n, pq) = t0+p.
    for (int e = tid; e < TS * TK; e += 256) {
      int p = e % TK, i = e / TK;
      int k = m0 + i;
      i64 t = t0 + p;
      float v = 0.f;
      if (k < K && t < hi) {
        i64 n = t / OHW, pq = t - n * OHW;
        v = ld_any(dy, (n * K + k) * OHW + pq, dtDY);
      }
      As[p][i] = v;
    }
    // B tile: Bs[q][j] = x[n, c, oh*sh-ph+r, ow*sw-pw+s] for (n, oh, ow) = t0+q.
#pragma unroll
    for (int u = 0; u < TK / 4; u++) {
      int q = q0 + 4 * u;
      i64 t = t0 + q;
      float v = 0.f;
      if (gc < CRS && t < hi) {
        i64 n = t / OHW;
        int pq = (int)(t - n * OHW);
        int oh = pq / OW_, ow = pq - oh * OW_;
        int ih = oh * sh - ph + r, iw = ow * sw - pw + s;
        if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W)
          v = ld_any(x, (n * C + c) * HW + (i64)ih * W + iw, dtX);
      }
      Bs[q][bj] = v;
    }
    __syncthreads();
    simt_tile_fma<TK, TS>(As, Bs, ty, tx, acc);
    __syncthreads();
  }
  float* out = ws + (i64)blockIdx.z * K * CRS;
#pragma unroll
  for (int u = 0; u < 4; u++) {
    int k = m0 + ty + 16 * u;
    if (k >= K) continue;
#pragma unroll
    for (int v = 0; v < 4; v++) {
      int col = n0 + tx + 16 * v;
      if (col < CRS) out[(i64)k * CRS + col] = acc[u][v];
    }
  }
}

extern "C" __global__ void __launch_bounds__(256)
    conv2d_bwd_weight_reduce(const float* __restrict__ ws, float* __restrict__ dw, i64 n,
                             int splits) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    float s = 0.f;
    for (int z = 0; z < splits; z++) s += ws[z * n + i];
    dw[i] = s;
  }
}

extern "C" __global__ void __launch_bounds__(256)
    conv2d_bwd_bias(const void* __restrict__ dy, int dtDY, float* __restrict__ db, int Nimg,
                    int K, i64 OHW) {
  __shared__ float red[32];
  const int k = blockIdx.x;
  float s = 0.f;
  for (int n = 0; n < Nimg; n++) {
    const i64 base = ((i64)n * K + k) * OHW;
    for (i64 p = threadIdx.x; p < OHW; p += blockDim.x) s += ld_any(dy, base + p, dtDY);
  }
  s = block_sum(s, red);
  if (threadIdx.x == 0) db[k] = s;
}

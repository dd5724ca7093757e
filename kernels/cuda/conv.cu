// conv.cu — 2-D convolution (cross-correlation, as PyTorch) as an implicit GEMM.
//
// x [N, C, H, W], w [K, C*R*S] (row stride ldw), y [N, K, OH, OW]:
//
//   y[n,k,oh,ow] = bias[k] + sum_{c,r,s} x[n,c,oh*sh-ph+r,ow*sw-pw+s] * w[k,(c*R+r)*S+s]
//                  (+ R[n,k,oh,ow] when a residual is given)
//
// with out-of-range input reading as zero. GEMM view: rows = output channels k
// (M = K), columns = output positions (N' = N*OH*OW), depth = C*R*S; the im2col
// matrix is never formed, its tiles are gathered from x into shared memory.
//
// conv2d_{f16,bf16}_k{1,3}_{of32,oh}: tensor cores (mma.sync m16n8k16, F32
// accumulate), x and w of the same 16-bit dtype, 3x3 or 1x1 kernels with any
// stride/padding. Weight tiles come by cp.async when w_vec != 0 (16-byte aligned
// w, ldw and C*R*S multiples of 8), else by plain loads; x tiles are gathered
// into registers while the previous tile is multiplied.
// conv2d_simt: any dtypes (run-time codes), any kernel size, F32 accumulate.
#include "common.cuh"

template <bool BF16, int KS, bool OH>
__device__ __forceinline__ void conv_tc(const u16* __restrict__ x, const u16* __restrict__ w,
                                       const float* __restrict__ bias, const void* Rr, void* y,
                                       int Nimg, int C, int H, int W, int K, int OH_, int OW_,
                                       int sh, int sw, int ph, int pw, int ldw, int w_vec) {
  constexpr int BM = 128, BN = 128, BK = 32, PAD = 8, NT = 256;
  constexpr int WARPS_N = 4;
  constexpr int WTM = 64, WTN = 32, MI = 4, NI = 4;
  constexpr int A_ELEMS = BM * (BK + PAD);
  constexpr int B_ELEMS = BK * (BN + PAD);
  constexpr int RS = KS * KS;
  constexpr int BPT = BK * BN / NT;  // gathered B elements per thread (16)
  __shared__ __align__(16) u16 smem[2 * (A_ELEMS + B_ELEMS)];
  u16* As = smem;
  u16* Bs = smem + 2 * A_ELEMS;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int OHW = OH_ * OW_;
  const int NPQ = Nimg * OHW;
  const int Kd = C * RS;
  const i64 HW = (i64)H * W;

  // This thread's im2col column.
  const int nc = tid % BN, kr0 = tid / BN;
  const int gcol = n0 + nc;
  const bool col_ok = gcol < NPQ;
  int ih0 = 0, iw0 = 0;
  const u16* xb = x;
  if (col_ok) {
    int img = gcol / OHW, p = gcol - img * OHW;
    int oh = p / OW_, ow = p - oh * OW_;
    ih0 = oh * sh - ph;
    iw0 = ow * sw - pw;
    xb = x + (i64)img * C * HW;
  }

  auto load_a = [&](int stage, int k0) {
    u16* as = As + stage * A_ELEMS;
    if (w_vec) {
#pragma unroll
      for (int c = tid; c < BM * BK / 8; c += NT) {
        int row = c >> 2, col = (c & 3) * 8;
        int gm = m0 + row, gk = k0 + col;
        bool ok = gm < K && gk < Kd;
        const u16* src = ok ? w + (i64)gm * ldw + gk : w;
        cp_async16(as + row * (BK + PAD) + col, src, ok ? 16 : 0);
      }
    } else {
      for (int e = tid; e < BM * BK; e += NT) {
        int row = e / BK, col = e % BK;
        int gm = m0 + row, gk = k0 + col;
        as[row * (BK + PAD) + col] = (gm < K && gk < Kd) ? w[(i64)gm * ldw + gk] : (u16)0;
      }
    }
  };
  u16 breg[BPT];
  auto gather_b = [&](int k0) {
#pragma unroll
    for (int i = 0; i < BPT; i++) {
      int kidx = k0 + kr0 + i * (NT / BN);
      u16 v = 0;
      if (col_ok && kidx < Kd) {
        int c = kidx / RS, rs = kidx - c * RS;
        int r = rs / KS, s = rs - r * KS;
        int ih = ih0 + r, iw = iw0 + s;
        if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) {
          v = xb[c * HW + (i64)ih * W + iw];
        }
      }
      breg[i] = v;
    }
  };
  auto store_b = [&](int stage) {
    u16* bs = Bs + stage * B_ELEMS;
#pragma unroll
    for (int i = 0; i < BPT; i++) bs[(kr0 + i * (NT / BN)) * (BN + PAD) + nc] = breg[i];
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; i++)
#pragma unroll
    for (int j = 0; j < NI; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

  const int ntiles = (Kd + BK - 1) / BK;
  load_a(0, 0);
  cp_async_commit();
  gather_b(0);
  store_b(0);
  for (int t = 0; t < ntiles; t++) {
    const bool more = t + 1 < ntiles;
    if (more) {
      load_a((t + 1) & 1, (t + 1) * BK);
      cp_async_commit();
      gather_b((t + 1) * BK);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const u16* as = As + (t & 1) * A_ELEMS;
    const u16* bs = Bs + (t & 1) * B_ELEMS;
    warp_mma_tile<BF16, false, MI, NI, BK, BN, PAD>(as, bs, wm * WTM, wn * WTN, lane, acc);
    if (more) store_b((t + 1) & 1);
    __syncthreads();
  }

  const int g = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int j = 0; j < NI; j++) {
#pragma unroll
    for (int e = 0; e < 2; e++) {
      int col = n0 + wn * WTN + j * 8 + tq * 2 + e;
      if (col >= NPQ) continue;
      int img = col / OHW, p = col - img * OHW;
      i64 ybase = (i64)img * K * OHW + p;
#pragma unroll
      for (int i = 0; i < MI; i++) {
#pragma unroll
        for (int h = 0; h < 2; h++) {
          int m = m0 + wm * WTM + i * 16 + g + h * 8;
          if (m >= K) continue;
          float v = acc[i][j][h * 2 + e];
          if (bias != nullptr) v += bias[m];
          i64 yi = ybase + (i64)m * OHW;
          if (OH) {
            if (Rr != nullptr) {
              u16 rv = ((const u16*)Rr)[yi];
              v += BF16 ? bf16_to_f32(rv) : f16_to_f32(rv);
            }
            ((u16*)y)[yi] = BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          } else {
            if (Rr != nullptr) v += ((const float*)Rr)[yi];
            ((float*)y)[yi] = v;
          }
        }
      }
    }
  }
}

#define CONV_ARGS                                                                         \
  const u16 *__restrict__ x, const u16 *__restrict__ w, const float *__restrict__ bias,   \
      const void *R, void *y, int Nimg, int C, int H, int W, int K, int OH_, int OW_, int sh, \
      int sw, int ph, int pw, int ldw, int w_vec
#define CONV_PASS x, w, bias, R, y, Nimg, C, H, W, K, OH_, OW_, sh, sw, ph, pw, ldw, w_vec
#define CONV_DEF(name, BF, KS, OH)                                                 \
  extern "C" __global__ void __launch_bounds__(256) name(CONV_ARGS) {              \
    conv_tc<BF, KS, OH>(CONV_PASS);                                                \
  }

CONV_DEF(conv2d_f16_k3_of32, false, 3, false)
CONV_DEF(conv2d_f16_k3_oh, false, 3, true)
CONV_DEF(conv2d_f16_k1_of32, false, 1, false)
CONV_DEF(conv2d_f16_k1_oh, false, 1, true)
CONV_DEF(conv2d_bf16_k3_of32, true, 3, false)
CONV_DEF(conv2d_bf16_k3_oh, true, 3, true)
CONV_DEF(conv2d_bf16_k1_of32, true, 1, false)
CONV_DEF(conv2d_bf16_k1_oh, true, 1, true)

// SIMT implicit GEMM: 64x64 tile of (output channel, output position), 256
// threads, 4x4 outputs each; any kernel size, any dtypes of x, w, y (R has y's dtype).
extern "C" __global__ void __launch_bounds__(256)
    conv2d_simt(const void* __restrict__ x, const void* __restrict__ w,
                const float* __restrict__ bias, const void* R, void* y, int Nimg, int C, int H,
                int W, int K, int Rk, int Sk, int OH_, int OW_, int sh, int sw, int ph, int pw,
                int ldw, int dtX, int dtW, int dtY) {
  constexpr int TS = 64, TK = 16;
  __shared__ float As[TK][TS + 1];
  __shared__ float Bs[TK][TS + 1];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * TS, n0 = blockIdx.x * TS;
  const int OHW = OH_ * OW_, NPQ = Nimg * OHW, RS = Rk * Sk, Kd = C * RS;
  const i64 HW = (i64)H * W;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < Kd; k0 += TK) {
    for (int e = tid; e < TS * TK; e += 256) {
      int p = e % TK, i = e / TK;
      int gm = m0 + i, gk = k0 + p;
      As[p][i] = (gm < K && gk < Kd) ? ld_any(w, (i64)gm * ldw + gk, dtW) : 0.f;
      int j = e % TS, q = e / TS;
      int gn = n0 + j, gq = k0 + q;
      float v = 0.f;
      if (gn < NPQ && gq < Kd) {
        int img = gn / OHW, pp = gn - img * OHW;
        int oh = pp / OW_, ow = pp - oh * OW_;
        int c = gq / RS, rs = gq - c * RS;
        int r = rs / Sk, s = rs - r * Sk;
        int ih = oh * sh - ph + r, iw = ow * sw - pw + s;
        if ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W)
          v = ld_any(x, ((i64)img * C + c) * HW + (i64)ih * W + iw, dtX);
      }
      Bs[q][j] = v;
    }
    __syncthreads();
    simt_tile_fma<TK, TS>(As, Bs, ty, tx, acc);
    __syncthreads();
  }
#pragma unroll
  for (int v = 0; v < 4; v++) {
    int col = n0 + tx + 16 * v;
    if (col >= NPQ) continue;
    int img = col / OHW, pp = col - img * OHW;
#pragma unroll
    for (int u = 0; u < 4; u++) {
      int m = m0 + ty + 16 * u;
      if (m >= K) continue;
      float val = acc[u][v];
      if (bias != nullptr) val += bias[m];
      i64 yi = ((i64)img * K + m) * OHW + pp;
      if (R != nullptr) val += ld_any(R, yi, dtY);
      st_any(y, yi, dtY, val);
    }
  }
}

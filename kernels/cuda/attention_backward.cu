// attention_backward.cu — attention for training: a forward that also saves
// each query row's log-sum-exp, and the FlashAttention-2 backward (Dao,
// "FlashAttention-2", 2023, Algorithm 2): probabilities are recomputed tile by
// tile from q, k and the saved log-sum-exp, so no Sq x Sk matrix is stored
// (memory O(tile x D) per block). Semantics of kernels/cpu's
// AttentionWithLSERef and AttentionBackwardRef; layout of attention.cu:
// element (b, s, h, d) of q is q[(b*Sq + s)*qs + h*D + d]; k, v with Sk and
// rows strides ks, vs; o, do with Sq and os. Operands have run-time DT_*
// dtypes (dtIn for q, k, v, o, do; dtG for dq, dk, dv); lse and the
// workspace are F32; arithmetic is F32. Query i sees key j when !causal or
// j <= i + Sk - Sq.
//
// attn_lse_fwd(q, k, v, o, lse, ...)  grid (cdiv(Sq,8), H, B), 8 warps, a warp
//     per query row, online softmax over keys taken 32 at a time (one per lane):
//       lse[(b*H+h)*Sq+i] = log sum_j exp(s_j)  (-Inf for a row with no key)
//       o[b,i,h,:] = sum_j exp(s_j - lse) v[b,j,h,:]   (zeros for a row with no key)
//     D <= 256.
// attn_bwd_dot(o, do, dd, ...)        dd[(b*H+h)*Sq+i] = sum_d do[b,i,h,d]*o[b,i,h,d].
// attn_bwd_dkdv_d{64,160,256}         grid (cdiv(Sk,BT), H, B): a block keeps one
//     tile of BT keys (K, V in shared memory) and its dK, dV accumulators in
//     registers, and walks the query tiles that can see it:
//       S = scale Q K^T, P = exp(S - lse), dP = dO V^T, dS = P (dP - dd)
//       dV += P^T dO,  dK += scale dS^T Q
// attn_bwd_dq_d{64,160,256}           grid (cdiv(Sq,BT), H, B): a block keeps one
//     query tile (Q, dO) and walks the key tiles it can see: dQ += scale dS K.
//     dQ is computed apart from dK/dV (recomputing S and dP) so that no block
//     accumulates into another's output: no atomics, deterministic results.
// The suffix is the largest head dim D of the variant; tiles are BT x BT with
// BT = 32, 16, 8 for D <= 64, 160, 256 (all in 48 KiB of static shared memory).
#include "common.cuh"

extern "C" __global__ void __launch_bounds__(256)
    attn_lse_fwd(const void* __restrict__ q, const void* __restrict__ k,
                 const void* __restrict__ v, void* __restrict__ o, float* __restrict__ lse,
                 int H, int Sq, int Sk, int D, int qs, int ks, int vs, int os, float scale,
                 int causal, int dtIn, int dtO) {
  __shared__ float qsm[8][256];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int i = blockIdx.x * 8 + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= Sq) return;  // no block-wide barriers below
  const i64 qo = ((i64)b * Sq + i) * qs + (i64)h * D;
  for (int d = lane; d < D; d += 32) qsm[warp][d] = ld_any(q, qo + d, dtIn);
  __syncwarp();
  int n = Sk;
  if (causal) n = max(0, min(Sk, i + Sk - Sq + 1));
  float acc[8];
#pragma unroll
  for (int t = 0; t < 8; t++) acc[t] = 0.f;
  float m = -INFINITY, l = 0.f;
  const i64 kb = (i64)b * Sk * ks + (i64)h * D;
  const i64 vb = (i64)b * Sk * vs + (i64)h * D;
  for (int j0 = 0; j0 < n; j0 += 32) {
    const int j = j0 + lane;
    float s = -INFINITY;
    if (j < n) {
      float dot = 0.f;
      const i64 kr = kb + (i64)j * ks;
      for (int d = 0; d < D; d++) dot = fmaf(qsm[warp][d], ld_any(k, kr + d, dtIn), dot);
      s = dot * scale;
    }
    const float mnew = fmaxf(m, warp_max(s));  // finite: lane 0 has a key
    const float corr = expf(m - mnew);
    const float p = j < n ? expf(s - mnew) : 0.f;
    l = l * corr + warp_sum(p);
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t] *= corr;
    const int cnt = min(32, n - j0);
    for (int jj = 0; jj < cnt; jj++) {
      const float pj = __shfl_sync(0xffffffffu, p, jj);
      const i64 vr = vb + (i64)(j0 + jj) * vs;
#pragma unroll
      for (int t = 0; t < 8; t++) {
        const int d = lane + 32 * t;
        if (d < D) acc[t] = fmaf(pj, ld_any(v, vr + d, dtIn), acc[t]);
      }
    }
    m = mnew;
  }
  const float inv = l > 0.f ? 1.f / l : 0.f;
  const i64 oo = ((i64)b * Sq + i) * os + (i64)h * D;
#pragma unroll
  for (int t = 0; t < 8; t++) {
    const int d = lane + 32 * t;
    if (d < D) st_any(o, oo + d, dtO, acc[t] * inv);
  }
  if (lane == 0) lse[((i64)b * H + h) * Sq + i] = n > 0 ? m + logf(l) : -INFINITY;
}

extern "C" __global__ void __launch_bounds__(256)
    attn_bwd_dot(const void* __restrict__ o, const void* __restrict__ dO, float* __restrict__ dd,
                 int Sq, int D, int os, int dtIn) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int i = blockIdx.x * 8 + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= Sq) return;
  const i64 r = ((i64)b * Sq + i) * os + (i64)h * D;
  float s = 0.f;
  for (int d = lane; d < D; d += 32) s = fmaf(ld_any(o, r + d, dtIn), ld_any(dO, r + d, dtIn), s);
  s = warp_sum(s);
  if (lane == 0) dd[((i64)b * gridDim.y + h) * Sq + i] = s;
}

// Shared tiles of the backward kernels: K, V, Q, dO rows (BT x DM, padded), the
// probabilities P and dS (BT x BT, rows = queries), and per query row lse and dd.
template <int DM, int BT>
struct AttnBwdSmem {
  float k[BT][DM + 1];
  float v[BT][DM + 1];
  float q[BT][DM + 1];
  float dO[BT][DM + 1];
  float p[BT][BT + 1];
  float ds[BT][BT + 1];
  float lse[BT];
  float dd[BT];
};

// bw_load_rows fills dst[r][0:D] with rows r0+r (< lim) of the head at base
// (row stride rs); rows past lim are zero.
template <int DM, int BT>
__device__ __forceinline__ void bw_load_rows(float (&dst)[BT][DM + 1], const void* src, i64 base,
                                             int rs, int r0, int lim, int D, int dt) {
  for (int e = threadIdx.x; e < BT * D; e += blockDim.x) {
    const int r = e / D, d = e - r * D;
    dst[r][d] = r0 + r < lim ? ld_any(src, base + (i64)(r0 + r) * rs + d, dt) : 0.f;
  }
}

// bw_load_rowstats fills lse and dd of the query tile at q0 (row offset ro of (b, h)).
template <int DM, int BT>
__device__ __forceinline__ void bw_load_rowstats(AttnBwdSmem<DM, BT>& sm, const float* lse,
                                                 const float* dd, i64 ro, int q0, int Sq) {
  for (int r = threadIdx.x; r < BT; r += blockDim.x) {
    const bool ok = q0 + r < Sq;
    sm.lse[r] = ok ? lse[ro + q0 + r] : -INFINITY;
    sm.dd[r] = ok ? dd[ro + q0 + r] : 0.f;
  }
}

// bw_scores computes P and dS of the tile (queries q0.., keys k0..) from the
// shared Q, K, V, dO rows: masked entries (out of range, causal, or a row with
// no key: lse = -Inf) are 0.
template <int DM, int BT>
__device__ __forceinline__ void bw_scores(AttnBwdSmem<DM, BT>& sm, int q0, int k0, int Sq, int Sk,
                                          int D, float scale, int causal) {
  for (int e = threadIdx.x; e < BT * BT; e += blockDim.x) {
    const int i = e / BT, j = e - i * BT;
    const int qi = q0 + i, kj = k0 + j;
    const float l = sm.lse[i];
    bool ok = qi < Sq && kj < Sk && l != -INFINITY;
    if (causal) ok = ok && kj <= qi + Sk - Sq;
    float p = 0.f, ds = 0.f;
    if (ok) {
      float s = 0.f, dp = 0.f;
      for (int d = 0; d < D; d++) {
        s = fmaf(sm.q[i][d], sm.k[j][d], s);
        dp = fmaf(sm.dO[i][d], sm.v[j][d], dp);
      }
      p = expf(s * scale - l);
      ds = p * (dp - sm.dd[i]);
    }
    sm.p[i][j] = p;
    sm.ds[i][j] = ds;
  }
}

template <int DM, int BT>
__device__ __forceinline__ void attn_bwd_dkdv(const void* q, const void* k, const void* v,
                                              const void* dO, const float* lse, const float* dd,
                                              void* dk, void* dv, int Sq, int Sk, int D, int qs,
                                              int ks, int vs, int os, float scale, int causal,
                                              int dtIn, int dtG) {
  constexpr int NPT = (BT * DM + 255) / 256;
  __shared__ AttnBwdSmem<DM, BT> sm;
  const int tid = threadIdx.x;
  const int k0 = blockIdx.x * BT, h = blockIdx.y, b = blockIdx.z, H = gridDim.y;
  const i64 hd = (i64)h * D;
  const i64 qb = (i64)b * Sq * qs + hd, ob = (i64)b * Sq * os + hd;
  const i64 kb = (i64)b * Sk * ks + hd, vb = (i64)b * Sk * vs + hd;
  const i64 ro = ((i64)b * H + h) * Sq;
  bw_load_rows<DM, BT>(sm.k, k, kb, ks, k0, Sk, D, dtIn);
  bw_load_rows<DM, BT>(sm.v, v, vb, vs, k0, Sk, D, dtIn);
  float adk[NPT], adv[NPT];
#pragma unroll
  for (int u = 0; u < NPT; u++) adk[u] = adv[u] = 0.f;
  // Queries before qlo see none of these keys (causal).
  int qlo = 0;
  if (causal) qlo = max(0, (k0 - (Sk - Sq)) / BT * BT);
  for (int q0 = qlo; q0 < Sq; q0 += BT) {
    bw_load_rows<DM, BT>(sm.q, q, qb, qs, q0, Sq, D, dtIn);
    bw_load_rows<DM, BT>(sm.dO, dO, ob, os, q0, Sq, D, dtIn);
    bw_load_rowstats<DM, BT>(sm, lse, dd, ro, q0, Sq);
    __syncthreads();
    bw_scores<DM, BT>(sm, q0, k0, Sq, Sk, D, scale, causal);
    __syncthreads();
#pragma unroll
    for (int u = 0; u < NPT; u++) {
      const int e = tid + 256 * u;
      if (e < BT * D) {
        const int j = e / D, d = e - j * D;
        float a = adk[u], c = adv[u];
#pragma unroll 4
        for (int i = 0; i < BT; i++) {
          a = fmaf(sm.ds[i][j], sm.q[i][d], a);
          c = fmaf(sm.p[i][j], sm.dO[i][d], c);
        }
        adk[u] = a;
        adv[u] = c;
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < NPT; u++) {
    const int e = tid + 256 * u;
    if (e < BT * D) {
      const int j = e / D, d = e - j * D;
      if (k0 + j < Sk) {
        st_any(dk, kb + (i64)(k0 + j) * ks + d, dtG, adk[u] * scale);
        st_any(dv, vb + (i64)(k0 + j) * vs + d, dtG, adv[u]);
      }
    }
  }
}

template <int DM, int BT>
__device__ __forceinline__ void attn_bwd_dq(const void* q, const void* k, const void* v,
                                            const void* dO, const float* lse, const float* dd,
                                            void* dq, int Sq, int Sk, int D, int qs, int ks,
                                            int vs, int os, float scale, int causal, int dtIn,
                                            int dtG) {
  constexpr int NPT = (BT * DM + 255) / 256;
  __shared__ AttnBwdSmem<DM, BT> sm;
  const int tid = threadIdx.x;
  const int q0 = blockIdx.x * BT, h = blockIdx.y, b = blockIdx.z, H = gridDim.y;
  const i64 hd = (i64)h * D;
  const i64 qb = (i64)b * Sq * qs + hd, ob = (i64)b * Sq * os + hd;
  const i64 kb = (i64)b * Sk * ks + hd, vb = (i64)b * Sk * vs + hd;
  const i64 ro = ((i64)b * H + h) * Sq;
  bw_load_rows<DM, BT>(sm.q, q, qb, qs, q0, Sq, D, dtIn);
  bw_load_rows<DM, BT>(sm.dO, dO, ob, os, q0, Sq, D, dtIn);
  bw_load_rowstats<DM, BT>(sm, lse, dd, ro, q0, Sq);
  float adq[NPT];
#pragma unroll
  for (int u = 0; u < NPT; u++) adq[u] = 0.f;
  // Keys from khi on are seen by no query of the tile (causal).
  int khi = Sk;
  if (causal) khi = max(0, min(Sk, min(q0 + BT, Sq) - 1 + Sk - Sq + 1));
  for (int k0 = 0; k0 < khi; k0 += BT) {
    bw_load_rows<DM, BT>(sm.k, k, kb, ks, k0, Sk, D, dtIn);
    bw_load_rows<DM, BT>(sm.v, v, vb, vs, k0, Sk, D, dtIn);
    __syncthreads();
    bw_scores<DM, BT>(sm, q0, k0, Sq, Sk, D, scale, causal);
    __syncthreads();
#pragma unroll
    for (int u = 0; u < NPT; u++) {
      const int e = tid + 256 * u;
      if (e < BT * D) {
        const int i = e / D, d = e - i * D;
        float a = adq[u];
#pragma unroll 4
        for (int j = 0; j < BT; j++) a = fmaf(sm.ds[i][j], sm.k[j][d], a);
        adq[u] = a;
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < NPT; u++) {
    const int e = tid + 256 * u;
    if (e < BT * D) {
      const int i = e / D, d = e - i * D;
      if (q0 + i < Sq) st_any(dq, qb + (i64)(q0 + i) * qs + d, dtG, adq[u] * scale);
    }
  }
}

#define ATTN_BWD_DEF(DM, BT)                                                                   \
  extern "C" __global__ void __launch_bounds__(256) attn_bwd_dkdv_d##DM(                     \
      const void* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v,    \
      const void* __restrict__ dO, const float* __restrict__ lse,                            \
      const float* __restrict__ dd, void* __restrict__ dk, void* __restrict__ dv, int Sq,    \
      int Sk, int D, int qs, int ks, int vs, int os, float scale, int causal, int dtIn,       \
      int dtG) {                                                                             \
    attn_bwd_dkdv<DM, BT>(q, k, v, dO, lse, dd, dk, dv, Sq, Sk, D, qs, ks, vs, os, scale,   \
                          causal, dtIn, dtG);                                                \
  }                                                                                          \
  extern "C" __global__ void __launch_bounds__(256) attn_bwd_dq_d##DM(                       \
      const void* __restrict__ q, const void* __restrict__ k, const void* __restrict__ v,    \
      const void* __restrict__ dO, const float* __restrict__ lse,                            \
      const float* __restrict__ dd, void* __restrict__ dq, int Sq, int Sk, int D, int qs,    \
      int ks, int vs, int os, float scale, int causal, int dtIn, int dtG) {                  \
    attn_bwd_dq<DM, BT>(q, k, v, dO, lse, dd, dq, Sq, Sk, D, qs, ks, vs, os, scale, causal, \
                        dtIn, dtG);                                                          \
  }

ATTN_BWD_DEF(64, 32)
ATTN_BWD_DEF(160, 16)
ATTN_BWD_DEF(256, 8)

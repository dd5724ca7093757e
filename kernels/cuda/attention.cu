// attention.cu — fused multi-head scaled-dot-product attention, forward only
// (FlashAttention-2 scheme: Dao, "FlashAttention-2", 2023; online softmax of
// Milakov & Gimelshein, 2018). No Sq x Sk score matrix is stored.
//
// Layout [B, seq, H*D] with row strides (elements) qs, ks, vs, os: element
// (b, s, h, d) of q is q[(b*Sq + s)*qs + h*D + d]; k, v with Sk; o with Sq.
//
//   for b, h, i:
//     s_j = scale * sum_d q[b,i,h,d] k[b,j,h,d]        (j <= i + Sk - Sq if causal)
//     o[b,i,h,:] = sum_j exp(s_j - max) v[b,j,h,:] / sum_j exp(s_j - max)
//   (a row with no allowed key gets zeros)
//
// attention_{f16,bf16}_d{40,64,80,160}: tensor cores. A block takes 64 query
// rows of one (b, h), 4 warps of 16 rows; K/V tiles of BC keys (64, or 32 for
// D=160) are double buffered in shared memory by cp.async. S = Q K^T and
// O += P V run on mma.sync m16n8k16 with F32 accumulators; P is rounded to the
// input dtype for the second product. The head dim is zero-padded to a multiple
// of 16 for Q K^T. Requires 16-byte aligned q, k, v, o and strides multiple of 8.
// attention_simt_{f32,f16,bf16}: one warp per query row, any D <= 256, any strides.
#include "common.cuh"

template <bool BF16, int D, int BC>
__device__ __forceinline__ void attn_tc(const u16* __restrict__ q, const u16* __restrict__ k,
                                        const u16* __restrict__ v, u16* __restrict__ o, int Sq,
                                        int Sk, int qs, int ks, int vs, int os, float scale,
                                        int causal) {
  constexpr int BR = 64;
  constexpr int DP = (D + 15) / 16 * 16;
  constexpr int PITCH = DP + 8;
  constexpr int ROWS = 4 * BC > BR ? 4 * BC : BR;
  constexpr int CH = D / 8;  // 16-byte chunks per row
  constexpr int KS = DP / 16;
  constexpr int NS = BC / 8;  // score n-tiles
  constexpr int NO = D / 8;   // output n-tiles
  static_assert(D % 8 == 0, "D must be a multiple of 8");
  __shared__ __align__(16) u16 smem[ROWS * PITCH];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, tq = lane & 3;
  const int q0 = blockIdx.x * BR, h = blockIdx.y, b = blockIdx.z;
  const u16* qb = q + ((i64)b * Sq) * qs + h * D;
  const u16* kb = k + ((i64)b * Sk) * ks + h * D;
  const u16* vb = v + ((i64)b * Sk) * vs + h * D;

  // Zero everything once: the padding columns D..DP-1 stay zero.
  for (int e = tid; e < ROWS * PITCH / 8; e += 128) {
    reinterpret_cast<uint4*>(smem)[e] = make_uint4(0, 0, 0, 0);
  }
  __syncthreads();
  for (int c = tid; c < BR * CH; c += 128) {
    int row = c / CH, ch = c % CH;
    bool ok = q0 + row < Sq;
    const u16* src = ok ? qb + (i64)(q0 + row) * qs + ch * 8 : q;
    cp_async16(smem + row * PITCH + ch * 8, src, ok ? 16 : 0);
  }
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  u32 qf[KS][4];
#pragma unroll
  for (int s = 0; s < KS; s++) {
    ldmatrix_x4(qf[s][0], qf[s][1], qf[s][2], qf[s][3],
                smem + (warp * 16 + (lane & 15)) * PITCH + s * 16 + (lane >> 4) * 8);
  }
  __syncthreads();  // the K/V buffers below reuse Q's rows

  int kv_end = Sk;
  if (causal) kv_end = min(Sk, q0 + BR + Sk - Sq);
  const int ntiles = kv_end > 0 ? (kv_end + BC - 1) / BC : 0;

  auto load_kv = [&](int stage, int kv0) {
    u16* ksm = smem + (stage * BC) * PITCH;
    u16* vsm = smem + ((2 + stage) * BC) * PITCH;
    for (int c = tid; c < BC * CH; c += 128) {
      int row = c / CH, ch = c % CH;
      bool ok = kv0 + row < Sk;
      const u16* ks_ = ok ? kb + (i64)(kv0 + row) * ks + ch * 8 : k;
      const u16* vs_ = ok ? vb + (i64)(kv0 + row) * vs + ch * 8 : v;
      cp_async16(ksm + row * PITCH + ch * 8, ks_, ok ? 16 : 0);
      cp_async16(vsm + row * PITCH + ch * 8, vs_, ok ? 16 : 0);
    }
  };

  float oacc[NO][4];
#pragma unroll
  for (int j = 0; j < NO; j++)
#pragma unroll
    for (int e = 0; e < 4; e++) oacc[j][e] = 0.f;
  float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.f, 0.f};
  const float sl2 = scale * 1.4426950408889634f;
  const int row_g[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};

  if (ntiles > 0) {
    load_kv(0, 0);
    cp_async_commit();
  }
  for (int t = 0; t < ntiles; t++) {
    if (t + 1 < ntiles) {
      load_kv((t + 1) & 1, (t + 1) * BC);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const u16* ksm = smem + ((t & 1) * BC) * PITCH;
    const u16* vsm = smem + ((2 + (t & 1)) * BC) * PITCH;
    const int kv0 = t * BC;

    float sacc[NS][4];
#pragma unroll
    for (int j = 0; j < NS; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) sacc[j][e] = 0.f;
#pragma unroll
    for (int s = 0; s < KS; s++) {
#pragma unroll
      for (int j = 0; j < NS; j += 2) {
        int qd = lane >> 3, r = lane & 7;
        u32 kf[4];
        ldmatrix_x4(kf[0], kf[1], kf[2], kf[3],
                    ksm + (j * 8 + (qd >> 1) * 8 + r) * PITCH + s * 16 + (qd & 1) * 8);
        mma16816<BF16>(sacc[j], qf[s], kf);
        mma16816<BF16>(sacc[j + 1], qf[s], kf + 2);
      }
    }
    // Scale, mask, online softmax.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < NS; j++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        int key = kv0 + j * 8 + tq * 2 + (e & 1);
        int hr = e >> 1;
        bool ok = key < Sk && (!causal || key <= row_g[hr] + Sk - Sq);
        float sv = ok ? sacc[j][e] * sl2 : -INFINITY;
        sacc[j][e] = sv;
        mx[hr] = fmaxf(mx[hr], sv);
      }
    }
    float corr[2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
      mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 1));
      mx[hr] = fmaxf(mx[hr], __shfl_xor_sync(0xffffffffu, mx[hr], 2));
      float mnew = fmaxf(mrow[hr], mx[hr]);
      float base = mnew == -INFINITY ? 0.f : mnew;
      corr[hr] = exp2f(mrow[hr] - base);
      mrow[hr] = mnew;
      mx[hr] = base;
      lrow[hr] *= corr[hr];
    }
#pragma unroll
    for (int j = 0; j < NS; j++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float p = exp2f(sacc[j][e] - mx[e >> 1]);
        sacc[j][e] = p;
        lrow[e >> 1] += p;
      }
    }
#pragma unroll
    for (int j = 0; j < NO; j++) {
      oacc[j][0] *= corr[0];
      oacc[j][1] *= corr[0];
      oacc[j][2] *= corr[1];
      oacc[j][3] *= corr[1];
    }
    // O += P V.
#pragma unroll
    for (int kk = 0; kk < BC / 16; kk++) {
      u32 pa[4];
      pa[0] = pack2<BF16>(sacc[2 * kk][0], sacc[2 * kk][1]);
      pa[1] = pack2<BF16>(sacc[2 * kk][2], sacc[2 * kk][3]);
      pa[2] = pack2<BF16>(sacc[2 * kk + 1][0], sacc[2 * kk + 1][1]);
      pa[3] = pack2<BF16>(sacc[2 * kk + 1][2], sacc[2 * kk + 1][3]);
      int qd = lane >> 3, r = lane & 7;
#pragma unroll
      for (int j = 0; j + 1 < NO; j += 2) {
        u32 vf[4];
        ldmatrix_x4_trans(vf[0], vf[1], vf[2], vf[3],
                          vsm + (kk * 16 + (qd & 1) * 8 + r) * PITCH + j * 8 + (qd >> 1) * 8);
        mma16816<BF16>(oacc[j], pa, vf);
        mma16816<BF16>(oacc[j + 1], pa, vf + 2);
      }
      if (NO % 2 == 1) {
        u32 vf[2];
        ldmatrix_x2_trans(vf[0], vf[1],
                          vsm + (kk * 16 + ((lane >> 3) & 1) * 8 + r) * PITCH + (NO - 1) * 8);
        mma16816<BF16>(oacc[NO - 1], pa, vf);
      }
    }
    __syncthreads();
  }

#pragma unroll
  for (int hr = 0; hr < 2; hr++) {
    float l = lrow[hr];
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    float inv = l > 0.f ? 1.f / l : 0.f;
    int row = row_g[hr];
    if (row >= Sq) continue;
    u16* orow = o + ((i64)b * Sq + row) * os + h * D;
#pragma unroll
    for (int j = 0; j < NO; j++) {
      int d = j * 8 + tq * 2;
      *reinterpret_cast<u32*>(orow + d) =
          pack2<BF16>(oacc[j][hr * 2] * inv, oacc[j][hr * 2 + 1] * inv);
    }
  }
}

#define ATTN_ARGS                                                                         \
  const u16 *__restrict__ q, const u16 *__restrict__ k, const u16 *__restrict__ v,        \
      u16 *__restrict__ o, int Sq, int Sk, int qs, int ks, int vs, int os, float scale, \
      int causal
#define ATTN_PASS q, k, v, o, Sq, Sk, qs, ks, vs, os, scale, causal
#define ATTN_DEF(name, BF, D, BC)                                                  \
  extern "C" __global__ void __launch_bounds__(128) name(ATTN_ARGS) {              \
    attn_tc<BF, D, BC>(ATTN_PASS);                                                 \
  }

ATTN_DEF(attention_f16_d40, false, 40, 64)
ATTN_DEF(attention_f16_d64, false, 64, 64)
ATTN_DEF(attention_f16_d80, false, 80, 64)
ATTN_DEF(attention_f16_d160, false, 160, 32)
ATTN_DEF(attention_bf16_d40, true, 40, 64)
ATTN_DEF(attention_bf16_d64, true, 64, 64)
ATTN_DEF(attention_bf16_d80, true, 80, 64)
ATTN_DEF(attention_bf16_d160, true, 160, 32)

// ---------------------------------------------------------------------------
// SIMT attention: 8 warps per block, one query row per warp. Keys are taken 32
// at a time, one per lane (score by a dot product against q kept in shared
// memory), then the 32 probabilities are broadcast and each lane accumulates
// the output dims d = lane + 32*t. D <= 256.
template <class TR>
__device__ __forceinline__ void attn_simt(const typename TR::T* __restrict__ q,
                                          const typename TR::T* __restrict__ k,
                                          const typename TR::T* __restrict__ v,
                                          typename TR::T* __restrict__ o, int Sq, int Sk, int D,
                                          int qs, int ks, int vs, int os, float scale,
                                          int causal) {
  __shared__ float qsm[8][256];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int i = blockIdx.x * 8 + warp, h = blockIdx.y, b = blockIdx.z;
  if (i >= Sq) return;  // no block-wide barriers below
  const i64 qo = ((i64)b * Sq + i) * qs + (i64)h * D;
  for (int d = lane; d < D; d += 32) qsm[warp][d] = TR::ld(q, qo + d);
  __syncwarp();
  int n = Sk;
  if (causal) n = min(Sk, i + Sk - Sq + 1);
  float acc[8];
#pragma unroll
  for (int t = 0; t < 8; t++) acc[t] = 0.f;
  float m = -INFINITY, l = 0.f;
  const i64 kb = (i64)b * Sk * ks + (i64)h * D;
  const i64 vb = (i64)b * Sk * vs + (i64)h * D;
  for (int j0 = 0; j0 < n; j0 += 32) {
    int j = j0 + lane;
    float s = -INFINITY;
    if (j < n) {
      float dot = 0.f;
      const i64 kr = kb + (i64)j * ks;
      for (int d = 0; d < D; d++) dot = fmaf(qsm[warp][d], TR::ld(k, kr + d), dot);
      s = dot * scale;
    }
    float mnew = fmaxf(m, warp_max(s));  // finite: lane 0 always has a key
    float corr = expf(m - mnew);
    float p = j < n ? expf(s - mnew) : 0.f;
    l = l * corr + warp_sum(p);
#pragma unroll
    for (int t = 0; t < 8; t++) acc[t] *= corr;
    int cnt = min(32, n - j0);
    for (int jj = 0; jj < cnt; jj++) {
      float pj = __shfl_sync(0xffffffffu, p, jj);
      const i64 vr = vb + (i64)(j0 + jj) * vs;
#pragma unroll
      for (int t = 0; t < 8; t++) {
        int d = lane + 32 * t;
        if (d < D) acc[t] = fmaf(pj, TR::ld(v, vr + d), acc[t]);
      }
    }
    m = mnew;
  }
  float inv = l > 0.f ? 1.f / l : 0.f;
  const i64 oo = ((i64)b * Sq + i) * os + (i64)h * D;
#pragma unroll
  for (int t = 0; t < 8; t++) {
    int d = lane + 32 * t;
    if (d < D) TR::st(o, oo + d, acc[t] * inv);
  }
}

#define ATTN_SIMT_DEF(name, TR)                                                            \
  extern "C" __global__ void __launch_bounds__(256)                                        \
      name(const TR::T* __restrict__ q, const TR::T* __restrict__ k,                       \
           const TR::T* __restrict__ v, TR::T* __restrict__ o, int Sq, int Sk, int D, int qs, \
           int ks, int vs, int os, float scale, int causal) {                              \
    attn_simt<TR>(q, k, v, o, Sq, Sk, D, qs, ks, vs, os, scale, causal);                   \
  }

ATTN_SIMT_DEF(attention_simt_f32, F32T)
ATTN_SIMT_DEF(attention_simt_f16, F16T)
ATTN_SIMT_DEF(attention_simt_bf16, BF16T)

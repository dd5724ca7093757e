// norm.cu — group norm, layer norm and row softmax. F32 statistics throughout.
//
// Group norm of x [n, c, hw] with G groups (cg = c/G channels each; the
// elements of one (n, g) are contiguous, cnt = cg*hw of them):
//
//   mean, var (biased) over x[n, g*cg:(g+1)*cg, :]
//   y[n,ch,i] = (x[n,ch,i]-mean)/sqrt(var+eps)*gamma[ch] + beta[ch];  if silu: y *= sigmoid(y)
//
// in two kernels so that a group is spread over many blocks:
//   groupnorm_stats_T  grid (splits, n*G): each block takes one chunk of its
//                      group and writes (count, mean, M2) of that chunk, two-pass;
//                      values are shifted by the group's first element first, so a
//                      large common offset (mean 1000, std 1) costs no precision;
//   groupnorm_apply_T  grid (splits, n*G): each block merges the group's chunk
//                      statistics (Chan et al.'s pairwise formula) and normalises its chunk.
// ws holds 4*splits*n*G floats: (count, mean of x-shift, M2, shift) per chunk. gamma, beta may be null (1, 0). y may alias x.
//
// layernorm_T: one warp per row of x [rows, cols]; y = (x-mean)/sqrt(var+eps)*gamma+beta
//              (two-pass, shifted by the row's first element like group norm).
// softmax_T:   one warp per row; y = exp(x - max) / sum exp(x - max).
#include "common.cuh"

template <class TR>
__device__ __forceinline__ void gn_stats(const typename TR::T* __restrict__ x,
                                         float* __restrict__ ws, i64 cnt, int splits) {
  __shared__ float red[32];
  const int s = blockIdx.x;
  const i64 grp = blockIdx.y;
  const i64 chunk = (cnt + splits - 1) / splits;
  const i64 lo = min(cnt, s * chunk), hi = min(cnt, lo + chunk);
  const typename TR::T* xg = x + grp * cnt;
  const float shift = TR::ld(xg, 0);
  float sum = 0.f;
  for (i64 i = lo + threadIdx.x; i < hi; i += blockDim.x) sum += TR::ld(xg, i) - shift;
  sum = block_sum(sum, red);
  const float n = (float)(hi - lo);
  const float mean = n > 0.f ? sum / n : 0.f;
  float sq = 0.f;
  for (i64 i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    float d = (TR::ld(xg, i) - shift) - mean;
    sq = fmaf(d, d, sq);
  }
  sq = block_sum(sq, red);
  if (threadIdx.x == 0) {
    float* w = ws + 4 * (grp * splits + s);
    w[0] = n;
    w[1] = mean;  // of x - shift
    w[2] = sq;
    w[3] = shift;  // read here, before apply may overwrite x[group start] in place
  }
}

template <class TR>
__device__ __forceinline__ void gn_apply(const typename TR::T* x, typename TR::T* y,
                                         const float* __restrict__ ws,
                                         const float* __restrict__ gamma,
                                         const float* __restrict__ beta, int c, int hw,
                                         int groups, int splits, float eps, int silu) {
  __shared__ float stat[3];
  const int s = blockIdx.x;
  const i64 grp = blockIdx.y;
  const int cg = c / groups;
  const i64 cnt = (i64)cg * hw;
  if (threadIdx.x == 0) {
    // Chan, Golub & LeVeque: merge (n_a, mean_a, M2_a) with (n_b, mean_b, M2_b).
    float na = 0.f, ma = 0.f, m2a = 0.f;
    const float* w = ws + 4 * grp * splits;
    for (int t = 0; t < splits; t++) {
      float nb = w[4 * t], mb = w[4 * t + 1], m2b = w[4 * t + 2];
      if (nb == 0.f) continue;
      float nn = na + nb, d = mb - ma;
      ma += d * (nb / nn);
      m2a += m2b + d * d * (na * nb / nn);
      na = nn;
    }
    stat[0] = ma;
    stat[1] = rsqrtf(m2a / na + eps);
    stat[2] = w[3];
  }
  __syncthreads();
  const float mean = stat[0], inv = stat[1], shift = stat[2];
  const i64 chunk = (cnt + splits - 1) / splits;
  const i64 lo = min(cnt, s * chunk), hi = min(cnt, lo + chunk);
  const int g = (int)(grp % groups);
  const i64 base = grp * cnt;
  for (i64 i = lo + threadIdx.x; i < hi; i += blockDim.x) {
    int ch = g * cg + (int)(i / hw);
    float ga = gamma != nullptr ? gamma[ch] : 1.f;
    float be = beta != nullptr ? beta[ch] : 0.f;
    float v = ((TR::ld(x, base + i) - shift) - mean) * inv * ga + be;
    if (silu) v = v / (1.f + expf(-v));
    TR::st(y, base + i, v);
  }
}

template <class TR>
__device__ __forceinline__ void layernorm(const typename TR::T* x, typename TR::T* y, int rows,
                                          int cols, float eps, const float* __restrict__ gamma,
                                          const float* __restrict__ beta) {
  const int lane = threadIdx.x & 31;
  const i64 r = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= rows) return;
  const i64 o = r * cols;
  const float shift = TR::ld(x, o);
  float sum = 0.f;
  for (int j = lane; j < cols; j += 32) sum += TR::ld(x, o + j) - shift;
  const float mean = warp_sum(sum) / cols;  // of x - shift
  float sq = 0.f;
  for (int j = lane; j < cols; j += 32) {
    float d = (TR::ld(x, o + j) - shift) - mean;
    sq = fmaf(d, d, sq);
  }
  const float inv = rsqrtf(warp_sum(sq) / cols + eps);
  __syncwarp();  // every lane has read x[o] (shift) before y, which may alias x, is written
  for (int j = lane; j < cols; j += 32) {
    float ga = gamma != nullptr ? gamma[j] : 1.f;
    float be = beta != nullptr ? beta[j] : 0.f;
    TR::st(y, o + j, ((TR::ld(x, o + j) - shift) - mean) * inv * ga + be);
  }
}

template <class TR>
__device__ __forceinline__ void softmax(const typename TR::T* x, typename TR::T* y, int rows,
                                        int cols) {
  const int lane = threadIdx.x & 31;
  const i64 r = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= rows) return;
  const i64 o = r * cols;
  float mx = -INFINITY;
  for (int j = lane; j < cols; j += 32) mx = fmaxf(mx, TR::ld(x, o + j));
  mx = warp_max(mx);
  float sum = 0.f;
  for (int j = lane; j < cols; j += 32) sum += expf(TR::ld(x, o + j) - mx);
  const float inv = 1.f / warp_sum(sum);
  for (int j = lane; j < cols; j += 32) TR::st(y, o + j, expf(TR::ld(x, o + j) - mx) * inv);
}

#define NORM_DEFS(sfx, TR)                                                                  \
  extern "C" __global__ void __launch_bounds__(256)                                         \
      groupnorm_stats_##sfx(const TR::T* __restrict__ x, float* __restrict__ ws, i64 cnt,   \
                            int splits) {                                                   \
    gn_stats<TR>(x, ws, cnt, splits);                                                       \
  }                                                                                         \
  extern "C" __global__ void __launch_bounds__(256)                                         \
      groupnorm_apply_##sfx(const TR::T* x, TR::T* y, const float* __restrict__ ws,         \
                            const float* __restrict__ gamma, const float* __restrict__ beta, \
                            int c, int hw, int groups, int splits, float eps, int silu) {   \
    gn_apply<TR>(x, y, ws, gamma, beta, c, hw, groups, splits, eps, silu);                  \
  }                                                                                         \
  extern "C" __global__ void __launch_bounds__(256)                                         \
      layernorm_##sfx(const TR::T* x, TR::T* y, int rows, int cols, float eps,              \
                      const float* __restrict__ gamma, const float* __restrict__ beta) {    \
    layernorm<TR>(x, y, rows, cols, eps, gamma, beta);                                      \
  }                                                                                         \
  extern "C" __global__ void __launch_bounds__(256)                                         \
      softmax_##sfx(const TR::T* x, TR::T* y, int rows, int cols) {                         \
    softmax<TR>(x, y, rows, cols);                                                          \
  }

NORM_DEFS(f32, F32T)
NORM_DEFS(f16, F16T)
NORM_DEFS(bf16, BF16T)

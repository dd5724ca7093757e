// gemm.cu — matrix products.
//
// Tensor-core GEMM (mma.sync m16n8k16, F16 or BF16 in, F32 accumulate),
// batched over blockIdx.z:
//
//   for z < batch, i < M, j < N:
//     acc = sum_p A[z](i,p) * B[z](p,j)
//     v = alpha*acc + bias[j or i] + beta*C[z][i,j] + R[z][i,j]   (bias, beta, R optional)
//     C[z][i*ldc+j] = v
//
// A is [M, K] row-major (lda), B is [K, N] row-major (ldb, "nn") or stored as
// [N, K] row-major (ldb, "nt": B(p,j) = Bs[j*ldb+p], nn.Linear weights). C and R
// are F32 ("of32") or the input dtype ("oh"). Tiles: BM x BN x 32, double
// buffered with cp.async; edge tiles are zero-filled, so M and N are arbitrary.
// Requirements (checked by the Go launcher, which otherwise falls back to
// gemm_simt): 16-byte aligned A and B, lda, ldb and K multiples of 8, and for
// "nn" N a multiple of 8.
//
// gemm_simt: SIMT GEMM for checking and for the cases above, any dtype of A, B
// and C (run-time codes), either operand transposed, any strides.
#include "common.cuh"

template <bool BF16, bool BT, bool OH, int BM, int BN, int WARPS_M, int WARPS_N>
__device__ __forceinline__ void gemm_tc(const u16* __restrict__ A, const u16* __restrict__ B,
                                        void* C, const float* __restrict__ bias,
                                        const void* Rr, int M, int N, int K, int lda, int ldb,
                                        int ldc, int ldr, i64 sA, i64 sB, i64 sC, i64 sR,
                                        float alpha, float beta, int bias_rows) {
  constexpr int BK = 32;
  constexpr int PAD = 8;
  constexpr int NT = 32 * WARPS_M * WARPS_N;
  constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N;
  constexpr int MI = WTM / 16, NI = WTN / 8;
  static_assert(NI % 2 == 0, "warp tile N must be a multiple of 16");
  constexpr int A_ELEMS = BM * (BK + PAD);
  constexpr int B_ELEMS = BT ? BN * (BK + PAD) : BK * (BN + PAD);
  __shared__ __align__(16) u16 smem[2 * (A_ELEMS + B_ELEMS)];
  u16* As = smem;
  u16* Bs = smem + 2 * A_ELEMS;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const i64 z = blockIdx.z;
  A += z * sA;
  B += z * sB;

  auto load_tile = [&](int stage, int k0) {
    u16* as = As + stage * A_ELEMS;
    // A: BM rows x BK cols, 4 chunks of 8 per row.
#pragma unroll
    for (int c = tid; c < BM * BK / 8; c += NT) {
      int row = c >> 2, col = (c & 3) * 8;
      int gm = m0 + row, gk = k0 + col;
      bool ok = gm < M && gk < K;
      const u16* src = ok ? A + (i64)gm * lda + gk : A;
      cp_async16(as + row * (BK + PAD) + col, src, ok ? 16 : 0);
    }
    u16* bs = Bs + stage * B_ELEMS;
    if (BT) {
#pragma unroll
      for (int c = tid; c < BN * BK / 8; c += NT) {
        int row = c >> 2, col = (c & 3) * 8;
        int gn = n0 + row, gk = k0 + col;
        bool ok = gn < N && gk < K;
        const u16* src = ok ? B + (i64)gn * ldb + gk : B;
        cp_async16(bs + row * (BK + PAD) + col, src, ok ? 16 : 0);
      }
    } else {
      constexpr int CPR = BN / 8;  // chunks per row
#pragma unroll
      for (int c = tid; c < BK * CPR; c += NT) {
        int row = c / CPR, col = (c % CPR) * 8;
        int gk = k0 + row, gn = n0 + col;
        bool ok = gk < K && gn < N;
        const u16* src = ok ? B + (i64)gk * ldb + gn : B;
        cp_async16(bs + row * (BN + PAD) + col, src, ok ? 16 : 0);
      }
    }
  };

  float acc[MI][NI][4];
#pragma unroll
  for (int i = 0; i < MI; i++)
#pragma unroll
    for (int j = 0; j < NI; j++)
#pragma unroll
      for (int e = 0; e < 4; e++) acc[i][j][e] = 0.f;

  const int ntiles = (K + BK - 1) / BK;
  if (ntiles > 0) {
    load_tile(0, 0);
    cp_async_commit();
  }
  for (int t = 0; t < ntiles; t++) {
    if (t + 1 < ntiles) {
      load_tile((t + 1) & 1, (t + 1) * BK);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const u16* as = As + (t & 1) * A_ELEMS;
    const u16* bs = Bs + (t & 1) * B_ELEMS;
    warp_mma_tile<BF16, BT, MI, NI, BK, BN, PAD>(as, bs, wm * WTM, wn * WTN, lane, acc);
    __syncthreads();
  }

  // Epilogue.
  const int g = lane >> 2, tq = lane & 3;
#pragma unroll
  for (int i = 0; i < MI; i++) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
      int r = m0 + wm * WTM + i * 16 + g + h * 8;
      if (r >= M) continue;
      float brow = (bias != nullptr && bias_rows) ? bias[r] : 0.f;
#pragma unroll
      for (int j = 0; j < NI; j++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
          int c = n0 + wn * WTN + j * 8 + tq * 2 + e;
          if (c >= N) continue;
          float v = alpha * acc[i][j][h * 2 + e] + brow;
          if (bias != nullptr && !bias_rows) v += bias[c];
          i64 ci = z * sC + (i64)r * ldc + c;
          if (OH) {
            u16* Cp = (u16*)C;
            if (beta != 0.f) v += beta * (BF16 ? bf16_to_f32(Cp[ci]) : f16_to_f32(Cp[ci]));
            if (Rr != nullptr) {
              u16 rv = ((const u16*)Rr)[z * sR + (i64)r * ldr + c];
              v += BF16 ? bf16_to_f32(rv) : f16_to_f32(rv);
            }
            Cp[ci] = BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          } else {
            float* Cp = (float*)C;
            if (beta != 0.f) v += beta * Cp[ci];
            if (Rr != nullptr) v += ((const float*)Rr)[z * sR + (i64)r * ldr + c];
            Cp[ci] = v;
          }
        }
      }
    }
  }
}

#define GEMM_ARGS                                                                          \
  const u16 *__restrict__ A, const u16 *__restrict__ B, void *C, const float *__restrict__ bias, \
      const void *R, int M, int N, int K, int lda, int ldb, int ldc, int ldr, i64 sA, i64 sB,  \
      i64 sC, i64 sR, float alpha, float beta, int bias_rows
#define GEMM_PASS A, B, C, bias, R, M, N, K, lda, ldb, ldc, ldr, sA, sB, sC, sR, alpha, beta, bias_rows

// Large tiles: 128x128, 8 warps (2x4), warp tile 64x32. Small tiles: 64x64, 4 warps, 32x32.
#define GEMM_DEF(name, BF, BT, OH)                                                          \
  extern "C" __global__ void __launch_bounds__(256) name##_128(GEMM_ARGS) {                \
    gemm_tc<BF, BT, OH, 128, 128, 2, 4>(GEMM_PASS);                                         \
  }                                                                                         \
  extern "C" __global__ void __launch_bounds__(128) name##_64(GEMM_ARGS) {                 \
    gemm_tc<BF, BT, OH, 64, 64, 2, 2>(GEMM_PASS);                                           \
  }

GEMM_DEF(gemm_f16_nn_of32, false, false, false)
GEMM_DEF(gemm_f16_nt_of32, false, true, false)
GEMM_DEF(gemm_f16_nn_oh, false, false, true)
GEMM_DEF(gemm_f16_nt_oh, false, true, true)
GEMM_DEF(gemm_bf16_nn_of32, true, false, false)
GEMM_DEF(gemm_bf16_nt_of32, true, true, false)
GEMM_DEF(gemm_bf16_nn_oh, true, false, true)
GEMM_DEF(gemm_bf16_nt_oh, true, true, true)

// ---------------------------------------------------------------------------
// SIMT GEMM: 64x64 block tile, 16-deep K slices in shared memory, 256 threads,
// 4x4 outputs per thread. Operand element (i, p) of op(A) is read from
// A[i*lda+p] or, transposed, A[p*lda+i]; likewise B. Any dtype (codes in
// common.cuh), F32 accumulation, same epilogue as the tensor-core kernel
// (dtC gives the dtype of C and R).
extern "C" __global__ void __launch_bounds__(256)
    gemm_simt(const void* __restrict__ A, const void* __restrict__ B, void* C,
              const float* __restrict__ bias, const void* R, int M, int N, int K, int lda,
              int ldb, int ldc, int ldr, i64 sA, i64 sB, i64 sC, i64 sR, float alpha, float beta,
              int bias_rows, int dtA, int dtB, int dtC, int transA, int transB) {
  constexpr int TS = 64, TK = 16;
  __shared__ float As[TK][TS + 1];
  __shared__ float Bs[TK][TS + 1];
  const int tid = threadIdx.x;
  const int tx = tid & 15, ty = tid >> 4;
  const int m0 = blockIdx.y * TS, n0 = blockIdx.x * TS;
  const i64 z = blockIdx.z;
  const i64 offA = z * sA, offB = z * sB;
  float acc[4][4] = {};
  for (int k0 = 0; k0 < K; k0 += TK) {
    for (int e = tid; e < TS * TK; e += 256) {
      int p = e % TK, i = e / TK;  // A tile: i in [0,64), p in [0,16)
      int gi = m0 + i, gp = k0 + p;
      float v = 0.f;
      if (gi < M && gp < K) {
        i64 idx = transA ? (i64)gp * lda + gi : (i64)gi * lda + gp;
        v = ld_any(A, offA + idx, dtA);
      }
      As[p][i] = v;
      int j = e % TS, q = e / TS;  // B tile: q in [0,16), j in [0,64)
      int gj = n0 + j, gq = k0 + q;
      v = 0.f;
      if (gj < N && gq < K) {
        i64 idx = transB ? (i64)gj * ldb + gq : (i64)gq * ldb + gj;
        v = ld_any(B, offB + idx, dtB);
      }
      Bs[q][j] = v;
    }
    __syncthreads();
    simt_tile_fma<TK, TS>(As, Bs, ty, tx, acc);
    __syncthreads();
  }
#pragma unroll
  for (int u = 0; u < 4; u++) {
    int r = m0 + ty + 16 * u;
    if (r >= M) continue;
#pragma unroll
    for (int w = 0; w < 4; w++) {
      int c = n0 + tx + 16 * w;
      if (c >= N) continue;
      float v = alpha * acc[u][w];
      if (bias != nullptr) v += bias_rows ? bias[r] : bias[c];
      i64 ci = z * sC + (i64)r * ldc + c;
      if (beta != 0.f) v += beta * ld_any(C, ci, dtC);
      if (R != nullptr) v += ld_any(R, z * sR + (i64)r * ldr + c, dtC);
      st_any(C, ci, dtC, v);
    }
  }
}

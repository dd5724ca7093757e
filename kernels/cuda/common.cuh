// common.cuh — helpers shared by the roentgo CUDA kernels (included by every .cu).
//
// Storage types: float for F32; unsigned short holding IEEE binary16 (F16) or
// bfloat16 (BF16) bits. All arithmetic is in float32. Conversions mirror
// kernels/cpu/half.go bit for bit (round to nearest even; a BF16 NaN keeps its
// top bits and gets the quiet bit, as F32ToBF16Scalar does).
//
// Tensor-core helpers wrap the PTX of sm_80+: cp.async (16-byte copies with zero
// fill), ldmatrix (x2/x4, plain and .trans) and mma.sync m16n8k16 with F32
// accumulators for F16 and BF16 inputs. With ROENTGO_EMU defined (and emu/emu.h
// included first) the inline-PTX helpers are left out: the CPU emulator of
// emu/ provides them, so the kernels' index logic can be tested without a GPU.
#pragma once

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

// dtype codes shared with the Go launchers (kernels/cuda/dtype.go).
#define DT_F32 0
#define DT_F16 1
#define DT_BF16 2

#ifndef ROENTGO_EMU  // emu/emu.h supplies host versions of these for the CPU emulator
__device__ __forceinline__ float f16_to_f32(u16 h) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
  return f;
}

__device__ __forceinline__ u16 f32_to_f16(float f) {
  u16 h;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
  return h;
}
#endif

__device__ __forceinline__ float bf16_to_f32(u16 h) {
  return __uint_as_float(((u32)h) << 16);
}

__device__ __forceinline__ u16 f32_to_bf16(float f) {
  u32 b = __float_as_uint(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) {  // NaN: quiet, non-zero payload
    return (u16)((b >> 16) | 0x40u);
  }
  u32 rounding = 0x7fffu + ((b >> 16) & 1u);
  return (u16)((b + rounding) >> 16);
}

// Storage traits: load/store one element as float.
struct F32T {
  typedef float T;
  static __device__ __forceinline__ float ld(const float* p, i64 i) { return p[i]; }
  static __device__ __forceinline__ void st(float* p, i64 i, float v) { p[i] = v; }
};
struct F16T {
  typedef u16 T;
  static __device__ __forceinline__ float ld(const u16* p, i64 i) { return f16_to_f32(p[i]); }
  static __device__ __forceinline__ void st(u16* p, i64 i, float v) { p[i] = f32_to_f16(v); }
};
struct BF16T {
  typedef u16 T;
  static __device__ __forceinline__ float ld(const u16* p, i64 i) { return bf16_to_f32(p[i]); }
  static __device__ __forceinline__ void st(u16* p, i64 i, float v) { p[i] = f32_to_bf16(v); }
};

// Element i of a buffer of run-time dtype dt, as float.
__device__ __forceinline__ float ld_any(const void* p, i64 i, int dt) {
  if (dt == DT_F32) return ((const float*)p)[i];
  u16 h = ((const u16*)p)[i];
  return dt == DT_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

// Store v as element i of a buffer of run-time dtype dt.
__device__ __forceinline__ void st_any(void* p, i64 i, int dt, float v) {
  if (dt == DT_F32) {
    ((float*)p)[i] = v;
  } else if (dt == DT_F16) {
    ((u16*)p)[i] = f32_to_f16(v);
  } else {
    ((u16*)p)[i] = f32_to_bf16(v);
  }
}

// Two floats packed into a 32-bit register of two 16-bit values (lo in the low half).
template <bool BF16>
__device__ __forceinline__ u32 pack2(float lo, float hi) {
  u16 a = BF16 ? f32_to_bf16(lo) : f32_to_f16(lo);
  u16 b = BF16 ? f32_to_bf16(hi) : f32_to_f16(hi);
  return (u32)a | ((u32)b << 16);
}

#ifndef ROENTGO_EMU
__device__ __forceinline__ u32 smem_addr(const void* p) {
  return (u32)__cvta_generic_to_shared(p);
}

// 16-byte asynchronous global->shared copy; src_bytes < 16 zero-fills the rest
// (src_bytes == 0 writes 16 zero bytes and reads nothing).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(smem)),
               "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(u32& r0, u32& r1, u32& r2, u32& r3, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32& r0, u32& r1, u32& r2, u32& r3,
                                                  const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x2(u32& r0, u32& r1, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x2_trans(u32& r0, u32& r1, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
               : "=r"(r0), "=r"(r1)
               : "r"(smem_addr(p)));
}

// d += a * b for one m16n8k16 tile: a row-major 16x16, b column-major 16x8, F32 accumulators.
template <bool BF16>
__device__ __forceinline__ void mma16816(float* d, const u32* a, const u32* b) {
  if (BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
  }
}
#endif  // ROENTGO_EMU

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024). Every thread
// gets the result. scratch: 32 floats of shared memory; callable repeatedly.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[w] = v;
  __syncthreads();
  v = lane < nw ? scratch[lane] : 0.f;
  return warp_sum(v);
}

// Activation codes shared with kernels/cpu.Activation.
#define ACT_IDENTITY 0
#define ACT_SILU 1
#define ACT_GELU 2
#define ACT_GELU_TANH 3
#define ACT_QUICK_GELU 4

__device__ __forceinline__ float activate(int f, float x) {
  switch (f) {
    case ACT_SILU:
      return x / (1.f + expf(-x));
    // 1 + erf(v) and 1 + tanh(u) cancel for negative arguments (the result
    // would lose every digit below x ~ -4); erfc and the logistic form do not.
    case ACT_GELU:
      return 0.5f * x * erfcf(x * -0.70710678118654752f);
    case ACT_GELU_TANH:
      return x / (1.f + expf(-2.f * 0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case ACT_QUICK_GELU:
      return x / (1.f + expf(-1.702f * x));
  }
  return x;
}

// simt_tile_fma accumulates one shared-memory step of the 64x64 SIMT tile that the
// F32 checking kernels (gemm_simt, conv2d_simt) use: As and Bs hold TK rows of the
// A and B tiles (padded by one column against bank conflicts), and the thread
// (ty, tx) of the 16x16 block owns rows ty+16u and columns tx+16v of the tile.
template <int TK, int TS>
__device__ __forceinline__ void simt_tile_fma(const float (&As)[TK][TS + 1], const float (&Bs)[TK][TS + 1],
                                              int ty, int tx, float (&acc)[4][4]) {
#pragma unroll
  for (int p = 0; p < TK; p++) {
    float a[4], b[4];
#pragma unroll
    for (int u = 0; u < 4; u++) {
      a[u] = As[p][ty + 16 * u];
      b[u] = Bs[p][tx + 16 * u];
    }
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
      for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
  }
}

// warp_mma_tile runs one shared-memory stage of the tensor-core kernels (GEMM and
// implicit-GEMM conv): for each 16-deep slice of the BK-deep stage, the warp loads
// its MI 16x16 A fragments (rows m0.., A tile row stride BK+PAD) and NI 8-wide B
// fragments (columns n0..; B stored [n][k] with row stride BK+PAD when BT, else
// [k][n] with row stride BN+PAD) with ldmatrix and accumulates MI x NI m16n8k16
// products into acc.
template <bool BF16, bool BT, int MI, int NI, int BK, int BN, int PAD>
__device__ __forceinline__ void warp_mma_tile(const u16* as, const u16* bs, int m0, int n0, int lane,
                                              float (&acc)[MI][NI][4]) {
#pragma unroll
  for (int kk = 0; kk < BK; kk += 16) {
    u32 af[MI][4];
#pragma unroll
    for (int i = 0; i < MI; i++) {
      int row = m0 + i * 16 + (lane & 15);
      int col = kk + (lane >> 4) * 8;
      ldmatrix_x4(af[i][0], af[i][1], af[i][2], af[i][3], as + row * (BK + PAD) + col);
    }
    u32 bf[NI][2];
#pragma unroll
    for (int j = 0; j < NI; j += 2) {
      int q = lane >> 3, r = lane & 7;
      if (BT) {
        int n = n0 + j * 8 + (q >> 1) * 8 + r;
        int k = kk + (q & 1) * 8;
        ldmatrix_x4(bf[j][0], bf[j][1], bf[j + 1][0], bf[j + 1][1], bs + n * (BK + PAD) + k);
      } else {
        int k = kk + (q & 1) * 8 + r;
        int n = n0 + j * 8 + (q >> 1) * 8;
        ldmatrix_x4_trans(bf[j][0], bf[j][1], bf[j + 1][0], bf[j + 1][1], bs + k * (BN + PAD) + n);
      }
    }
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
      for (int j = 0; j < NI; j++) mma16816<BF16>(acc[i][j], af[i], bf[j]);
  }
}

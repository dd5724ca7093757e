// elementwise.cu — activations, GEGLU, adds, upsampling, concatenation, timestep
// embeddings, dtype conversion, and strided copy / unary / binary / fill over
// views. Grid-stride loops over 256-thread blocks; F32 arithmetic whatever the
// storage dtype (suffix _f32, _f16, _bf16, or run-time DT_* codes).
//
//   act_T(f, x, y, n):               y[i] = f(x[i])   (f: ACT_* codes = kernels/cpu.Activation)
//   geglu_T(x, y, rows, d):          y[r,j] = x[r,j] * gelu(x[r,d+j])      x [rows, 2d], exact GELU
//   add_T(a, b, y, n, scale):        y[i] = (a[i] + b[i]) * scale         (residual adds)
//   add_bcast_T(x, b, y, n, inner, nb, dtB):
//                                    y[i] = x[i] + b[(i / inner) % nb]      (b of dtype dtB;
//                                    channel bias: inner = hw, nb = c; per-sample
//                                    channel vector (time embedding): inner = hw, nb = n*c)
//   upsample2x_T(x, y, nc, h, w):    y[c,i,j] = x[c,i/2,j/2]              y [nc, 2h, 2w]
//   concat_T(a, b, y, outer, ca, cb, inner):
//                                    y[o, 0:ca, :] = a[o], y[o, ca:ca+cb, :] = b[o]
//                                    (channel concat of [N, ca, HW] and [N, cb, HW])
//   timestep_embedding_f32(t, out, n, dim, flip, shift, scale, maxPeriod): as
//                                    kernels/cpu.TimestepEmbeddingRef (exponent and
//                                    product in float32, exp/sin/cos in float64)
//   convert_A_to_B(src, dst, n):     dtype conversion, round to nearest even.
//
// Strided kernels over views (semantics of kernels/cpu/elementwise.go; operands
// of up to 6 merged dimensions, sizes and strides innermost first, see below):
//   copy_strided_b16/_b32(dst, src, rank, n, sizes, dst strides, src strides):
//                                    dst[i·ds] = src[i·ss]  (bit copies, any 2- or 4-byte dtype)
//   unary_strided(op, alpha, beta, y, dty, x, dtx, rank, n, sizes, ys, xs):
//                                    y[i·ys] = op(alpha, beta, x[i·xs])  (op: U_* = kernels/cpu.UnaryOp;
//                                    y, x each F32/F16/BF16: DT_* codes)
//   binary_strided(op, y, dty, a, dta, b, dtb, rank, n, sizes, ys, as, bs):
//                                    y[i·ys] = op(a[i·as], b[i·bs])  (op: B_* = kernels/cpu.BinaryOp)
//   fill_b16/_b32(p, n, bits):       p[i] = bits for i < n
#include "common.cuh"

#define GRID_STRIDE(i, n) \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

template <class TR>
__device__ __forceinline__ void act_k(int f, const typename TR::T* x, typename TR::T* y, i64 n) {
  GRID_STRIDE(i, n) TR::st(y, i, activate(f, TR::ld(x, i)));
}

template <class TR>
__device__ __forceinline__ void geglu_k(const typename TR::T* __restrict__ x,
                                        typename TR::T* __restrict__ y, int rows, int d) {
  const i64 n = (i64)rows * d;
  GRID_STRIDE(i, n) {
    i64 r = i / d, j = i - r * d;
    float a = TR::ld(x, r * 2 * d + j), g = TR::ld(x, r * 2 * d + d + j);
    TR::st(y, i, a * activate(ACT_GELU, g));
  }
}

template <class TR>
__device__ __forceinline__ void add_k(const typename TR::T* a, const typename TR::T* b,
                                      typename TR::T* y, i64 n, float scale) {
  GRID_STRIDE(i, n) TR::st(y, i, (TR::ld(a, i) + TR::ld(b, i)) * scale);
}

template <class TR>
__device__ __forceinline__ void add_bcast_k(const typename TR::T* x, const void* b,
                                            typename TR::T* y, i64 n, i64 inner, i64 nb,
                                            int dtB) {
  GRID_STRIDE(i, n) TR::st(y, i, TR::ld(x, i) + ld_any(b, (i / inner) % nb, dtB));
}

template <class TR>
__device__ __forceinline__ void upsample2x_k(const typename TR::T* __restrict__ x,
                                             typename TR::T* __restrict__ y, int nc, int h,
                                             int w) {
  const i64 W2 = 2 * w, H2 = 2 * h;
  const i64 n = (i64)nc * H2 * W2;
  GRID_STRIDE(i, n) {
    i64 j = i % W2, t = i / W2;
    i64 r = t % H2, c = t / H2;
    y[i] = x[(c * h + r / 2) * w + j / 2];
  }
}

template <class TR>
__device__ __forceinline__ void concat_k(const typename TR::T* __restrict__ a,
                                         const typename TR::T* __restrict__ b,
                                         typename TR::T* __restrict__ y, int outer, int ca,
                                         int cb, i64 inner) {
  const i64 rowA = (i64)ca * inner, rowB = (i64)cb * inner, row = rowA + rowB;
  const i64 n = (i64)outer * row;
  GRID_STRIDE(i, n) {
    i64 o = i / row, e = i - o * row;
    y[i] = e < rowA ? a[o * rowA + e] : b[o * rowB + (e - rowA)];
  }
}

#define EW_DEFS(sfx, TR)                                                                      \
  extern "C" __global__ void __launch_bounds__(256)                                           \
      act_##sfx(int f, const TR::T* x, TR::T* y, i64 n) {                                     \
    act_k<TR>(f, x, y, n);                                                                    \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(256)                                           \
      geglu_##sfx(const TR::T* __restrict__ x, TR::T* __restrict__ y, int rows, int d) {      \
    geglu_k<TR>(x, y, rows, d);                                                               \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(256)                                           \
      add_##sfx(const TR::T* a, const TR::T* b, TR::T* y, i64 n, float scale) {               \
    add_k<TR>(a, b, y, n, scale);                                                             \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(256) add_bcast_##sfx(                         \
      const TR::T* x, const void* b, TR::T* y, i64 n, i64 inner, i64 nb, int dtB) {           \
    add_bcast_k<TR>(x, b, y, n, inner, nb, dtB);                                              \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(256)                                           \
      upsample2x_##sfx(const TR::T* __restrict__ x, TR::T* __restrict__ y, int nc, int h,     \
                       int w) {                                                               \
    upsample2x_k<TR>(x, y, nc, h, w);                                                         \
  }                                                                                           \
  extern "C" __global__ void __launch_bounds__(256)                                           \
      concat_##sfx(const TR::T* __restrict__ a, const TR::T* __restrict__ b,                  \
                   TR::T* __restrict__ y, int outer, int ca, int cb, i64 inner) {             \
    concat_k<TR>(a, b, y, outer, ca, cb, inner);                                              \
  }

EW_DEFS(f32, F32T)
EW_DEFS(f16, F16T)
EW_DEFS(bf16, BF16T)

extern "C" __global__ void __launch_bounds__(256)
    timestep_embedding_f32(const float* __restrict__ t, float* __restrict__ out, int n, int dim,
                           int flip, float shift, float scale, float max_period) {
  const int half = dim / 2;
  const i64 total = (i64)n * dim;
  const float nl = (float)(-log((double)max_period));
  GRID_STRIDE(idx, total) {
    int i = (int)(idx / dim), j = (int)(idx - (i64)i * dim);
    float v = 0.f;
    if (j < 2 * half) {
      int jj = j < half ? j : j - half;
      float e = __fdiv_rn(__fmul_rn(nl, (float)jj), __fsub_rn((float)half, shift));
      float freq = (float)exp((double)e);
      float arg = __fmul_rn(scale, __fmul_rn(t[i], freq));
      bool first = j < half;
      bool want_cos = flip ? first : !first;
      v = want_cos ? (float)cos((double)arg) : (float)sin((double)arg);
    }
    out[idx] = v;
  }
}

#define CONVERT_DEF(name, TIN, TOUT)                                                   \
  extern "C" __global__ void __launch_bounds__(256)                                    \
      name(const TIN::T* __restrict__ src, TOUT::T* __restrict__ dst, i64 n) {         \
    GRID_STRIDE(i, n) TOUT::st(dst, i, TIN::ld(src, i));                               \
  }

CONVERT_DEF(convert_f32_to_f16, F32T, F16T)
CONVERT_DEF(convert_f32_to_bf16, F32T, BF16T)
CONVERT_DEF(convert_f16_to_f32, F16T, F32T)
CONVERT_DEF(convert_bf16_to_f32, BF16T, F32T)
CONVERT_DEF(convert_f16_to_bf16, F16T, BF16T)
CONVERT_DEF(convert_bf16_to_f16, BF16T, F16T)

// ---------------------------------------------------------------------------
// Strided kernels over views: every operand is a buffer plus one element stride
// per dimension of a common iteration shape (stride 0 broadcasts), as in
// kernels/cpu/elementwise.go. The launcher (launch_strided.go) merges dimensions
// that are contiguous in every operand and drops size-1 dimensions, then passes
// rank <= 6 and the sizes s0..s5 and each operand's strides INNERMOST FIRST (s0
// is the fastest-varying dimension), unused dimensions as size 1, stride 0.
// n is the product of the sizes. Thread t handles the flat row-major indices
// t, t + gridDim*blockDim, ...; offsets are 64-bit, and the flat index is split
// with 32-bit divisions when n < 2^32.

typedef unsigned long long u64;

#define I64X6(p) i64 p##0, i64 p##1, i64 p##2, i64 p##3, i64 p##4, i64 p##5
#define ARR6(p) \
  { p##0, p##1, p##2, p##3, p##4, p##5 }

// strided_offsets returns in off[o] the offset of flat index idx in operand o.
// Fully unrolled with constant indices, so sz and st stay in registers.
template <int NOP, class I>
__device__ __forceinline__ void strided_offsets(I idx, int rank, const i64 (&sz)[6],
                                                const i64 (&st)[NOP][6], i64 (&off)[NOP]) {
#pragma unroll
  for (int o = 0; o < NOP; o++) off[o] = 0;
#pragma unroll
  for (int k = 0; k < 6; k++) {
    if (k >= rank - 1) {  // outermost dimension: no division
#pragma unroll
      for (int o = 0; o < NOP; o++) off[o] += (i64)idx * st[o][k];
      return;
    }
    const I s = (I)sz[k];
    const I q = idx / s;
    const I r = idx - q * s;
#pragma unroll
    for (int o = 0; o < NOP; o++) off[o] += (i64)r * st[o][k];
    idx = q;
  }
}

// strided_loop calls f(off) for every flat index below n (grid-stride).
template <int NOP, class F>
__device__ __forceinline__ void strided_loop(i64 n, int rank, const i64 (&sz)[6],
                                             const i64 (&st)[NOP][6], F f) {
  i64 off[NOP];
  if (n <= 0xffffffffLL) {
    GRID_STRIDE(i, n) {
      strided_offsets<NOP, u32>((u32)i, rank, sz, st, off);
      f(off);
    }
  } else {
    GRID_STRIDE(i, n) {
      strided_offsets<NOP, u64>((u64)i, rank, sz, st, off);
      f(off);
    }
  }
}

// Go's builtin max and min on floats: NaN if either is NaN, max(-0, +0) = +0,
// min(-0, +0) = -0.
__device__ __forceinline__ float go_max(float a, float b) {
  if (a != a || b != b) return __uint_as_float(0x7fc00000u);
  if (a == b) return (__float_as_uint(a) >> 31) ? b : a;
  return a > b ? a : b;
}
__device__ __forceinline__ float go_min(float a, float b) {
  if (a != a || b != b) return __uint_as_float(0x7fc00000u);
  if (a == b) return (__float_as_uint(a) >> 31) ? a : b;
  return a < b ? a : b;
}

// Unary op codes shared with kernels/cpu.UnaryOp.
#define U_COPY 0
#define U_AFFINE 1
#define U_ABS 2
#define U_EXP 3
#define U_LOG 4
#define U_SQRT 5
#define U_RSQRT 6
#define U_SIN 7
#define U_COS 8
#define U_TANH 9
#define U_SIGMOID 10
#define U_SQUARE 11
#define U_CLAMP 12
#define U_POW 13
#define U_RECIP 14

// unary_op is kernels/cpu.UnaryOp.UnaryScalar: float32 arithmetic (no fused
// multiply-add, as Go on amd64), transcendentals in double precision.
__device__ __forceinline__ float unary_op(int op, float alpha, float beta, float x) {
  switch (op) {
    case U_COPY:
      return x;
    case U_AFFINE:
      return __fadd_rn(__fmul_rn(alpha, x), beta);
    case U_ABS:
      return fabsf(x);
    case U_EXP:
      return (float)exp((double)x);
    case U_LOG:
      return (float)log((double)x);
    case U_SQRT:
      return (float)sqrt((double)x);
    case U_RSQRT:
      return (float)(1.0 / sqrt((double)x));
    case U_SIN:
      return (float)sin((double)x);
    case U_COS:
      return (float)cos((double)x);
    case U_TANH:
      return (float)tanh((double)x);
    case U_SIGMOID:
      return (float)(1.0 / (1.0 + exp(-(double)x)));
    case U_SQUARE:
      return __fmul_rn(x, x);
    case U_CLAMP:
      return x != x ? x : go_min(go_max(x, alpha), beta);
    case U_POW:
      return (float)pow((double)x, (double)alpha);
    case U_RECIP:
      return __fdiv_rn(1.f, x);
  }
  return x;
}

// Binary op codes shared with kernels/cpu.BinaryOp.
#define B_ADD 0
#define B_SUB 1
#define B_MUL 2
#define B_DIV 3
#define B_MAX 4
#define B_MIN 5

// binary_op is kernels/cpu.BinaryOp.BinaryScalar (float32 arithmetic).
__device__ __forceinline__ float binary_op(int op, float a, float b) {
  switch (op) {
    case B_ADD:
      return __fadd_rn(a, b);
    case B_SUB:
      return __fsub_rn(a, b);
    case B_MUL:
      return __fmul_rn(a, b);
    case B_DIV:
      return __fdiv_rn(a, b);
    case B_MAX:
      return go_max(a, b);
    case B_MIN:
      return go_min(a, b);
  }
  return a;
}

#define COPY_STRIDED_DEF(name, T)                                                            \
  extern "C" __global__ void __launch_bounds__(256)                                          \
      name(T* __restrict__ dst, const T* __restrict__ src, int rank, i64 n, I64X6(s),       \
           I64X6(d), I64X6(x)) {                                                             \
    const i64 sz[6] = ARR6(s);                                                               \
    const i64 st[2][6] = {ARR6(d), ARR6(x)};                                                 \
    strided_loop<2>(n, rank, sz, st, [&](const i64(&off)[2]) { dst[off[0]] = src[off[1]]; }); \
  }

// copy_strided_bW(dst, src, rank, n, sizes, dst strides, src strides):
// dst[i·ds] = src[i·ss] for W-bit elements (bit copies of any dtype).
COPY_STRIDED_DEF(copy_strided_b16, u16)
COPY_STRIDED_DEF(copy_strided_b32, u32)

// unary_strided(op, alpha, beta, y, dty, x, dtx, rank, n, sizes, y strides, x strides):
// y[i·ys] = op(alpha, beta, x[i·xs]) with y, x of dtypes dty, dtx (DT_*).
extern "C" __global__ void __launch_bounds__(256)
    unary_strided(int op, float alpha, float beta, void* y, int dty, const void* x, int dtx, int rank,
                  i64 n, I64X6(s), I64X6(ys), I64X6(xs)) {
  const i64 sz[6] = ARR6(s);
  const i64 st[2][6] = {ARR6(ys), ARR6(xs)};
  strided_loop<2>(n, rank, sz, st, [&](const i64(&off)[2]) {
    st_any(y, off[0], dty, unary_op(op, alpha, beta, ld_any(x, off[1], dtx)));
  });
}

// binary_strided(op, y, dty, a, dta, b, dtb, rank, n, sizes, y, a, b strides):
// y[i·ys] = op(a[i·as], b[i·bs]); y may be a or b with the same strides (in place).
extern "C" __global__ void __launch_bounds__(256)
    binary_strided(int op, void* y, int dty, const void* a, int dta, const void* b, int dtb,
                   int rank, i64 n, I64X6(s), I64X6(ys), I64X6(as), I64X6(bs)) {
  const i64 sz[6] = ARR6(s);
  const i64 st[3][6] = {ARR6(ys), ARR6(as), ARR6(bs)};
  strided_loop<3>(n, rank, sz, st, [&](const i64(&off)[3]) {
    st_any(y, off[0], dty, binary_op(op, ld_any(a, off[1], dta), ld_any(b, off[2], dtb)));
  });
}

// fill_bW(p, n, bits): p[i] = bits for i < n (W-bit elements; bits already in
// the buffer's dtype, converted by the launcher).
extern "C" __global__ void __launch_bounds__(256) fill_b16(u16* __restrict__ p, i64 n, u32 bits) {
  const u16 v = (u16)bits;
  GRID_STRIDE(i, n) p[i] = v;
}
extern "C" __global__ void __launch_bounds__(256) fill_b32(u32* __restrict__ p, i64 n, u32 bits) {
  GRID_STRIDE(i, n) p[i] = bits;
}

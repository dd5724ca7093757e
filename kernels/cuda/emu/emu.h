// emu.h — a small CPU emulator of the CUDA features roentgo's kernels use, so
// that their index logic (tiles, fragments, masks, pipelines, epilogues) can be
// checked on a machine without a GPU. Not a general CUDA emulator.
//
// Each CUDA thread of a block is a ucontext fiber on one OS thread; blocks run
// one after another. __syncthreads and warp barriers park a fiber until every
// thread of the block (or warp) has arrived. Warp-collective operations
// (shuffles, ldmatrix, mma.sync) exchange per-lane values through per-warp slots
// between two warp barriers and then compute each lane's result from the
// documented PTX fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"
// and "ldmatrix"). cp.async is an immediate copy with zero fill, so the emulator
// checks data placement, not the asynchronous-copy hazards. __shared__ variables
// become static locals, which is right because one block runs at a time.
//
// Include this file, define ROENTGO_EMU, then include the .cu files.
#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

struct uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }

struct dim3e {
  unsigned x, y, z;
};

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __uint_as_float(u32 u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline u32 __float_as_uint(float f) {
  u32 u;
  std::memcpy(&u, &f, 4);
  return u;
}

namespace emu {

struct Barrier {
  int n = 0, count = 0;
  unsigned gen = 0;
};

struct Fiber {
  ucontext_t ctx;
  std::vector<char> stack;
  bool done = false;
  Barrier* wait = nullptr;
  unsigned wait_gen = 0;
  dim3e tid{0, 0, 0};
};

inline std::vector<Fiber> fibers;
inline int cur = 0;
inline ucontext_t sched;
inline dim3e block_idx{0, 0, 0}, block_dim{1, 1, 1}, grid_dim{1, 1, 1};
inline Barrier blockbar;
inline std::vector<Barrier> warpbar;
struct Slots {
  uint64_t v[32][8];
};
inline std::vector<Slots> slots;
inline std::function<void()>* body = nullptr;

inline void yield() { swapcontext(&fibers[cur].ctx, &sched); }

inline void arrive(Barrier& b) {
  unsigned g = b.gen;
  if (++b.count == b.n) {
    b.count = 0;
    b.gen++;
    return;
  }
  fibers[cur].wait = &b;
  fibers[cur].wait_gen = g;
  yield();
}

inline void trampoline() {
  (*body)();
  fibers[cur].done = true;
}

// run_block runs fn as every thread of the block block_idx.
inline void run_block(std::function<void()>& fn) {
  const int n = (int)block_dim.x;
  if ((int)fibers.size() < n) fibers.resize(n);
  blockbar = Barrier{n, 0, 0};
  warpbar.assign((n + 31) / 32, Barrier{});
  for (int w = 0; w < (n + 31) / 32; w++) warpbar[w].n = (w + 1) * 32 <= n ? 32 : n - w * 32;
  slots.resize((n + 31) / 32);
  body = &fn;
  for (int i = 0; i < n; i++) {
    Fiber& f = fibers[i];
    f.stack.resize(256 << 10);
    f.done = false;
    f.wait = nullptr;
    f.tid = dim3e{(unsigned)i, 0, 0};
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack.data();
    f.ctx.uc_stack.ss_size = f.stack.size();
    f.ctx.uc_link = &sched;
    makecontext(&f.ctx, trampoline, 0);
  }
  for (;;) {
    bool all_done = true, progress = false;
    for (int i = 0; i < n; i++) {
      Fiber& f = fibers[i];
      if (f.done) continue;
      all_done = false;
      if (f.wait != nullptr) {
        if (f.wait->gen == f.wait_gen) continue;
        f.wait = nullptr;
      }
      cur = i;
      swapcontext(&sched, &f.ctx);
      progress = true;
    }
    if (all_done) return;
    if (!progress) {
      std::fprintf(stderr, "emu: deadlock in block (%u,%u,%u): threads wait at a barrier others never reach\n",
                   block_idx.x, block_idx.y, block_idx.z);
      std::abort();
    }
  }
}

// launch runs call() (a kernel invocation) over the grid with `threads` threads per block.
template <class F>
void launch(dim3e grid, int threads, F call) {
  std::function<void()> fn = call;
  grid_dim = grid;
  block_dim = dim3e{(unsigned)threads, 1, 1};
  for (unsigned z = 0; z < grid.z; z++)
    for (unsigned y = 0; y < grid.y; y++)
      for (unsigned x = 0; x < grid.x; x++) {
        block_idx = dim3e{x, y, z};
        run_block(fn);
      }
}

inline int lane() { return (int)fibers[cur].tid.x & 31; }
inline int warp() { return (int)fibers[cur].tid.x >> 5; }
inline void warp_sync() { arrive(warpbar[warp()]); }

}  // namespace emu

#define threadIdx (emu::fibers[emu::cur].tid)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void __syncthreads() { emu::arrive(emu::blockbar); }
inline void __syncwarp() { emu::warp_sync(); }

inline float __shfl_xor_sync(unsigned, float v, int o) {
  auto& s = emu::slots[emu::warp()];
  int l = emu::lane();
  s.v[l][0] = __float_as_uint(v);
  emu::warp_sync();
  float r = __uint_as_float((u32)s.v[l ^ o][0]);
  emu::warp_sync();
  return r;
}
inline float __shfl_sync(unsigned, float v, int src) {
  auto& s = emu::slots[emu::warp()];
  int l = emu::lane();
  s.v[l][0] = __float_as_uint(v);
  emu::warp_sync();
  float r = __uint_as_float((u32)s.v[src & 31][0]);
  emu::warp_sync();
  return r;
}

inline float f16_to_f32(u16 h) {
  _Float16 x;
  std::memcpy(&x, &h, 2);
  return (float)x;
}
inline u16 f32_to_f16(float f) {
  _Float16 x = (_Float16)f;
  u16 h;
  std::memcpy(&h, &x, 2);
  return h;
}

inline void cp_async16(void* smem, const void* gmem, int src_bytes) {
  std::memset(smem, 0, 16);
  if (src_bytes > 0) std::memcpy(smem, gmem, src_bytes);
}
inline void cp_async_commit() {}
template <int N>
inline void cp_async_wait() {}

// ldmatrix: lanes 8q..8q+7 give the row addresses of matrix q. Without .trans,
// lane t receives row t/4, columns 2(t%4) and 2(t%4)+1 of each matrix; with
// .trans, rows 2(t%4), 2(t%4)+1 of column t/4.
inline void emu_ldmatrix(u32* r, int nmat, const void* p, bool trans) {
  auto& s = emu::slots[emu::warp()];
  int l = emu::lane();
  s.v[l][0] = (uint64_t)p;
  emu::warp_sync();
  for (int q = 0; q < nmat; q++) {
    auto at = [&](int row, int col) { return ((const u16*)s.v[q * 8 + row][0])[col]; };
    u16 lo, hi;
    if (!trans) {
      lo = at(l / 4, (l % 4) * 2);
      hi = at(l / 4, (l % 4) * 2 + 1);
    } else {
      lo = at((l % 4) * 2, l / 4);
      hi = at((l % 4) * 2 + 1, l / 4);
    }
    r[q] = (u32)lo | ((u32)hi << 16);
  }
  emu::warp_sync();
}
inline void ldmatrix_x4(u32& r0, u32& r1, u32& r2, u32& r3, const void* p) {
  u32 r[4];
  emu_ldmatrix(r, 4, p, false);
  r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}
inline void ldmatrix_x4_trans(u32& r0, u32& r1, u32& r2, u32& r3, const void* p) {
  u32 r[4];
  emu_ldmatrix(r, 4, p, true);
  r0 = r[0], r1 = r[1], r2 = r[2], r3 = r[3];
}
inline void ldmatrix_x2(u32& r0, u32& r1, const void* p) {
  u32 r[2];
  emu_ldmatrix(r, 2, p, false);
  r0 = r[0], r1 = r[1];
}
inline void ldmatrix_x2_trans(u32& r0, u32& r1, const void* p) {
  u32 r[2];
  emu_ldmatrix(r, 2, p, true);
  r0 = r[0], r1 = r[1];
}

// mma.sync.m16n8k16.row.col: lane t (g = t/4, c = t%4) holds
//   a0 = A[g][2c..2c+1], a1 = A[g+8][2c..], a2 = A[g][2c+8..], a3 = A[g+8][2c+8..]
//   b0 = B[2c..2c+1][g], b1 = B[2c+8..2c+9][g]
//   d0,d1 = D[g][2c..2c+1], d2,d3 = D[g+8][2c..2c+1]
template <bool BF16>
inline void mma16816(float* d, const u32* a, const u32* b) {
  auto& s = emu::slots[emu::warp()];
  int l = emu::lane();
  for (int i = 0; i < 4; i++) s.v[l][i] = a[i];
  s.v[l][4] = b[0];
  s.v[l][5] = b[1];
  emu::warp_sync();
  auto cvt = [](u32 w, int hi) {
    u16 h = hi ? (u16)(w >> 16) : (u16)(w & 0xffff);
    return BF16 ? __uint_as_float((u32)h << 16) : f16_to_f32(h);
  };
  float A[16][16], B[16][8];
  for (int t = 0; t < 32; t++) {
    int g = t / 4, c = t % 4;
    for (int e = 0; e < 2; e++) {
      A[g][2 * c + e] = cvt((u32)s.v[t][0], e);
      A[g + 8][2 * c + e] = cvt((u32)s.v[t][1], e);
      A[g][2 * c + 8 + e] = cvt((u32)s.v[t][2], e);
      A[g + 8][2 * c + 8 + e] = cvt((u32)s.v[t][3], e);
      B[2 * c + e][g] = cvt((u32)s.v[t][4], e);
      B[2 * c + 8 + e][g] = cvt((u32)s.v[t][5], e);
    }
  }
  int g = l / 4, c = l % 4;
  for (int i = 0; i < 4; i++) {
    int row = g + (i >> 1) * 8, col = 2 * c + (i & 1);
    float acc = d[i];
    for (int k = 0; k < 16; k++) acc += A[row][k] * B[k][col];
    d[i] = acc;
  }
  emu::warp_sync();
}

// emu_main.cpp — runs roentgo's CUDA kernels on the CPU emulator of emu.h and
// compares them with plain double-precision loops. Built and run by
// TestEmulatedKernels (kernels/cuda/ptx_test.go):
//
//   g++ -std=c++20 -O1 -DROENTGO_EMU -o emu emu/emu_main.cpp && ./emu
//
// Small shapes that still cross tile edges (M, N not multiples of the tiles,
// K = 40, 80, partial key tiles, causal masks, padded strides). Exit status 1
// if any case fails.
#include "emu.h"

// Host version of the round-to-nearest intrinsic the strided kernels use (emu.h
// has __fmul_rn, __fsub_rn and __fdiv_rn). g++ does not contract a*b+c in ISO
// C++ mode, so these are the plain float operations.
inline float __fadd_rn(float a, float b) { return a + b; }

#define ROENTGO_EMU 1
#include "../attention.cu"
#include "../conv.cu"
#include "../elementwise.cu"
#include "../gemm.cu"
#include "../norm.cu"

#include <random>
#include <string>

static int failures = 0;
static std::mt19937_64 rng(12345);

static std::vector<float> uni(size_t n, float lo = -1, float hi = 1) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// to16 rounds x to F16 or BF16 in place and returns the bits.
static std::vector<u16> to16(std::vector<float>& x, bool bf) {
  std::vector<u16> h(x.size());
  for (size_t i = 0; i < x.size(); i++) {
    h[i] = bf ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
    x[i] = bf ? bf16_to_f32(h[i]) : f16_to_f32(h[i]);
  }
  return h;
}

static float from16(u16 h, bool bf) { return bf ? bf16_to_f32(h) : f16_to_f32(h); }

static void check(const std::string& name, const std::vector<float>& got, const std::vector<double>& want,
                  double atol, double rtol) {
  double maxd = 0;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); i++) {
    double d = std::fabs((double)got[i] - want[i]);
    bool ok = d <= atol + rtol * std::fabs(want[i]) || (std::isnan(want[i]) && std::isnan(got[i])) ||
              (double)got[i] == want[i];
    if (!(d <= maxd) && !std::isnan(d)) maxd = d;
    if (!ok) {
      if (bad == 0) first = i;
      bad++;
    }
  }
  if (bad) {
    failures++;
    std::printf("FAIL %-44s %zu/%zu bad, max diff %.3g, first at %zu: got %.6g want %.6g\n", name.c_str(), bad,
                want.size(), maxd, first, got[first], want[first]);
  } else {
    std::printf("ok   %-44s max diff %.3g over %zu\n", name.c_str(), maxd, want.size());
  }
}

// ---------------------------------------------------------------------------
typedef void (*GemmFn)(const u16*, const u16*, void*, const float*, const void*, int, int, int, int, int, int,
                       int, i64, i64, i64, i64, float, float, int);

static void test_gemm(const char* name, GemmFn fn, bool bf, bool bt, bool oh, int tile, int M, int N, int K,
                      int batch, bool biasRows) {
  int lda = K + 8, ldb = bt ? K + 16 : N + 8, ldc = N + 3, ldr = N + 5;
  int brows = bt ? N : K;
  i64 sA = (i64)M * lda, sB = (i64)brows * ldb, sC = (i64)M * ldc, sR = (i64)M * ldr;
  auto a = uni(batch * sA), b = uni(batch * sB), c0 = uni(batch * sC), r = uni(batch * sR);
  auto bias = uni(biasRows ? M : N);
  auto ah = to16(a, bf), bh = to16(b, bf);
  std::vector<u16> ch, rh;
  if (oh) ch = to16(c0, bf), rh = to16(r, bf);
  std::vector<float> cf = c0;
  const float alpha = 0.75f, beta = -0.5f;
  void* C = oh ? (void*)ch.data() : (void*)cf.data();
  const void* R = oh ? (const void*)rh.data() : (const void*)r.data();
  int threads = tile == 128 ? 256 : 128;
  emu::launch(dim3e{(unsigned)((N + tile - 1) / tile), (unsigned)((M + tile - 1) / tile), (unsigned)batch}, threads,
              [&] {
                fn(ah.data(), bh.data(), C, bias.data(), R, M, N, K, lda, ldb, ldc, ldr, sA, sB, sC, sR, alpha, beta,
                   biasRows);
              });
  std::vector<float> got(batch * sC);
  std::vector<double> want(batch * sC);
  for (i64 i = 0; i < batch * sC; i++) got[i] = oh ? from16(ch[i], bf) : cf[i];
  for (int z = 0; z < batch; z++)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < ldc; j++) {
        i64 ci = z * sC + (i64)i * ldc + j;
        if (j >= N) {
          want[ci] = c0[ci];
          continue;
        }
        double s = 0;
        for (int p = 0; p < K; p++) {
          double bv = bt ? b[z * sB + (i64)j * ldb + p] : b[z * sB + (i64)p * ldb + j];
          s += (double)a[z * sA + (i64)i * lda + p] * bv;
        }
        want[ci] = alpha * s + (biasRows ? bias[i] : bias[j]) + beta * c0[ci] + r[z * sR + (i64)i * ldr + j];
      }
  double u = oh ? (bf ? 1.0 / 256 : 1.0 / 2048) : 1e-6;
  check(std::string(name) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K), got, want,
        1e-4 + u, u);
}

static void test_gemm_simt() {
  int M = 37, N = 29, K = 45, lda = M + 2, ldb = K + 1, ldc = N + 4, batch = 2;
  i64 sA = (i64)K * lda, sB = (i64)N * ldb, sC = (i64)M * ldc;
  auto a = uni(batch * sA), b = uni(batch * sB), c = uni(batch * sC), bias = uni(N);
  auto ah = to16(a, false);  // A: f16, transposed; B: f32, transposed; C: f32
  std::vector<float> c0 = c;
  emu::launch(dim3e{1, 1, (unsigned)batch}, 256, [&] {
    gemm_simt(ah.data(), b.data(), c.data(), bias.data(), nullptr, M, N, K, lda, ldb, ldc, 0, sA, sB, sC, 0, 1.5f,
              0.25f, 0, DT_F16, DT_F32, DT_F32, 1, 1);
  });
  std::vector<double> want(batch * sC);
  for (int z = 0; z < batch; z++)
    for (int i = 0; i < M; i++)
      for (int j = 0; j < ldc; j++) {
        i64 ci = z * sC + (i64)i * ldc + j;
        if (j >= N) {
          want[ci] = c0[ci];
          continue;
        }
        double s = 0;
        for (int p = 0; p < K; p++) s += (double)a[z * sA + (i64)p * lda + i] * b[z * sB + (i64)j * ldb + p];
        want[ci] = 1.5 * s + bias[j] + 0.25 * c0[ci];
      }
  check("gemm_simt f16^T x f32^T", c, want, 1e-5, 1e-5);
}

// ---------------------------------------------------------------------------
typedef void (*ConvFn)(const u16*, const u16*, const float*, const void*, void*, int, int, int, int, int, int, int, int,
                       int, int, int, int, int);

static std::vector<double> conv_ref(const std::vector<float>& x, const std::vector<float>& w, const float* bias,
                                    const std::vector<float>* res, int N, int C, int H, int W, int K, int R, int S,
                                    int st, int pd, int ldw, int OH, int OW) {
  std::vector<double> y((size_t)N * K * OH * OW);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      for (int i = 0; i < OH; i++)
        for (int j = 0; j < OW; j++) {
          double s = bias ? bias[k] : 0;
          for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++)
              for (int q = 0; q < S; q++) {
                int ih = i * st - pd + r, iw = j * st - pd + q;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += (double)x[((size_t)(n * C + c) * H + ih) * W + iw] * w[(size_t)k * ldw + (c * R + r) * S + q];
              }
          size_t yi = ((size_t)(n * K + k) * OH + i) * OW + j;
          if (res) s += (*res)[yi];
          y[yi] = s;
        }
  return y;
}

static void test_conv(const char* name, ConvFn fn, bool bf, bool oh, int ks, int N, int C, int H, int W, int K, int st,
                      int pd, bool padW, bool residual) {
  int crs = C * ks * ks, ldw = crs + (padW ? 8 : 0);
  int OH = (H + 2 * pd - ks) / st + 1, OW = (W + 2 * pd - ks) / st + 1;
  auto x = uni((size_t)N * C * H * W), w = uni((size_t)K * ldw), bias = uni(K);
  auto xh = to16(x, bf), wh = to16(w, bf);
  size_t ny = (size_t)N * K * OH * OW;
  auto res = uni(ny);
  std::vector<u16> yh(ny), rh;
  std::vector<float> yf(ny, NAN);
  if (oh) rh = to16(res, bf);
  int wvec = (ldw % 8 == 0 && crs % 8 == 0) ? 1 : 0;
  const void* R = residual ? (oh ? (const void*)rh.data() : (const void*)res.data()) : nullptr;
  void* Y = oh ? (void*)yh.data() : (void*)yf.data();
  emu::launch(dim3e{(unsigned)((N * OH * OW + 127) / 128), (unsigned)((K + 127) / 128), 1}, 256, [&] {
    fn(xh.data(), wh.data(), bias.data(), R, Y, N, C, H, W, K, OH, OW, st, st, pd, pd, ldw, wvec);
  });
  std::vector<float> got(ny);
  for (size_t i = 0; i < ny; i++) got[i] = oh ? from16(yh[i], bf) : yf[i];
  auto want = conv_ref(x, w, bias.data(), residual ? &res : nullptr, N, C, H, W, K, ks, ks, st, pd, ldw, OH, OW);
  double u = oh ? (bf ? 1.0 / 256 : 1.0 / 2048) : 1e-6;
  check(std::string(name) + (wvec ? " (cp.async w)" : " (plain w)"), got, want, 1e-4 + 2 * u, u);
}

static void test_conv_simt() {
  int N = 2, C = 3, H = 7, W = 8, K = 5, R = 2, S = 3, sh = 1, sw = 2, ph = 1, pw = 0;
  int OH = (H + 2 * ph - R) / sh + 1, OW = (W + 2 * pw - S) / sw + 1, ldw = C * R * S + 1;
  auto x = uni((size_t)N * C * H * W), w = uni((size_t)K * ldw), bias = uni(K);
  auto wh = to16(w, true);  // bf16 weights, f32 x and y
  std::vector<float> y((size_t)N * K * OH * OW);
  emu::launch(dim3e{(unsigned)((N * OH * OW + 63) / 64), 1, 1}, 256, [&] {
    conv2d_simt(x.data(), wh.data(), bias.data(), nullptr, y.data(), N, C, H, W, K, R, S, OH, OW, sh, sw, ph, pw, ldw,
                DT_F32, DT_BF16, DT_F32);
  });
  std::vector<double> want((size_t)N * K * OH * OW);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++)
      for (int i = 0; i < OH; i++)
        for (int j = 0; j < OW; j++) {
          double s = bias[k];
          for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++)
              for (int q = 0; q < S; q++) {
                int ih = i * sh - ph + r, iw = j * sw - pw + q;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                s += (double)x[((n * C + c) * H + ih) * W + iw] * w[k * ldw + (c * R + r) * S + q];
              }
          want[((n * K + k) * OH + i) * OW + j] = s;
        }
  check("conv2d_simt 2x3 stride (1,2) pad (1,0)", y, want, 1e-5, 1e-5);
}

// ---------------------------------------------------------------------------
static std::vector<double> attn_ref(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, const std::vector<float>& o0, int B, int H, int Sq,
                                    int Sk, int D, int qs, int ks, int vs, int os, float scale, bool causal) {
  std::vector<double> o(o0.begin(), o0.end());
  for (int b = 0; b < B; b++)
    for (int h = 0; h < H; h++)
      for (int i = 0; i < Sq; i++) {
        int n = causal ? std::min(Sk, i + Sk - Sq + 1) : Sk;
        std::vector<double> s(std::max(n, 0));
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) {
          double d = 0;
          for (int t = 0; t < D; t++)
            d += (double)q[((size_t)b * Sq + i) * qs + h * D + t] * k[((size_t)b * Sk + j) * ks + h * D + t];
          s[j] = d * scale;
          mx = std::max(mx, s[j]);
        }
        for (int j = 0; j < n; j++) sum += s[j] = std::exp(s[j] - mx);
        for (int t = 0; t < D; t++) {
          double acc = 0;
          for (int j = 0; j < n; j++) acc += s[j] * v[((size_t)b * Sk + j) * vs + h * D + t];
          o[((size_t)b * Sq + i) * os + h * D + t] = n > 0 ? acc / sum : 0;
        }
      }
  return o;
}

typedef void (*AttnFn)(const u16*, const u16*, const u16*, u16*, int, int, int, int, int, int, float, int);

static void test_attn(const char* name, AttnFn fn, bool bf, int D, int B, int H, int Sq, int Sk, bool causal, int pad) {
  int hd = H * D, qs = hd + pad, ks = hd + 2 * pad, vs = hd, os = hd + pad;
  auto q = uni((size_t)B * Sq * qs), k = uni((size_t)B * Sk * ks), v = uni((size_t)B * Sk * vs);
  std::vector<float> o0((size_t)B * Sq * os, 0.25f);  // padding must survive
  auto qh = to16(q, bf), kh = to16(k, bf), vh = to16(v, bf), oh = to16(o0, bf);
  float scale = 1.f / std::sqrt((float)D);
  emu::launch(dim3e{(unsigned)((Sq + 63) / 64), (unsigned)H, (unsigned)B}, 128, [&] {
    fn(qh.data(), kh.data(), vh.data(), oh.data(), Sq, Sk, qs, ks, vs, os, scale, causal);
  });
  std::vector<float> got(oh.size());
  for (size_t i = 0; i < oh.size(); i++) got[i] = from16(oh[i], bf);
  auto want = attn_ref(q, k, v, o0, B, H, Sq, Sk, D, qs, ks, vs, os, scale, causal);
  double u = bf ? 1.0 / 256 : 1.0 / 2048;
  check(std::string(name) + (causal ? " causal " : " ") + std::to_string(Sq) + "x" + std::to_string(Sk), got, want,
        4 * u, 2 * u);
}

static void test_attn_simt(int D, int Sq, int Sk, bool causal) {
  int B = 2, H = 3, hd = H * D, qs = 3 * hd, os = hd + 1;
  auto buf = uni((size_t)B * Sq * qs);  // packed q|k|v rows, Sq == Sk
  std::vector<float> q = buf, k(buf.begin() + hd, buf.end()), v(buf.begin() + 2 * hd, buf.end());
  k.resize(buf.size()), v.resize(buf.size());
  std::vector<float> o((size_t)B * Sq * os, 0.5f), o0 = o;
  float scale = 0.3f;
  emu::launch(dim3e{(unsigned)((Sq + 7) / 8), (unsigned)H, (unsigned)B}, 256, [&] {
    attention_simt_f32(q.data(), k.data(), v.data(), o.data(), Sq, Sk, D, qs, qs, qs, os, scale, causal);
  });
  auto want = attn_ref(q, k, v, o0, B, H, Sq, Sk, D, qs, qs, qs, os, scale, causal);
  check("attention_simt_f32 D=" + std::to_string(D) + (causal ? " causal" : ""), o, want, 1e-5, 1e-5);
}

// ---------------------------------------------------------------------------
static void test_groupnorm(bool bf16, bool inplace) {
  int n = 2, c = 8, hw = 50, groups = 4, splits = 3;
  auto x = uni((size_t)n * c * hw, 999, 1001);
  auto gamma = uni(c), beta = uni(c);
  std::vector<float> xr = x;
  std::vector<u16> xh;
  if (bf16) xh = to16(xr, true);
  std::vector<float> ws(4 * splits * n * groups), y(x.size());
  std::vector<u16> yh(x.size());
  i64 cnt = (i64)(c / groups) * hw;
  emu::launch(dim3e{(unsigned)splits, (unsigned)(n * groups), 1}, 256, [&] {
    if (bf16)
      groupnorm_stats_bf16(xh.data(), ws.data(), cnt, splits);
    else
      groupnorm_stats_f32(x.data(), ws.data(), cnt, splits);
  });
  emu::launch(dim3e{(unsigned)splits, (unsigned)(n * groups), 1}, 256, [&] {
    if (bf16)
      groupnorm_apply_bf16(xh.data(), inplace ? xh.data() : yh.data(), ws.data(), gamma.data(), beta.data(), c, hw,
                           groups, splits, 1e-5f, 1);
    else
      groupnorm_apply_f32(x.data(), inplace ? x.data() : y.data(), ws.data(), gamma.data(), beta.data(), c, hw,
                          groups, splits, 1e-5f, 1);
  });
  std::vector<float> got(x.size());
  for (size_t i = 0; i < got.size(); i++)
    got[i] = bf16 ? bf16_to_f32(inplace ? xh[i] : yh[i]) : (inplace ? x[i] : y[i]);
  std::vector<double> want(x.size());
  int cg = c / groups;
  for (int b = 0; b < n; b++)
    for (int g = 0; g < groups; g++) {
      size_t base = (size_t)(b * c + g * cg) * hw;
      double mean = 0, sq = 0;
      for (i64 i = 0; i < cnt; i++) mean += xr[base + i];
      mean /= cnt;
      for (i64 i = 0; i < cnt; i++) sq += (xr[base + i] - mean) * (xr[base + i] - mean);
      double inv = 1 / std::sqrt(sq / cnt + 1e-5);
      for (i64 i = 0; i < cnt; i++) {
        int ch = g * cg + (int)(i / hw);
        double v = (xr[base + i] - mean) * inv * gamma[ch] + beta[ch];
        want[base + i] = v / (1 + std::exp(-v));
      }
    }
  check(std::string("groupnorm ") + (bf16 ? "bf16" : "f32") + (inplace ? " in place" : "") + " mean 1000", got, want,
        bf16 ? 0.02 : 2e-4, bf16 ? 1.0 / 128 : 1e-4);
}

static void test_layernorm_softmax() {
  int rows = 11, cols = 70;
  auto x = uni((size_t)rows * cols, -3, 3);
  for (int j = 5; j < cols; j += 7) x[2 * cols + j] = -INFINITY;
  auto g = uni(cols), b = uni(cols);
  std::vector<float> xl = uni((size_t)rows * cols, 99, 101), y(x.size()), yl(x.size());
  emu::launch(dim3e{(unsigned)((rows + 7) / 8), 1, 1}, 256, [&] { softmax_f32(x.data(), y.data(), rows, cols); });
  emu::launch(dim3e{(unsigned)((rows + 7) / 8), 1, 1}, 256,
              [&] { layernorm_f32(xl.data(), yl.data(), rows, cols, 1e-5f, g.data(), b.data()); });
  std::vector<double> ws(x.size()), wl(x.size());
  for (int r = 0; r < rows; r++) {
    double mx = -INFINITY, s = 0, mean = 0, sq = 0;
    for (int j = 0; j < cols; j++) mx = std::max(mx, (double)x[r * cols + j]);
    for (int j = 0; j < cols; j++) s += std::exp(x[r * cols + j] - mx);
    for (int j = 0; j < cols; j++) ws[r * cols + j] = std::exp(x[r * cols + j] - mx) / s;
    for (int j = 0; j < cols; j++) mean += xl[r * cols + j];
    mean /= cols;
    for (int j = 0; j < cols; j++) sq += (xl[r * cols + j] - mean) * (xl[r * cols + j] - mean);
    for (int j = 0; j < cols; j++)
      wl[r * cols + j] = (xl[r * cols + j] - mean) / std::sqrt(sq / cols + 1e-5) * g[j] + b[j];
  }
  check("softmax_f32 with -inf", y, ws, 1e-7, 1e-5);
  check("layernorm_f32 mean 100", yl, wl, 1e-4, 1e-4);
}

static void test_elementwise() {
  // timestep embedding, dim 7 (odd), flip
  std::vector<float> t = {0, 1, 999, 37.5f}, out(4 * 7);
  emu::launch(dim3e{1, 1, 1}, 256,
              [&] { timestep_embedding_f32(t.data(), out.data(), 4, 7, 1, 1.f, 1.f, 10000.f); });
  std::vector<double> want(4 * 7);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) {
      float e = (float)(-std::log(10000.0)) * (float)j / (3.f - 1.f);
      float freq = (float)std::exp((double)e), arg = 1.f * (t[i] * freq);
      want[i * 7 + j] = (float)std::cos((double)arg);
      want[i * 7 + 3 + j] = (float)std::sin((double)arg);
    }
  check("timestep_embedding_f32 dim 7 flip", out, want, 0, 0);
  // concat + add_bcast + upsample + geglu
  int outer = 2, ca = 3, cb = 2, inner = 5;
  auto a = uni(outer * ca * inner), b = uni(outer * cb * inner);
  std::vector<float> y(outer * (ca + cb) * inner);
  emu::launch(dim3e{2, 1, 1}, 256, [&] { concat_f32(a.data(), b.data(), y.data(), outer, ca, cb, inner); });
  std::vector<double> wc;
  for (int o = 0; o < outer; o++) {
    for (int i = 0; i < ca * inner; i++) wc.push_back(a[o * ca * inner + i]);
    for (int i = 0; i < cb * inner; i++) wc.push_back(b[o * cb * inner + i]);
  }
  check("concat_f32", y, wc, 0, 0);
  auto bias = uni(outer * ca);
  std::vector<u16> bh = to16(bias, true);
  std::vector<float> z(a.size());
  emu::launch(dim3e{1, 1, 1}, 256,
              [&] { add_bcast_f32(a.data(), bh.data(), z.data(), (i64)a.size(), inner, outer * ca, DT_BF16); });
  std::vector<double> wz(a.size());
  for (size_t i = 0; i < a.size(); i++) wz[i] = (double)(a[i] + bias[i / inner]);
  check("add_bcast_f32 (bf16 vector)", z, wz, 0, 0);
  int nc = 3, h = 2, w = 3;
  auto xu = uni(nc * h * w);
  std::vector<float> yu(nc * 4 * h * w);
  emu::launch(dim3e{1, 1, 1}, 256, [&] { upsample2x_f32(xu.data(), yu.data(), nc, h, w); });
  std::vector<double> wu(yu.size());
  for (int c = 0; c < nc; c++)
    for (int i = 0; i < 2 * h; i++)
      for (int j = 0; j < 2 * w; j++) wu[(c * 2 * h + i) * 2 * w + j] = xu[(c * h + i / 2) * w + j / 2];
  check("upsample2x_f32", yu, wu, 0, 0);
  int rows = 3, d = 10;
  auto xg = uni(rows * 2 * d, -3, 3);
  std::vector<float> yg(rows * d);
  emu::launch(dim3e{1, 1, 1}, 256, [&] { geglu_f32(xg.data(), yg.data(), rows, d); });
  std::vector<double> wg(rows * d);
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < d; j++) {
      double gv = xg[r * 2 * d + d + j];
      wg[r * d + j] = xg[r * 2 * d + j] * 0.5 * gv * (1 + std::erf(gv / std::sqrt(2.0)));
    }
  check("geglu_f32", yg, wg, 1e-6, 1e-5);
}

// ---------------------------------------------------------------------------
// Strided kernels (copy_strided_*, unary_strided, binary_strided, fill_*) over
// views given in natural (outermost first) order, unmerged, so ranks 1-6 reach
// the kernels as they are. The references are plain loops over the row-major
// multi-index, with the scalar ops written out as kernels/cpu's UnaryScalar and
// BinaryScalar define them (float32 arithmetic, transcendentals in double).

// Buf is a buffer of run-time dtype (F32 floats or 16-bit words).
struct Buf {
  int dt;
  std::vector<float> f;
  std::vector<u16> h;
  Buf(int dt_, size_t n) : dt(dt_) {
    if (dt == DT_F32)
      f.resize(n);
    else
      h.resize(n);
  }
  size_t size() const { return dt == DT_F32 ? f.size() : h.size(); }
  void* ptr() { return dt == DT_F32 ? (void*)f.data() : (void*)h.data(); }
  float get(size_t i) const { return dt == DT_F32 ? f[i] : from16(h[i], dt == DT_BF16); }
  u32 bits(size_t i) const { return dt == DT_F32 ? __float_as_uint(f[i]) : h[i]; }
  void set(size_t i, float v) {
    if (dt == DT_F32)
      f[i] = v;
    else
      h[i] = dt == DT_BF16 ? f32_to_bf16(v) : f32_to_f16(v);
  }
};

static const char* dtn(int dt) { return dt == DT_F32 ? "f32" : dt == DT_F16 ? "f16" : "bf16"; }

// rounded returns v rounded to dtype dt, as float and as stored bits.
static float rounded(float v, int dt, u32* bits) {
  Buf b(dt, 1);
  b.set(0, v);
  *bits = b.bits(0);
  return b.get(0);
}

// A view: shape (outermost first) and one stride vector per operand.
struct View {
  std::string name;
  std::vector<int> shape;
  std::vector<std::vector<i64>> st;
};

static i64 numel(const std::vector<int>& shape) {
  i64 n = 1;
  for (int s : shape) n *= s;
  return n;
}

static i64 extent(const std::vector<int>& shape, const std::vector<i64>& st) {
  i64 e = 1;
  for (size_t d = 0; d < shape.size(); d++) e += (i64)(shape[d] - 1) * st[d];
  return e;
}

// offsets lists the offset of each row-major multi-index in operand k.
static std::vector<i64> offsets(const View& v, int k) {
  std::vector<i64> out;
  std::vector<int> idx(v.shape.size(), 0);
  for (i64 e = 0; e < numel(v.shape); e++) {
    i64 o = 0;
    for (size_t d = 0; d < idx.size(); d++) o += idx[d] * v.st[k][d];
    out.push_back(o);
    for (int d = (int)idx.size() - 1; d >= 0; d--) {
      if (++idx[d] < v.shape[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

// Packed is the kernels' parameter form: innermost dimension first, padded to 6
// with size 1, stride 0 (no merging here).
struct Packed {
  int rank;
  i64 n, s[6], st[3][6];
};

static Packed pack(const View& v) {
  Packed p{};
  p.rank = (int)v.shape.size();
  p.n = numel(v.shape);
  for (int k = 0; k < 6; k++) {
    p.s[k] = 1;
    for (int o = 0; o < 3; o++) p.st[o][k] = 0;
  }
  for (int d = 0; d < p.rank; d++) {
    p.s[p.rank - 1 - d] = v.shape[d];
    for (size_t o = 0; o < v.st.size(); o++) p.st[o][p.rank - 1 - d] = v.st[o][d];
  }
  return p;
}
#define P6(a) a[0], a[1], a[2], a[3], a[4], a[5]

// At most two blocks, so n = 1023 runs the grid-stride loop more than once.
static dim3e sgrid(i64 n) { return dim3e{(unsigned)std::min<i64>(2, std::max<i64>(1, (n + 255) / 256)), 1, 1}; }

// Acc gathers the comparisons of one group of cases into one report line.
struct Acc {
  std::string name;
  size_t n = 0, bad = 0;
  double maxrel = 0;
  std::string first;
  // add compares got (bits gb) with want (bits wb): within atol + rtol*|want|,
  // and bit for bit when exact; two NaNs match.
  void add(const std::string& where, float got, u32 gb, float want, u32 wb, bool exact, double atol, double rtol) {
    n++;
    bool ok;
    if (std::isnan(got) || std::isnan(want)) {
      ok = std::isnan(got) && std::isnan(want);
    } else {
      double d = std::fabs((double)got - want);
      ok = got == want || d <= atol + rtol * std::fabs(want);
      if (want != 0 && std::isfinite(d)) maxrel = std::max(maxrel, d / std::fabs(want));
      if (exact && gb != wb) ok = false;
    }
    if (!ok && bad++ == 0) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s: got %.9g (%#x) want %.9g (%#x)", where.c_str(), got, gb, want, wb);
      first = buf;
    }
  }
  void report() {
    if (bad) {
      failures++;
      std::printf("FAIL %-44s %zu/%zu bad, first %s\n", name.c_str(), bad, n, first.c_str());
    } else {
      std::printf("ok   %-44s max rel diff %.3g over %zu\n", name.c_str(), maxrel, n);
    }
  }
};

// Layouts of one input operand x against an output y (operand 0 = y, 1 = x).
static std::vector<View> unary_views() {
  return {
      {"[1]", {1}, {{1}, {1}}},
      {"[3] x stride 2", {3}, {{1}, {2}}},
      {"[1023]", {1023}, {{1}, {1}}},
      {"[17] x broadcast", {17}, {{1}, {0}}},
      {"[17,3] x transposed", {17, 3}, {{3, 1}, {1, 17}}},
      {"[4,5,3] x bcast dim1, y padded", {4, 5, 3}, {{20, 4, 1}, {3, 0, 1}}},
      {"[2,3,1,4,2,3] x permuted", {2, 3, 1, 4, 2, 3}, {{72, 24, 24, 6, 3, 1}, {1, 2, 6, 6, 24, 96}}},
      {"[3,1,7,5] y transposed", {3, 1, 7, 5}, {{1, 3, 3, 21}, {35, 35, 5, 1}}},
      {"[2,2,3,2,2,3] both permuted", {2, 2, 3, 2, 2, 3}, {{1, 2, 4, 12, 24, 48}, {72, 1, 24, 2, 4, 8}}},
  };
}

// inputs returns n values in [lo, hi) with special values mixed in.
static std::vector<float> inputs(size_t n, float lo, float hi) {
  auto v = uni(n, lo, hi);
  const float sp[] = {0.f, -0.f, INFINITY, -INFINITY, NAN, 1e-30f, -3.5f, 1.f};
  for (size_t i = 5; i < n; i += 11) v[i] = sp[(i / 11) % 8];
  return v;
}

static const float kSentinel = -7.5f;  // exact in every dtype; marks elements that must stay untouched

static float go_max_ref(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a == 0 && b == 0) return std::signbit(a) ? b : a;
  return std::max(a, b);
}
static float go_min_ref(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return NAN;
  if (a == 0 && b == 0) return std::signbit(a) ? a : b;
  return std::min(a, b);
}

// ref_unary is kernels/cpu.UnaryOp.UnaryScalar.
static float ref_unary(int op, float a, float b, float x) {
  switch (op) {
    case U_COPY: return x;
    case U_AFFINE: { float t = a * x; return t + b; }
    case U_ABS: return (float)std::fabs((double)x);
    case U_EXP: return (float)std::exp((double)x);
    case U_LOG: return (float)std::log((double)x);
    case U_SQRT: return (float)std::sqrt((double)x);
    case U_RSQRT: return (float)(1 / std::sqrt((double)x));
    case U_SIN: return (float)std::sin((double)x);
    case U_COS: return (float)std::cos((double)x);
    case U_TANH: return (float)std::tanh((double)x);
    case U_SIGMOID: return (float)(1 / (1 + std::exp(-(double)x)));
    case U_SQUARE: return x * x;
    case U_CLAMP: return x != x ? x : go_min_ref(go_max_ref(x, a), b);
    case U_POW: return (float)std::pow((double)x, (double)a);
    case U_RECIP: return 1 / x;
  }
  std::abort();
}

static bool transcendental(int op) {
  return op == U_EXP || op == U_LOG || op == U_RSQRT || op == U_SIN || op == U_COS || op == U_TANH ||
         op == U_SIGMOID || op == U_POW;
}

// tol returns the tolerance of one rounding to dtype dt: 1 ulp relative (2^-23,
// 2^-10, 2^-7) plus the smallest subnormal step; F32 transcendentals get 2 ulp
// (the GPU's double-precision functions differ from glibc's by an ulp of double,
// which can move the float rounding by one).
static void tol(int dt, bool trans, double* atol, double* rtol) {
  *rtol = dt == DT_F32 ? (trans ? 0x1p-22 : 0x1p-23) : dt == DT_F16 ? 0x1p-10 : 0x1p-7;
  *atol = dt == DT_F16 ? 0x1p-24 : 1e-38;
}

static void test_unary_strided() {
  const char* names[] = {"copy", "affine", "abs", "exp", "log", "sqrt", "rsqrt", "sin",
                         "cos", "tanh", "sigmoid", "square", "clamp", "pow", "recip"};
  const int dts[][2] = {{DT_F32, DT_F32}, {DT_F16, DT_F32}, {DT_F32, DT_BF16}, {DT_BF16, DT_F16}, {DT_F16, DT_F16}};
  for (int op = U_COPY; op <= U_RECIP; op++) {
    float alpha = 0, beta = 0;
    if (op == U_AFFINE) alpha = -1.25f, beta = 0.5f;
    if (op == U_CLAMP) alpha = 0.f, beta = 0.75f;  // clamp(-0) = +0 (Go's max(-0, +0))
    if (op == U_POW) alpha = 1.5f;
    Acc acc{std::string("unary_strided ") + names[op] + " (9 views x 5 dtypes)"};
    for (auto& dt : dts)
      for (auto& v : unary_views()) {
        i64 ny = extent(v.shape, v.st[0]), nx = extent(v.shape, v.st[1]);
        Buf x(dt[0], nx), y(dt[1], ny);
        auto xv = inputs(nx, -0.5f, 3.f);
        for (i64 i = 0; i < nx; i++) x.set(i, xv[i]);
        for (i64 i = 0; i < ny; i++) y.set(i, kSentinel);
        Packed p = pack(v);
        emu::launch(sgrid(p.n), 256, [&] {
          unary_strided(op, alpha, beta, y.ptr(), y.dt, x.ptr(), x.dt, p.rank, p.n, P6(p.s), P6(p.st[0]),
                        P6(p.st[1]));
        });
        std::vector<float> want(ny, kSentinel);
        auto oy = offsets(v, 0), ox = offsets(v, 1);
        for (size_t e = 0; e < oy.size(); e++) want[oy[e]] = ref_unary(op, alpha, beta, x.get(ox[e]));
        double atol, rtol;
        tol(y.dt, transcendental(op), &atol, &rtol);
        std::string where = v.name + " " + dtn(x.dt) + "->" + dtn(y.dt);
        for (i64 i = 0; i < ny; i++) {
          u32 wb;
          float w = rounded(want[i], y.dt, &wb);
          acc.add(where + " at " + std::to_string(i), y.get(i), y.bits(i), w, wb, !transcendental(op), atol, rtol);
        }
      }
    acc.report();
  }
}

// ref_binary is kernels/cpu.BinaryOp.BinaryScalar.
static float ref_binary(int op, float a, float b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_MAX: return go_max_ref(a, b);
    case B_MIN: return go_min_ref(a, b);
  }
  std::abort();
}

// Layouts of y, a, b (operands 0, 1, 2).
static std::vector<View> binary_views() {
  return {
      {"[1]", {1}, {{1}, {1}, {1}}},
      {"[3] b stride 3", {3}, {{1}, {1}, {3}}},
      {"[1023] b scalar", {1023}, {{1}, {1}, {0}}},
      {"[17,3] a transposed, b row bcast", {17, 3}, {{3, 1}, {1, 17}, {0, 1}}},
      {"[2,3,4,5] b channel bias", {2, 3, 4, 5}, {{60, 20, 5, 1}, {60, 20, 5, 1}, {0, 1, 0, 0}}},
      {"[2,3,1,4,2,3] permuted, b bcast", {2, 3, 1, 4, 2, 3},
       {{72, 24, 24, 6, 3, 1}, {1, 2, 6, 6, 24, 96}, {0, 1, 0, 3, 0, 12}}},
      {"[3,17] y transposed, b scalar", {3, 17}, {{1, 3}, {17, 1}, {0, 0}}},
      {"[5,3,4] a bcast dim0, padded y", {5, 3, 4}, {{16, 5, 1}, {0, 4, 1}, {12, 4, 1}}},
  };
}

// run_binary runs binary_strided on view v; inplace 1 makes y be a, 2 makes y be b
// (which must then have y's dtype and strides).
static void run_binary(Acc& acc, int op, const View& v, int dty, int dta, int dtb, int inplace) {
  i64 ny = extent(v.shape, v.st[0]), na = extent(v.shape, v.st[1]), nb = extent(v.shape, v.st[2]);
  Buf a(dta, na), b(dtb, nb), yb(dty, ny);
  auto av = inputs(na, -2.f, 2.f), bv = uni(nb, -2.f, 2.f);
  for (i64 i = 0; i < na; i++) a.set(i, av[i]);
  for (i64 i = 0; i < nb; i++) b.set(i, bv[i]);
  for (i64 i = 7; i < nb; i += 13) b.set(i, i % 2 ? NAN : 0.f);
  for (i64 i = 0; i < ny; i++) yb.set(i, kSentinel);
  Buf& y = inplace == 1 ? a : inplace == 2 ? b : yb;
  std::vector<float> want(ny, kSentinel);
  auto oy = offsets(v, 0), oa = offsets(v, 1), ob = offsets(v, 2);
  for (size_t e = 0; e < oy.size(); e++) want[oy[e]] = ref_binary(op, a.get(oa[e]), b.get(ob[e]));
  Packed p = pack(v);
  emu::launch(sgrid(p.n), 256, [&] {
    binary_strided(op, y.ptr(), y.dt, a.ptr(), a.dt, b.ptr(), b.dt, p.rank, p.n, P6(p.s), P6(p.st[0]), P6(p.st[1]),
                   P6(p.st[2]));
  });
  double atol, rtol;
  tol(y.dt, false, &atol, &rtol);
  std::string where = v.name + " " + dtn(dta) + "," + dtn(dtb) + "->" + dtn(dty) +
                      (inplace ? (inplace == 1 ? " y=a" : " y=b") : "");
  for (i64 i = 0; i < ny; i++) {
    u32 wb;
    float w = rounded(want[i], y.dt, &wb);
    acc.add(where + " at " + std::to_string(i), y.get(i), y.bits(i), w, wb, true, atol, rtol);
  }
}

static void test_binary_strided() {
  const char* names[] = {"add", "sub", "mul", "div", "max", "min"};
  const int dts[][3] = {{DT_F32, DT_F32, DT_F32}, {DT_F16, DT_BF16, DT_F32}, {DT_F32, DT_F16, DT_F16},
                        {DT_BF16, DT_BF16, DT_BF16}, {DT_BF16, DT_F32, DT_F16}};
  auto views = binary_views();
  for (int op = B_ADD; op <= B_MIN; op++) {
    Acc acc{std::string("binary_strided ") + names[op] + " (8 views x 5 dtypes, in place)"};
    for (auto& dt : dts)
      for (auto& v : views) run_binary(acc, op, v, dt[2], dt[0], dt[1], 0);
    // In place: y = a (a strides = y strides, b broadcast) and y = b.
    run_binary(acc, op, views[4], DT_F16, DT_F16, DT_F32, 1);
    run_binary(acc, op, views[2], DT_F32, DT_F32, DT_BF16, 1);
    View vb{"[4,6] y=b, a transposed", {4, 6}, {{6, 1}, {1, 4}, {6, 1}}};
    run_binary(acc, op, vb, DT_BF16, DT_F32, DT_BF16, 2);
    // Signed zeros, NaN and infinities paired explicitly, bit for bit.
    std::vector<float> za = {-0.f, 0.f, -0.f, 0.f, NAN, 1.f, -0.f, INFINITY, INFINITY, 2.f};
    std::vector<float> zb = {0.f, -0.f, -0.f, 0.f, 1.f, NAN, 0.f, -INFINITY, INFINITY, 0.f};
    std::vector<float> zy(za.size());
    emu::launch(dim3e{1, 1, 1}, 256, [&] {
      binary_strided(op, zy.data(), DT_F32, za.data(), DT_F32, zb.data(), DT_F32, 1, (i64)za.size(), (i64)za.size(),
                     1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0);
    });
    for (size_t i = 0; i < za.size(); i++) {
      float w = ref_binary(op, za[i], zb[i]);
      acc.add("special pair " + std::to_string(i), zy[i], __float_as_uint(zy[i]), w, __float_as_uint(w), true, 0, 0);
    }
    acc.report();
  }
}

template <class T>
static void test_copy_fill(const char* cname, const char* fname, bool b16) {
  Acc acc{std::string(cname) + " (9 views, bit copies)"};
  for (auto& v : unary_views()) {
    i64 nd = extent(v.shape, v.st[0]), ns = extent(v.shape, v.st[1]);
    std::vector<T> src(ns), dst(nd, (T)0x5a5a5a5au);
    for (auto& s : src) s = (T)rng();
    Packed p = pack(v);
    emu::launch(sgrid(p.n), 256, [&] {
      if (b16)
        copy_strided_b16((u16*)dst.data(), (const u16*)src.data(), p.rank, p.n, P6(p.s), P6(p.st[0]), P6(p.st[1]));
      else
        copy_strided_b32((u32*)dst.data(), (const u32*)src.data(), p.rank, p.n, P6(p.s), P6(p.st[0]), P6(p.st[1]));
    });
    std::vector<T> want(nd, (T)0x5a5a5a5au);
    auto od = offsets(v, 0), os = offsets(v, 1);
    for (size_t e = 0; e < od.size(); e++) want[od[e]] = src[os[e]];
    for (i64 i = 0; i < nd; i++)
      acc.add(v.name + " at " + std::to_string(i), (float)dst[i], dst[i], (float)want[i], want[i], true, 0, 0);
  }
  acc.report();
  Acc facc{std::string(fname) + " (n = 1, 3, 17, 1023)"};
  for (i64 n : {1, 3, 17, 1023}) {
    std::vector<T> buf(n + 5, (T)0x1234u);
    const u32 bits = b16 ? 0xbc00u : 0xc0f00000u;  // -1 in f16, -7.5 in f32
    emu::launch(sgrid(n), 256, [&] {
      if (b16)
        fill_b16((u16*)buf.data(), n, bits);
      else
        fill_b32((u32*)buf.data(), n, bits);
    });
    for (i64 i = 0; i < n + 5; i++) {
      T w = i < n ? (T)bits : (T)0x1234u;
      facc.add("n=" + std::to_string(n) + " at " + std::to_string(i), (float)buf[i], buf[i], (float)w, w, true, 0, 0);
    }
  }
  facc.report();
}

static void test_strided() {
  test_unary_strided();
  test_binary_strided();
  test_copy_fill<u16>("copy_strided_b16", "fill_b16", true);
  test_copy_fill<u32>("copy_strided_b32", "fill_b32", false);
}

int main() {
  struct G {
    const char* name;
    GemmFn fn;
    bool bf, bt, oh;
    int tile;
  } gs[] = {
      {"gemm_f16_nn_of32_128", gemm_f16_nn_of32_128, false, false, false, 128},
      {"gemm_f16_nt_of32_128", gemm_f16_nt_of32_128, false, true, false, 128},
      {"gemm_f16_nn_oh_64", gemm_f16_nn_oh_64, false, false, true, 64},
      {"gemm_f16_nt_oh_64", gemm_f16_nt_oh_64, false, true, true, 64},
      {"gemm_bf16_nn_oh_128", gemm_bf16_nn_oh_128, true, false, true, 128},
      {"gemm_bf16_nt_oh_128", gemm_bf16_nt_oh_128, true, true, true, 128},
      {"gemm_bf16_nn_of32_64", gemm_bf16_nn_of32_64, true, false, false, 64},
      {"gemm_bf16_nt_of32_64", gemm_bf16_nt_of32_64, true, true, false, 64},
  };
  int i = 0;
  for (auto& g : gs) {
    int K = (i % 2 == 0) ? 40 : 80;
    test_gemm(g.name, g.fn, g.bf, g.bt, g.oh, g.tile, 70 + i, 72, K, 1 + i % 2, i % 3 == 0);
    i++;
  }
  test_gemm_simt();

  test_conv("conv2d_f16_k3_of32 s1p1", conv2d_f16_k3_of32, false, false, 3, 2, 5, 9, 7, 12, 1, 1, false, false);
  test_conv("conv2d_bf16_k3_oh s2p1 residual", conv2d_bf16_k3_oh, true, true, 3, 1, 8, 11, 10, 20, 2, 1, false, true);
  test_conv("conv2d_f16_k1_of32 residual", conv2d_f16_k1_of32, false, false, 1, 2, 16, 5, 6, 20, 1, 0, true, true);
  test_conv("conv2d_bf16_k1_oh", conv2d_bf16_k1_oh, true, true, 1, 1, 12, 13, 11, 9, 1, 0, false, false);
  test_conv_simt();

  test_attn("attention_f16_d40", attention_f16_d40, false, 40, 1, 2, 70, 77, false, 8);
  test_attn("attention_bf16_d40", attention_bf16_d40, true, 40, 1, 1, 70, 70, true, 0);
  test_attn("attention_f16_d64", attention_f16_d64, false, 64, 2, 1, 33, 130, false, 0);
  test_attn("attention_bf16_d64", attention_bf16_d64, true, 64, 1, 1, 20, 90, true, 8);
  test_attn("attention_f16_d80", attention_f16_d80, false, 80, 1, 1, 65, 77, false, 16);
  test_attn("attention_bf16_d80", attention_bf16_d80, true, 80, 1, 1, 66, 65, true, 0);
  test_attn("attention_f16_d160", attention_f16_d160, false, 160, 1, 1, 64, 77, false, 8);
  test_attn("attention_bf16_d160", attention_bf16_d160, true, 160, 1, 1, 40, 40, true, 0);
  test_attn_simt(24, 19, 19, false);
  test_attn_simt(40, 19, 19, true);

  test_groupnorm(false, false);
  test_groupnorm(false, true);
  test_groupnorm(true, true);
  test_layernorm_softmax();
  test_elementwise();
  test_strided();

  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}

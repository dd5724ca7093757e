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
    bool ok = d <= atol + rtol * std::fabs(want[i]) || (std::isnan(want[i]) && std::isnan(got[i]));
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

  std::printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}

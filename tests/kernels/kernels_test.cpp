// CPU kernels: every backward against central finite differences of its forward on small shapes,
// forwards against naive double-precision loops, accumulate-vs-write semantics, guard floats
// around every output to catch out-of-bounds writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/matmul.h"

namespace tuneserve {
namespace {

constexpr int kGuard = 16;
constexpr float kSentinel = -12345.678f;

// A buffer with sentinel floats on both sides.
struct Buf {
  explicit Buf(std::size_t n, float fill = 0.0f) : n(n), v(n + 2 * kGuard, kSentinel) {
    std::fill(data(), data() + n, fill);
  }
  float* data() { return v.data() + kGuard; }
  const float* data() const { return v.data() + kGuard; }
  float& operator[](std::size_t i) { return data()[i]; }
  bool guards_intact() const {
    for (int i = 0; i < kGuard; ++i)
      if (v[i] != kSentinel || v[kGuard + n + i] != kSentinel) return false;
    return true;
  }
  std::size_t n;
  std::vector<float> v;
};

Buf random_buf(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  Buf b(n);
  std::normal_distribution<float> d(0.0f, scale);
  for (std::size_t i = 0; i < n; ++i) b[i] = d(rng);
  return b;
}

// d/dx of L(x) = sum(f(x) * R) by central differences, in double for the sum.
std::vector<double> numeric_grad(Buf& x, const std::function<double()>& loss, float eps = 1e-2f) {
  std::vector<double> g(x.n);
  for (std::size_t i = 0; i < x.n; ++i) {
    const float keep = x[i];
    x[i] = keep + eps;
    const double up = loss();
    x[i] = keep - eps;
    const double down = loss();
    x[i] = keep;
    g[i] = (up - down) / (2.0 * eps);
  }
  return g;
}

double dot(const Buf& a, const Buf& r) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.n; ++i) s += static_cast<double>(a.data()[i]) * r.data()[i];
  return s;
}

// Analytic vs numeric within `rel` of the largest numeric entry.
void expect_grad(const Buf& analytic, const std::vector<double>& numeric, double rel, const char* what) {
  double scale = 1e-6;
  for (double v : numeric) scale = std::max(scale, std::abs(v));
  for (std::size_t i = 0; i < numeric.size(); ++i)
    ASSERT_NEAR(analytic.data()[i], numeric[i], rel * scale) << what << " [" << i << "]";
  EXPECT_TRUE(analytic.guards_intact()) << what;
}

TEST(Matmul, ForwardMatchesNaiveAndBackwardMatchesFiniteDifferences) {
  std::mt19937 rng(1);
  const int M = 5, K = 7, N = 3;
  Buf x = random_buf(M * K, rng), w = random_buf(N * K, rng), b = random_buf(N, rng), r = random_buf(M * N, rng);
  Buf out(M * N);
  matmul_forward(out.data(), x.data(), w.data(), b.data(), M, K, N);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double s = b[n];
      for (int k = 0; k < K; ++k) s += static_cast<double>(x[m * K + k]) * w[n * K + k];
      EXPECT_NEAR(out[m * N + n], s, 1e-5);
    }
  EXPECT_TRUE(out.guards_intact());
  auto loss = [&] {
    matmul_forward(out.data(), x.data(), w.data(), b.data(), M, K, N);
    return dot(out, r);
  };
  // Parameter grads accumulate: start from 1 and subtract it after.
  Buf dx(M * K, 7.0f), dw(N * K, 1.0f), db(N, 1.0f);
  matmul_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), M, K, N);
  for (std::size_t i = 0; i < dw.n; ++i) dw[i] -= 1.0f;
  for (std::size_t i = 0; i < db.n; ++i) db[i] -= 1.0f;
  expect_grad(dx, numeric_grad(x, loss), 1e-3, "dinp");
  expect_grad(dw, numeric_grad(w, loss), 1e-3, "dweight");
  expect_grad(db, numeric_grad(b, loss), 1e-3, "dbias");
}

TEST(Matmul, PackedLinearEqualsPlainForManyRowCounts) {
  std::mt19937 rng(2);
  const int K = 96, N = 80;
  Buf w = random_buf(N * K, rng, 0.1f), b = random_buf(N, rng);
  PackedLinear plain(w.data(), b.data(), K, N);
  PackedLinear fused(w.data(), b.data(), K, N, PackedLinear::Activation::Gelu);
  for (int M : {1, 3, 37, 128, 1024, 1500}) {
    Buf x = random_buf(static_cast<std::size_t>(M) * K, rng);
    Buf want(static_cast<std::size_t>(M) * N), got(static_cast<std::size_t>(M) * N), got_gelu(want.n), want_gelu(want.n);
    matmul_forward(want.data(), x.data(), w.data(), b.data(), M, K, N);
    plain.forward(got.data(), x.data(), M);
    fused.forward(got_gelu.data(), x.data(), M);
    gelu_forward(want_gelu.data(), want.data(), want.n);
    for (std::size_t i = 0; i < want.n; ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4f * (1 + std::abs(want[i]))) << "M=" << M << " i=" << i;
      ASSERT_NEAR(got_gelu[i], want_gelu[i], 1e-4f * (1 + std::abs(want_gelu[i]))) << "gelu M=" << M;
    }
    EXPECT_TRUE(got.guards_intact() && got_gelu.guards_intact());
  }
}

// Where out and inp hold rows_to_hold(M) rows, a product runs on all of them (a few row counts
// instead of a primitive per M, kernels/cpu/matmul.cpp): the first M rows must equal the product of
// exactly M rows (and those of a product of 2048), in fp32 and bf16, with and without the fused
// GELU, also into strided rows; nothing past the rows held is written. oneDNN's AVX-512 kernels
// give the same bits for any row count here (Zen 5); its AVX2 ones differ in the last bit between
// some row counts (summed in another order), so rows are compared within 1e-5.
TEST(Matmul, PackedLinearPaddedRowCountsGiveTheSameRows) {
  std::mt19937 rng(6);
  const int K = 192, N = 96, rows = 2048, ld = N + 8;
  Buf w = random_buf(N * K, rng, 0.1f), b = random_buf(N, rng);
  Buf x = random_buf(static_cast<std::size_t>(rows) * K, rng);
  std::vector<DType> dtypes{DType::F32};
  if (cpu_isa() >= CpuIsa::avx512_bf16) dtypes.push_back(DType::BF16);
  for (const DType dtype : dtypes)
    for (const auto act : {PackedLinear::Activation::None, PackedLinear::Activation::Gelu}) {
      PackedLinear layer(w.data(), b.data(), K, N, act, dtype);
      Buf all(static_cast<std::size_t>(rows) * N);
      layer.forward(all.data(), x.data(), rows);
      for (int M : {1, 31, 33, 100, 255, 257, 300, 511, 577, 1023, 1025, 1100, 2047}) {
        const int held = PackedLinear::rows_to_hold(M);
        const std::string what = std::string(dtype_name(dtype)) +
                                 (act == PackedLinear::Activation::Gelu ? " gelu" : "") + " M=" + std::to_string(M);
        ASSERT_GE(held, M) << what;
        ASSERT_LE(held, M + std::max(1, M / 32)) << what;
        Buf exact(static_cast<std::size_t>(M) * N), padded(static_cast<std::size_t>(held) * N),
            wide(static_cast<std::size_t>(held) * ld, 5.0f);
        layer.forward(exact.data(), x.data(), M);
        layer.forward(padded.data(), x.data(), M, 0, held);
        layer.forward(wide.data(), x.data(), M, ld, held);
        for (std::size_t i = 0; i < exact.n; ++i) {
          const float tol = 1e-5f * (1.0f + std::abs(all[i]));
          ASSERT_NEAR(exact[i], all[i], tol) << what << " row " << i / N;
          ASSERT_NEAR(padded[i], all[i], tol) << what << " row " << i / N;
          ASSERT_NEAR(wide[i / N * ld + i % N], all[i], tol) << what << " strided row " << i / N;
        }
        for (std::size_t i = exact.n / N * ld; i < wide.n; ++i) ASSERT_EQ(wide[i], 5.0f) << what << " past row M";
        ASSERT_TRUE(exact.guards_intact() && padded.guards_intact() && wide.guards_intact()) << what;
      }
    }
}

// Primitives are cached by shape, shared by layers of the same shape, and bounded (least recently
// used dropped): two layers with different weights keep their own results, and row counts past the
// cache's capacity (then again, after eviction) still compute the right product.
TEST(Matmul, SharedBoundedPrimitiveCacheKeepsEachLayersWeights) {
  std::mt19937 rng(3);
  const int K = 16, N = 8;
  Buf w1 = random_buf(N * K, rng, 0.1f), w2 = random_buf(N * K, rng, 0.1f), b = random_buf(N, rng);
  PackedLinear first(w1.data(), b.data(), K, N), second(w2.data(), b.data(), K, N);
  const int rows = 700;  // more distinct row counts than either cache holds
  Buf x = random_buf(static_cast<std::size_t>(rows) * K, rng);
  for (int pass = 0; pass < 2; ++pass)
    for (int M = 1; M <= rows; M += pass == 0 ? 1 : 97) {
      Buf want1(static_cast<std::size_t>(M) * N), want2(want1.n), got1(want1.n), got2(want1.n);
      matmul_forward(want1.data(), x.data(), w1.data(), b.data(), M, K, N);
      matmul_forward(want2.data(), x.data(), w2.data(), b.data(), M, K, N);
      first.forward(got1.data(), x.data(), M);
      second.forward(got2.data(), x.data(), M);
      for (std::size_t i = 0; i < want1.n; ++i) {
        ASSERT_NEAR(got1[i], want1[i], 1e-4f * (1 + std::abs(want1[i]))) << "pass " << pass << " M=" << M;
        ASSERT_NEAR(got2[i], want2[i], 1e-4f * (1 + std::abs(want2[i]))) << "pass " << pass << " M=" << M;
      }
    }
}

// Strided rows (the K,V columns of a fused QKV row) give the contiguous results and leave the
// other columns untouched.
TEST(Matmul, StridedOutputAndGradientRowsEqualContiguous) {
  std::mt19937 rng(4);
  const int M = 37, K = 48, N = 32, ld = 80, col = 24;
  Buf x = random_buf(M * K, rng), w = random_buf(N * K, rng, 0.1f), b = random_buf(N, rng);
  Buf want(M * N), wide(M * ld, 5.0f);
  matmul_forward(want.data(), x.data(), w.data(), b.data(), M, K, N);
  matmul_forward(wide.data() + col, x.data(), w.data(), b.data(), M, K, N, ld);
  PackedLinear packed(w.data(), b.data(), K, N);
  Buf wide_packed(M * ld, 5.0f);
  packed.forward(wide_packed.data() + col, x.data(), M, ld);
  for (int m = 0; m < M; ++m)
    for (int j = 0; j < ld; ++j) {
      const bool inside = j >= col && j < col + N;
      const float expect = inside ? want[m * N + j - col] : 5.0f;
      ASSERT_NEAR(wide[m * ld + j], expect, 1e-5f * (1 + std::abs(expect))) << m << " " << j;
      ASSERT_NEAR(wide_packed[m * ld + j], expect, 1e-4f * (1 + std::abs(expect))) << m << " " << j;
    }
  // Backward from gradient rows `ld` apart equals backward from the same rows packed.
  Buf dout = random_buf(M * N, rng), dwide(M * ld, 9.0f);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) dwide[m * ld + col + n] = dout[m * N + n];
  Buf dx1(M * K), dw1(N * K, 1.0f), db1(N, 1.0f), dx2(M * K), dw2(N * K, 1.0f), db2(N, 1.0f);
  matmul_backward(dx1.data(), dw1.data(), db1.data(), dout.data(), x.data(), w.data(), M, K, N);
  matmul_backward(dx2.data(), dw2.data(), db2.data(), dwide.data() + col, x.data(), w.data(), M, K, N, ld);
  for (std::size_t i = 0; i < dx1.n; ++i) ASSERT_NEAR(dx2[i], dx1[i], 1e-5f * (1 + std::abs(dx1[i]))) << i;
  for (std::size_t i = 0; i < dw1.n; ++i) ASSERT_NEAR(dw2[i], dw1[i], 1e-5f * (1 + std::abs(dw1[i]))) << i;
  for (std::size_t i = 0; i < db1.n; ++i) ASSERT_NEAR(db2[i], db1[i], 1e-5f * (1 + std::abs(db1[i]))) << i;
  EXPECT_TRUE(wide.guards_intact() && wide_packed.guards_intact() && dx2.guards_intact() && dw2.guards_intact() &&
              db2.guards_intact());
}

// Large weights with many rows take the path that reorders W into the blocked layout on every call
// (kernels/cpu/matmul.cpp): dinp equals a double-precision reference (sampled rows), also for
// gradient rows `ld` apart, and a changed W is seen by the next call.
TEST(Matmul, BackwardDataWithPackedWeightsMatchesReference) {
  std::mt19937 rng(5);
  const int M = 256, K = 1000, N = 2000, ld = N + 16;
  Buf w = random_buf(static_cast<std::size_t>(N) * K, rng, 0.05f), x = random_buf(static_cast<std::size_t>(M) * K, rng);
  Buf dwide = random_buf(static_cast<std::size_t>(M) * ld, rng);
  for (int pass = 0; pass < 2; ++pass) {
    for (int stride : {0, ld}) {
      Buf dx(static_cast<std::size_t>(M) * K);
      matmul_backward(dx.data(), nullptr, nullptr, dwide.data(), x.data(), w.data(), M, K, N, stride);
      const int rs = stride ? stride : N;
      for (int m : {0, 1, 37, 128, 255})
        for (int k = 0; k < K; k += 7) {
          double want = 0.0;
          for (int n = 0; n < N; ++n)
            want += static_cast<double>(dwide[static_cast<std::size_t>(m) * rs + n]) * w[static_cast<std::size_t>(n) * K + k];
          ASSERT_NEAR(dx[static_cast<std::size_t>(m) * K + k], want, 1e-4 * (1 + std::abs(want)))
              << "pass " << pass << " stride " << stride << " m " << m << " k " << k;
        }
      EXPECT_TRUE(dx.guards_intact());
    }
    for (std::size_t i = 0; i < w.n; ++i) w[i] = -0.5f * w[i] + 0.01f;  // the optimizer changed W
  }
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  std::mt19937 rng(3);
  const int N = 4, C = 9;
  Buf x = random_buf(N * C, rng), w = random_buf(C, rng), b = random_buf(C, rng), r = random_buf(N * C, rng);
  Buf out(N * C), mean(N), rstd(N);
  auto loss = [&] {
    layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C, 1e-5f);
    return dot(out, r);
  };
  loss();
  for (int i = 0; i < N; ++i) {  // forward against the definition
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += x[i * C + c];
    m /= C;
    for (int c = 0; c < C; ++c) v += (x[i * C + c] - m) * (x[i * C + c] - m);
    v /= C;
    for (int c = 0; c < C; ++c)
      EXPECT_NEAR(out[i * C + c], (x[i * C + c] - m) / std::sqrt(v + 1e-5) * w[c] + b[c], 1e-5);
  }
  EXPECT_TRUE(out.guards_intact() && mean.guards_intact() && rstd.guards_intact());
  Buf dx(N * C), dw(C), db(C);
  layernorm_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), mean.data(), rstd.data(), N, C);
  expect_grad(dx, numeric_grad(x, loss, 1e-3f), 2e-3, "dinp");
  expect_grad(dw, numeric_grad(w, loss), 1e-3, "dweight");
  expect_grad(db, numeric_grad(b, loss), 1e-3, "dbias");
}

TEST(LayerNorm, ResidualFusedEqualsAddThenNormalize) {
  std::mt19937 rng(10);
  const int N = 70, C = 300;  // past the parallel threshold
  Buf a = random_buf(N * C, rng), b = random_buf(N * C, rng), w = random_buf(C, rng), bias = random_buf(C, rng);
  Buf sum(N * C), want(N * C), got(N * C), res(N * C), mean(N), rstd(N), mean2(N), rstd2(N);
  for (int i = 0; i < N * C; ++i) sum[i] = a[i] + b[i];
  layernorm_forward(want.data(), mean.data(), rstd.data(), sum.data(), w.data(), bias.data(), N, C, 1e-12f);
  residual_layernorm_forward(got.data(), res.data(), mean2.data(), rstd2.data(), a.data(), b.data(), w.data(),
                             bias.data(), N, C, 1e-12f);
  for (int i = 0; i < N * C; ++i) {
    ASSERT_EQ(res[i], sum[i]);
    ASSERT_EQ(got[i], want[i]);
  }
  for (int i = 0; i < N; ++i) ASSERT_EQ(rstd2[i], rstd[i]);
  // In place: the residual sum overwrites `a`.
  residual_layernorm_forward(got.data(), a.data(), nullptr, nullptr, a.data(), b.data(), w.data(), bias.data(), N, C,
                             1e-12f);
  for (int i = 0; i < N * C; ++i) ASSERT_EQ(got[i], want[i]);
  EXPECT_TRUE(got.guards_intact() && res.guards_intact() && a.guards_intact());
}

// The training GELU that saves Phi(x) gives gelu_forward's output bit for bit, and gelu_backward's
// within an ulp or two (the compiler fuses a different multiply-add when Phi is not recomputed).
TEST(Activations, GeluWithSavedCdfEqualsThePlainGelu) {
  const std::size_t N = 40001;  // -10 .. 10 in steps of 5e-4, plus random dout
  std::mt19937 rng(12);
  Buf x(N), dout = random_buf(N, rng), want(N), got(N), cdf(N), again(N), dwant(N), dgot(N);
  for (std::size_t i = 0; i < N; ++i) x[i] = -10.0f + 5e-4f * static_cast<float>(i);
  gelu_forward(want.data(), x.data(), N);
  gelu_forward_cdf(got.data(), cdf.data(), x.data(), N);
  gelu_from_cdf(again.data(), x.data(), cdf.data(), N);
  gelu_backward(dwant.data(), x.data(), dout.data(), N);
  gelu_backward_cdf(dgot.data(), x.data(), cdf.data(), dout.data(), N);
  for (std::size_t i = 0; i < N; ++i) {
    ASSERT_EQ(got[i], want[i]) << x[i];
    ASSERT_EQ(again[i], want[i]) << x[i];
    ASSERT_NEAR(dgot[i], dwant[i], 3e-7f * std::abs(dout[i])) << x[i];  // scale: dout * (Phi + |x phi|) <= ~1.1 dout
  }
  EXPECT_TRUE(got.guards_intact() && cdf.guards_intact() && again.guards_intact() && dgot.guards_intact());
}

TEST(Activations, BackwardsMatchFiniteDifferences) {
  std::mt19937 rng(4);
  const std::size_t N = 33;
  Buf x = random_buf(N, rng, 2.0f), r = random_buf(N, rng), out(N), dx(N);
  for (std::size_t i = 0; i < N; ++i)
    if (std::abs(x[i]) < 0.05f) x[i] = 0.5f;  // keep ReLU's kink out of the difference stencil
  gelu_forward(out.data(), x.data(), N);
  for (std::size_t i = 0; i < N; ++i)
    EXPECT_NEAR(out[i], 0.5 * x[i] * (1.0 + std::erf(x[i] / std::sqrt(2.0))), 1e-6);
  auto gelu_loss = [&] { gelu_forward(out.data(), x.data(), N); return dot(out, r); };
  gelu_backward(dx.data(), x.data(), r.data(), N);
  expect_grad(dx, numeric_grad(x, gelu_loss, 1e-3f), 1e-3, "gelu");
  auto tanh_loss = [&] { tanh_forward(out.data(), x.data(), N); return dot(out, r); };
  tanh_loss();
  tanh_backward(dx.data(), out.data(), r.data(), N);
  expect_grad(dx, numeric_grad(x, tanh_loss, 1e-3f), 1e-3, "tanh");
  auto relu_loss = [&] { relu_forward(out.data(), x.data(), N); return dot(out, r); };
  relu_backward(dx.data(), x.data(), r.data(), N);
  expect_grad(dx, numeric_grad(x, relu_loss, 1e-3f), 1e-3, "relu");
  float nan_in = std::nanf(""), nan_out = 0.0f;  // torch.relu keeps NaN: a NaN model must not look finite
  relu_forward(&nan_out, &nan_in, 1);
  EXPECT_TRUE(std::isnan(nan_out));
  EXPECT_TRUE(out.guards_intact());
}

void attention_case(float p_drop) {
  std::mt19937 rng(5);
  const int B = 2, T = 5, C = 8, NH = 2;
  Buf qkv = random_buf(B * T * 3 * C, rng), r = random_buf(B * T * C, rng);
  const std::vector<std::int32_t> mask = {1, 1, 1, 0, 0, 1, 1, 1, 1, 1};
  const DropoutKey key{99, 7};
  Buf out(B * T * C), att(B * NH * T * T);
  auto loss = [&] {
    attention_forward(out.data(), att.data(), qkv.data(), mask.data(), B, T, C, NH, p_drop, key);
    return dot(out, r);
  };
  loss();
  EXPECT_TRUE(out.guards_intact() && att.guards_intact());
  // Probabilities: rows sum to 1 and masked keys get 0.
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        double s = 0;
        for (int t2 = 0; t2 < T; ++t2) {
          const float p = att[((b * NH + h) * T + t) * T + t2];
          if (!mask[b * T + t2]) {
            EXPECT_EQ(p, 0.0f);
          }
          s += p;
        }
        EXPECT_NEAR(s, 1.0, 1e-5);
      }
  Buf dqkv(B * T * 3 * C, 3.0f);  // written, not accumulated: the fill must vanish
  attention_backward(dqkv.data(), r.data(), qkv.data(), att.data(), B, T, C, NH, p_drop, key);
  expect_grad(dqkv, numeric_grad(qkv, loss, 1e-3f), 2e-3, "dqkv");
  // Unmasked attention over only the real tokens equals the masked padded result (the unpadded path).
  Buf short_out(3 * C);
  std::vector<float> short_qkv(qkv.data(), qkv.data() + 3 * 3 * C);
  attention_forward(short_out.data(), nullptr, short_qkv.data(), nullptr, 1, 3, C, NH, 0.0f, {});
  attention_forward(out.data(), att.data(), qkv.data(), mask.data(), B, T, C, NH, 0.0f, key);
  for (int i = 0; i < 3 * C; ++i) EXPECT_NEAR(short_out[i], out[i], 1e-6);
}

TEST(Attention, BackwardMatchesFiniteDifferences) { attention_case(0.0f); }
TEST(Attention, BackwardWithDropoutMatchesFiniteDifferences) { attention_case(0.3f); }

TEST(Attention, FastPathsEqualGenericLoops) {
  std::mt19937 rng(9);
  for (const float p_drop : {0.0f, 0.2f}) {
    const int B = 3, T = 37, C = 96, NH = 3;  // HS = 32; T not a multiple of the 4-row / 64-key tiles
    Buf qkv = random_buf(static_cast<std::size_t>(B) * T * 3 * C, rng, 2.0f);
    std::vector<std::int32_t> mask(B * T, 1);
    for (int t = 20; t < T; ++t) mask[T + t] = 0;   // row 1 padded after 20 tokens
    for (int t = 0; t < T; ++t) mask[2 * T + t] = 0;  // row 2: no key at all (uniform)
    Buf out_fast(B * T * C), out_ref(B * T * C), att_fast(B * NH * T * T), att_ref(B * NH * T * T);
    attention_forward(out_fast.data(), att_fast.data(), qkv.data(), mask.data(), B, T, C, NH, p_drop, {5, 6});
    attention_forward_generic(out_ref.data(), att_ref.data(), qkv.data(), mask.data(), B, T, C, NH, p_drop, {5, 6});
    for (std::size_t i = 0; i < att_ref.n; ++i) ASSERT_NEAR(att_fast[i], att_ref[i], 1e-6f * (1 + att_ref[i])) << i;
    for (std::size_t i = 0; i < out_ref.n; ++i) ASSERT_NEAR(out_fast[i], out_ref[i], 2e-5f * (1 + std::abs(out_ref[i]))) << i;
    EXPECT_TRUE(out_fast.guards_intact() && att_fast.guards_intact());
    Buf dout = random_buf(out_ref.n, rng), dqkv_fast(qkv.n, 9.0f), dqkv_ref(qkv.n, 9.0f);
    attention_backward(dqkv_fast.data(), dout.data(), qkv.data(), att_ref.data(), B, T, C, NH, p_drop, {5, 6});
    attention_backward_generic(dqkv_ref.data(), dout.data(), qkv.data(), att_ref.data(), B, T, C, NH, p_drop, {5, 6});
    float scale = 0.0f;
    for (std::size_t i = 0; i < dqkv_ref.n; ++i) scale = std::max(scale, std::abs(dqkv_ref[i]));
    for (std::size_t i = 0; i < dqkv_ref.n; ++i) ASSERT_NEAR(dqkv_fast[i], dqkv_ref[i], 1e-5f * scale) << i;
    EXPECT_TRUE(dqkv_fast.guards_intact());
  }
}

// attention_forward_bf16 on a CPU with AVX512-BF16: the products of bf16-rounded operands, against a
// double-precision reference that rounds the same operands (Q times 1/sqrt(HS), K, V, the
// probabilities). The bound: the probabilities may round one bf16 step apart (2^-8 of each, so at
// most 2^-8 max|v| in a row's sum), and the output's own rounding (2^-9 of it). Head sizes 64 (four
// vectors of columns) and 32 (two), odd T, padding, a row with no key, the first queries only.
TEST(Attention, Bf16ProductsMatchTheReferenceOfRoundedOperands) {
  if (cpu_isa() < CpuIsa::avx512_bf16)
    GTEST_SKIP() << "this CPU has no AVX512-BF16: attention_forward_bf16 rounds the fp32 path's output instead";
  const auto r16 = [](double x) { return static_cast<double>(bf16_value(round_to_bf16(static_cast<float>(x)))); };
  std::mt19937 rng(12);
  for (const int NH : {2, 3}) {
    for (const int queries : {0, 5}) {
      const int B = 3, T = 37, C = NH == 2 ? 128 : 96, HS = C / NH, Tq = queries ? queries : T;
      Buf qkv = random_buf(static_cast<std::size_t>(B) * T * 3 * C, rng, 2.0f);
      std::vector<std::int32_t> mask(B * T, 1);
      for (int t = 20; t < T; ++t) mask[T + t] = 0;   // row 1 padded after 20 tokens
      for (int t = 0; t < T; ++t) mask[2 * T + t] = 0;  // row 2: no key at all (uniform)
      const std::size_t n = static_cast<std::size_t>(B) * Tq * C;
      std::vector<Bf16> got(n + kGuard, Bf16{0x7777});
      Buf fp32(n);
      AttentionRows rows;
      rows.queries = queries;
      attention_forward_bf16(got.data(), qkv.data(), mask.data(), B, T, C, NH, rows);
      attention_forward(fp32.data(), nullptr, qkv.data(), mask.data(), B, T, C, NH, 0.0f, {}, rows);
      for (int i = 0; i < kGuard; ++i) ASSERT_EQ(got[n + i].bits, 0x7777) << "wrote past the output";
      const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
      double vmax = 0.0;
      for (std::size_t i = 0; i < qkv.n; ++i) vmax = std::max(vmax, static_cast<double>(std::abs(qkv[i])));
      int differs_from_fp32 = 0;
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < NH; ++h)
          for (int t = 0; t < Tq; ++t) {
            const float* q = qkv.data() + (static_cast<std::size_t>(b) * T + t) * 3 * C + h * HS;
            std::vector<double> p(T, 0.0);
            bool any = false;
            double mx = -1e300, sum = 0.0;
            for (int t2 = 0; t2 < T; ++t2) {
              if (!mask[b * T + t2]) continue;
              const float* k = qkv.data() + (static_cast<std::size_t>(b) * T + t2) * 3 * C + C + h * HS;
              double sc = 0.0;
              for (int d = 0; d < HS; ++d) sc += r16(q[d] * scale) * r16(k[d]);
              p[t2] = sc;
              mx = std::max(mx, sc);
              any = true;
            }
            for (int t2 = 0; t2 < T; ++t2) {
              p[t2] = !any ? 1.0 / T : mask[b * T + t2] ? std::exp(p[t2] - mx) : 0.0;
              sum += p[t2];
            }
            for (int c = 0; c < HS; ++c) {
              double want = 0.0;
              for (int t2 = 0; t2 < T; ++t2) {
                const float* v = qkv.data() + (static_cast<std::size_t>(b) * T + t2) * 3 * C + 2 * C + h * HS;
                want += r16(p[t2] / sum) * r16(v[c]);
              }
              const std::size_t at = (static_cast<std::size_t>(b) * Tq + t) * C + h * HS + c;
              const double g = bf16_value(got[at]);
              ASSERT_NEAR(g, want, std::ldexp(vmax, -8) + std::ldexp(std::abs(want), -8))
                  << NH << " heads, " << Tq << " queries: b " << b << " h " << h << " t " << t << " c " << c;
              differs_from_fp32 += got[at].bits != round_to_bf16(fp32[at]).bits;
            }
          }
      EXPECT_GT(differs_from_fp32, 0) << "the bf16 products did not run";
    }
  }
}

// Rows whose every score lies ~88 below 0: the padding lanes past T (scores 0) sit that far above
// the row's max, where exp's exponent bits overflow; they must still weigh nothing, not NaN. A
// from-scratch GoEmotions run hit this at step 1319 and went NaN in every encoder weight.
TEST(Attention, ScoresFarBelowThePaddingStayFinite) {
  const int B = 1, T = 5, C = 16, NH = 1;  // HS = 16, scale 1/4; keys padded to 64 lanes
  for (const float score : {-87.5f, -88.0f, -88.5f, -88.9f, -89.5f, -200.0f}) {
    Buf qkv(static_cast<std::size_t>(T) * 3 * C, 0.0f);
    for (int t = 0; t < T; ++t) {
      qkv[static_cast<std::size_t>(t) * 3 * C] = 1.0f;                   // q = e0
      qkv[static_cast<std::size_t>(t) * 3 * C + C] = 4.0f * score;        // k = 4 score e0: q.k / 4 = score
      qkv[static_cast<std::size_t>(t) * 3 * C + 2 * C + 1] = static_cast<float>(t);  // v = t e1
    }
    std::vector<std::int32_t> mask(T, 1);
    Buf out(static_cast<std::size_t>(T) * C), att(static_cast<std::size_t>(T) * T);
    attention_forward(out.data(), att.data(), qkv.data(), mask.data(), B, T, C, NH, 0.0f, {});
    for (int t = 0; t < T; ++t) {  // equal scores: the mean of v, (0 + 1 + 2 + 3 + 4) / 5 = 2
      EXPECT_FLOAT_EQ(out[static_cast<std::size_t>(t) * C + 1], 2.0f) << "score " << score << " row " << t;
      for (int t2 = 0; t2 < T; ++t2) EXPECT_FLOAT_EQ(att[static_cast<std::size_t>(t) * T + t2], 0.2f) << score;
    }
  }
}

// First-token queries (the pruned last layer) and one packed sequence run alone (the unpadded
// path) give what the full padded call gives for those rows, dropout included, on both paths.
TEST(Attention, QueryPrefixAndPackedSequencesEqualThePaddedCall) {
  std::mt19937 rng(11);
  const float p_drop = 0.25f;
  const DropoutKey key{3, 9};
  for (const int C : {96, 24}) {  // HS 32: register-blocked path; HS 8: generic loops
    const int B = 3, T = 13, NH = 3;
    Buf qkv = random_buf(static_cast<std::size_t>(B) * T * 3 * C, rng, 2.0f);
    const std::vector<int> lens = {13, 7, 1};
    std::vector<std::int32_t> mask(B * T, 0);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < lens[b]; ++t) mask[b * T + t] = 1;
    Buf out(B * T * C), att(B * NH * T * T), dout = random_buf(B * T * C, rng), dqkv(qkv.n);
    attention_forward(out.data(), att.data(), qkv.data(), mask.data(), B, T, C, NH, p_drop, key);
    attention_backward(dqkv.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH, p_drop, key);
    for (const int Tq : {T, 1, 5}) {
      // Query prefix of the padded call: out rows t < Tq; dout only there (rows past Tq have no query).
      Buf o(B * Tq * C), a(B * NH * Tq * T), go(B * Tq * C), g(qkv.n, 7.0f);
      const AttentionRows rows{Tq, 0, 0};
      attention_forward(o.data(), a.data(), qkv.data(), mask.data(), B, T, C, NH, p_drop, key, rows);
      for (int b = 0; b < B; ++b)
        for (int t = 0; t < Tq; ++t)
          for (int i = 0; i < C; ++i) {
            ASSERT_NEAR(o[(b * Tq + t) * C + i], out[(b * T + t) * C + i], 1e-5f) << C << " " << Tq;
            go[(b * Tq + t) * C + i] = dout[(b * T + t) * C + i];
          }
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < NH; ++h)
          for (int t = 0; t < Tq; ++t)
            for (int t2 = 0; t2 < T; ++t2)
              ASSERT_EQ(a[((b * NH + h) * Tq + t) * T + t2], att[((b * NH + h) * T + t) * T + t2]);
      attention_backward(g.data(), go.data(), qkv.data(), a.data(), B, T, C, NH, p_drop, key, rows);
      // Reference: the full backward with dout zero past Tq.
      Buf dz(B * T * C), gref(qkv.n);
      for (int b = 0; b < B; ++b)
        for (int t = 0; t < Tq; ++t)
          for (int i = 0; i < C; ++i) dz[(b * T + t) * C + i] = dout[(b * T + t) * C + i];
      attention_backward(gref.data(), dz.data(), qkv.data(), att.data(), B, T, C, NH, p_drop, key);
      for (std::size_t i = 0; i < qkv.n; ++i) ASSERT_NEAR(g[i], gref[i], 1e-5f) << C << " " << Tq << " " << i;
      EXPECT_TRUE(o.guards_intact() && a.guards_intact() && g.guards_intact());
      // Each sequence alone over its real tokens, dropout keyed by its place in the padded batch.
      for (int b = 0; b < B; ++b) {
        const int len = lens[b], tq = std::min(Tq, len);
        const std::uint64_t key0 = static_cast<std::uint64_t>(b) * NH * T * T;
        const AttentionRows packed{tq, T, key0};
        std::vector<float> sq(qkv.data() + b * T * 3 * C, qkv.data() + (b * T + len) * 3 * C);
        Buf so(tq * C), sa(NH * tq * len), sg(sq.size()), sgo(tq * C);
        attention_forward(so.data(), sa.data(), sq.data(), nullptr, 1, len, C, NH, p_drop, key, packed);
        for (int t = 0; t < tq; ++t)
          for (int i = 0; i < C; ++i) {
            ASSERT_NEAR(so[t * C + i], out[(b * T + t) * C + i], 1e-5f) << C << " " << b;
            sgo[t * C + i] = dout[(b * T + t) * C + i];
          }
        attention_backward(sg.data(), sgo.data(), sq.data(), sa.data(), 1, len, C, NH, p_drop, key, packed);
        // The padded reference for this row with dout zero past tq.
        Buf dzb(B * T * C), gb(qkv.n);
        for (int t = 0; t < tq; ++t)
          for (int i = 0; i < C; ++i) dzb[(b * T + t) * C + i] = dout[(b * T + t) * C + i];
        attention_backward(gb.data(), dzb.data(), qkv.data(), att.data(), B, T, C, NH, p_drop, key);
        for (std::size_t i = 0; i < sq.size(); ++i)
          ASSERT_NEAR(sg[i], gb[b * T * 3 * C + i], 1e-5f) << C << " " << b << " " << i;
        EXPECT_TRUE(so.guards_intact() && sa.guards_intact() && sg.guards_intact());
      }
    }
  }
}

TEST(Embedding, ForwardSumsRowsAndBackwardAccumulatesRepeatedIds) {
  std::mt19937 rng(6);
  const int V = 6, P = 5, TV = 2, C = 20, N = 7;
  Buf wte = random_buf(V * C, rng), wpe = random_buf(P * C, rng), wtt = random_buf(TV * C, rng);
  const std::vector<std::int32_t> ids = {1, 3, 3, 0, 5, 3, 1}, pos = {0, 1, 2, 3, 4, 0, 1}, types = {0, 0, 1, 1, 0, 1, 0};
  Buf out(N * C), r = random_buf(N * C, rng);
  embedding_forward(out.data(), ids.data(), pos.data(), types.data(), wte.data(), wpe.data(), wtt.data(), N, C);
  for (int i = 0; i < N; ++i)
    for (int c = 0; c < C; ++c)
      EXPECT_FLOAT_EQ(out[i * C + c], wte[ids[i] * C + c] + wtt[types[i] * C + c] + wpe[pos[i] * C + c]);
  Buf dwte(V * C, 0.5f), dwpe(P * C), dwtt(TV * C);
  embedding_backward(dwte.data(), dwpe.data(), dwtt.data(), r.data(), ids.data(), pos.data(), types.data(), N, C);
  std::vector<double> want(V * C, 0.5);
  for (int i = 0; i < N; ++i)
    for (int c = 0; c < C; ++c) want[ids[i] * C + c] += r[i * C + c];
  for (int i = 0; i < V * C; ++i) EXPECT_NEAR(dwte[i], want[i], 1e-5);
  auto loss = [&] {
    embedding_forward(out.data(), ids.data(), pos.data(), types.data(), wte.data(), wpe.data(), wtt.data(), N, C);
    return dot(out, r);
  };
  expect_grad(dwpe, numeric_grad(wpe, loss), 1e-3, "dwpe");
  expect_grad(dwtt, numeric_grad(wtt, loss), 1e-3, "dwtt");
  EXPECT_TRUE(dwte.guards_intact() && out.guards_intact());
}

// A slice with index0 draws the bits the slice has in the whole tensor, at any alignment.
TEST(Dropout, IndexOffsetSliceEqualsTheWholeTensor) {
  const std::size_t N = 20011;
  const float p = 0.3f;
  Buf x(N), whole(N);
  for (std::size_t i = 0; i < N; ++i) x[i] = 1.0f + static_cast<float>(i % 13);
  dropout_forward(whole.data(), x.data(), N, p, {8, 2});
  for (const std::size_t start : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{4}, std::size_t{777}}) {
    for (const std::size_t n : {std::size_t{1}, std::size_t{2}, std::size_t{5}, std::size_t{19000}}) {
      if (start + n > N) continue;
      Buf part(n), back(n);
      dropout_forward(part.data(), x.data() + start, n, p, {8, 2}, start);
      dropout_backward(back.data(), x.data() + start, n, p, {8, 2}, start);
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(part[i], whole[start + i]) << start << " " << n << " " << i;
        ASSERT_EQ(back[i], whole[start + i]);
      }
      EXPECT_TRUE(part.guards_intact() && back.guards_intact());
    }
  }
}

TEST(Dropout, ReproducibleScaledAndBackwardUsesTheSameMask) {
  const std::size_t N = 100000;
  Buf x(N, 1.0f), a(N), b(N), other(N), g(N);
  const float p = 0.1f;
  dropout_forward(a.data(), x.data(), N, p, {42, 3});
  dropout_forward(b.data(), x.data(), N, p, {42, 3});
  dropout_forward(other.data(), x.data(), N, p, {42, 4});
  std::size_t dropped = 0, differ = 0;
  for (std::size_t i = 0; i < N; ++i) {
    ASSERT_EQ(a[i], b[i]);
    ASSERT_TRUE(a[i] == 0.0f || std::abs(a[i] - 1.0f / 0.9f) < 1e-6f);
    ASSERT_EQ(a[i], dropout_scale({42, 3}, i, p));
    dropped += a[i] == 0.0f;
    differ += a[i] != other[i];
  }
  EXPECT_NEAR(static_cast<double>(dropped) / N, p, 0.005);  // 5 standard deviations
  EXPECT_GT(differ, N / 10);  // another stream gives another mask
  dropout_backward(g.data(), x.data(), N, p, {42, 3});
  for (std::size_t i = 0; i < N; ++i) ASSERT_EQ(g[i], a[i]);
  EXPECT_TRUE(a.guards_intact() && g.guards_intact());
}

TEST(Loss, CrossEntropyMatchesDefinitionAndFiniteDifferences) {
  std::mt19937 rng(7);
  const int B = 4, K = 3;
  Buf logits = random_buf(B * K, rng);
  const std::vector<std::int32_t> y = {2, 0, -100, 1};
  double want = 0;
  for (int b : {0, 1, 3}) {
    double s = 0;
    for (int k = 0; k < K; ++k) s += std::exp(static_cast<double>(logits[b * K + k]));
    want += std::log(s) - logits[b * K + y[b]];
  }
  EXPECT_NEAR(cross_entropy_forward(logits.data(), y.data(), B, K), want / 3, 1e-6);
  Buf d(B * K);
  cross_entropy_backward(d.data(), logits.data(), y.data(), B, K, 2.0f);
  auto loss = [&] { return 2.0 * cross_entropy_forward(logits.data(), y.data(), B, K); };
  expect_grad(d, numeric_grad(logits, loss, 1e-3f), 1e-3, "cross entropy");
  const std::vector<std::int32_t> bad = {0, 3, 0, 0};
  EXPECT_THROW(cross_entropy_forward(logits.data(), bad.data(), B, K), Error);
}

TEST(Loss, BceAndMseMatchFiniteDifferences) {
  std::mt19937 rng(8);
  const int N = 6;
  Buf x = random_buf(N, rng, 3.0f), y(N), d(N);
  for (int i = 0; i < N; ++i) y[i] = static_cast<float>(i % 2);
  double want = 0;
  for (int i = 0; i < N; ++i) {
    const double s = 1 / (1 + std::exp(-static_cast<double>(x[i])));
    want -= y[i] * std::log(s) + (1 - y[i]) * std::log(1 - s);
  }
  EXPECT_NEAR(bce_with_logits_forward(x.data(), y.data(), N), want / N, 1e-6);
  bce_with_logits_backward(d.data(), x.data(), y.data(), N, 1.0f);
  expect_grad(d, numeric_grad(x, [&] { return double(bce_with_logits_forward(x.data(), y.data(), N)); }, 1e-3f),
              1e-3, "bce");
  mse_backward(d.data(), x.data(), y.data(), N, 1.0f);
  expect_grad(d, numeric_grad(x, [&] { return double(mse_forward(x.data(), y.data(), N)); }, 1e-3f), 1e-3, "mse");
}

}  // namespace
}  // namespace tuneserve

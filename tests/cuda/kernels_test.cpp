// CUDA kernels against their CPU twins (kernels/cpu) on random shapes: fp32
// within ~1e-5, bf16 products within 4e-2, dropout masks equal bit for bit, parameter gradients
// accumulated (+=) like the CPU's. Every test skips with a message where no GPU is usable.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_test_util.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/loss.h"
#include "kernels/cuda/matmul.h"

namespace tuneserve {
namespace {

using testing::DeviceVec;
using testing::expect_close;
using testing::kBf16Atol;
using testing::kBf16Rtol;
using testing::kF32Atol;
using testing::kF32Rtol;
using testing::randint;
using testing::randn;

// Where the CUDA build finds no GPU (CI, development machines), asking for one is a clear error.
TEST(CudaRuntime, NoGpuIsAClearError) {
  std::string why;
  if (cuda::device_count(&why) > 0) GTEST_SKIP() << "a GPU is present: the no-GPU error cannot be observed";
  EXPECT_FALSE(why.empty());
  EXPECT_TRUE(built_with_cuda());
  EXPECT_EQ(cuda_device_count(), 0);
  try {
    require_device(parse_device("cuda:0"));
    ADD_FAILURE() << "require_device(cuda:0) did not throw without a GPU";
  } catch (const Error& e) {
    const std::string want = fmt::format("device cuda:0: no usable GPU ({})", why);
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
}

TEST(CudaRuntime, DeviceBufferRoundTripAndBf16Rounding) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(1);
  const std::vector<float> x = randn(1001, rng);
  DeviceVec<float> d(x);
  EXPECT_EQ(d.back(), x);
  DeviceVec<cuda::Bf16> h(x.size());
  DeviceVec<float> back(x.size());
  cuda::to_bf16(h.get(), d.get(), x.size());
  cuda::from_bf16(back.get(), h.get(), x.size());
  const std::vector<float> got = back.back();
  for (std::size_t i = 0; i < x.size(); ++i) {
    // Round to nearest even on the top 16 bits, done on the host.
    std::uint32_t bits;
    std::memcpy(&bits, &x[i], 4);
    bits = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
    float want;
    std::memcpy(&want, &bits, 4);
    ASSERT_EQ(got[i], want) << "element " << i << " = " << x[i];
  }
}

TEST(CudaKernels, ActivationsMatchCpu) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(2);
  for (std::size_t n : {1u, 33u, 100003u}) {
    const std::vector<float> x = randn(n, rng, 3.0f), g = randn(n, rng);
    DeviceVec<float> dx(x), dg(g), out(n);
    std::vector<float> want(n);
    const auto check = [&](const char* what) { expect_close(out.back(), want, kF32Atol, kF32Rtol, what); };
    gelu_forward(want.data(), x.data(), n);
    cuda::gelu_forward(out.get(), dx.get(), n);
    check("gelu_forward");
    gelu_backward(want.data(), x.data(), g.data(), n);
    cuda::gelu_backward(out.get(), dx.get(), dg.get(), n);
    check("gelu_backward");
    // The cdf-saving variants: the same GELU and gradient, cdf = Phi(x) computed here in double.
    DeviceVec<float> cdf(n), out2(n);
    cuda::gelu_forward_cdf(out2.get(), cdf.get(), dx.get(), n);
    std::vector<float> phi(n);
    for (std::size_t i = 0; i < n; ++i) phi[i] = static_cast<float>(0.5 * (1.0 + std::erf(x[i] / std::sqrt(2.0))));
    expect_close(cdf.back(), phi, kF32Atol, kF32Rtol, "gelu_forward_cdf cdf");
    gelu_forward(want.data(), x.data(), n);
    expect_close(out2.back(), want, kF32Atol, kF32Rtol, "gelu_forward_cdf out");
    cuda::gelu_from_cdf(out.get(), dx.get(), cdf.get(), n);
    check("gelu_from_cdf");
    gelu_backward(want.data(), x.data(), g.data(), n);
    cuda::gelu_backward_cdf(out.get(), dx.get(), cdf.get(), dg.get(), n);
    check("gelu_backward_cdf");
    tanh_forward(want.data(), x.data(), n);
    cuda::tanh_forward(out.get(), dx.get(), n);
    check("tanh_forward");
    tanh_backward(want.data(), x.data(), g.data(), n);
    cuda::tanh_backward(out.get(), dx.get(), dg.get(), n);
    check("tanh_backward");
    relu_forward(want.data(), x.data(), n);
    cuda::relu_forward(out.get(), dx.get(), n);
    check("relu_forward");
    relu_backward(want.data(), x.data(), g.data(), n);
    cuda::relu_backward(out.get(), dx.get(), dg.get(), n);
    check("relu_backward");
  }
}

TEST(CudaKernels, DropoutMasksEqualCpuBitForBit) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(3);
  for (std::size_t n : {1u, 7u, 4096u, 1000001u}) {
    for (const DropoutKey key : {DropoutKey{42, 0}, DropoutKey{0xDEADBEEFCAFEull, (5ull << 32) | 3u}}) {
      const std::vector<float> x = randn(n, rng);
      std::vector<float> want(n);
      DeviceVec<float> dx(x), out(n);
      dropout_forward(want.data(), x.data(), n, 0.1f, key);
      cuda::dropout_forward(out.get(), dx.get(), n, 0.1f, key);
      const std::vector<float> got = out.back();
      ASSERT_EQ(std::memcmp(got.data(), want.data(), n * sizeof(float)), 0) << "forward, n " << n;
      dropout_backward(want.data(), x.data(), n, 0.1f, key);
      cuda::dropout_backward(dx.get(), dx.get(), n, 0.1f, key);  // in place
      const std::vector<float> back = dx.back();
      ASSERT_EQ(std::memcmp(back.data(), want.data(), n * sizeof(float)), 0) << "backward, n " << n;
    }
  }
  // A slice at index0 (any alignment) draws the bits the whole tensor has there.
  for (std::size_t index0 : {1u, 4u, 7u, 1001u}) {
    const std::size_t n = 999;
    const std::vector<float> whole = randn(index0 + n, rng);
    std::vector<float> want(whole.size());
    const DropoutKey key{9, 8};
    dropout_forward(want.data(), whole.data(), whole.size(), 0.3f, key);
    DeviceVec<float> tail(std::vector<float>(whole.begin() + index0, whole.end())), out(n);
    cuda::dropout_forward(out.get(), tail.get(), n, 0.3f, key, index0);
    const std::vector<float> got = out.back();
    ASSERT_EQ(std::memcmp(got.data(), want.data() + index0, n * sizeof(float)), 0) << "index0 " << index0;
  }
  // p == 0 copies.
  const std::vector<float> x = randn(10, rng);
  DeviceVec<float> dx(x), out(10);
  cuda::dropout_forward(out.get(), dx.get(), 10, 0.0f, DropoutKey{1, 1});
  EXPECT_EQ(out.back(), x);
}

TEST(CudaKernels, EmbeddingMatchesCpuAndAccumulates) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(4);
  const int V = 50, P = 20, TT = 2, C = 96;
  for (int N : {1, 37, 300}) {
    for (int variant = 0; variant < 3; ++variant) {  // 0: no type table, 1: types given, 2: table, types null
      const bool table = variant > 0;
      const std::vector<float> wte = randn(V * C, rng), wpe = randn(P * C, rng), wtt = randn(TT * C, rng);
      const std::vector<std::int32_t> ids = randint(N, 0, 5, rng);  // few ids: rows repeat
      const std::vector<std::int32_t> pos = randint(N, 0, P, rng), types = randint(N, 0, TT, rng);
      DeviceVec<float> d_wte(wte), d_wpe(wpe), d_wtt(wtt), out(static_cast<std::size_t>(N) * C);
      DeviceVec<std::int32_t> d_ids(ids), d_pos(pos), d_types(types);
      const std::int32_t* t_host = variant == 1 ? types.data() : nullptr;
      const std::int32_t* t_dev = variant == 1 ? d_types.get() : nullptr;
      std::vector<float> want(static_cast<std::size_t>(N) * C);
      embedding_forward(want.data(), ids.data(), pos.data(), t_host, wte.data(), wpe.data(),
                        table ? wtt.data() : nullptr, N, C);
      cuda::embedding_forward(out.get(), d_ids.get(), d_pos.get(), t_dev, d_wte.get(), d_wpe.get(),
                              table ? d_wtt.get() : nullptr, N, C);
      expect_close(out.back(), want, kF32Atol, kF32Rtol, "embedding_forward");

      const std::vector<float> g = randn(static_cast<std::size_t>(N) * C, rng);
      std::vector<float> gwte = randn(V * C, rng), gwpe = randn(P * C, rng), gwtt = randn(TT * C, rng);
      DeviceVec<float> d_g(g), d_gwte(gwte), d_gwpe(gwpe), d_gwtt(gwtt);  // non-zero: checks +=
      embedding_backward(gwte.data(), gwpe.data(), table ? gwtt.data() : nullptr, g.data(), ids.data(), pos.data(),
                         t_host, N, C);
      cuda::embedding_backward(d_gwte.get(), d_gwpe.get(), table ? d_gwtt.get() : nullptr, d_g.get(), d_ids.get(),
                               d_pos.get(), t_dev, N, C);
      expect_close(d_gwte.back(), gwte, 1e-4, kF32Rtol, "dwte");
      expect_close(d_gwpe.back(), gwpe, 1e-4, kF32Rtol, "dwpe");
      expect_close(d_gwtt.back(), gwtt, 1e-4, kF32Rtol, "dwtt");
    }
  }
}

TEST(CudaKernels, LayerNormMatchesCpu) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(5);
  for (const auto& [N, C] : {std::pair{1, 8}, std::pair{7, 100}, std::pair{300, 768}, std::pair{1025, 33}}) {
    const std::size_t NC = static_cast<std::size_t>(N) * C;
    const std::vector<float> a = randn(NC, rng, 2.0f), b = randn(NC, rng), w = randn(C, rng), bias = randn(C, rng);
    DeviceVec<float> d_a(a), d_b(b), d_w(w), d_bias(bias), out(NC), mean(N), rstd(N);
    std::vector<float> want(NC), want_mean(N), want_rstd(N), res(NC);
    layernorm_forward(want.data(), want_mean.data(), want_rstd.data(), a.data(), w.data(), bias.data(), N, C, 1e-12f);
    cuda::layernorm_forward(out.get(), mean.get(), rstd.get(), d_a.get(), d_w.get(), d_bias.get(), N, C, 1e-12f);
    expect_close(out.back(), want, 1e-4, kF32Rtol, "layernorm out");
    expect_close(mean.back(), want_mean, kF32Atol, kF32Rtol, "layernorm mean");
    expect_close(rstd.back(), want_rstd, kF32Atol, 1e-4, "layernorm rstd");

    // Residual variant, res aliasing a as the model uses it.
    residual_layernorm_forward(want.data(), res.data(), want_mean.data(), want_rstd.data(), a.data(), b.data(),
                               w.data(), bias.data(), N, C, 1e-5f);
    cuda::residual_layernorm_forward(out.get(), d_a.get(), mean.get(), rstd.get(), d_a.get(), d_b.get(), d_w.get(),
                                     d_bias.get(), N, C, 1e-5f);
    expect_close(d_a.back(), res, kF32Atol, kF32Rtol, "residual sum");
    expect_close(out.back(), want, 1e-4, kF32Rtol, "residual layernorm out");

    const std::vector<float> g = randn(NC, rng);
    std::vector<float> dinp(NC), dw = randn(C, rng), db = randn(C, rng);
    DeviceVec<float> d_g(g), d_dinp(NC), d_dw(dw), d_db(db);
    layernorm_backward(dinp.data(), dw.data(), db.data(), g.data(), res.data(), w.data(), want_mean.data(),
                       want_rstd.data(), N, C);
    cuda::layernorm_backward(d_dinp.get(), d_dw.get(), d_db.get(), d_g.get(), d_a.get(), d_w.get(), mean.get(),
                             rstd.get(), N, C);
    expect_close(d_dinp.back(), dinp, 1e-4, 1e-4, "layernorm dinp");
    expect_close(d_dw.back(), dw, 1e-3, 1e-4, "layernorm dweight (+=)");
    expect_close(d_db.back(), db, 1e-3, 1e-4, "layernorm dbias (+=)");
  }
}

TEST(CudaKernels, LossesMatchCpu) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(6);
  for (const auto& [B, K] : {std::pair{1, 2}, std::pair{33, 5}, std::pair{300, 3}}) {
    const std::vector<float> logits = randn(static_cast<std::size_t>(B) * K, rng, 3.0f);
    std::vector<std::int32_t> t = randint(B, 0, K, rng);
    t[0] = -100;  // ignored row
    DeviceVec<float> d_logits(logits), d_grad(logits.size());
    DeviceVec<std::int32_t> d_t(t);
    std::vector<float> grad(logits.size());
    EXPECT_NEAR(cuda::cross_entropy_forward(d_logits.get(), d_t.get(), B, K),
                cross_entropy_forward(logits.data(), t.data(), B, K), 1e-6);
    cross_entropy_backward(grad.data(), logits.data(), t.data(), B, K, 0.5f);
    cuda::cross_entropy_backward(d_grad.get(), d_logits.get(), d_t.get(), B, K, 0.5f);
    expect_close(d_grad.back(), grad, 1e-7, 1e-6, "cross_entropy_backward");

    const std::vector<float> y = randn(logits.size(), rng);
    DeviceVec<float> d_y(y);
    const int N = B * K;
    EXPECT_NEAR(cuda::bce_with_logits_forward(d_logits.get(), d_y.get(), N),
                bce_with_logits_forward(logits.data(), y.data(), N), 1e-5);
    bce_with_logits_backward(grad.data(), logits.data(), y.data(), N, 2.0f);
    cuda::bce_with_logits_backward(d_grad.get(), d_logits.get(), d_y.get(), N, 2.0f);
    expect_close(d_grad.back(), grad, 1e-7, 1e-6, "bce_with_logits_backward");
    EXPECT_NEAR(cuda::mse_forward(d_logits.get(), d_y.get(), N), mse_forward(logits.data(), y.data(), N), 1e-5);
    mse_backward(grad.data(), logits.data(), y.data(), N, 0.25f);
    cuda::mse_backward(d_grad.get(), d_logits.get(), d_y.get(), N, 0.25f);
    expect_close(d_grad.back(), grad, 1e-7, 1e-6, "mse_backward");
  }
  // All rows ignored: 0 and zero gradients, as on CPU.
  DeviceVec<float> d_logits(std::vector<float>{1, 2, 3, 4}), d_grad(std::vector<float>(4, 9.0f));
  DeviceVec<std::int32_t> ignored(std::vector<std::int32_t>{-100, -100});
  EXPECT_EQ(cuda::cross_entropy_forward(d_logits.get(), ignored.get(), 2, 2), 0.0f);
  cuda::cross_entropy_backward(d_grad.get(), d_logits.get(), ignored.get(), 2, 2, 1.0f);
  EXPECT_EQ(d_grad.back(), std::vector<float>(4, 0.0f));
  // A label outside [0, K): the CPU's message.
  DeviceVec<std::int32_t> bad(std::vector<std::int32_t>{1, 7});
  try {
    cuda::cross_entropy_forward(d_logits.get(), bad.get(), 2, 2);
    ADD_FAILURE() << "no error for label 7 with 2 labels";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "label 7 of batch row 1 is outside [0, 2) (num_labels)");
  }
}

TEST(CudaKernels, AdamWMatchesCpuPerTensorAndFused) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(7);
  const std::vector<std::size_t> sizes{1, 0, 768, 3000, 100003};
  std::vector<std::vector<float>> p, g, m, v;
  std::vector<DeviceVec<float>> dp, dg, dm, dv, dp1, dm1, dv1;
  for (std::size_t n : sizes) {
    p.push_back(randn(n, rng));
    g.push_back(randn(n, rng, 0.1f));
    m.push_back(std::vector<float>(n, 0.0f));
    v.push_back(std::vector<float>(n, 0.0f));
    dp.emplace_back(p.back());
    dg.emplace_back(g.back());
    dm.emplace_back(m.back());
    dv.emplace_back(v.back());
    dp1.emplace_back(p.back());
    dm1.emplace_back(m.back());
    dv1.emplace_back(v.back());
  }
  std::vector<cuda::ParamSlice> slices;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    slices.push_back({dp[i].get(), dg[i].get(), dm[i].get(), dv[i].get(), sizes[i], i % 2 == 0});
  // clip_grad_norm_(max_norm 1): the global L2 norm in double and min(1, 1 / (norm + 1e-6)).
  double squares = 0.0;
  for (const std::vector<float>& grad : g)
    for (float x : grad) squares += static_cast<double>(x) * x;
  const double want_norm = std::sqrt(squares);
  const float want_clip = static_cast<float>(std::min(1.0, 1.0 / (want_norm + 1e-6)));
  DeviceVec<double> norm(1);
  DeviceVec<float> clip(1);
  for (long step = 1; step <= 3; ++step) {
    kernels::cpu::AdamWHyper h;
    h.lr = 1e-3;
    h.weight_decay = 0.01;
    h.step = step;
    cuda::global_grad_norm(norm.get(), clip.get(), slices, 1.0);
    EXPECT_NEAR(norm.back()[0], want_norm, 1e-9 * want_norm);
    EXPECT_FLOAT_EQ(clip.back()[0], want_clip);
    cuda::adamw_update_all(slices, h, clip.get());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      kernels::cpu::AdamWHyper hi = h;
      hi.weight_decay = i % 2 == 0 ? h.weight_decay : 0.0;
      hi.grad_scale = want_clip;
      kernels::cpu::adamw_update(p[i].data(), g[i].data(), m[i].data(), v[i].data(), sizes[i], hi);
      // The per-tensor twin with the same hyperparameters, on its own copies of the state.
      cuda::adamw_update(dp1[i].get(), dg[i].get(), dm1[i].get(), dv1[i].get(), sizes[i], hi);
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      const std::string at = fmt::format("tensor {} step {}", i, step);
      expect_close(dp[i].back(), p[i], 1e-7, 1e-6, "fused param " + at);
      expect_close(dm[i].back(), m[i], 1e-7, 1e-6, "fused m " + at);
      expect_close(dv[i].back(), v[i], 1e-9, 1e-6, "fused v " + at);
      expect_close(dp1[i].back(), p[i], 1e-7, 1e-6, "per-tensor param " + at);
    }
  }
  // Clipping off (max_norm 0) gives 1.
  cuda::global_grad_norm(norm.get(), clip.get(), slices, 0.0);
  EXPECT_EQ(clip.back()[0], 1.0f);
}

// The three products of a linear layer on shapes that are not multiples of anything.
TEST(CudaKernels, MatmulFp32AndBf16MatchCpu) {
  TUNESERVE_REQUIRE_GPU();
  std::mt19937 rng(8);
  for (const auto& [M, K, N] : {std::tuple{1, 8, 2}, std::tuple{37, 96, 50}, std::tuple{256, 768, 2304},
                               std::tuple{129, 3072, 768}}) {
    const std::size_t MK = static_cast<std::size_t>(M) * K, MN = static_cast<std::size_t>(M) * N,
                      NK = static_cast<std::size_t>(N) * K;
    const float wscale = 1.0f / std::sqrt(static_cast<float>(K));
    const std::vector<float> x = randn(MK, rng), w = randn(NK, rng, wscale), b = randn(N, rng), dy = randn(MN, rng);
    std::vector<float> y(MN), dx(MK), dw = randn(NK, rng), db = randn(N, rng);
    const std::vector<float> dw0 = dw, db0 = db;
    matmul_forward(y.data(), x.data(), w.data(), b.data(), M, K, N);
    matmul_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), M, K, N);
    const std::string shape = fmt::format("{}x{}x{}", M, K, N);
    // dW sums M products of N(0,1) values: scale the absolute tolerance by sqrt(M).
    const double w_atol = 1e-5 * std::sqrt(static_cast<double>(M)) * 4;

    DeviceVec<float> d_x(x), d_w(w), d_b(b), d_dy(dy), d_y(MN), d_dx(MK), d_dw(dw0), d_db(db0);
    cuda::matmul_forward(d_y.get(), d_x.get(), d_w.get(), d_b.get(), M, K, N);
    expect_close(d_y.back(), y, 1e-4, 1e-4, "fp32 forward " + shape);
    cuda::matmul_backward(d_dx.get(), d_dw.get(), d_db.get(), d_dy.get(), d_x.get(), d_w.get(), M, K, N);
    expect_close(d_dx.back(), dx, 1e-4, 1e-4, "fp32 dinp " + shape);
    expect_close(d_dw.back(), dw, w_atol, 1e-4, "fp32 dweight (+=) " + shape);
    expect_close(d_db.back(), db, w_atol, 1e-4, "fp32 dbias (+=) " + shape);
    // No bias, no dinp.
    std::vector<float> y0(MN);
    matmul_forward(y0.data(), x.data(), w.data(), nullptr, M, K, N);
    cuda::matmul_forward(d_y.get(), d_x.get(), d_w.get(), nullptr, M, K, N);
    expect_close(d_y.back(), y0, 1e-4, 1e-4, "fp32 forward without bias " + shape);

    // Row strides (columns of a wider tensor, as the model fills K and V of a QKV row): the columns
    // past N keep their sentinel, and the gradients read only N columns of each dout row.
    const int ld = N + 7;
    const std::size_t Mld = static_cast<std::size_t>(M) * ld;
    std::vector<float> ys(Mld, -7.0f), dys = randn(Mld, rng), dxs(MK), dws(dw0), dbs(db0);
    matmul_forward(ys.data(), x.data(), w.data(), b.data(), M, K, N, ld);
    matmul_backward(dxs.data(), dws.data(), dbs.data(), dys.data(), x.data(), w.data(), M, K, N, ld);
    DeviceVec<float> s_y(std::vector<float>(Mld, -7.0f)), s_dy(dys), s_dx(MK), s_dw(dw0), s_db(db0);
    cuda::matmul_forward(s_y.get(), d_x.get(), d_w.get(), d_b.get(), M, K, N, ld);
    expect_close(s_y.back(), ys, 1e-4, 1e-4, "fp32 forward, out_stride " + shape);
    cuda::matmul_backward(s_dx.get(), s_dw.get(), s_db.get(), s_dy.get(), d_x.get(), d_w.get(), M, K, N, ld);
    expect_close(s_dx.back(), dxs, 1e-4, 1e-4, "fp32 dinp, dout_stride " + shape);
    expect_close(s_dw.back(), dws, w_atol, 1e-4, "fp32 dweight, dout_stride " + shape);
    expect_close(s_db.back(), dbs, w_atol, 1e-4, "fp32 dbias, dout_stride " + shape);

    DeviceVec<cuda::Bf16> x16(MK), w16(NK);
    cuda::to_bf16(x16.get(), d_x.get(), MK);
    cuda::to_bf16(w16.get(), d_w.get(), NK);
    DeviceVec<float> e_dw(dw0), e_db(db0);
    cuda::matmul_forward_bf16(d_y.get(), x16.get(), w16.get(), d_b.get(), M, K, N);
    expect_close(d_y.back(), y, kBf16Atol, kBf16Rtol, "bf16 forward " + shape);
    cuda::matmul_backward_bf16(d_dx.get(), e_dw.get(), e_db.get(), d_dy.get(), x16.get(), w16.get(), M, K, N);
    expect_close(d_dx.back(), dx, kBf16Atol, kBf16Rtol, "bf16 dinp " + shape);
    expect_close(e_dw.back(), dw, kBf16Atol * std::sqrt(static_cast<double>(M)), kBf16Rtol, "bf16 dweight " + shape);
    expect_close(e_db.back(), db, w_atol, 1e-4, "bf16 dbias (fp32 sums) " + shape);
  }
}

}  // namespace
}  // namespace tuneserve

// AdamW kernel against an independent double-precision transcription of torch.optim.AdamW's
// documented algorithm, over several steps with weight decay, plus guard bytes after each buffer; the
// SIMD loop bitwise the one-element update; sum_squares (the grad norm's per-piece sum).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/adamw.h"

using tuneserve::kernels::cpu::AdamWHyper;
using tuneserve::kernels::cpu::adamw_update;

TEST(AdamW, MatchesDoubleReferenceOverSteps) {
  const std::size_t n = 37;
  const float guard = -12345.0f;
  std::vector<float> param(n + 1), grad(n + 1), m(n + 1, 0.0f), v(n + 1, 0.0f);
  std::vector<double> p_ref(n), m_ref(n, 0.0), v_ref(n, 0.0);
  for (std::size_t i = 0; i < n; i++) {
    param[i] = static_cast<float>(std::sin(0.3 * static_cast<double>(i)) * 0.5);
    p_ref[i] = param[i];
  }
  param[n] = grad[n] = m[n] = v[n] = guard;
  const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  for (long step = 1; step <= 5; step++) {
    for (std::size_t i = 0; i < n; i++)
      grad[i] = static_cast<float>(std::cos(0.7 * static_cast<double>(i * step)) * (i % 3 == 0 ? 1e-3 : 0.2));
    AdamWHyper h{lr, b1, b2, eps, wd, step};
    adamw_update(param.data(), grad.data(), m.data(), v.data(), n, h);
    for (std::size_t i = 0; i < n; i++) {
      const double g = grad[i];
      p_ref[i] *= 1 - lr * wd;
      m_ref[i] = b1 * m_ref[i] + (1 - b1) * g;
      v_ref[i] = b2 * v_ref[i] + (1 - b2) * g * g;
      const double m_hat = m_ref[i] / (1 - std::pow(b1, step));
      const double v_hat = v_ref[i] / (1 - std::pow(b2, step));
      p_ref[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
    for (std::size_t i = 0; i < n; i++) {
      ASSERT_NEAR(param[i], p_ref[i], 1e-6 + 1e-5 * std::abs(p_ref[i])) << "step " << step << " i " << i;
      ASSERT_NEAR(m[i], m_ref[i], 1e-7 + 1e-5 * std::abs(m_ref[i]));
      ASSERT_NEAR(v[i], v_ref[i], 1e-10 + 1e-5 * std::abs(v_ref[i]));
    }
  }
  EXPECT_EQ(param[n], guard);
  EXPECT_EQ(m[n], guard);
  EXPECT_EQ(v[n], guard);
}

TEST(AdamW, FirstStepMovesEachWeightByLrWhenNoDecay) {
  // With m, v starting at 0, the bias-corrected first step is lr * g / (|g| + eps) ~= lr * sign(g).
  std::vector<float> param{1.0f, -2.0f, 0.5f}, grad{0.3f, -4.0f, 1e-3f}, m(3, 0.0f), v(3, 0.0f);
  adamw_update(param.data(), grad.data(), m.data(), v.data(), 3, AdamWHyper{0.1, 0.9, 0.999, 1e-8, 0.0, 1});
  EXPECT_NEAR(param[0], 0.9f, 1e-6);
  EXPECT_NEAR(param[1], -1.9f, 1e-6);
  EXPECT_NEAR(param[2], 0.4f, 1e-5);
}

TEST(AdamW, ZeroLearningRateLeavesWeightsButUpdatesMoments) {
  std::vector<float> param{1.0f, -2.0f}, grad{0.5f, 0.25f}, m(2, 0.0f), v(2, 0.0f);
  adamw_update(param.data(), grad.data(), m.data(), v.data(), 2, AdamWHyper{0.0, 0.9, 0.999, 1e-8, 0.01, 1});
  EXPECT_EQ(param[0], 1.0f);
  EXPECT_EQ(param[1], -2.0f);
  EXPECT_NEAR(m[0], 0.05f, 1e-7);
  EXPECT_NEAR(v[1], 0.001f * 0.0625f, 1e-9);
}

TEST(AdamW, VectorLoopIsBitwiseTheElementwiseUpdate) {
  // The update runs in SIMD lanes over chunks on several threads; one element per call runs the
  // scalar remainder. Both must give the same bits (same rounding, same contractions).
  const std::size_t n = 200003;
  std::vector<float> param(n), grad(n), m(n), v(n);
  for (std::size_t i = 0; i < n; i++) {
    param[i] = static_cast<float>(std::sin(0.001 * static_cast<double>(i)));
    grad[i] = static_cast<float>(std::cos(0.37 * static_cast<double>(i)) * (i % 5 == 0 ? 1e-6 : 0.3));
    m[i] = static_cast<float>(1e-3 * std::sin(1.3 * static_cast<double>(i)));
    v[i] = static_cast<float>(1e-4 * (1.0 + std::cos(0.9 * static_cast<double>(i))));
  }
  std::vector<float> p1 = param, m1 = m, v1 = v;
  AdamWHyper h{3e-4, 0.9, 0.999, 1e-8, 0.01, 7};
  h.grad_scale = 0.75f;
  adamw_update(param.data(), grad.data(), m.data(), v.data(), n, h);
  for (std::size_t i = 0; i < n; i++) adamw_update(&p1[i], &grad[i], &m1[i], &v1[i], 1, h);
  for (std::size_t i = 0; i < n; i++) {
    ASSERT_EQ(param[i], p1[i]) << i;
    ASSERT_EQ(m[i], m1[i]) << i;
    ASSERT_EQ(v[i], v1[i]) << i;
  }
}

TEST(AdamW, SumSquaresMatchesASerialDoubleSum) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{15}, std::size_t{16}, std::size_t{65537}}) {
    std::vector<float> x(n);
    double ref = 0.0;
    for (std::size_t i = 0; i < n; i++) {
      x[i] = static_cast<float>(std::sin(0.1 * static_cast<double>(i)) * 3.0);
      ref += static_cast<double>(x[i]) * x[i];
    }
    EXPECT_NEAR(tuneserve::kernels::cpu::sum_squares(x.data(), n), ref, 1e-13 * ref) << n;
  }
}

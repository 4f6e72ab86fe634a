// Classification/regression losses on CPU, accumulated in double (a batch is small; exactness wins).
#include "kernels/cpu/loss.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "core/error.h"

namespace tuneserve {

namespace {
constexpr std::int32_t kIgnoreIndex = -100;

int count_targets(const std::int32_t* targets, int B, int K) {
  int n = 0;
  for (int b = 0; b < B; ++b) {
    if (targets[b] == kIgnoreIndex) continue;
    if (targets[b] < 0 || targets[b] >= K)
      fail("label {} of batch row {} is outside [0, {}) (num_labels)", targets[b], b, K);
    ++n;
  }
  return n;
}

double log_sum_exp(const float* x, int K) {
  const float m = *std::max_element(x, x + K);
  double s = 0.0;
  for (int k = 0; k < K; ++k) s += std::exp(static_cast<double>(x[k]) - m);
  return m + std::log(s);
}
}  // namespace

float cross_entropy_forward(const float* logits, const std::int32_t* targets, int B, int K) {
  const int n = count_targets(targets, B, K);
  if (n == 0) return 0.0f;
  double total = 0.0;
  for (int b = 0; b < B; ++b) {
    if (targets[b] == kIgnoreIndex) continue;
    const float* x = logits + static_cast<std::size_t>(b) * K;
    total += log_sum_exp(x, K) - x[targets[b]];
  }
  return static_cast<float>(total / n);
}

void cross_entropy_backward(float* dlogits, const float* logits, const std::int32_t* targets, int B, int K,
                            float dloss) {
  const int n = count_targets(targets, B, K);
  for (int b = 0; b < B; ++b) {
    const float* x = logits + static_cast<std::size_t>(b) * K;
    float* g = dlogits + static_cast<std::size_t>(b) * K;
    if (targets[b] == kIgnoreIndex || n == 0) {
      for (int k = 0; k < K; ++k) g[k] = 0.0f;
      continue;
    }
    const double lse = log_sum_exp(x, K);
    for (int k = 0; k < K; ++k) {
      const double p = std::exp(static_cast<double>(x[k]) - lse);
      g[k] = static_cast<float>((p - (k == targets[b] ? 1.0 : 0.0)) * dloss / n);
    }
  }
}

float bce_with_logits_forward(const float* logits, const float* targets, int N) {
  double total = 0.0;
  for (int i = 0; i < N; ++i) {
    const double x = logits[i], y = targets[i];
    total += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
  }
  return N ? static_cast<float>(total / N) : 0.0f;
}

void bce_with_logits_backward(float* dlogits, const float* logits, const float* targets, int N, float dloss) {
  for (int i = 0; i < N; ++i) {
    const double s = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[i])));
    dlogits[i] = static_cast<float>((s - targets[i]) * dloss / N);
  }
}

float mse_forward(const float* pred, const float* targets, int N) {
  double total = 0.0;
  for (int i = 0; i < N; ++i) {
    const double d = static_cast<double>(pred[i]) - targets[i];
    total += d * d;
  }
  return N ? static_cast<float>(total / N) : 0.0f;
}

void mse_backward(float* dpred, const float* pred, const float* targets, int N, float dloss) {
  for (int i = 0; i < N; ++i)
    dpred[i] = static_cast<float>(2.0 * (static_cast<double>(pred[i]) - targets[i]) * dloss / N);
}

}  // namespace tuneserve

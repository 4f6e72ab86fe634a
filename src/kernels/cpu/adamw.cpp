// AdamW update (torch.optim.AdamW semantics): decoupled weight decay, bias-corrected moments.
// Scalars are computed in double and applied in fp32, as torch applies Python scalars to fp32 tensors.
//
// Dimensions: N elements of one parameter tensor (or of a range of one).
#include "kernels/cpu/adamw.h"

#include <algorithm>
#include <cmath>

#define TUNESERVE_ISA_FILE "kernels/cpu/adamw.cpp"
#include "kernels/cpu/isa_passes.h"

namespace tuneserve::kernels::cpu {
TUNESERVE_ISA_BEGIN

namespace {
struct Scalars {
  float decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps, grad_scale;
};

// One range of elements on the calling thread. The operands never overlap (restrict) and weight
// decay is a multiplication by 1 where it does not apply (exact), so the loop has no branch and
// vectorizes.
void update_range(float* __restrict param, const float* __restrict grad, float* __restrict m, float* __restrict v,
                  std::ptrdiff_t n, const Scalars& s) {
#pragma omp simd
  for (std::ptrdiff_t i = 0; i < n; i++) {
    const float p = param[i] * s.decay;
    // Same fp32 product as scaling the gradient buffer first (clip_grad_norm_), one pass fewer.
    const float g = grad[i] * s.grad_scale;
    // torch's lerp(m, g, w) for w < 0.5 is m + w * (g - m).
    const float mi = m[i] + s.one_minus_beta1 * (g - m[i]);
    const float vi = v[i] * s.beta2 + s.one_minus_beta2 * g * g;
    const float denom = std::sqrt(vi) / s.bias_correction2_sqrt + s.eps;
    param[i] = p - s.step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
  }
}
}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, std::size_t n,
                  const AdamWHyper& h) {
  TUNESERVE_ISA_DISPATCH(adamw_update, param, grad, m, v, n, h);
  const double bias_correction1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bias_correction2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  const Scalars s{static_cast<float>(1.0 - h.lr * h.weight_decay),
                  static_cast<float>(1.0 - h.beta1),
                  static_cast<float>(h.beta2),
                  static_cast<float>(1.0 - h.beta2),
                  static_cast<float>(h.lr / bias_correction1),
                  static_cast<float>(std::sqrt(bias_correction2)),
                  static_cast<float>(h.eps),
                  h.grad_scale};
  constexpr auto kChunk = static_cast<std::ptrdiff_t>(kAdamWChunk);
  const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(n), chunks = (count + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (std::ptrdiff_t c = 0; c < chunks; c++) {
    const std::ptrdiff_t b = c * kChunk;
    update_range(param + b, grad + b, m + b, v + b, std::min(kChunk, count - b), s);
  }
}

double sum_squares(const float* x, std::size_t n) {
  TUNESERVE_ISA_DISPATCH(sum_squares, x, n);
  // 16 independent double sums (vector lanes, not one serial chain), added in a fixed order: the
  // result depends on n only, not on the ISA level or the thread count.
  constexpr std::size_t kLanes = 16;
  double lane[kLanes] = {};
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (std::size_t j = 0; j < kLanes; j++) lane[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (std::size_t j = 0; i < n; i++, j++) lane[j] += static_cast<double>(x[i]) * x[i];
  double sum = 0.0;
  for (double s : lane) sum += s;
  return sum;
}

TUNESERVE_ISA_END
}  // namespace tuneserve::kernels::cpu

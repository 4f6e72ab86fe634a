// AdamW update (torch.optim.AdamW semantics): decoupled weight decay, bias-corrected moments.
// Scalars are computed in double and applied in fp32, as torch applies Python scalars to fp32 tensors.
//
// Dimensions: N elements of one parameter tensor.
#include "kernels/cpu/adamw.h"

#include <cmath>

#define TUNESERVE_ISA_FILE "kernels/cpu/adamw.cpp"
#include "kernels/cpu/isa_passes.h"

namespace tuneserve::kernels::cpu {
TUNESERVE_ISA_BEGIN

void adamw_update(float* param, const float* grad, float* m, float* v, std::size_t n,
                  const AdamWHyper& h) {
  TUNESERVE_ISA_DISPATCH(adamw_update, param, grad, m, v, n, h);
  const float decay = static_cast<float>(1.0 - h.lr * h.weight_decay);
  const float one_minus_beta1 = static_cast<float>(1.0 - h.beta1);
  const float beta2 = static_cast<float>(h.beta2);
  const float one_minus_beta2 = static_cast<float>(1.0 - h.beta2);
  const double bias_correction1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bias_correction2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  const float step_size = static_cast<float>(h.lr / bias_correction1);
  const float bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  const float eps = static_cast<float>(h.eps);
  const bool apply_decay = h.weight_decay != 0.0;
  const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for simd schedule(static) if (count > 65536)
  for (std::ptrdiff_t i = 0; i < count; i++) {
    float p = param[i];
    if (apply_decay) p *= decay;
    // Same fp32 product as scaling the gradient buffer first (clip_grad_norm_), one pass fewer.
    const float g = grad[i] * h.grad_scale;
    // torch's lerp(m, g, w) for w < 0.5 is m + w * (g - m).
    const float mi = m[i] + one_minus_beta1 * (g - m[i]);
    const float vi = v[i] * beta2 + one_minus_beta2 * g * g;
    const float denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    param[i] = p - step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
  }
}

TUNESERVE_ISA_END
}  // namespace tuneserve::kernels::cpu

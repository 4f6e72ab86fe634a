// LayerNorm forward/backward on CPU: rows in parallel; parameter gradients by column blocks so
// threads never write the same element.
#include "kernels/cpu/layernorm.h"

#include <cmath>
#include <cstddef>

#define TUNESERVE_ISA_FILE "kernels/cpu/layernorm.cpp"
#include "kernels/cpu/isa_passes.h"

namespace tuneserve {
TUNESERVE_ISA_BEGIN

namespace {
// One row: y = (x - mean) * rstd * weight + bias, statistics in two passes over the cached row.
inline void normalize_row(float* y, float* mean, float* rstd, const float* x, const float* weight, const float* bias,
                          int C, float eps) {
  float m = 0.0f;
  for (int c = 0; c < C; ++c) m += x[c];
  m /= static_cast<float>(C);
  float v = 0.0f;
  for (int c = 0; c < C; ++c) {
    const float d = x[c] - m;
    v += d * d;
  }
  v /= static_cast<float>(C);
  const float s = 1.0f / std::sqrt(v + eps);
  for (int c = 0; c < C; ++c) y[c] = (x[c] - m) * s * weight[c] + bias[c];
  if (mean) *mean = m;
  if (rstd) *rstd = s;
}
}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, float eps) {
  TUNESERVE_ISA_DISPATCH(layernorm_forward, out, mean, rstd, inp, weight, bias, N, C, eps);
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (int i = 0; i < N; ++i) {
    const std::size_t row = static_cast<std::size_t>(i) * C;
    normalize_row(out + row, mean ? mean + i : nullptr, rstd ? rstd + i : nullptr, inp + row, weight, bias, C, eps);
  }
}

void residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* a, const float* b,
                                const float* weight, const float* bias, int N, int C, float eps) {
  TUNESERVE_ISA_DISPATCH(residual_layernorm_forward, out, res, mean, rstd, a, b, weight, bias, N, C, eps);
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (int i = 0; i < N; ++i) {
    const std::size_t row = static_cast<std::size_t>(i) * C;
    for (int c = 0; c < C; ++c) res[row + c] = a[row + c] + b[row + c];
    normalize_row(out + row, mean ? mean + i : nullptr, rstd ? rstd + i : nullptr, res + row, weight, bias, C, eps);
  }
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  TUNESERVE_ISA_DISPATCH(layernorm_backward, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
#pragma omp parallel if (N * C > 16384)
  {
#pragma omp for schedule(static) nowait
    for (int i = 0; i < N; ++i) {
      const float* x = inp + static_cast<std::size_t>(i) * C;
      const float* dy = dout + static_cast<std::size_t>(i) * C;
      float* dx = dinp + static_cast<std::size_t>(i) * C;
      const float m = mean[i], s = rstd[i];
      float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
      for (int c = 0; c < C; ++c) {
        const float norm = (x[c] - m) * s;
        const float dnorm = dy[c] * weight[c];
        dnorm_mean += dnorm;
        dnorm_norm_mean += dnorm * norm;
      }
      dnorm_mean /= static_cast<float>(C);
      dnorm_norm_mean /= static_cast<float>(C);
      for (int c = 0; c < C; ++c) {
        const float norm = (x[c] - m) * s;
        dx[c] = (dy[c] * weight[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
      }
    }
    // Column blocks of 16: each thread owns its columns, rows walked in order.
#pragma omp for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
      const int c1 = c0 + 16 < C ? c0 + 16 : C;
      float dw[16] = {}, db[16] = {};
      for (int i = 0; i < N; ++i) {
        const float* x = inp + static_cast<std::size_t>(i) * C;
        const float* dy = dout + static_cast<std::size_t>(i) * C;
        for (int c = c0; c < c1; ++c) {
          dw[c - c0] += dy[c] * (x[c] - mean[i]) * rstd[i];
          db[c - c0] += dy[c];
        }
      }
      for (int c = c0; c < c1; ++c) {
        dweight[c] += dw[c - c0];
        dbias[c] += db[c - c0];
      }
    }
  }
}

TUNESERVE_ISA_END
}  // namespace tuneserve

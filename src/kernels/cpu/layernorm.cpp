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
// Sum of term(0..n) in 16 lanes, the lanes then added in order: one float sum would be a serial
// chain the compiler may not reorder (so it stays scalar); 16 lanes vectorize at every ISA level
// and give the same bits at each.
template <typename F>
inline float lane_sum(int n, F&& term) {
  constexpr int kLanes = 16;
  float lane[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += term(i + j);
  for (int j = 0; i < n; ++i, ++j) lane[j] += term(i);
  float sum = 0.0f;
  for (float v : lane) sum += v;
  return sum;
}

// One row: y = (x - mean) * rstd * weight + bias, statistics in two passes over the cached row;
// y16 (when given) = y rounded to bf16 (round_to_bf16, which vectorises).
inline void normalize_row(float* y, Bf16* y16, float* mean, float* rstd, const float* x, const float* weight,
                          const float* bias, int C, float eps) {
  const float m = lane_sum(C, [x](int c) { return x[c]; }) / static_cast<float>(C);
  const float v = lane_sum(C, [x, m](int c) { return (x[c] - m) * (x[c] - m); }) / static_cast<float>(C);
  const float s = 1.0f / std::sqrt(v + eps);
  if (y16) {
    for (int c = 0; c < C; ++c) {
      y[c] = (x[c] - m) * s * weight[c] + bias[c];
      y16[c] = round_to_bf16(y[c]);
    }
  } else {
    for (int c = 0; c < C; ++c) y[c] = (x[c] - m) * s * weight[c] + bias[c];
  }
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
    normalize_row(out + row, nullptr, mean ? mean + i : nullptr, rstd ? rstd + i : nullptr, inp + row, weight, bias, C,
                  eps);
  }
}

void residual_layernorm_forward_bf16(float* out, Bf16* out16, float* res, float* mean, float* rstd, const float* a,
                                     const float* b, const float* weight, const float* bias, int N, int C, float eps) {
  TUNESERVE_ISA_DISPATCH(residual_layernorm_forward_bf16, out, out16, res, mean, rstd, a, b, weight, bias, N, C, eps);
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (int i = 0; i < N; ++i) {
    const std::size_t row = static_cast<std::size_t>(i) * C;
    for (int c = 0; c < C; ++c) res[row + c] = a[row + c] + b[row + c];
    normalize_row(out + row, out16 ? out16 + row : nullptr, mean ? mean + i : nullptr, rstd ? rstd + i : nullptr,
                  res + row, weight, bias, C, eps);
  }
}

void residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* a, const float* b,
                                const float* weight, const float* bias, int N, int C, float eps) {
  // Parenthesised: this pass's variant, not the public one argument-dependent lookup would add.
  (residual_layernorm_forward_bf16)(out, nullptr, res, mean, rstd, a, b, weight, bias, N, C, eps);
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
      const float dnorm_mean = lane_sum(C, [&](int c) { return dy[c] * weight[c]; }) / static_cast<float>(C);
      const float dnorm_norm_mean =
          lane_sum(C, [&](int c) { return dy[c] * weight[c] * ((x[c] - m) * s); }) / static_cast<float>(C);
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

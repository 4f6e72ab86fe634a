// Elementwise activations and their derivatives on CPU (OpenMP over elements).
#include "kernels/cpu/activation.h"

#include <cmath>

namespace tuneserve {

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
// Below this many elements a parallel region costs more than it saves.
constexpr std::size_t kParallelMin = 16384;
}  // namespace

void gelu_forward(float* out, const float* inp, std::size_t N) {
#pragma omp parallel for schedule(static) if (N > kParallelMin)
  for (std::size_t i = 0; i < N; ++i) {
    const float x = inp[i];
    out[i] = 0.5f * x * (1.0f + std::erf(x * kInvSqrt2));
  }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, std::size_t N) {
#pragma omp parallel for schedule(static) if (N > kParallelMin)
  for (std::size_t i = 0; i < N; ++i) {
    const float x = inp[i];
    const float cdf = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
    dinp[i] = dout[i] * (cdf + x * pdf);
  }
}

void gelu_forward_cdf(float* out, float* cdf, const float* inp, std::size_t N) {
#pragma omp parallel for schedule(static) if (N > kParallelMin)
  for (std::size_t i = 0; i < N; ++i) {
    const float x = inp[i];
    const float phi = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
    cdf[i] = phi;
    out[i] = x * phi;  // = (0.5 x)(1 + erf): both are the exact product halved, rounded once
  }
}

void gelu_from_cdf(float* out, const float* inp, const float* cdf, std::size_t N) {
#pragma omp parallel for simd schedule(static) if (N > kParallelMin)
  for (std::size_t i = 0; i < N; ++i) out[i] = inp[i] * cdf[i];
}

void gelu_backward_cdf(float* dinp, const float* inp, const float* cdf, const float* dout, std::size_t N) {
#pragma omp parallel for schedule(static) if (N > kParallelMin)
  for (std::size_t i = 0; i < N; ++i) {
    const float x = inp[i];
    const float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
    dinp[i] = dout[i] * (cdf[i] + x * pdf);
  }
}

void tanh_forward(float* out, const float* inp, std::size_t N) {
  for (std::size_t i = 0; i < N; ++i) out[i] = std::tanh(inp[i]);
}

void tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N) {
  for (std::size_t i = 0; i < N; ++i) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}

void relu_forward(float* out, const float* inp, std::size_t N) {
  for (std::size_t i = 0; i < N; ++i) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N) {
  for (std::size_t i = 0; i < N; ++i) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
}

}  // namespace tuneserve

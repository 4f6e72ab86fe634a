// Elementwise activations and their derivatives on CPU (OpenMP over elements). The GELUs take erf
// and exp from glibc's vector math library (libmvec): 16 lanes at a time with AVX-512, 2 x 8 with
// AVX2. Compiled once per ISA level (kernels/cpu/isa_passes.h).
#include "kernels/cpu/activation.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

// libmvec's AVX-512 and AVX2 variants (x86-64 vector function ABI), the ones GCC calls for `omp
// simd` loops; glibc picks each one's implementation for the CPU at load time.
extern "C" __m512 _ZGVeN16v_erff(__m512 x);
extern "C" __m512 _ZGVeN16v_expf(__m512 x);
extern "C" __m256 _ZGVdN8v_erff(__m256 x);
extern "C" __m256 _ZGVdN8v_expf(__m256 x);

#define TUNESERVE_ISA_FILE "kernels/cpu/activation.cpp"
#include "kernels/cpu/isa_passes.h"

namespace tuneserve {
TUNESERVE_ISA_BEGIN

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;
// Below this many elements a parallel region costs more than it saves.
constexpr std::size_t kParallelMin = 16384;

// Blocks of 16 elements by global index, so an element takes the same (vector or scalar) path in
// every kernel and every thread split: gelu_forward and gelu_forward_cdf agree bit for bit.
constexpr std::size_t kLanes = 16;

// out[j] = Phi(inp[j]) = 0.5 (1 + erf(inp[j] / sqrt 2)) for j < n: 16 lanes at once (n == 16) or
// one by one (a last, shorter block).
inline void phi_block(float* out, const float* inp, std::size_t n) {
  if (n == kLanes) {
#if TUNESERVE_ISA_AVX512
    const __m512 x = _mm512_loadu_ps(inp);
    const __m512 e = _ZGVeN16v_erff(_mm512_mul_ps(x, _mm512_set1_ps(kInvSqrt2)));
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
#else
    for (std::size_t h = 0; h < kLanes; h += 8) {
      const __m256 x = _mm256_loadu_ps(inp + h);
      const __m256 e = _ZGVdN8v_erff(_mm256_mul_ps(x, _mm256_set1_ps(kInvSqrt2)));
      _mm256_storeu_ps(out + h, _mm256_mul_ps(_mm256_set1_ps(0.5f), _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    }
#endif
    return;
  }
  for (std::size_t j = 0; j < n; ++j) out[j] = 0.5f * (1.0f + std::erf(inp[j] * kInvSqrt2));
}

// out[j] = phi(inp[j]) = exp(-inp[j]^2 / 2) / sqrt(2 pi) for j < n, as phi_block.
inline void pdf_block(float* out, const float* inp, std::size_t n) {
  if (n == kLanes) {
#if TUNESERVE_ISA_AVX512
    const __m512 x = _mm512_loadu_ps(inp);
    const __m512 e = _ZGVeN16v_expf(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), x), x));
    _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_set1_ps(kInvSqrt2Pi), e));
#else
    for (std::size_t h = 0; h < kLanes; h += 8) {
      const __m256 x = _mm256_loadu_ps(inp + h);
      const __m256 e = _ZGVdN8v_expf(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(-0.5f), x), x));
      _mm256_storeu_ps(out + h, _mm256_mul_ps(_mm256_set1_ps(kInvSqrt2Pi), e));
    }
#endif
    return;
  }
  for (std::size_t j = 0; j < n; ++j) out[j] = kInvSqrt2Pi * std::exp(-0.5f * inp[j] * inp[j]);
}

// f(i0, n) over blocks of kLanes elements (the last one shorter), in parallel for large N.
template <typename F>
void for_blocks(std::size_t N, F f) {
  const std::size_t blocks = (N + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static) if (N > kParallelMin)
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t i0 = b * kLanes;
    f(i0, std::min(kLanes, N - i0));
  }
}
}  // namespace

void gelu_forward(float* out, const float* inp, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(gelu_forward, out, inp, N);
  for_blocks(N, [&](std::size_t i0, std::size_t n) {
    float phi[kLanes];
    phi_block(phi, inp + i0, n);
    for (std::size_t j = 0; j < n; ++j) out[i0 + j] = inp[i0 + j] * phi[j];  // (0.5 x)(1 + erf), rounded once
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(gelu_backward, dinp, inp, dout, N);
  for_blocks(N, [&](std::size_t i0, std::size_t n) {
    float phi[kLanes], pdf[kLanes];
    phi_block(phi, inp + i0, n);
    pdf_block(pdf, inp + i0, n);
    for (std::size_t j = 0; j < n; ++j) dinp[i0 + j] = dout[i0 + j] * (phi[j] + inp[i0 + j] * pdf[j]);
  });
}

void gelu_forward_cdf(float* out, float* cdf, const float* inp, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(gelu_forward_cdf, out, cdf, inp, N);
  for_blocks(N, [&](std::size_t i0, std::size_t n) {
    phi_block(cdf + i0, inp + i0, n);
    for (std::size_t i = i0; i < i0 + n; ++i) out[i] = inp[i] * cdf[i];
  });
}

void gelu_from_cdf(float* out, const float* inp, const float* cdf, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(gelu_from_cdf, out, inp, cdf, N);
#pragma omp parallel for simd schedule(static) if (N > kParallelMin)
  for (std::size_t i = 0; i < N; ++i) out[i] = inp[i] * cdf[i];
}

void gelu_backward_cdf(float* dinp, const float* inp, const float* cdf, const float* dout, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(gelu_backward_cdf, dinp, inp, cdf, dout, N);
  for_blocks(N, [&](std::size_t i0, std::size_t n) {
    float pdf[kLanes];
    pdf_block(pdf, inp + i0, n);
    for (std::size_t j = 0; j < n; ++j) dinp[i0 + j] = dout[i0 + j] * (cdf[i0 + j] + inp[i0 + j] * pdf[j]);
  });
}

void tanh_forward(float* out, const float* inp, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(tanh_forward, out, inp, N);
  for (std::size_t i = 0; i < N; ++i) out[i] = std::tanh(inp[i]);
}

void tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(tanh_backward, dinp, out, dout, N);
  for (std::size_t i = 0; i < N; ++i) dinp[i] = dout[i] * (1.0f - out[i] * out[i]);
}

void relu_forward(float* out, const float* inp, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(relu_forward, out, inp, N);
  // NaN stays NaN, as torch.relu keeps it: a model gone NaN must not answer the head's bias.
  for (std::size_t i = 0; i < N; ++i) out[i] = inp[i] <= 0.0f ? 0.0f : inp[i];
}

void relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N) {
  TUNESERVE_ISA_DISPATCH(relu_backward, dinp, inp, dout, N);
  for (std::size_t i = 0; i < N; ++i) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
}

TUNESERVE_ISA_END
}  // namespace tuneserve

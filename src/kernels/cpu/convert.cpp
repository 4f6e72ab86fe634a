// fp32 <-> bf16 conversion (kernels/cpu/convert.h). Written with AVX512-BF16 intrinsics for this one
// instruction (vcvtne2ps2bf16 rounds 32 floats per instruction; a scalar loop is ~10x slower and the
// conversion sits in front of every bf16 product), compiled for that target only (in a namespace the
// portable build's object check, tests/kernels/check_isa_objects.sh, knows) and chosen at run time by
// kernels/cpu/isa.h's level, so the library still runs on CPUs without it.
//
// Dimensions: n elements.
#include "kernels/cpu/convert.h"

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/isa.h"

namespace tuneserve {
namespace {

// Past this many elements the conversion is split over the OpenMP threads (memory-bound: two
// threads move more bytes than one; a batch-1 layer's 128 x 768 input is above it, else the second
// thread idles while the first converts).
constexpr std::size_t kParallelAbove = std::size_t{1} << 15;

}  // namespace

namespace isa_avx512_bf16 {
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void to_bf16(Bf16* out, const float* inp,
                                                                             std::size_t n) {
  std::size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 lo = _mm512_loadu_ps(inp + i), hi = _mm512_loadu_ps(inp + i + 16);
    _mm512_storeu_si512(reinterpret_cast<void*>(out + i), reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
  for (; i < n; i += 16) {
    const std::size_t left = n - i < 16 ? n - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << left) - 1u);
    const __m256bh r = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, inp + i));
    _mm256_mask_storeu_epi16(reinterpret_cast<void*>(out + i), m, reinterpret_cast<__m256i>(r));
  }
}
}  // namespace isa_avx512_bf16

namespace {

void to_bf16_scalar(Bf16* out, const float* inp, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = round_to_bf16(inp[i]);
}

void from_bf16_serial(float* out, const Bf16* inp, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = bf16_value(inp[i]);  // a shift: the compiler vectorises it
}

// Runs f over [0, n) in contiguous blocks, one per thread when n is large.
template <typename F>
void blocks(std::size_t n, F&& f) {
  if (n <= kParallelAbove) {
    f(std::size_t{0}, n);
    return;
  }
  const std::int64_t chunk = 1 << 13;
  const std::int64_t count = static_cast<std::int64_t>((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < count; ++c) {
    const std::size_t begin = static_cast<std::size_t>(c * chunk);
    f(begin, std::min<std::size_t>(n - begin, static_cast<std::size_t>(chunk)));
  }
}

}  // namespace

void to_bf16(Bf16* out, const float* inp, std::size_t n) {
  const bool fast = cpu_isa() >= CpuIsa::avx512_bf16;
  blocks(n, [&](std::size_t begin, std::size_t count) {
    if (fast) isa_avx512_bf16::to_bf16(out + begin, inp + begin, count);
    else to_bf16_scalar(out + begin, inp + begin, count);
  });
}

void from_bf16(float* out, const Bf16* inp, std::size_t n) {
  blocks(n, [&](std::size_t begin, std::size_t count) { from_bf16_serial(out + begin, inp + begin, count); });
}

}  // namespace tuneserve

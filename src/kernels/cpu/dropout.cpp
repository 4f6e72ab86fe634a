// Dropout on CPU: mask bits from Philox, 16 blocks (64 elements) per SIMD pass, chunks in parallel.
#include "kernels/cpu/dropout.h"

#include <algorithm>

#include <immintrin.h>

#define TUNESERVE_ISA_FILE "kernels/cpu/dropout.cpp"
#include "kernels/cpu/isa_passes.h"

namespace tuneserve {
TUNESERVE_ISA_BEGIN

namespace {

constexpr std::size_t kChunk = 1024;  // mask bits drawn per call (on the stack)

#if TUNESERVE_ISA_AVX512
// The maskz forms with every lane on: the plain ones start from _mm512_undefined_epi32, which GCC 12
// reports as maybe-uninitialized (-Werror).
inline __m512i mul_even(__m512i a, __m512i b) { return _mm512_maskz_mul_epu32(0xFF, a, b); }
inline __m512i down(__m512i a) { return _mm512_maskz_srli_epi64(0xFF, a, 32); }
inline __m512i up(__m512i a) { return _mm512_maskz_slli_epi64(0xFF, a, 32); }
#endif

// Random bits of mask indices [index0, index0 + n): bits[i] is lane (index0 + i) % 4 of the Philox
// block (index0 + i) / 4, exactly as philox4x32 computes it, 16 blocks at a time in SIMD lanes.
void philox_bits(std::uint32_t* bits, const DropoutKey& key, std::uint64_t index0, std::size_t n) {
  if (n == 0) return;
  const std::uint64_t first = index0 >> 2, last = (index0 + n - 1) >> 2;
  for (std::uint64_t b0 = first; b0 <= last; b0 += 16) {
    alignas(64) std::uint32_t c[4][16];
    for (int j = 0; j < 16; ++j) {
      const std::uint64_t block = b0 + static_cast<std::uint64_t>(j);
      c[0][j] = static_cast<std::uint32_t>(block);
      c[1][j] = static_cast<std::uint32_t>(block >> 32);
      c[2][j] = static_cast<std::uint32_t>(key.stream);
      c[3][j] = static_cast<std::uint32_t>(key.stream >> 32);
    }
    std::uint32_t k0 = static_cast<std::uint32_t>(key.seed), k1 = static_cast<std::uint32_t>(key.seed >> 32);
#if TUNESERVE_ISA_AVX512
    // The rounds below in intrinsics: from the loop GCC makes 64-bit multiplies (vpmullq) and
    // shuffles back to 32-bit lanes; vpmuludq on the even and the odd lanes gives both halves of
    // the products directly (same bits: the dropout tests compare every value with dropout.h's
    // scalar philox4x32, on this pass and on the AVX2 pass's loop).
    constexpr __mmask16 kOdd = 0xAAAA;
    __m512i x0 = _mm512_load_si512(c[0]), x1 = _mm512_load_si512(c[1]), x2 = _mm512_load_si512(c[2]),
            x3 = _mm512_load_si512(c[3]);
    const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u)),
                  m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
    for (int round = 0; round < 10; ++round) {
      const __m512i e0 = mul_even(x0, m0), o0 = mul_even(down(x0), m0);
      const __m512i e1 = mul_even(x2, m1), o1 = mul_even(down(x2), m1);
      const __m512i lo0 = _mm512_mask_blend_epi32(kOdd, e0, up(o0)), hi0 = _mm512_mask_blend_epi32(kOdd, down(e0), o0);
      const __m512i lo1 = _mm512_mask_blend_epi32(kOdd, e1, up(o1)), hi1 = _mm512_mask_blend_epi32(kOdd, down(e1), o1);
      x0 = _mm512_xor_si512(_mm512_xor_si512(hi1, x1), _mm512_set1_epi32(static_cast<int>(k0)));
      x2 = _mm512_xor_si512(_mm512_xor_si512(hi0, x3), _mm512_set1_epi32(static_cast<int>(k1)));
      x1 = lo1;
      x3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    _mm512_store_si512(c[0], x0);
    _mm512_store_si512(c[1], x1);
    _mm512_store_si512(c[2], x2);
    _mm512_store_si512(c[3], x3);
#else
    for (int round = 0; round < 10; ++round) {
#pragma omp simd
      for (int j = 0; j < 16; ++j) {
        const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c[0][j];
        const std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c[2][j];
        const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c[1][j] ^ k0;
        const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c[3][j] ^ k1;
        c[1][j] = static_cast<std::uint32_t>(p1);
        c[3][j] = static_cast<std::uint32_t>(p0);
        c[0][j] = n0;
        c[2][j] = n2;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
#endif
    if (b0 * 4 >= index0 && (b0 + 16) * 4 <= index0 + n) {  // all 64 bits fall inside
      std::uint32_t* dst = bits + (b0 * 4 - index0);
      for (int j = 0; j < 16; ++j)
        for (int lane = 0; lane < 4; ++lane) dst[4 * j + lane] = c[lane][j];
      continue;
    }
    for (int j = 0; j < 16; ++j)
      for (int lane = 0; lane < 4; ++lane) {
        const std::uint64_t g = (b0 + static_cast<std::uint64_t>(j)) * 4 + static_cast<std::uint64_t>(lane);
        if (g >= index0 && g < index0 + n) bits[g - index0] = c[lane][j];
      }
  }
}

// Element i uses mask index index0 + i.
void apply_mask(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key, std::uint64_t index0) {
  if (p <= 0.0f) {
    if (out != inp)
      for (std::size_t i = 0; i < N; ++i) out[i] = inp[i];
    return;
  }
  const float scale = 1.0f / (1.0f - p);
  const std::int64_t chunks = static_cast<std::int64_t>((N + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static) if (chunks > 16)
  for (std::int64_t k = 0; k < chunks; ++k) {
    const std::size_t s = static_cast<std::size_t>(k) * kChunk, n = std::min(kChunk, N - s);
    std::uint32_t bits[kChunk];
    philox_bits(bits, key, index0 + s, n);
    for (std::size_t i = 0; i < n; ++i) out[s + i] = uniform01(bits[i]) < p ? 0.0f : inp[s + i] * scale;
  }
}
}  // namespace

void dropout_scales(float* scales, const DropoutKey& key, std::uint64_t index0, std::size_t n, float p) {
  TUNESERVE_ISA_DISPATCH(dropout_scales, scales, key, index0, n, p);
  const float keep = 1.0f / (1.0f - p);
  std::uint32_t bits[kChunk];
  for (std::size_t s = 0; s < n; s += kChunk) {
    const std::size_t m = std::min(kChunk, n - s);
    philox_bits(bits, key, index0 + s, m);
    for (std::size_t i = 0; i < m; ++i) scales[s + i] = uniform01(bits[i]) < p ? 0.0f : keep;
  }
}

void dropout_forward(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key,
                     std::uint64_t index0) {
  TUNESERVE_ISA_DISPATCH(dropout_forward, out, inp, N, p, key, index0);
  apply_mask(out, inp, N, p, key, index0);
}

void dropout_backward(float* dinp, const float* dout, std::size_t N, float p, const DropoutKey& key,
                      std::uint64_t index0) {
  TUNESERVE_ISA_DISPATCH(dropout_backward, dinp, dout, N, p, key, index0);
  apply_mask(dinp, dout, N, p, key, index0);
}

TUNESERVE_ISA_END
}  // namespace tuneserve

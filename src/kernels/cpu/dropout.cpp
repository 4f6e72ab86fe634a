// Dropout on CPU: four elements per Philox call, blocks of four in parallel.
#include "kernels/cpu/dropout.h"

namespace tuneserve {

namespace {
// Element i uses mask index g = index0 + i: Philox block g / 4, lane g % 4.
void apply_mask(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key, std::uint64_t index0) {
  if (p <= 0.0f) {
    if (out != inp)
      for (std::size_t i = 0; i < N; ++i) out[i] = inp[i];
    return;
  }
  if (N == 0) return;
  const float scale = 1.0f / (1.0f - p);
  const std::uint64_t first = index0 >> 2, last = (index0 + N - 1) >> 2;
  const std::int64_t blocks = static_cast<std::int64_t>(last - first + 1);
#pragma omp parallel for schedule(static) if (blocks > 4096)
  for (std::int64_t k = 0; k < blocks; ++k) {
    const std::uint64_t b = first + static_cast<std::uint64_t>(k);
    const Philox4x32 r = philox4x32(static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32),
                                    static_cast<std::uint32_t>(key.stream),
                                    static_cast<std::uint32_t>(key.stream >> 32), key.seed);
    for (std::uint64_t j = 0; j < 4; ++j) {
      const std::uint64_t g = b * 4 + j;
      if (g < index0 || g >= index0 + N) continue;
      const std::size_t i = static_cast<std::size_t>(g - index0);
      out[i] = uniform01(r.v[j]) < p ? 0.0f : inp[i] * scale;
    }
  }
}
}  // namespace

void dropout_scales(float* scales, const DropoutKey& key, std::uint64_t index0, std::size_t n, float p) {
  const float keep = 1.0f / (1.0f - p);
  std::size_t i = 0;
  while (i < n) {
    const std::uint64_t index = index0 + i;
    const std::uint64_t block = index >> 2;
    const Philox4x32 r = philox4x32(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                                    static_cast<std::uint32_t>(key.stream),
                                    static_cast<std::uint32_t>(key.stream >> 32), key.seed);
    for (std::uint64_t lane = index & 3; lane < 4 && i < n; ++lane, ++i)
      scales[i] = uniform01(r.v[lane]) < p ? 0.0f : keep;
  }
}

void dropout_forward(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key,
                     std::uint64_t index0) {
  apply_mask(out, inp, N, p, key, index0);
}

void dropout_backward(float* dinp, const float* dout, std::size_t N, float p, const DropoutKey& key,
                      std::uint64_t index0) {
  apply_mask(dinp, dout, N, p, key, index0);
}

}  // namespace tuneserve

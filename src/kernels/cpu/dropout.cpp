// Dropout on CPU: four elements per Philox call, blocks of four in parallel.
#include "kernels/cpu/dropout.h"

namespace tuneserve {

namespace {
void apply_mask(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key) {
  if (p <= 0.0f) {
    if (out != inp)
      for (std::size_t i = 0; i < N; ++i) out[i] = inp[i];
    return;
  }
  const float scale = 1.0f / (1.0f - p);
  const std::size_t blocks = (N + 3) / 4;
#pragma omp parallel for schedule(static) if (blocks > 4096)
  for (std::size_t b = 0; b < blocks; ++b) {
    const Philox4x32 r = philox4x32(static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b >> 32),
                                    static_cast<std::uint32_t>(key.stream),
                                    static_cast<std::uint32_t>(key.stream >> 32), key.seed);
    for (std::size_t j = 0; j < 4 && b * 4 + j < N; ++j) {
      const std::size_t i = b * 4 + j;
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

void dropout_forward(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key) {
  apply_mask(out, inp, N, p, key);
}

void dropout_backward(float* dinp, const float* dout, std::size_t N, float p, const DropoutKey& key) {
  apply_mask(dinp, dout, N, p, key);
}

}  // namespace tuneserve

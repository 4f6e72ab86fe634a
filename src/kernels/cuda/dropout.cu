// Dropout on the GPU: one thread per aligned block of four mask indices, one Philox call each, as
// the CPU does.
//
// Dimensions: N elements.
#include "kernels/cuda/dropout.h"

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/dropout.cuh"

namespace tuneserve::cuda {

namespace {
// Element i uses mask index index0 + i; block b covers indices 4 (first_block + b) .. + 3.
__global__ void dropout_kernel(float* out, const float* inp, std::size_t n, float p, std::uint64_t seed,
                               std::uint64_t stream_id, std::uint64_t index0) {
  const float scale = 1.0f / (1.0f - p);
  const std::uint64_t first_block = index0 >> 2, blocks = ((index0 + n + 3) >> 2) - first_block;
  for (std::uint64_t b = grid_index(); b < blocks; b += grid_stride()) {
    const Philox4x32 r = dropout_block(seed, stream_id, first_block + b);
    for (std::uint64_t lane = 0; lane < 4; ++lane) {
      const std::uint64_t index = (first_block + b) * 4 + lane;
      if (index < index0 || index >= index0 + n) continue;
      const std::size_t i = index - index0;
      out[i] = uniform01(r.v[lane]) < p ? 0.0f : inp[i] * scale;
    }
  }
}

void apply_mask(float* out, const float* inp, std::size_t n, float p, const DropoutKey& key, std::uint64_t index0) {
  if (n == 0) return;
  if (p <= 0.0f) {
    if (out != inp) copy_device(out, inp, n * sizeof(float));
    return;
  }
  const std::uint64_t blocks = ((index0 + n + 3) >> 2) - (index0 >> 2);
  dropout_kernel<<<blocks_for(blocks, 256), 256, 0, stream()>>>(out, inp, n, p, key.seed, key.stream, index0);
  TUNESERVE_CUDA_LAUNCHED();
}
}  // namespace

void dropout_forward(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key,
                     std::uint64_t index0) {
  apply_mask(out, inp, N, p, key, index0);
}

void dropout_backward(float* dinp, const float* dout, std::size_t N, float p, const DropoutKey& key,
                      std::uint64_t index0) {
  apply_mask(dinp, dout, N, p, key, index0);
}

}  // namespace tuneserve::cuda

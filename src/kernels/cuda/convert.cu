// fp32 <-> bf16 conversion on the device (round to nearest even), for bf16 matrix products.
//
// Dimensions: n elements.
#include <cuda_bf16.h>

#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
__global__ void to_bf16_kernel(__nv_bfloat16* out, const float* inp, std::size_t n) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride())
    out[i] = __float2bfloat16_rn(inp[i]);
}
__global__ void from_bf16_kernel(float* out, const __nv_bfloat16* inp, std::size_t n) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride())
    out[i] = __bfloat162float(inp[i]);
}
}  // namespace

void to_bf16(Bf16* out, const float* inp, std::size_t n) {
  if (n == 0) return;
  to_bf16_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(reinterpret_cast<__nv_bfloat16*>(out), inp, n);
  TUNESERVE_CUDA_LAUNCHED();
}

void from_bf16(float* out, const Bf16* inp, std::size_t n) {
  if (n == 0) return;
  from_bf16_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, reinterpret_cast<const __nv_bfloat16*>(inp), n);
  TUNESERVE_CUDA_LAUNCHED();
}

}  // namespace tuneserve::cuda

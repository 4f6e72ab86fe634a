// Embedding sums on the GPU: one thread per (token, feature); backward adds into table rows with
// atomics because several tokens may share a row.
//
// Dimensions: N tokens, C hidden.
#include "kernels/cuda/embedding.h"

#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
__global__ void embedding_forward_kernel(float* out, const std::int32_t* ids, const std::int32_t* pos,
                                         const std::int32_t* types, const float* wte, const float* wpe,
                                         const float* wtt, std::size_t total, int C) {
  for (std::size_t e = grid_index(); e < total; e += grid_stride()) {
    const std::size_t i = e / C, c = e % C;
    const float w = wte[static_cast<std::size_t>(ids[i]) * C + c];
    const float p = wpe[static_cast<std::size_t>(pos[i]) * C + c];
    if (wtt) {
      const float t = wtt[static_cast<std::size_t>(types ? types[i] : 0) * C + c];
      out[e] = (w + t) + p;  // transformers' order: word + type, then + pos
    } else {
      out[e] = w + p;
    }
  }
}

__global__ void embedding_backward_kernel(float* dwte, float* dwpe, float* dwtt, const float* dout,
                                          const std::int32_t* ids, const std::int32_t* pos,
                                          const std::int32_t* types, std::size_t total, int C) {
  for (std::size_t e = grid_index(); e < total; e += grid_stride()) {
    const std::size_t i = e / C, c = e % C;
    const float g = dout[e];
    atomicAdd(dwte + static_cast<std::size_t>(ids[i]) * C + c, g);
    atomicAdd(dwpe + static_cast<std::size_t>(pos[i]) * C + c, g);
    if (dwtt) atomicAdd(dwtt + static_cast<std::size_t>(types ? types[i] : 0) * C + c, g);
  }
}
}  // namespace

void embedding_forward(float* out, const std::int32_t* ids, const std::int32_t* pos, const std::int32_t* types,
                       const float* wte, const float* wpe, const float* wtt, int N, int C) {
  const std::size_t total = static_cast<std::size_t>(N) * C;
  if (total == 0) return;
  embedding_forward_kernel<<<blocks_for(total, 256), 256, 0, stream()>>>(out, ids, pos, types, wte, wpe, wtt,
                                                                          total, C);
  TUNESERVE_CUDA_LAUNCHED();
}

void embedding_backward(float* dwte, float* dwpe, float* dwtt, const float* dout, const std::int32_t* ids,
                        const std::int32_t* pos, const std::int32_t* types, int N, int C) {
  const std::size_t total = static_cast<std::size_t>(N) * C;
  if (total == 0) return;
  embedding_backward_kernel<<<blocks_for(total, 256), 256, 0, stream()>>>(dwte, dwpe, dwtt, dout, ids, pos, types,
                                                                           total, C);
  TUNESERVE_CUDA_LAUNCHED();
}

}  // namespace tuneserve::cuda

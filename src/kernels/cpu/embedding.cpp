// Embedding sums on CPU. Backward splits the hidden dimension among threads, so repeated ids
// (the same row hit by many tokens) never race.
#include "kernels/cpu/embedding.h"

#include <cstddef>

#define TUNESERVE_ISA_FILE "kernels/cpu/embedding.cpp"
#include "kernels/cpu/isa_passes.h"

namespace tuneserve {
TUNESERVE_ISA_BEGIN

void embedding_forward(float* out, const std::int32_t* ids, const std::int32_t* pos, const std::int32_t* types,
                       const float* wte, const float* wpe, const float* wtt, int N, int C) {
  TUNESERVE_ISA_DISPATCH(embedding_forward, out, ids, pos, types, wte, wpe, wtt, N, C);
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (int i = 0; i < N; ++i) {
    const float* w = wte + static_cast<std::size_t>(ids[i]) * C;
    const float* p = wpe + static_cast<std::size_t>(pos[i]) * C;
    float* o = out + static_cast<std::size_t>(i) * C;
    if (wtt) {
      const float* t = wtt + static_cast<std::size_t>(types ? types[i] : 0) * C;
      for (int c = 0; c < C; ++c) o[c] = w[c] + t[c] + p[c];  // transformers' order: word + type, then + pos
    } else {
      for (int c = 0; c < C; ++c) o[c] = w[c] + p[c];
    }
  }
}

void embedding_backward(float* dwte, float* dwpe, float* dwtt, const float* dout, const std::int32_t* ids,
                        const std::int32_t* pos, const std::int32_t* types, int N, int C) {
  TUNESERVE_ISA_DISPATCH(embedding_backward, dwte, dwpe, dwtt, dout, ids, pos, types, N, C);
#pragma omp parallel for schedule(static) if (N * C > 16384)
  for (int c0 = 0; c0 < C; c0 += 16) {
    const int c1 = c0 + 16 < C ? c0 + 16 : C;
    for (int i = 0; i < N; ++i) {
      const float* g = dout + static_cast<std::size_t>(i) * C;
      float* w = dwte + static_cast<std::size_t>(ids[i]) * C;
      float* p = dwpe + static_cast<std::size_t>(pos[i]) * C;
      for (int c = c0; c < c1; ++c) {
        w[c] += g[c];
        p[c] += g[c];
      }
      if (dwtt) {
        float* t = dwtt + static_cast<std::size_t>(types ? types[i] : 0) * C;
        for (int c = c0; c < c1; ++c) t[c] += g[c];
      }
    }
  }
}

TUNESERVE_ISA_END
}  // namespace tuneserve

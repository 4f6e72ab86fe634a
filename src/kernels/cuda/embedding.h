// Token embeddings on the GPU, the twin of kernels/cpu/embedding.h: word + position (+ token type).
//
// Dimensions: N tokens (B*T), C hidden. ids, pos, types (N) are device row indices the caller validated.
// Outputs: forward writes (=) out (N, C); backward ACCUMULATES (+=) into the tables' gradients
// (atomically: the order of additions into a row hit by several tokens is not fixed).
// wtt / dwtt null: no token-type table (DistilBERT). types null with a table: type 0 everywhere.
#pragma once

#include <cstdint>

namespace tuneserve::cuda {

void embedding_forward(float* out, const std::int32_t* ids, const std::int32_t* pos, const std::int32_t* types,
                       const float* wte, const float* wpe, const float* wtt, int N, int C);

void embedding_backward(float* dwte, float* dwpe, float* dwtt, const float* dout, const std::int32_t* ids,
                        const std::int32_t* pos, const std::int32_t* types, int N, int C);

}  // namespace tuneserve::cuda

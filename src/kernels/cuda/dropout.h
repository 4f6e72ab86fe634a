// Inverted dropout on the GPU, the twin of kernels/cpu/dropout.h: the mask of element i is the same
// Philox 4x32 draw (core/rng.h) as on the CPU, so GPU and CPU masks are equal bit for bit.
//
// Dimensions: N elements. Outputs: forward and backward write (=); in place allowed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cpu/dropout.h"  // DropoutKey

namespace tuneserve::cuda {

// out (N) = inp * keep/(1-p); p == 0 copies. Element i draws the mask bit of index index0 + i, so a
// slice of a larger tensor (a packed sequence of a padded batch) gets the bits it has there.
void dropout_forward(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key,
                     std::uint64_t index0 = 0);
// dinp (N) = dout * keep/(1-p) with the same mask.
void dropout_backward(float* dinp, const float* dout, std::size_t N, float p, const DropoutKey& key,
                      std::uint64_t index0 = 0);

}  // namespace tuneserve::cuda

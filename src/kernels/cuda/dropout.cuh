// The device side of the dropout mask: element i's keep-scale, exactly dropout_scale() of
// kernels/cpu/dropout.h (block i/4 of the Philox stream (seed, stream), lane i%4).
#pragma once

#include <cstdint>

#include "core/rng.h"

namespace tuneserve::cuda {

__device__ __forceinline__ Philox4x32 dropout_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t block) {
  return philox4x32(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                    static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32), seed);
}

// 0 (dropped, probability p) or 1/(1-p).
__device__ __forceinline__ float dropout_keep(std::uint64_t seed, std::uint64_t stream, std::uint64_t i, float p) {
  const Philox4x32 r = dropout_block(seed, stream, i >> 2);
  return uniform01(r.v[i & 3]) < p ? 0.0f : 1.0f / (1.0f - p);
}

}  // namespace tuneserve::cuda

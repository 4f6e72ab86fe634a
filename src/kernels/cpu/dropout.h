// Inverted dropout with masks drawn from Philox 4x32 (core/rng.h), so the mask of element i is a
// pure function of (seed, stream, i): backward regenerates it instead of storing it, and a resumed
// run reproduces it. `stream` identifies the dropout site and step (see DropoutKey).
//
// Dimensions: N elements. Outputs: forward and backward write (=); in place allowed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/rng.h"

namespace tuneserve {

struct DropoutKey {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;  // distinct per (training step, dropout site)
};

// Keep-scale of element i: 0 (dropped, probability p) or 1/(1-p).
inline float dropout_scale(const DropoutKey& key, std::uint64_t i, float p) {
  const std::uint64_t block = i >> 2;
  const Philox4x32 r = philox4x32(static_cast<std::uint32_t>(block), static_cast<std::uint32_t>(block >> 32),
                                  static_cast<std::uint32_t>(key.stream),
                                  static_cast<std::uint32_t>(key.stream >> 32), key.seed);
  return uniform01(r.v[i & 3]) < p ? 0.0f : 1.0f / (1.0f - p);
}

// scales[i] = dropout_scale(key, index0 + i, p) for i < n, one Philox call per block of 4 indices.
void dropout_scales(float* scales, const DropoutKey& key, std::uint64_t index0, std::size_t n, float p);

// out (N) = inp * keep/(1-p); p == 0 copies. Element i draws the mask bit of index index0 + i, so
// a slice of a larger tensor (a packed sequence of a padded batch) gets the bits it has there.
void dropout_forward(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key,
                     std::uint64_t index0 = 0);
// dinp (N) = dout * keep/(1-p) with the same mask.
void dropout_backward(float* dinp, const float* dout, std::size_t N, float p, const DropoutKey& key,
                      std::uint64_t index0 = 0);

}  // namespace tuneserve

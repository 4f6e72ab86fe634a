// Counter-based random numbers (Philox 4x32-10, Salmon et al. 2011): the value at (key, counter)
// is a pure function, so dropout masks are reproducible, regenerable in backward, and resumable.
#pragma once

#include <cmath>
#include <cstdint>

// The CUDA kernels (src/kernels/cuda) call the same functions, so a mask drawn on the GPU equals the CPU's.
#if defined(__CUDACC__)
#define TUNESERVE_HOST_DEVICE __host__ __device__
#else
#define TUNESERVE_HOST_DEVICE
#endif

namespace tuneserve {

struct Philox4x32 {
  std::uint32_t v[4];
};

// 10 rounds of Philox 4x32 on a 128-bit counter with a 64-bit key.
TUNESERVE_HOST_DEVICE inline Philox4x32 philox4x32(std::uint32_t c0, std::uint32_t c1, std::uint32_t c2,
                                                   std::uint32_t c3, std::uint64_t key) {
  std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t p0 = std::uint64_t{0xD2511F53u} * c0;
    const std::uint64_t p1 = std::uint64_t{0xCD9E8D57u} * c2;
    const std::uint32_t n0 = static_cast<std::uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const std::uint32_t n2 = static_cast<std::uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<std::uint32_t>(p1);
    c3 = static_cast<std::uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) from 24 random bits (exactly representable in fp32).
TUNESERVE_HOST_DEVICE inline float uniform01(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// A sequential stream over Philox for weight initialisation: normal(mean, std) by Box-Muller.
class Rng {
 public:
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0) : key_(seed), stream_(stream) {}
  std::uint32_t next_u32() {
    if (lane_ == 4) {
      block_ = philox4x32(static_cast<std::uint32_t>(counter_), static_cast<std::uint32_t>(counter_ >> 32),
                          static_cast<std::uint32_t>(stream_), static_cast<std::uint32_t>(stream_ >> 32), key_);
      ++counter_;
      lane_ = 0;
    }
    return block_.v[lane_++];
  }
  float uniform() { return uniform01(next_u32()); }
  float normal(float mean, float stddev) {
    // 1 - u keeps the log argument in (0, 1].
    const double u1 = 1.0 - static_cast<double>(uniform());
    const double u2 = static_cast<double>(uniform());
    return mean + stddev * static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  std::uint64_t key_;
  std::uint64_t stream_;
  std::uint64_t counter_ = 0;
  Philox4x32 block_{};
  int lane_ = 4;
};

}  // namespace tuneserve

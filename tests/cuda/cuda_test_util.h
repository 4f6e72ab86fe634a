// Helpers for the CUDA tests: skipping without a GPU, device copies of host vectors, and the
// |got - want| <= atol + rtol * |want| comparison of STYLE.md.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cuda/runtime.h"

namespace tuneserve::testing {

// Skips the test, saying why, unless a GPU is usable; then selects GPU 0.
#define TUNESERVE_REQUIRE_GPU()                                                                        \
  do {                                                                                                 \
    std::string tuneserve_why_;                                                                        \
    if (::tuneserve::cuda::device_count(&tuneserve_why_) == 0)                                         \
      GTEST_SKIP() << "no usable GPU (" << tuneserve_why_ << "): CUDA kernels are checked on a GPU machine"; \
    ::tuneserve::cuda::set_device(0);                                                                  \
  } while (0)

// A device copy of a host vector; back() downloads it.
template <typename T>
struct DeviceVec {
  explicit DeviceVec(const std::vector<T>& host)
      : n(host.size()), buf(Device{Device::Kind::cuda, 0}, host.size() * sizeof(T)) {
    buf.upload(host.data(), n * sizeof(T));
  }
  explicit DeviceVec(std::size_t count) : DeviceVec(std::vector<T>(count)) {}
  T* get() const { return buf.as<T>(); }
  std::vector<T> back() const {
    std::vector<T> host(n);
    cuda::synchronize();
    buf.download(host.data(), n * sizeof(T));
    return host;
  }
  std::size_t n;
  DeviceBuffer buf;
};

inline std::vector<float> randn(std::size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline std::vector<std::int32_t> randint(std::size_t n, int lo, int hi, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(lo, hi - 1);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Every element within atol + rtol * |want|; reports the worst element.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double atol, double rtol,
                         const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  std::size_t worst = 0;
  double worst_excess = -1.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    const double excess = err - (atol + rtol * std::abs(static_cast<double>(want[i])));
    if (std::isnan(got[i]) != std::isnan(want[i]) || excess > worst_excess) {
      worst_excess = std::isnan(got[i]) != std::isnan(want[i]) ? 1e30 : excess;
      worst = i;
    }
  }
  EXPECT_LE(worst_excess, 0.0) << what << ": element " << worst << " of " << got.size() << " is " << got[worst]
                               << ", CPU twin " << want[worst] << " (atol " << atol << ", rtol " << rtol << ")";
}

// Tolerances per dtype (STYLE.md 5).
constexpr double kF32Atol = 1e-5, kF32Rtol = 1e-5;
constexpr double kBf16Atol = 4e-2, kBf16Rtol = 4e-2;

}  // namespace tuneserve::testing

// Timing helpers shared by the benchmarks: medians of repeated runs and process CPU time,
// the figure that survives a shared machine (other processes stretch wall time, not our CPU time).
#pragma once

#include <time.h>

#include <algorithm>
#include <vector>

namespace tuneserve::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

}  // namespace tuneserve::bench

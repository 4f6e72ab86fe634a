// Helpers shared by the benchmarks: medians of repeated runs, process CPU time (the figure that
// survives a shared machine: other processes stretch wall time, not our CPU time), and flags.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "core/error.h"

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

// Parses "--flag N" pairs from argv[first] on into the integers `flags` points at; a flag not in
// the map, a missing value or a value that is not a positive integer is an Error naming it.
inline void parse_positive_int_flags(int argc, char** argv, int first, const std::map<std::string, int*>& flags) {
  for (int i = first; i < argc; i += 2) {
    const std::string flag = argv[i];
    const auto it = flags.find(flag);
    if (it == flags.end()) fail("unknown flag {}", flag);
    if (i + 1 >= argc) fail("{}: missing value", flag);
    char* end = nullptr;
    const long value = std::strtol(argv[i + 1], &end, 10);
    if (*end != '\0' || value <= 0 || value > 1 << 30) fail("{}: expected a positive integer, got '{}'", flag, argv[i + 1]);
    *it->second = static_cast<int>(value);
  }
}

}  // namespace tuneserve::bench

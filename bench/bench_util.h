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

// One "--flag VALUE" a benchmark accepts: an integer of at least `min` into `value`, or (when `text`
// is set) any string into `text`.
struct Flag {
  int* value = nullptr;
  int min = 1;
  std::string* text = nullptr;
};

// Parses "--flag VALUE" pairs from argv[first] on; a flag not in `flags`, a missing value or an
// integer below its minimum is an Error naming the flag.
inline void parse_flags(int argc, char** argv, int first, const std::map<std::string, Flag>& flags) {
  for (int i = first; i < argc; i += 2) {
    const std::string flag = argv[i];
    const auto it = flags.find(flag);
    if (it == flags.end()) fail("unknown flag {}", flag);
    if (i + 1 >= argc) fail("{}: missing value", flag);
    const Flag& f = it->second;
    if (f.text) {
      *f.text = argv[i + 1];
      continue;
    }
    char* end = nullptr;
    const long value = std::strtol(argv[i + 1], &end, 10);
    if (end == argv[i + 1] || *end != '\0' || value < f.min || value > 1 << 30)
      fail("{}: expected an integer >= {}, got '{}'", flag, f.min, argv[i + 1]);
    *f.value = static_cast<int>(value);
  }
}

}  // namespace tuneserve::bench

// Helpers shared by the benchmarks: medians of repeated runs, process CPU time (the figure that
// survives a shared machine: other processes stretch wall time, not our CPU time), and flags.
#pragma once

#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "core/error.h"

namespace tuneserve::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Forward FLOPs (multiply-adds x 2) of the encoder for one T-token sequence: QKV + output projections
// (4 C^2), the FFN (2 C F) and the two attention products (2 T C), per token and layer. The same
// formula as the PyTorch peer's (bench/torch_distilbert.py). A training step is 3x: backward computes
// two products for each forward one.
inline double encoder_flops(const ModelConfig& c, int T) {
  const double C = c.hidden_size, F = c.intermediate_size, L = c.num_layers;
  return 2.0 * T * L * (4 * C * C + 2 * C * F + 2.0 * T * C);
}

// The part of encoder_flops a classifier's forward skips: its last layer runs the query, the
// attention, the output projection and the FFN on the first token only (K and V on every token).
inline double pruned_last_layer_flops(const ModelConfig& c, int T) {
  const double C = c.hidden_size, F = c.intermediate_size;
  return 2.0 * (T - 1) * (2 * C * C + 2 * C * F + 2.0 * T * C);
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

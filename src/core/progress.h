// Progress of a count (rows read, inputs classified) on stderr: redrawn in place on a terminal
// every 200 ms, else one plain line every 5 s (logs stay readable), and a last line at the end.
// "predict: classified 1200/5000 inputs (24%), 310 inputs/s". Bytes moving over the network have
// their own bar (net/progress.h).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tuneserve {

class CountProgress {
 public:
  // Disabled: prints nothing. `what` leads each line ("prep: read").
  CountProgress(bool enabled, std::string what);
  // `total` 0: unknown (no percentage).
  void update(std::int64_t done, std::int64_t total, const char* unit);
  void finish(std::int64_t done, std::int64_t total, const char* unit);

 private:
  void print(std::int64_t done, std::int64_t total, const char* unit, bool last);
  bool enabled_, tty_ = false;
  std::string what_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

}  // namespace tuneserve

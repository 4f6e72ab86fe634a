// Count progress on stderr (see progress.h).
#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace tuneserve {

CountProgress::CountProgress(bool enabled, std::string what) : enabled_(enabled), what_(std::move(what)) {
  tty_ = enabled_ && ::isatty(STDERR_FILENO);
}

void CountProgress::update(std::int64_t done, std::int64_t total, const char* unit) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000))) return;
  last_ = now;
  print(done, total, unit, false);
}

void CountProgress::finish(std::int64_t done, std::int64_t total, const char* unit) {
  if (enabled_) print(done, total, unit, true);
}

void CountProgress::print(std::int64_t done, std::int64_t total, const char* unit, bool last) {
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  const std::string msg =
      total > 0 ? fmt::format("{} {}/{} {} ({:.0f}%), {:.0f} {}/s", what_, done, total, unit,
                              100.0 * static_cast<double>(done) / static_cast<double>(total), rate, unit)
                : fmt::format("{} {} {}, {:.0f} {}/s", what_, done, unit, rate, unit);
  if (tty_)
    std::fprintf(stderr, "\r%s\033[K%s", msg.c_str(), last ? "\n" : "");
  else
    std::fprintf(stderr, "%s\n", msg.c_str());
}

}  // namespace tuneserve

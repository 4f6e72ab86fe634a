// Transfer progress on stderr (see progress.h).
#include "net/progress.h"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>

namespace tuneserve::net {

std::string human_bytes(std::uint64_t bytes) {
  if (bytes < 1000) return fmt::format("{} B", bytes);
  if (bytes < 1000 * 1000) return fmt::format("{:.1f} kB", bytes / 1e3);
  if (bytes < 1000ull * 1000 * 1000) return fmt::format("{:.1f} MB", bytes / 1e6);
  return fmt::format("{:.2f} GB", bytes / 1e9);
}

TransferProgress::TransferProgress(std::string label, std::uint64_t total, std::uint64_t already, bool quiet)
    : label_(std::move(label)), total_(total), already_(already), done_(already), quiet_(quiet),
      tty_(::isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {
  if (quiet_ || tty_) return;
  std::fprintf(stderr, "%s (%s%s)\n", label_.c_str(), total_ ? human_bytes(total_).c_str() : "size unknown",
               already_ ? fmt::format(", resuming at {}", human_bytes(already_)).c_str() : "");
}

void TransferProgress::update(std::uint64_t done) {
  done_ = done;
  if (quiet_ || !tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? (done_ - already_) / seconds : 0;
  std::string pct = total_ ? fmt::format("{:3d}% ", static_cast<int>(100.0 * done_ / total_)) : "";
  std::fprintf(stderr, "\r%s  %s%s/%s  %s/s   ", label_.c_str(), pct.c_str(), human_bytes(done_).c_str(),
               total_ ? human_bytes(total_).c_str() : "?", human_bytes(static_cast<std::uint64_t>(rate)).c_str());
  std::fflush(stderr);
}

void TransferProgress::finish() {
  if (finished_) return;
  finished_ = true;
  if (quiet_) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s%s: %s in %.1f s\n", tty_ ? "\r" : "", label_.c_str(), human_bytes(done_).c_str(), seconds);
}

TransferProgress::~TransferProgress() {
  if (tty_ && !finished_ && !quiet_) std::fprintf(stderr, "\n");
}

}  // namespace tuneserve::net

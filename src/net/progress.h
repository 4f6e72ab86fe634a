// Progress of one transfer on stderr: a redrawn bar on a terminal ("config.json  45% 12.3/27.1 MB
// 5.2 MB/s"), else a line when it starts and one when it ends, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tuneserve::net {

class TransferProgress {
 public:
  // `label` names what moves ("downloading org/name/model.safetensors"); `total` in bytes, 0 unknown;
  // `already` bytes were there before (a resumed download). Quiet: prints nothing.
  TransferProgress(std::string label, std::uint64_t total, std::uint64_t already, bool quiet);
  void update(std::uint64_t done);  // bytes so far, `already` included
  void finish();                    // the last line (also from the destructor if not called)
  ~TransferProgress();

 private:
  std::string label_;
  std::uint64_t total_, already_, done_ = 0;
  bool quiet_, tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string human_bytes(std::uint64_t bytes);  // "512 B", "12.3 MB", "1.20 GB"

}  // namespace tuneserve::net

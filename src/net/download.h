// A file download that survives interruptions: bytes go to a partial file, each retry (transport
// error or 5xx, with backoff) asks for the rest with `Range: bytes=N-`, and a server that ignores
// the range starts the file over. Used by the Hub cache (blobs/<etag>.incomplete) and S3 reads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "net/http.h"

namespace tuneserve::net {

struct Download {
  std::string url;
  // Headers for one attempt (called again for each: S3 signatures carry the time).
  std::function<Headers()> headers;
  std::string partial_path;     // appended to; may hold bytes of an earlier try
  std::uint64_t expected_size = 0;  // 0: unknown
  bool follow_redirects = true;
  long connect_timeout_s = 10;
  long stall_timeout_s = 10;
  std::string label;            // progress line ("downloading org/name/config.json")
  bool quiet = false;
  RetryPolicy retry;
};

// Returns the final answer: 2xx when the partial file now holds the whole body (a 416 on a partial
// file already of expected_size counts as done), else the error answer (body kept) for the caller
// to explain. The file is left in place on failure so a later call resumes.
HttpResponse download_resumable(const Download& d);

std::uint64_t file_size_or_zero(const std::string& path);

}  // namespace tuneserve::net

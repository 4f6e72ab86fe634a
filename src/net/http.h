// HTTP(S) requests through libcurl, for the Hugging Face Hub and S3 clients: one request at a time
// per call, bodies streamed to a sink or kept in memory, timeouts, and retries with backoff.
//
// A transport failure (refused connection, DNS, TLS, timeout, connection dropped mid-body) throws
// TransportError; an HTTP answer of any status is returned, so callers decide what 401/404 mean.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace tuneserve::net {

using Headers = std::vector<std::pair<std::string, std::string>>;

// No HTTP answer came back (or it was cut short): worth retrying.
class TransportError : public Error {
 public:
  using Error::Error;
};

struct HttpRequest {
  std::string method = "GET";  // GET | HEAD | PUT | POST | DELETE
  std::string url;
  Headers headers;
  std::string_view body;       // sent for PUT/POST (the caller keeps it alive)
  bool follow_redirects = false;
  long connect_timeout_s = 10;
  // Abort when fewer than 1 byte/s arrives for this long (a stalled server); 0: never.
  long stall_timeout_s = 10;
};

struct HttpResponse {
  long status = 0;
  Headers headers;             // of the last response (after redirects when followed)
  std::string body;            // error bodies and, without a sink, the whole body (capped)
  std::string effective_url;   // where the last response came from
  std::string header(std::string_view name) const;  // case-insensitive; "" when absent
  bool has_header(std::string_view name) const;
  bool ok() const { return status >= 200 && status < 300; }
};

// Receives 2xx body bytes in order, with the answer's status (200, 206 ...); false aborts.
using BodySink = std::function<bool(long status, const char* data, std::size_t size)>;
// Called as bytes arrive: (received so far in this request, expected total or 0 when unknown).
using ProgressFn = std::function<void(std::uint64_t received, std::uint64_t total)>;

// One request. Without a sink, the body is kept in memory up to `max_body` bytes (more is an
// Error naming the URL, so a hostile server cannot exhaust memory); error bodies always are.
HttpResponse http_request(const HttpRequest& request, const BodySink& sink = nullptr,
                          const ProgressFn& progress = nullptr, std::size_t max_body = 64u << 20);

// Retries for transient failures: transport errors and 429/5xx answers, `attempts` tries in all,
// sleeping base, 2*base, 4*base ... (capped at max_delay) between them.
struct RetryPolicy {
  int attempts = 5;
  std::chrono::milliseconds base{500};
  std::chrono::milliseconds max_delay{8000};
};

bool is_retryable_status(long status);

// Runs `attempt` until it returns a non-retryable response or the tries run out; `what` names the
// operation in the warning logged before each retry. The last TransportError is rethrown.
HttpResponse with_retries(const std::string& what, const RetryPolicy& policy,
                          const std::function<HttpResponse()>& attempt);

// Percent-encodes everything but unreserved characters (and '/' when keep_slash), as URLs and
// AWS's canonical requests need.
std::string url_encode(std::string_view s, bool keep_slash);

}  // namespace tuneserve::net

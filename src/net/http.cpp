// libcurl easy interface behind net::http_request (see http.h), and the retry loop.
#include "net/http.h"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <memory>
#include <mutex>
#include <thread>

namespace tuneserve::net {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) fail("libcurl could not be initialised");
  });
}

struct Transfer {
  CURL* curl = nullptr;
  HttpResponse* response = nullptr;
  const BodySink* sink = nullptr;
  const ProgressFn* progress = nullptr;
  std::size_t max_body = 0;
  std::uint64_t received = 0;
  bool sink_refused = false;
  bool too_large = false;

  long status() const {
    long code = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
  }
};

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    t->response->headers.clear();  // a new response (redirect, 100 Continue): keep only the last
  } else if (const std::size_t colon = line.find(':'); colon != std::string_view::npos) {
    t->response->headers.emplace_back(std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1))));
  }
  return size * n;
}

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::size_t bytes = size * n;
  const long status = t->status();
  if (t->sink && *t->sink && status >= 200 && status < 300) {
    if (!(*t->sink)(status, data, bytes)) {
      t->sink_refused = true;
      return 0;
    }
  } else {
    // Error bodies are only read for their message: the first 64 KiB are plenty.
    const std::size_t cap = status >= 200 && status < 300 ? t->max_body : std::min<std::size_t>(t->max_body, 64 << 10);
    if (t->response->body.size() + bytes > cap) {
      if (status >= 200 && status < 300) {
        t->too_large = true;
        return 0;
      }
      t->response->body.append(data, cap - t->response->body.size());
    } else {
      t->response->body.append(data, bytes);
    }
  }
  t->received += bytes;
  if (t->progress && *t->progress) {
    curl_off_t total = -1;
    curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
    (*t->progress)(t->received, total > 0 ? static_cast<std::uint64_t>(total) : 0);
  }
  return bytes;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return "";
}

bool HttpResponse::has_header(std::string_view name) const {
  return std::any_of(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, name); });
}

HttpResponse http_request(const HttpRequest& request, const BodySink& sink, const ProgressFn& progress,
                          std::size_t max_body) {
  global_init();
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) fail("libcurl: could not create a handle");
  HttpResponse response;
  Transfer t{curl.get(), &response, &sink, &progress, max_body};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, request.connect_timeout_s);
  if (request.stall_timeout_s > 0) {
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, request.stall_timeout_s);
  }
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_USERAGENT, "tuneserve/" TUNESERVE_VERSION);
  if (request.method == "HEAD") {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT" || request.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  curl_slist* list = nullptr;
  for (const auto& [k, v] : request.headers) list = curl_slist_append(list, (k + ": " + v).c_str());
  // libcurl adds these to bodies on its own; AWS signatures cover exactly the headers we set.
  list = curl_slist_append(list, "Expect:");
  if (request.method == "PUT" || request.method == "POST") {
    bool has_type = false;
    for (const auto& h : request.headers) has_type |= iequals(h.first, "content-type");
    if (!has_type) list = curl_slist_append(list, "Content-Type:");
  }
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> headers(list, curl_slist_free_all);
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);

  const CURLcode rc = curl_easy_perform(c);
  response.status = t.status();
  char* url = nullptr;
  curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &url);
  if (url) response.effective_url = url;
  if (t.too_large) fail("{}: the answer is larger than {} bytes; refusing it", request.url, max_body);
  if (t.sink_refused) fail("{}: download stopped", request.url);
  if (rc != CURLE_OK)
    throw TransportError(fmt::format("{} {}: {}", request.method, request.url, error[0] ? error : curl_easy_strerror(rc)));
  return response;
}

bool is_retryable_status(long status) { return status == 429 || status >= 500; }

HttpResponse with_retries(const std::string& what, const RetryPolicy& policy,
                          const std::function<HttpResponse()>& attempt) {
  std::chrono::milliseconds delay = policy.base;
  for (int i = 1;; ++i) {
    std::string why;
    try {
      HttpResponse r = attempt();
      if (!is_retryable_status(r.status) || i >= policy.attempts) return r;
      why = fmt::format("HTTP {}", r.status);
    } catch (const TransportError& e) {
      if (i >= policy.attempts) throw;
      why = e.what();
    }
    spdlog::warn("{}: {}; retrying in {:.1f} s (attempt {} of {})", what, why, delay.count() / 1000.0, i + 1,
                 policy.attempts);
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, policy.max_delay);
  }
}

std::string url_encode(std::string_view s, bool keep_slash) {
  static constexpr char digits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

}  // namespace tuneserve::net

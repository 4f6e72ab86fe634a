// Hub downloads into the shared cache (see hub.h for the protocol, cache.h for the layout).
#include "hub/hub.h"

#include <spdlog/spdlog.h>

#include <cctype>
#include <cstdio>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/sha256.h"
#include "net/download.h"

namespace tuneserve::hub {
namespace {

bool truthy(const std::string& v) {
  std::string u;
  for (char c : v) u += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u == "1" || u == "ON" || u == "YES" || u == "TRUE";
}

long seconds_from_env(const char* name, long fallback) {
  const std::string v = env(name);
  if (v.empty()) return fallback;
  try {
    std::size_t used = 0;
    const double s = std::stod(v, &used);
    if (used == v.size() && s > 0) return std::max(1L, static_cast<long>(s));
  } catch (const std::exception&) {
  }
  fail("{}={}: expected a number of seconds", name, v);
}

std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::string token;
  std::getline(in, token);
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

// "https://host:port/path" -> "https://host:port"
std::string origin_of(const std::string& url) {
  const std::size_t scheme = url.find("://");
  if (scheme == std::string::npos) return url;
  const std::size_t slash = url.find('/', scheme + 3);
  return slash == std::string::npos ? url : url.substr(0, slash);
}

// W/"abc" -> abc. The result names a file: anything but [A-Za-z0-9._-] is refused.
std::string normalize_etag(std::string etag, const std::string& what) {
  if (etag.starts_with("W/")) etag.erase(0, 2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') etag = etag.substr(1, etag.size() - 2);
  bool ok = !etag.empty() && etag.size() <= 128 && etag != "." && etag != "..";
  for (char c : etag) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
  if (!ok) fail("{}: the server's ETag \"{}\" is not a usable blob name", what, etag);
  return etag;
}

bool is_sha256_hex(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// What the Hub said about one file.
struct Metadata {
  std::string commit, etag, location;
  std::uint64_t size = 0;
  bool lfs = false;
};

std::string server_message(const net::HttpResponse& r) {
  std::string m = r.header("X-Error-Message");
  if (m.empty() && !r.body.empty() && r.body.size() < 300 && r.body.find('\n') == std::string::npos) m = r.body;
  return m.empty() ? "" : " (" + m + ")";
}

}  // namespace

HubSettings HubSettings::from_env() {
  HubSettings s;
  if (std::string e = env("HF_ENDPOINT"); !e.empty()) {
    while (!e.empty() && e.back() == '/') e.pop_back();
    s.endpoint = e;
  }
  s.cache_dir = default_cache_dir();
  if (std::string t = env("HF_TOKEN"); !t.empty()) {
    s.token = t, s.token_source = "HF_TOKEN";
  } else if (std::string t2 = env("HUGGING_FACE_HUB_TOKEN"); !t2.empty()) {
    s.token = t2, s.token_source = "HUGGING_FACE_HUB_TOKEN";
  } else {
    const std::string path = env("HF_TOKEN_PATH").empty() ? hf_home() + "/token" : env("HF_TOKEN_PATH");
    s.token = read_token_file(path);
    if (!s.token.empty()) s.token_source = path;
  }
  s.offline = truthy(env("HF_HUB_OFFLINE"));
  s.etag_timeout_s = seconds_from_env("HF_HUB_ETAG_TIMEOUT", 10);
  s.download_timeout_s = seconds_from_env("HF_HUB_DOWNLOAD_TIMEOUT", 10);
  s.progress = !truthy(env("HF_HUB_DISABLE_PROGRESS_BARS"));
  return s;
}

HubClient::HubClient(HubSettings settings) : settings_(std::move(settings)) {}

std::optional<std::string> HubClient::file(const std::string& repo, const std::string& file,
                                           const std::string& revision, bool required) const {
  const HubSettings& s = settings_;
  if (!is_repo_id(repo)) fail("\"{}\" is not a Hugging Face Hub repository id (name or org/name)", repo);
  check_repo_filename(file, repo);
  if (revision.empty() || revision.find("..") != std::string::npos || revision.front() == '/')
    fail("{}: revision \"{}\" is not a branch, tag or commit", repo, revision);
  const RepoCache cache(s.cache_dir, repo);
  const std::string where = fmt::format("{}: {} at revision {}", repo, file, revision);

  // From the cache alone: offline, or the Hub unreachable.
  auto from_cache = [&](const std::string& why) -> std::optional<std::string> {
    if (const auto commit = cache.commit_of(revision)) {
      if (fs::exists(cache.snapshot(*commit, file))) return cache.snapshot(*commit, file).string();
      if (fs::exists(cache.no_exist(*commit, file))) {
        if (required) fail("{}: the repository has no such file (cached answer; {})", where, why);
        return std::nullopt;
      }
    }
    if (!required) return std::nullopt;
    fail("{}: not in the cache {} and {}", where, s.cache_dir, why);
  };

  if (is_commit_hash(revision) && fs::exists(cache.snapshot(revision, file)))
    return cache.snapshot(revision, file).string();
  if (s.offline) return from_cache("HF_HUB_OFFLINE is set (cache only); unset it to download");

  const std::string resolve = "/" + repo + "/resolve/" + net::url_encode(revision, false) + "/" + net::url_encode(file, true);
  auto auth = [&](net::Headers& h) {
    if (!s.token.empty()) h.emplace_back("Authorization", "Bearer " + s.token);
  };

  // HEAD, following the Hub's relative redirects (renamed repos) but not absolute ones (the CDN).
  net::HttpResponse head;
  std::string url = s.endpoint + resolve;
  try {
    for (int hops = 0;; ++hops) {
      head = net::with_retries(where, s.retry, [&] {
        net::HttpRequest r;
        r.method = "HEAD";
        r.url = url;
        r.headers = {{"Accept-Encoding", "identity"}};
        auth(r.headers);
        r.connect_timeout_s = s.etag_timeout_s;
        r.stall_timeout_s = s.etag_timeout_s;
        return net::http_request(r);
      });
      const std::string location = head.header("Location");
      if (head.status >= 300 && head.status < 400 && location.starts_with("/") && hops < 10) {
        url = origin_of(s.endpoint) + location;
        continue;
      }
      break;
    }
  } catch (const net::TransportError& e) {
    head.status = 0;
    head.body = e.what();
  }
  if (head.status == 0 || net::is_retryable_status(head.status)) {
    const std::string why = head.status ? fmt::format("HTTP {}", head.status) : head.body;
    auto cached = from_cache(fmt::format("the Hub at {} cannot be reached: {}", s.endpoint, why));
    if (cached) spdlog::warn("{}: the Hub cannot be reached ({}); using the cached file", where, why);
    return cached;
  }

  const std::string code = head.header("X-Error-Code");
  if (head.status == 401 || head.status == 403) {
    if (code == "GatedRepo")
      fail("{}: {} {}: the repository is gated; accept its terms on the Hub and set HF_TOKEN to a token of that "
           "account{}",
           where, head.status, head.status == 401 ? "Unauthorized" : "Forbidden", server_message(head));
    if (s.token.empty())
      fail("{}: 401 Unauthorized: the repository is private or does not exist; set HF_TOKEN to a token that can "
           "read it{}",
           where, server_message(head));
    fail("{}: {} {}: the token from {} cannot read this repository (it may not exist){}", where, head.status,
         head.status == 401 ? "Unauthorized" : "Forbidden", s.token_source, server_message(head));
  }
  if (head.status == 404) {
    if (code == "RepoNotFound") fail("{}: 404: repository {} not found on {}", where, repo, s.endpoint);
    if (code == "RevisionNotFound") fail("{}: 404: revision {} not found in {}", where, revision, repo);
    const std::string commit = head.header("X-Repo-Commit");
    if (is_commit_hash(commit)) {
      cache.mark_absent(commit, file);
      cache.remember_ref(revision, commit);
    }
    if (!required) return std::nullopt;
    fail("{}: 404: the repository has no such file", where);
  }
  if (!(head.ok() || (head.status >= 300 && head.status < 400)))
    fail("{}: HTTP {} from {}{}", where, head.status, url, server_message(head));

  Metadata m;
  m.commit = head.header("X-Repo-Commit");
  if (!is_commit_hash(m.commit))
    fail("{}: {} did not answer with a commit (X-Repo-Commit); is HF_ENDPOINT a Hugging Face Hub?", where, s.endpoint);
  m.lfs = head.has_header("X-Linked-Etag");
  m.etag = normalize_etag(m.lfs ? head.header("X-Linked-Etag") : head.header("ETag"), where);
  const std::string size = head.has_header("X-Linked-Size") ? head.header("X-Linked-Size") : head.header("Content-Length");
  try {
    m.size = size.empty() ? 0 : std::stoull(size);
  } catch (const std::exception&) {
    fail("{}: the server's size \"{}\" is not a number", where, size);
  }
  const std::string location = head.header("Location");
  m.location = head.status >= 300 && head.status < 400 && !location.empty() ? location : url;

  cache.remember_ref(revision, m.commit);
  const fs::path pointer = cache.snapshot(m.commit, file);
  if (fs::exists(pointer)) return pointer.string();
  const fs::path blob = cache.blob(m.etag);
  if (fs::exists(blob)) {
    cache.link_snapshot(m.commit, file, m.etag);
    return pointer.string();
  }

  fs::create_directories(blob.parent_path());
  const FileLock lock(cache.lock(m.etag));
  if (fs::exists(blob)) {  // another process finished it while we waited
    cache.link_snapshot(m.commit, file, m.etag);
    return pointer.string();
  }
  const std::string partial = blob.string() + ".incomplete";
  net::Download d;
  d.url = m.location;
  // The token goes to the Hub only, never to where an LFS redirect points (a CDN, a signed URL).
  const bool same_origin = origin_of(m.location) == origin_of(s.endpoint);
  d.headers = [&] {
    net::Headers h{{"Accept-Encoding", "identity"}};
    if (same_origin) auth(h);
    return h;
  };
  d.partial_path = partial;
  d.expected_size = m.size;
  d.connect_timeout_s = s.download_timeout_s;
  d.stall_timeout_s = s.download_timeout_s;
  d.label = "downloading " + repo + "/" + file;
  d.quiet = !s.progress;
  d.retry = s.retry;
  net::HttpResponse got;
  try {
    got = net::download_resumable(d);
  } catch (const net::TransportError& e) {
    fail("{}: download failed after {} tries: {}; run again to resume from {}", where, s.retry.attempts, e.what(),
         partial);
  }
  if (!got.ok()) fail("{}: HTTP {} downloading {}{}", where, got.status, m.location, server_message(got));
  const std::uint64_t have = net::file_size_or_zero(partial);
  if (m.size && have != m.size) {
    fs::remove(partial);
    fail("{}: downloaded {} bytes, the Hub announced {}; removed the partial file, run again", where, have, m.size);
  }
  if (m.lfs && is_sha256_hex(m.etag)) {
    const std::string sum = sha256_file(partial);
    if (sum != m.etag) {
      fs::remove(partial);
      fail("{}: sha256 of the download is {}, the Hub announced {}; removed it, run again", where, sum, m.etag);
    }
  }
  fs::rename(partial, blob);
  cache.link_snapshot(m.commit, file, m.etag);
  return pointer.string();
}

}  // namespace tuneserve::hub

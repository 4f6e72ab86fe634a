// Resumable downloads (see download.h).
#include "net/download.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "net/progress.h"

namespace tuneserve::net {

std::uint64_t file_size_or_zero(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
}

HttpResponse download_resumable(const Download& d) {
  std::uint64_t offset = file_size_or_zero(d.partial_path);
  if (d.expected_size && offset > d.expected_size) {
    std::filesystem::resize_file(d.partial_path, 0);
    offset = 0;
  }
  TransferProgress progress(d.label, d.expected_size, offset, d.quiet);
  auto attempt = [&]() -> HttpResponse {
    offset = file_size_or_zero(d.partial_path);
    if (d.expected_size && offset == d.expected_size) {
      HttpResponse done;
      done.status = 200;
      return done;
    }
    HttpRequest r;
    r.url = d.url;
    r.headers = d.headers ? d.headers() : Headers{};
    if (offset > 0) r.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-");
    r.follow_redirects = d.follow_redirects;
    r.connect_timeout_s = d.connect_timeout_s;
    r.stall_timeout_s = d.stall_timeout_s;
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(d.partial_path.c_str(), "ab"), std::fclose);
    if (!file) fail("cannot write {}: {}", d.partial_path, std::strerror(errno));
    bool restarted = false;
    std::uint64_t written = offset;
    HttpResponse resp = http_request(
        r,
        [&](long status, const char* data, std::size_t n) {
          if (status == 200 && offset > 0 && !restarted) {
            // The server sent the whole body, not the range: start the file over.
            restarted = true;
            file.reset(std::fopen(d.partial_path.c_str(), "wb"));
            if (!file) return false;
            written = 0;
          }
          if (std::fwrite(data, 1, n, file.get()) != n) return false;
          written += n;
          progress.update(written);
          return true;
        });
    if (std::fflush(file.get()) != 0) fail("cannot write {}: {}", d.partial_path, std::strerror(errno));
    if (resp.status == 416 && d.expected_size && file_size_or_zero(d.partial_path) == d.expected_size) resp.status = 206;
    return resp;
  };
  HttpResponse resp = with_retries(d.label, d.retry, attempt);
  if (resp.ok()) progress.finish();
  return resp;
}

}  // namespace tuneserve::net

// SHA-256 through OpenSSL: one streaming digest for payload hashes (SigV4), file checks (Hub LFS
// blobs, model archives) and the data-parallel start-up check that every rank has the same job.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace tuneserve {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, std::size_t bytes);
  template <typename T>
  void update(std::span<const T> values) {
    update(values.data(), values.size_bytes());
  }
  // Lowercase hex of the digest of everything updated so far; call once.
  std::string hex();

 private:
  evp_md_ctx_st* ctx_;
};

std::string sha256_hex(std::string_view data);
std::string sha256_file(const std::string& path);  // Error when unreadable

}  // namespace tuneserve

// A small S3 client over libcurl, signed with aws/sigv4.h: what tuneserve needs to read data and
// models from S3 and write artifacts back. Requests are retried with backoff (transport errors,
// 5xx, 429 SlowDown); downloads resume; files larger than one part go up as a multipart upload
// (aborted when a part fails for good). Every error names the bucket and key, S3's error code and
// message (AccessDenied, NoSuchKey, NoSuchBucket ...).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "net/http.h"

namespace tuneserve::aws {

struct S3Uri {
  std::string bucket, key;  // key may be "" or end with '/' (a prefix)
  static S3Uri parse(std::string_view uri);  // "s3://bucket/key"; Error when malformed
  std::string str() const { return "s3://" + bucket + "/" + key; }
};

struct S3Object {
  std::string key, etag;
  std::uint64_t size = 0;
};

class S3Client {
 public:
  explicit S3Client(AwsSettings settings);
  static S3Client from_env() { return S3Client(AwsSettings::from_env()); }

  std::size_t part_size = 16u << 20;  // multipart above this; S3 needs >= 5 MiB per part but the last
  net::RetryPolicy retry;
  bool quiet = false;                 // no progress lines

  // The object's size and ETag; std::nullopt when it does not exist (404).
  std::optional<S3Object> head(const S3Uri& uri) const;
  // Every object under the prefix (ListObjectsV2, all pages).
  std::vector<S3Object> list(const S3Uri& prefix) const;
  // Downloads into `path` through `path`.part (kept, and resumed, after a failure).
  void download(const S3Uri& uri, const std::string& path) const;
  // Uploads the file (one PUT, or a multipart upload above part_size).
  void upload(const std::string& path, const S3Uri& uri) const;

 private:
  struct Target {
    std::string url, host, path_and_query;
  };
  Target target(const S3Uri& uri, const std::string& query) const;
  net::Headers sign(const std::string& method, const Target& t, std::string_view body,
                    net::Headers extra = {}) const;
  net::HttpResponse send(const std::string& method, const S3Uri& uri, const std::string& query,
                         std::string_view body = {}, net::Headers extra = {}) const;
  [[noreturn]] void raise(const std::string& what, const S3Uri& uri, const net::HttpResponse& r) const;

  AwsSettings settings_;
};

}  // namespace tuneserve::aws

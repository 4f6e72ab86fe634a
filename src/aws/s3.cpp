// S3 over libcurl (see s3.h); responses' XML read with expat.
#include "aws/s3.h"

#include <expat.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/sha256.h"
#include "net/download.h"
#include "net/progress.h"

namespace tuneserve::aws {
namespace {

namespace fs = std::filesystem;

// Each element's text with its path from the root ("ListBucketResult/Contents/Key"), in order.
using XmlLeaves = std::vector<std::pair<std::string, std::string>>;

XmlLeaves parse_xml(std::string_view body, const std::string& where) {
  struct State {
    std::vector<std::string> path;
    std::string text;
    XmlLeaves out;
  } state;
  std::unique_ptr<std::remove_pointer_t<XML_Parser>, void (*)(XML_Parser)> parser(XML_ParserCreate("UTF-8"),
                                                                                   XML_ParserFree);
  XML_SetUserData(parser.get(), &state);
  XML_SetElementHandler(
      parser.get(),
      [](void* u, const XML_Char* name, const XML_Char**) {
        auto* s = static_cast<State*>(u);
        s->path.emplace_back(name);
        s->text.clear();
      },
      [](void* u, const XML_Char*) {
        auto* s = static_cast<State*>(u);
        std::string joined;
        for (const auto& p : s->path) joined += (joined.empty() ? "" : "/") + p;
        s->out.emplace_back(joined, s->text);
        s->text.clear();
        s->path.pop_back();
      });
  XML_SetCharacterDataHandler(parser.get(), [](void* u, const XML_Char* data, int len) {
    static_cast<State*>(u)->text.append(data, static_cast<std::size_t>(len));
  });
  if (XML_Parse(parser.get(), body.data(), static_cast<int>(body.size()), 1) == XML_STATUS_ERROR)
    fail("{}: S3 answered with malformed XML: {}", where, XML_ErrorString(XML_GetErrorCode(parser.get())));
  return state.out;
}

std::string leaf(const XmlLeaves& leaves, std::string_view path) {
  for (const auto& [p, v] : leaves)
    if (p == path) return v;
  return "";
}

std::string unquote(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::string host_of(const std::string& url) {
  const std::size_t scheme = url.find("://");
  const std::size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  const std::size_t slash = url.find('/', start);
  return url.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
}

}  // namespace

S3Uri S3Uri::parse(std::string_view uri) {
  if (!uri.starts_with("s3://")) fail("{}: not an s3:// URI", uri);
  const std::string_view rest = uri.substr(5);
  const std::size_t slash = rest.find('/');
  S3Uri out{std::string(rest.substr(0, slash)), slash == std::string_view::npos ? "" : std::string(rest.substr(slash + 1))};
  if (out.bucket.empty() || out.bucket.size() > 63) fail("{}: the bucket name is empty or too long", uri);
  for (char c : out.bucket)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '.' && c != '_')
      fail("{}: '{}' is not a valid bucket name", uri, out.bucket);
  return out;
}

S3Client::S3Client(AwsSettings settings) : settings_(std::move(settings)) {}

S3Client::Target S3Client::target(const S3Uri& uri, const std::string& query) const {
  Target t;
  const std::string key = net::url_encode(uri.key, true);
  if (!settings_.endpoint.empty()) {  // path style: what local S3 servers expect
    t.path_and_query = "/" + uri.bucket + "/" + key;
    t.url = settings_.endpoint + t.path_and_query;
    t.host = host_of(settings_.endpoint);
  } else {
    t.host = uri.bucket + ".s3." + settings_.region + ".amazonaws.com";
    t.path_and_query = "/" + key;
    t.url = "https://" + t.host + t.path_and_query;
  }
  if (!query.empty()) {
    t.path_and_query += "?" + query;
    t.url += "?" + query;
  }
  return t;
}

net::Headers S3Client::sign(const std::string& method, const Target& t, std::string_view body, net::Headers extra) const {
  SignedRequest r{method, t.path_and_query, std::move(extra), body};
  r.headers.emplace_back("host", t.host);
  sigv4_sign_s3(r, sha256_hex(body), settings_.credentials, settings_.region, std::chrono::system_clock::now());
  net::Headers out;
  for (auto& [k, v] : r.headers)
    if (k != "host") out.emplace_back(k, v);  // libcurl sends Host itself, from the URL
  return out;
}

net::HttpResponse S3Client::send(const std::string& method, const S3Uri& uri, const std::string& query,
                                 std::string_view body, net::Headers extra) const {
  const Target t = target(uri, query);
  return net::with_retries(method + " " + uri.str(), retry, [&] {
    net::HttpRequest r;
    r.method = method;
    r.url = t.url;
    r.body = body;
    r.headers = sign(method, t, body, extra);
    return net::http_request(r);
  });
}

void S3Client::raise(const std::string& what, const S3Uri& uri, const net::HttpResponse& r) const {
  std::string code, message;
  if (!r.body.empty() && r.body.find('<') != std::string::npos) {
    try {
      const XmlLeaves x = parse_xml(r.body, uri.str());
      code = leaf(x, "Error/Code");
      message = leaf(x, "Error/Message");
    } catch (const Error&) {
    }
  }
  if (code.empty()) code = r.status == 404 ? "NotFound" : r.status == 403 ? "AccessDenied" : "HTTP " + std::to_string(r.status);
  std::string hint;
  if (code == "AccessDenied" || code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch")
    hint = " (credentials from " + settings_.credentials_source + ")";
  fail("{} s3://{}/{}: {} {}{}: bucket {}, key {}{}", what, uri.bucket, uri.key, r.status, code,
       message.empty() ? "" : " (" + message + ")", uri.bucket, uri.key.empty() ? "(none)" : uri.key, hint);
}

std::optional<S3Object> S3Client::head(const S3Uri& uri) const {
  const net::HttpResponse r = send("HEAD", uri, "");
  if (r.status == 404) return std::nullopt;
  if (!r.ok()) raise("HEAD", uri, r);
  S3Object o{uri.key, unquote(r.header("ETag")), 0};
  try {
    o.size = std::stoull(r.header("Content-Length"));
  } catch (const std::exception&) {
    fail("HEAD {}: no Content-Length in S3's answer", uri.str());
  }
  return o;
}

std::vector<S3Object> S3Client::list(const S3Uri& prefix) const {
  std::vector<S3Object> out;
  std::string token;
  const S3Uri bucket{prefix.bucket, ""};
  for (int page = 0; page < 100000; ++page) {
    std::string query = "list-type=2&prefix=" + net::url_encode(prefix.key, false);
    if (!token.empty()) query = "continuation-token=" + net::url_encode(token, false) + "&" + query;
    const net::HttpResponse r = send("GET", bucket, query);
    if (!r.ok()) raise("list", prefix, r);
    const XmlLeaves x = parse_xml(r.body, prefix.str());
    S3Object current;
    for (const auto& [path, value] : x) {
      if (path == "ListBucketResult/Contents/Key") current.key = value;
      if (path == "ListBucketResult/Contents/ETag") current.etag = unquote(value);
      if (path == "ListBucketResult/Contents/Size") current.size = std::stoull(value.empty() ? "0" : value);
      if (path == "ListBucketResult/Contents") out.push_back(std::exchange(current, {}));
    }
    if (leaf(x, "ListBucketResult/IsTruncated") != "true") return out;
    token = leaf(x, "ListBucketResult/NextContinuationToken");
    if (token.empty()) fail("list {}: a truncated listing without a continuation token", prefix.str());
  }
  fail("list {}: more than 100,000 pages", prefix.str());
}

void S3Client::download(const S3Uri& uri, const std::string& path) const {
  const auto object = head(uri);
  if (!object) fail("download s3://{}/{}: 404 NoSuchKey: bucket {}, key {}", uri.bucket, uri.key, uri.bucket, uri.key);
  fs::create_directories(fs::path(path).parent_path());
  const Target t = target(uri, "");
  net::Download d;
  d.url = t.url;
  d.headers = [&] { return sign("GET", t, ""); };
  d.partial_path = path + ".part";
  d.expected_size = object->size;
  d.follow_redirects = false;
  d.label = "downloading " + uri.str();
  d.quiet = quiet;
  d.retry = retry;
  net::HttpResponse r;
  try {
    r = net::download_resumable(d);
  } catch (const net::TransportError& e) {
    fail("download {}: {} (after {} tries; run again to resume)", uri.str(), e.what(), retry.attempts);
  }
  if (!r.ok()) raise("download", uri, r);
  if (net::file_size_or_zero(d.partial_path) != object->size) {
    fs::remove(d.partial_path);
    fail("download {}: got {} bytes of {}; removed the partial file, run again", uri.str(),
         net::file_size_or_zero(d.partial_path), object->size);
  }
  fs::rename(d.partial_path, path);
}

void S3Client::upload(const std::string& path, const S3Uri& uri) const {
  if (uri.key.empty() || uri.key.back() == '/') fail("upload {}: needs a key, not a prefix", uri.str());
  const std::uint64_t size = fs::file_size(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("upload {}: cannot read {}", uri.str(), path);
  net::TransferProgress progress("uploading " + uri.str(), size, 0, quiet);
  const net::Headers octets{{"content-type", "application/octet-stream"}};
  if (size <= part_size) {
    std::string body(size, '\0');
    in.read(body.data(), static_cast<std::streamsize>(size));
    const net::HttpResponse r = send("PUT", uri, "", body, octets);
    if (!r.ok()) raise("upload", uri, r);
    progress.update(size);
    progress.finish();
    return;
  }
  // Multipart: create, upload each part (retried on its own), complete; abort on failure so no
  // orphaned parts are billed.
  net::HttpResponse r = send("POST", uri, "uploads=", "", octets);
  if (!r.ok()) raise("upload (CreateMultipartUpload)", uri, r);
  const std::string upload_id = leaf(parse_xml(r.body, uri.str()), "InitiateMultipartUploadResult/UploadId");
  if (upload_id.empty()) fail("upload {}: S3 gave no UploadId", uri.str());
  const std::string id_query = "uploadId=" + net::url_encode(upload_id, false);
  try {
    std::string complete = "<CompleteMultipartUpload>";
    std::string part(part_size, '\0');
    std::uint64_t done = 0;
    for (int number = 1; done < size; ++number) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(part_size, size - done));
      in.read(part.data(), static_cast<std::streamsize>(n));
      if (!in) fail("upload {}: reading {} failed", uri.str(), path);
      r = send("PUT", uri, "partNumber=" + std::to_string(number) + "&" + id_query, std::string_view(part.data(), n));
      if (!r.ok()) raise(fmt::format("upload (part {})", number), uri, r);
      complete += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", number, r.header("ETag"));
      done += n;
      progress.update(done);
    }
    complete += "</CompleteMultipartUpload>";
    r = send("POST", uri, id_query, complete, {{"content-type", "application/xml"}});
    // S3 may answer 200 with an <Error> body when completing fails late.
    if (!r.ok() || r.body.find("<Error>") != std::string::npos) raise("upload (CompleteMultipartUpload)", uri, r);
  } catch (...) {
    try {
      send("DELETE", uri, id_query);
    } catch (const std::exception& e) {
      spdlog::warn("upload {}: aborting the multipart upload failed too: {}", uri.str(), e.what());
    }
    throw;
  }
  progress.finish();
}

}  // namespace tuneserve::aws

// AWS SigV4 verification (see sigv4.h): canonical request, HMAC-SHA256 key chain (OpenSSL's
// libcrypto), and the checks of the Authorization header's fields.
#include "aws/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "core/error.h"
#include "core/sha256.h"
#include "net/http.h"

namespace tuneserve::aws {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr auto kMaxSkew = std::chrono::minutes(15);  // what AWS allows

std::string hex(const unsigned char* data, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[data[i] >> 4];
    out[2 * i + 1] = digits[data[i] & 15];
  }
  return out;
}

std::string hmac(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
            data.size(), mac, &n))
    fail("HMAC-SHA256 failed");
  return std::string(reinterpret_cast<const char*>(mac), n);
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string uri_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Header value as signed: leading/trailing spaces removed, inner runs of spaces collapsed to one.
std::string trim_collapse(std::string_view v) {
  std::string out;
  bool space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// "a=1&b=2": each key and value decoded then encoded again, sorted by key then value.
std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> items;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    items.emplace_back(net::url_encode(uri_decode(item.substr(0, eq)), false),
                       eq == std::string_view::npos ? "" : net::url_encode(uri_decode(item.substr(eq + 1)), false));
  }
  std::sort(items.begin(), items.end());
  std::string out;
  for (const auto& [k, v] : items) {
    if (!out.empty()) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

// Values of header `name` (lowercase), trimmed and joined by ',' as AWS signs repeated headers;
// *found says whether the request has the header at all (an empty value is still a value).
std::string header_values(const SignedRequest& request, std::string_view name, bool* found) {
  std::string out;
  *found = false;
  for (const auto& [k, v] : request.headers) {
    if (lower(k) != name) continue;
    if (*found) out += ',';
    out += trim_collapse(v);
    *found = true;
  }
  return out;
}

// The Authorization header's fields: Credential=ID/DATE/REGION/SERVICE/aws4_request,
// SignedHeaders=a;b;c, Signature=hex.
struct AuthFields {
  std::string key_id, date, region, service, terminator;
  std::vector<std::string> signed_headers;
  std::string signature;
};

std::string parse_authorization(std::string_view auth, AuthFields& f) {
  auth.remove_prefix(kAlgorithm.size());
  std::string credential, signed_headers;
  bool have_signature = false;
  while (!auth.empty()) {
    const std::size_t comma = auth.find(',');
    std::string field = trim_collapse(auth.substr(0, comma));
    auth = comma == std::string_view::npos ? std::string_view{} : auth.substr(comma + 1);
    const std::size_t eq = field.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = field.substr(0, eq), value = field.substr(eq + 1);
    if (key == "Credential") credential = value;
    else if (key == "SignedHeaders") signed_headers = value;
    else if (key == "Signature") f.signature = value, have_signature = true;
  }
  if (credential.empty() || signed_headers.empty() || !have_signature)
    return "the SigV4 Authorization header needs Credential, SignedHeaders and Signature";
  std::vector<std::string> scope;
  for (std::size_t start = 0;;) {
    const std::size_t slash = credential.find('/', start);
    scope.push_back(credential.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (scope.size() != 5 || scope[4] != "aws4_request")
    return "Credential must be ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request";
  f.key_id = scope[0];
  f.date = scope[1];
  f.region = scope[2];
  f.service = scope[3];
  f.terminator = scope[4];
  for (std::size_t start = 0;;) {
    const std::size_t semi = signed_headers.find(';', start);
    f.signed_headers.push_back(lower(signed_headers.substr(start, semi == std::string::npos ? std::string::npos : semi - start)));
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  return "";
}

// "YYYYMMDDTHHMMSSZ" -> time point; false when malformed.
bool parse_amz_date(std::string_view s, std::chrono::system_clock::time_point* out) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return false;
  for (std::size_t i = 0; i < 15; ++i)
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  auto num = [&](std::size_t at, std::size_t n) { return std::stoi(std::string(s.substr(at, n))); };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  tm.tm_hour = num(9, 2);
  tm.tm_min = num(11, 2);
  tm.tm_sec = num(13, 2);
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
    return false;
  *out = std::chrono::system_clock::from_time_t(timegm(&tm));
  return true;
}

}  // namespace

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (b.empty()) return false;
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % b.size()]);
  return diff == 0;
}

SigV4Credentials parse_sigv4_credentials(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size())
    fail("SigV4 credentials must be ACCESS_KEY_ID:SECRET_ACCESS_KEY (both non-empty)");
  return {std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

bool is_sigv4(std::string_view authorization) {
  return authorization.size() > kAlgorithm.size() && authorization.starts_with(kAlgorithm) &&
         authorization[kAlgorithm.size()] == ' ';
}

std::string sigv4_canonical_request(const SignedRequest& request, const std::vector<std::string>& signed_headers,
                                    PathEncoding path_encoding) {
  const std::size_t q = request.target.find('?');
  const std::string_view path = request.target.substr(0, q);
  const std::string_view query = q == std::string_view::npos ? std::string_view{} : request.target.substr(q + 1);
  std::string out;
  out += request.method;
  out += '\n';
  out += path_encoding == PathEncoding::AsSent ? std::string(path.empty() ? "/" : path)
                                               : net::url_encode(path.empty() ? "/" : path, true);
  out += '\n';
  out += canonical_query(query);
  out += '\n';
  for (const std::string& name : signed_headers) {
    bool found = false;
    out += name;
    out += ':';
    out += header_values(request, name, &found);
    out += '\n';
  }
  out += '\n';
  for (std::size_t i = 0; i < signed_headers.size(); ++i) {
    if (i) out += ';';
    out += signed_headers[i];
  }
  out += '\n';
  bool found = false;
  const std::string payload = header_values(request, "x-amz-content-sha256", &found);
  out += found ? payload : sha256_hex(request.body);
  return out;
}

std::string sigv4_string_to_sign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request) {
  return std::string(kAlgorithm) + "\n" + std::string(amz_date) + "\n" + std::string(scope) + "\n" +
         sha256_hex(canonical_request);
}

std::string sigv4_signature(std::string_view secret, std::string_view date, std::string_view region,
                            std::string_view service, std::string_view string_to_sign) {
  std::string key = hmac("AWS4" + std::string(secret), date);
  key = hmac(key, region);
  key = hmac(key, service);
  key = hmac(key, "aws4_request");
  const std::string mac = hmac(key, string_to_sign);
  return hex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
}

void sigv4_sign_s3(SignedRequest& request, std::string_view payload_sha256, const SigV4Credentials& credentials,
                   std::string_view region, std::chrono::system_clock::time_point now) {
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char amz_date[17];
  std::strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", &tm);
  const std::string date(amz_date, 8);
  request.headers.emplace_back("x-amz-date", amz_date);
  request.headers.emplace_back("x-amz-content-sha256", std::string(payload_sha256));
  if (!credentials.session_token.empty()) request.headers.emplace_back("x-amz-security-token", credentials.session_token);
  std::vector<std::string> names;
  for (const auto& [k, v] : request.headers) names.push_back(lower(k));
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  const std::string canonical = sigv4_canonical_request(request, names, PathEncoding::AsSent);
  const std::string scope = date + "/" + std::string(region) + "/s3/aws4_request";
  const std::string signature =
      sigv4_signature(credentials.secret_access_key, date, region, "s3", sigv4_string_to_sign(amz_date, scope, canonical));
  std::string signed_names;
  for (const auto& n : names) signed_names += (signed_names.empty() ? "" : ";") + n;
  request.headers.emplace_back("Authorization", std::string(kAlgorithm) + " Credential=" + credentials.access_key_id + "/" +
                                                    scope + ", SignedHeaders=" + signed_names + ", Signature=" + signature);
}

std::string sigv4_verify(const SigV4Credentials& credentials, const SignedRequest& request,
                         std::chrono::system_clock::time_point now) {
  bool found = false;
  const std::string authorization = header_values(request, "authorization", &found);
  if (!found || !is_sigv4(authorization)) return "not a SigV4 request (Authorization: AWS4-HMAC-SHA256 ...)";
  AuthFields f;
  if (std::string why = parse_authorization(authorization, f); !why.empty()) return why;
  if (!constant_time_equal(f.key_id, credentials.access_key_id))
    return "unknown access key id \"" + f.key_id + "\"";
  for (const char* needed : {"host", "x-amz-date"})
    if (std::find(f.signed_headers.begin(), f.signed_headers.end(), needed) == f.signed_headers.end())
      return std::string("SignedHeaders must include ") + needed;
  const std::string amz_date = header_values(request, "x-amz-date", &found);
  std::chrono::system_clock::time_point when;
  if (!found || !parse_amz_date(amz_date, &when)) return "X-Amz-Date must be YYYYMMDDTHHMMSSZ";
  if (amz_date.substr(0, 8) != f.date) return "the Credential date does not match X-Amz-Date";
  if (when > now + kMaxSkew || when < now - kMaxSkew)
    return "X-Amz-Date " + amz_date + " is more than 15 minutes from the server's clock";
  for (const std::string& name : f.signed_headers) {
    header_values(request, name, &found);
    if (!found) return "signed header \"" + name + "\" is missing from the request";
  }
  // A client that sends the body's hash signs it; it must be the body's.
  const std::string content_sha = header_values(request, "x-amz-content-sha256", &found);
  if (found && content_sha != sha256_hex(request.body)) return "X-Amz-Content-Sha256 does not match the body";
  const std::string canonical = sigv4_canonical_request(request, f.signed_headers);
  const std::string scope = f.date + "/" + f.region + "/" + f.service + "/" + f.terminator;
  const std::string to_sign = sigv4_string_to_sign(amz_date, scope, canonical);
  const std::string expected = sigv4_signature(credentials.secret_access_key, f.date, f.region, f.service, to_sign);
  if (!constant_time_equal(lower(f.signature), expected))
    return "the signature does not match (check the secret access key; the server signed:\n" + to_sign + ")";
  return "";
}

}  // namespace tuneserve::aws

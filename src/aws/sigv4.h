// AWS Signature Version 4, the one implementation both ways: the server checks requests signed by
// AWS clients (the AWS CLI's `sagemaker-runtime invoke-endpoint`), so an endpoint can demand the
// credentials the client was configured with, as SageMaker would, without contacting AWS (it holds
// the same access key id and secret, recomputes the signature and compares); the S3 client
// (aws/s3.h) signs its requests with the same canonical request, string to sign and key chain.
// (libcurl's CURLOPT_AWS_SIGV4 could sign, but the verifier needs these pieces anyway.)
//
// The canonical request follows AWS's definition (botocore's SigV4Auth; S3Path: S3SigV4Auth):
//   METHOD \n URI-encoded path (other services: encoded again, so "%20" signs as "%2520";
//   S3: the path as sent) \n sorted query \n
//   lowercase "name:value" of each signed header (spaces trimmed and collapsed) \n
//   signed header names \n hex SHA-256 of the body
// string to sign: "AWS4-HMAC-SHA256\n" X-Amz-Date "\n" date/region/service/aws4_request "\n"
// hex SHA-256 of the canonical request; key: HMAC chain "AWS4"+secret -> date -> region ->
// service -> "aws4_request".
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tuneserve::aws {

struct SigV4Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token = {};  // temporary credentials (signed as X-Amz-Security-Token); "" otherwise
  bool empty() const { return access_key_id.empty(); }
};

// a == b in time that depends only on a's length (credential comparisons); false when b is empty.
bool constant_time_equal(std::string_view a, std::string_view b);

// "ID:SECRET" -> credentials; a clear error (Error) naming what is missing.
SigV4Credentials parse_sigv4_credentials(std::string_view text);

// A received request: its method, raw request-target ("/path?query" as sent), every header (names
// in any case; repeated names allowed) and body.
struct SignedRequest {
  std::string_view method;
  std::string_view target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view body;
};

// True when `authorization` is a SigV4 Authorization header ("AWS4-HMAC-SHA256 ...").
bool is_sigv4(std::string_view authorization);

enum class PathEncoding { Twice, AsSent };  // services other than S3 | S3

// The canonical request of `request` for the given signed header names (lowercase, in the order of
// the SignedHeaders field), as AWS defines it (see above); the payload hash is the request's
// X-Amz-Content-Sha256 when it has one, else the body's. Exposed for tests.
std::string sigv4_canonical_request(const SignedRequest& request, const std::vector<std::string>& signed_headers,
                                    PathEncoding path = PathEncoding::Twice);

// "AWS4-HMAC-SHA256\n" amz_date "\n" scope "\n" hex SHA-256 of the canonical request.
std::string sigv4_string_to_sign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request);

// Hex HMAC-SHA256 signature of `string_to_sign` under the key derived from `secret` for
// date (YYYYMMDD), region and service.
std::string sigv4_signature(std::string_view secret, std::string_view date, std::string_view region,
                            std::string_view service, std::string_view string_to_sign);

// Signs an S3 request: adds X-Amz-Date, X-Amz-Content-Sha256 (`payload_sha256`, hex), the session
// token when there is one, then Authorization over every header in `request.headers` (which must
// hold Host). `target` is the URI-encoded path and query as sent.
void sigv4_sign_s3(SignedRequest& request, std::string_view payload_sha256, const SigV4Credentials& credentials,
                   std::string_view region, std::chrono::system_clock::time_point now);

// Checks the request's SigV4 Authorization header against `credentials`: the access key id, the
// signature, the credential scope's date against X-Amz-Date, and X-Amz-Date within 15 minutes of
// `now`. Returns an empty string when valid, else why not (safe to show the client: never the
// secret or the expected signature).
std::string sigv4_verify(const SigV4Credentials& credentials, const SignedRequest& request,
                         std::chrono::system_clock::time_point now);

}  // namespace tuneserve::aws

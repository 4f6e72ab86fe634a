// SigV4 verification against signatures made by botocore (the AWS CLI's signer, an independent
// implementation): AWS's published "get-vanilla" example, an invoke-endpoint request, and a request
// with an encoded path, an unsorted query and untidy header whitespace.
#include "aws/sigv4.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/sha256.h"
#include "test_util.h"

namespace tuneserve::aws {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

const SigV4Credentials kExample{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"};

std::chrono::system_clock::time_point at(int year, int mon, int day, int h, int m, int s) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = s;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string auth(const std::string& scope, const std::string& signed_headers, const std::string& signature) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/" + scope + ", SignedHeaders=" + signed_headers +
         ", Signature=" + signature;
}

// `request` with its Authorization header added.
SignedRequest with_authorization(SignedRequest request, const std::string& authorization) {
  request.headers.emplace_back("Authorization", authorization);
  return request;
}

// botocore: POST http://127.0.0.1:8080/endpoints/my-endpoint/invocations, service sagemaker.
SignedRequest invoke_endpoint(const std::string& authorization) {
  return {"POST",
          "/endpoints/my-endpoint/invocations",
          {{"Content-Type", "application/json"},
           {"Accept", "application/json"},
           {"Host", "127.0.0.1:8080"},
           {"X-Amz-Date", "20261126T130000Z"},
           {"Authorization", authorization}},
          R"({"inputs":"Terrible, it broke."})"};
}

const std::string kInvokeSignature = "7068b9388e7e443f99a0df9ad43d3beda7bd65426126c4809580fd2893fd2d52";
const std::string kInvokeAuth =
    auth("20261126/us-east-1/sagemaker/aws4_request", "accept;content-type;host;x-amz-date", kInvokeSignature);
const auto kInvokeTime = at(2026, 11, 26, 13, 0, 0);

TEST(SigV4, AwsGetVanillaExample) {
  const SignedRequest r{"GET", "/", {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}}, ""};
  EXPECT_EQ(sigv4_canonical_request(r, {"host", "x-amz-date"}),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const SignedRequest signed_request = with_authorization(
      r, auth("20150830/us-east-1/service/aws4_request", "host;x-amz-date",
              "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
  EXPECT_EQ(sigv4_verify(kExample, signed_request, at(2015, 8, 30, 12, 36, 0)), "");
}

TEST(SigV4, InvokeEndpointAsTheAwsCliSignsIt) {
  EXPECT_EQ(sigv4_verify(kExample, invoke_endpoint(kInvokeAuth), kInvokeTime), "");
  EXPECT_EQ(sigv4_verify(kExample, invoke_endpoint(kInvokeAuth), kInvokeTime + 14min), "");
}

TEST(SigV4, EncodedPathSortedQueryAndHeaderWhitespace) {
  const SignedRequest r{"POST",
                        "/endpoints/my%20end/invocations?b=2&a=1%2F",
                        {{"Content-Type", "application/json"},
                         {"X-Custom", "  a   b  "},
                         {"Host", "127.0.0.1:8080"},
                         {"X-Amz-Date", "20261126T130000Z"}},
                        "{}"};
  const std::vector<std::string> names = {"content-type", "host", "x-amz-date", "x-custom"};
  EXPECT_EQ(sigv4_canonical_request(r, names),
            "POST\n/endpoints/my%2520end/invocations\na=1%2F&b=2\ncontent-type:application/json\n"
            "host:127.0.0.1:8080\nx-amz-date:20261126T130000Z\nx-custom:a b\n\n"
            "content-type;host;x-amz-date;x-custom\n"
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  const SignedRequest signed_request = with_authorization(
      r, auth("20261126/us-east-1/sagemaker/aws4_request", "content-type;host;x-amz-date;x-custom",
              "9749be513b8ce95826af9ff74e16c75bbd2cfa9cd2b0a9e13a64b035cce8acfa"));
  EXPECT_EQ(sigv4_verify(kExample, signed_request, kInvokeTime), "");
}

TEST(SigV4, RejectsWhatDoesNotMatch) {
  EXPECT_THAT(sigv4_verify({"AKIDEXAMPLE", "another secret"}, invoke_endpoint(kInvokeAuth), kInvokeTime),
              HasSubstr("signature does not match"));
  EXPECT_THAT(sigv4_verify({"SOMEONEELSE", kExample.secret_access_key}, invoke_endpoint(kInvokeAuth), kInvokeTime),
              HasSubstr("unknown access key id \"AKIDEXAMPLE\""));
  SignedRequest tampered = invoke_endpoint(kInvokeAuth);
  tampered.body = R"({"inputs":"Great, it works."})";
  EXPECT_THAT(sigv4_verify(kExample, tampered, kInvokeTime), HasSubstr("signature does not match"));
  tampered = invoke_endpoint(kInvokeAuth);
  tampered.target = "/endpoints/other/invocations";
  EXPECT_THAT(sigv4_verify(kExample, tampered, kInvokeTime), HasSubstr("signature does not match"));
  EXPECT_THAT(sigv4_verify(kExample, invoke_endpoint(kInvokeAuth), kInvokeTime + 16min),
              HasSubstr("more than 15 minutes"));
  EXPECT_THAT(sigv4_verify(kExample, invoke_endpoint(kInvokeAuth), kInvokeTime - 16min),
              HasSubstr("more than 15 minutes"));
  const std::string bad_sig = kInvokeAuth.substr(0, kInvokeAuth.size() - 1) + "0";
  EXPECT_THAT(sigv4_verify(kExample, invoke_endpoint(bad_sig), kInvokeTime), HasSubstr("signature does not match"));
  EXPECT_THAT(sigv4_verify(kExample, invoke_endpoint("AWS4-HMAC-SHA256 Signature=abc"), kInvokeTime),
              HasSubstr("needs Credential, SignedHeaders and Signature"));
  EXPECT_THAT(sigv4_verify(kExample,
                           invoke_endpoint(auth("20261126/us-east-1/sagemaker/aws4_request", "accept;content-type",
                                                kInvokeSignature)),
                           kInvokeTime),
              HasSubstr("SignedHeaders must include host"));
  EXPECT_THAT(sigv4_verify(kExample,
                           invoke_endpoint(auth("20261125/us-east-1/sagemaker/aws4_request",
                                                "accept;content-type;host;x-amz-date", kInvokeSignature)),
                           kInvokeTime),
              HasSubstr("Credential date does not match X-Amz-Date"));
  EXPECT_THAT(sigv4_verify(kExample, invoke_endpoint("Bearer abc"), kInvokeTime), HasSubstr("not a SigV4 request"));
}

TEST(SigV4, CredentialsFlag) {
  const SigV4Credentials c = parse_sigv4_credentials("AKID:se/cr+et");
  EXPECT_EQ(c.access_key_id, "AKID");
  EXPECT_EQ(c.secret_access_key, "se/cr+et");
  for (const char* bad : {"", "AKID", "AKID:", ":secret"})
    EXPECT_THAT(testing::error_of([&] { parse_sigv4_credentials(bad); }), HasSubstr("ACCESS_KEY_ID:SECRET_ACCESS_KEY"))
        << bad;
}

TEST(SigV4, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("sekrit", "sekrit"));
  EXPECT_FALSE(constant_time_equal("sekri", "sekrit"));
  EXPECT_FALSE(constant_time_equal("sekrit!", "sekrit"));
  EXPECT_FALSE(constant_time_equal("", ""));
}

// S3 signing: AWS's published GetObject example (S3 documentation, "Example: GET Object").
TEST(SigV4, SignsAwsS3GetObjectExample) {
  SignedRequest r{"GET", "/test.txt", {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}}, ""};
  const SigV4Credentials key{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  sigv4_sign_s3(r, sha256_hex(""), key, "us-east-1", at(2013, 5, 24, 0, 0, 0));
  EXPECT_EQ(r.headers.back().second,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  // The verifier accepts what the signer made (one implementation both ways).
  EXPECT_EQ(sigv4_verify(key, r, at(2013, 5, 24, 0, 5, 0)), "");
}

// botocore's S3SigV4Auth on an UploadPart with an encoded key, a query and a session token.
TEST(SigV4, SignsLikeBotocoreS3WithSessionToken) {
  SignedRequest r{"PUT",
                  "/my-bucket/data/my%20file%2Bx.jsonl?partNumber=2&uploadId=abc",
                  {{"Content-Type", "application/octet-stream"}, {"Host", "127.0.0.1:5000"}},
                  "hello"};
  sigv4_sign_s3(r, sha256_hex("hello"), {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token-x"},
                "us-east-1", at(2026, 12, 6, 3, 9, 50));
  EXPECT_EQ(r.headers.back().second,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261206/us-east-1/s3/aws4_request, "
            "SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "
            "Signature=dee25a531782c4c25fbdb1b1028d877820be16b4e6a345f528be0bb12ca6a273");
}

}  // namespace
}  // namespace tuneserve::aws

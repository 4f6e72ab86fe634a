// S3 against a real S3 protocol server started here (moto: `python3 -m moto.server`), with AWS's
// own CLI putting the inputs in and taking the outputs out: the S3 client (download, listing,
// single and multipart upload, errors naming bucket and key), the credential chain, model.tar.gz
// packing and its hostile-archive checks, and the issue's end-to-end job: data in S3 -> train
// --output-dir s3:// -> serve --model s3://.../model.tar.gz answering /invocations.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "aws/credentials.h"
#include "aws/s3.h"
#include "background_process.h"
#include "serve/http_client.h"
#include "storage/archive.h"
#include "test_util.h"

namespace tuneserve::aws {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using tuneserve::testing::BackgroundProcess;
using tuneserve::testing::error_of;
using tuneserve::testing::run_command;
using tuneserve::testing::shared_path;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class S3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string out;
    if (run_command("python3 -c 'import moto.server'", out) != 0) {
      why_ = "moto's server is missing from python3 (scripts/setup.sh installs it where pip can): " + out;
      return;
    }
    if (run_command("command -v aws", out) != 0) {
      why_ = "the AWS CLI is missing (Debian awscli)";
      return;
    }
    root_ = fs::temp_directory_path() / fmt::format("tuneserve-s3-test-{}", ::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
    const int port = tuneserve::testing::free_port();
    moto_ = std::make_unique<BackgroundProcess>(fmt::format("python3 -m moto.server -p {}", port), (root_ / "moto.log").string());
    if (!tuneserve::testing::wait_for_port(port, std::chrono::seconds(60))) {
      why_ = "moto's server did not start: " + moto_->log();
      return;
    }
    endpoint_ = "http://127.0.0.1:" + std::to_string(port);
    env_ = fmt::format("AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1 "
                       "AWS_ENDPOINT_URL={} TUNESERVE_CACHE={} ",
                       endpoint_, (root_ / "cache").string());
    if (run_command(env_ + "aws s3 mb s3://bucket", out) != 0) why_ = "aws s3 mb failed: " + out;
  }
  static void TearDownTestSuite() {
    moto_.reset();
    if (!root_.empty()) fs::remove_all(root_);
  }
  void SetUp() override {
    if (!why_.empty()) GTEST_SKIP() << why_;
  }
  static S3Client client() {
    AwsSettings s;
    s.credentials = {"test", "test"};
    s.endpoint = endpoint_;
    S3Client c(s);
    c.quiet = true;
    c.retry.base = std::chrono::milliseconds(10);
    return c;
  }
  static int aws(const std::string& args, std::string& out) { return run_command(env_ + "aws " + args, out); }
  static std::string random_file(const std::string& name, std::size_t size) {
    std::mt19937_64 rng(size);
    std::string data(size, '\0');
    for (auto& c : data) c = static_cast<char>(rng());
    std::ofstream(root_ / name, std::ios::binary) << data;
    return (root_ / name).string();
  }

  static inline fs::path root_;
  static inline std::unique_ptr<BackgroundProcess> moto_;
  static inline std::string endpoint_, env_, why_;
};

TEST(S3Uri, Parses) {
  EXPECT_EQ(S3Uri::parse("s3://b/a/key.txt").key, "a/key.txt");
  EXPECT_EQ(S3Uri::parse("s3://b").key, "");
  EXPECT_THAT(error_of([] { S3Uri::parse("s3:///k"); }), HasSubstr("bucket name is empty"));
  EXPECT_THAT(error_of([] { S3Uri::parse("s3://b@d/k"); }), HasSubstr("not a valid bucket name"));
}

TEST(AwsSettings, CredentialChainProfilesRegionEndpoint) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("tuneserve-aws-settings-{}", ::getpid());
  fs::create_directories(dir);
  std::ofstream(dir / "credentials") << "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n"
                                        "# a comment\n[prod]\naws_access_key_id=PROD\naws_secret_access_key=prodsecret\n"
                                        "aws_session_token = tok\n";
  std::ofstream(dir / "config") << "[profile prod]\nregion = eu-west-3\n";
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"})
    ::unsetenv(v);
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", (dir / "credentials").c_str(), 1);
  ::setenv("AWS_CONFIG_FILE", (dir / "config").c_str(), 1);
  AwsSettings s = AwsSettings::from_env();
  EXPECT_EQ(s.credentials.access_key_id, "DEF");
  EXPECT_EQ(s.region, "us-east-1");
  EXPECT_EQ(s.endpoint, "");
  ::setenv("AWS_PROFILE", "prod", 1);
  s = AwsSettings::from_env();
  EXPECT_EQ(s.credentials.access_key_id, "PROD");
  EXPECT_EQ(s.credentials.session_token, "tok");
  EXPECT_EQ(s.region, "eu-west-3");
  EXPECT_THAT(s.credentials_source, HasSubstr("[prod]"));
  ::setenv("AWS_ACCESS_KEY_ID", "ENV", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  ::setenv("AWS_REGION", "ap-south-1", 1);
  ::setenv("AWS_ENDPOINT_URL", "http://a:1/", 1);
  ::setenv("AWS_ENDPOINT_URL_S3", "http://s3only:2", 1);
  s = AwsSettings::from_env();
  EXPECT_EQ(s.credentials.access_key_id, "ENV");
  EXPECT_EQ(s.region, "ap-south-1");
  EXPECT_EQ(s.endpoint, "http://s3only:2");
  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL",
                        "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"})
    ::unsetenv(v);
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", (dir / "none").c_str(), 1);
  ::setenv("AWS_CONFIG_FILE", (dir / "none").c_str(), 1);
  EXPECT_THAT(error_of([] { AwsSettings::from_env(); }), HasSubstr("no AWS credentials: set AWS_ACCESS_KEY_ID"));
  // The container endpoint SageMaker jobs get, with its authorization token.
  const int port = tuneserve::testing::free_port();
  BackgroundProcess endpoint(
      fmt::format("python3 -c \"import http.server as h, json\n"
                  "class C(h.BaseHTTPRequestHandler):\n"
                  "    def do_GET(self):\n"
                  "        ok = self.path == '/creds' and self.headers.get('Authorization') == 'tok123'\n"
                  "        b = json.dumps({{'AccessKeyId': 'ASIA1', 'SecretAccessKey': 's', 'Token': 'sess'}}).encode()\n"
                  "        self.send_response(200 if ok else 401); self.send_header('Content-Length', str(len(b))); self.end_headers()\n"
                  "        self.wfile.write(b)\n"
                  "h.HTTPServer(('127.0.0.1', {}), C).serve_forever()\"",
                  port),
      (dir / "creds.log").string());
  ASSERT_TRUE(tuneserve::testing::wait_for_port(port, std::chrono::seconds(20))) << endpoint.log();
  ::setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", fmt::format("http://127.0.0.1:{}/creds", port).c_str(), 1);
  ::setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok123", 1);
  s = AwsSettings::from_env();
  EXPECT_EQ(s.credentials.access_key_id, "ASIA1");
  EXPECT_EQ(s.credentials.session_token, "sess");
  ::setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong", 1);
  EXPECT_THAT(error_of([] { AwsSettings::from_env(); }), HasSubstr("HTTP 401"));
  ::unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  ::unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
  ::unsetenv("AWS_SHARED_CREDENTIALS_FILE");
  ::unsetenv("AWS_CONFIG_FILE");
  fs::remove_all(dir);
}

// One test for the client's round trips (each test process starts its own moto, ~15 s).
TEST_F(S3Test, ClientRoundTripsWithTheAwsCliAndNamesBucketAndKeyInErrors) {
  const std::string file = random_file("input.bin", 3'000'000);
  std::string out;
  ASSERT_EQ(aws("s3 cp " + file + " 's3://bucket/in/a file+1.bin'", out), 0) << out;
  S3Client s3 = client();
  const auto head = s3.head(S3Uri::parse("s3://bucket/in/a file+1.bin"));
  ASSERT_TRUE(head);
  EXPECT_EQ(head->size, 3'000'000u);
  s3.download(S3Uri::parse("s3://bucket/in/a file+1.bin"), (root_ / "got.bin").string());
  EXPECT_EQ(read_file(root_ / "got.bin"), read_file(file));
  const auto listed = s3.list(S3Uri::parse("s3://bucket/in/"));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].key, "in/a file+1.bin");

  // Uploads the AWS CLI reads back.
  s3.part_size = 5u << 20;  // S3's smallest part: 12 MB goes up in three parts
  for (const auto& [name, size] : {std::pair<const char*, std::size_t>{"small.bin", 1000}, {"large.bin", 12'000'000}}) {
    const std::string sent = random_file(name, size);
    s3.upload(sent, S3Uri::parse(std::string("s3://bucket/out/") + name));
    const std::string back = (root_ / (std::string("back-") + name)).string();
    ASSERT_EQ(aws(std::string("s3 cp s3://bucket/out/") + name + " " + back, out), 0) << out;
    EXPECT_EQ(read_file(back), read_file(sent)) << name;
  }
  ASSERT_EQ(aws("s3api head-object --bucket bucket --key out/large.bin", out), 0) << out;
  EXPECT_THAT(out, HasSubstr("-3\\\""));  // a multipart ETag: "<md5 of part md5s>-3"

  // Errors name the bucket and the key.
  EXPECT_THAT(error_of([&] { s3.download(S3Uri::parse("s3://bucket/missing.txt"), (root_ / "x").string()); }),
              ::testing::AllOf(HasSubstr("404"), HasSubstr("bucket bucket, key missing.txt")));
  EXPECT_THAT(error_of([&] { s3.list(S3Uri::parse("s3://no-such-bucket/data/")); }),
              ::testing::AllOf(HasSubstr("NoSuchBucket"), HasSubstr("bucket no-such-bucket, key data/")));
  EXPECT_EQ(run_command(env_ + TUNESERVE_BINARY + " predict --model s3://bucket/nothing/model.tar.gz hi", out), 1);
  EXPECT_THAT(out, HasSubstr("bucket bucket, key nothing/model.tar.gz"));
  // Access denied, as S3 answers it (moto enforces no IAM policy without a whole IAM setup; this
  // stand-in sends S3's own 403 document to every request).
  const int port = tuneserve::testing::free_port();
  BackgroundProcess denier(
      fmt::format("python3 -c \"import http.server as h\n"
                  "class D(h.BaseHTTPRequestHandler):\n"
                  "    def answer(self):\n"
                  "        b = b'<?xml version=\\\"1.0\\\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>'\n"
                  "        self.send_response(403); self.send_header('Content-Length', str(len(b))); self.end_headers()\n"
                  "        self.wfile.write(b) if self.command != 'HEAD' else None\n"
                  "    do_GET = do_HEAD = do_PUT = do_POST = answer\n"
                  "h.HTTPServer(('127.0.0.1', {}), D).serve_forever()\"",
                  port),
      (root_ / "denier.log").string());
  ASSERT_TRUE(tuneserve::testing::wait_for_port(port, std::chrono::seconds(20))) << denier.log();
  AwsSettings settings;
  settings.credentials = {"test", "test"};
  settings.credentials_source = "AWS_ACCESS_KEY_ID";
  settings.endpoint = "http://127.0.0.1:" + std::to_string(port);
  S3Client denied(settings);
  denied.quiet = true;
  EXPECT_THAT(error_of([&] { denied.list(S3Uri::parse("s3://private-bucket/data/")); }),
              ::testing::AllOf(HasSubstr("403 AccessDenied (Access Denied)"),
                               HasSubstr("bucket private-bucket, key data/"), HasSubstr("credentials from AWS_ACCESS_KEY_ID")));
  EXPECT_THAT(error_of([&] { denied.upload((root_ / "input.bin").string(), S3Uri::parse("s3://private-bucket/k.bin")); }),
              ::testing::AllOf(HasSubstr("403 AccessDenied"), HasSubstr("bucket private-bucket, key k.bin")));
}

// Hostile archives: absolute paths, "..", links leaving the folder, devices, and size limits.
TEST(ModelArchive, HostileArchivesAreRefused) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("tuneserve-archive-{}", ::getpid());
  fs::remove_all(dir);
  fs::create_directories(dir / "src");
  std::ofstream(dir / "src/config.json") << "{}";
  std::string out;
  const std::string py = fmt::format(
      "cd {} && python3 -c \"import tarfile, io\n"
      "def make(name, members):\n"
      "    with tarfile.open(name, 'w:gz') as t:\n"
      "        for m, data in members:\n"
      "            t.addfile(m, io.BytesIO(data) if data is not None else None)\n"
      "def f(n, data=b'x'):\n"
      "    i = tarfile.TarInfo(n); i.size = len(data); return (i, data)\n"
      "def l(n, target, kind=tarfile.SYMTYPE):\n"
      "    i = tarfile.TarInfo(n); i.type = kind; i.linkname = target; return (i, None)\n"
      "make('abs.tar.gz', [f('/etc/evil')])\n"
      "make('dotdot.tar.gz', [f('config.json'), f('a/../../evil')])\n"
      "make('symlink.tar.gz', [f('config.json'), l('model.safetensors', '../../../etc/passwd')])\n"
      "make('abslink.tar.gz', [f('config.json'), l('x', '/etc/passwd')])\n"
      "make('hardlink.tar.gz', [f('config.json'), l('x', '../outside', tarfile.LNKTYPE)])\n"
      "d = tarfile.TarInfo('dev'); d.type = tarfile.CHRTYPE\n"
      "make('device.tar.gz', [f('config.json'), (d, None)])\n"
      "make('big.tar.gz', [f('config.json'), f('model.safetensors', bytes(4096))])\n"
      "make('inside.tar.gz', [f('config.json'), f('sub/w.bin'), l('w', 'sub/w.bin')])\n"
      "make('nested.tar.gz', [f('model/config.json')])\n"
      "open('garbage.tar.gz', 'wb').write(b'not an archive')\"",
      dir.string());
  ASSERT_EQ(run_command(py, out), 0) << out;
  const std::string cache = (dir / "cache").string();
  const std::pair<const char*, const char*> refused[] = {
      {"abs.tar.gz", "leaving the folder"},      {"dotdot.tar.gz", "leaving the folder"},
      {"symlink.tar.gz", "a link that leaves"},  {"abslink.tar.gz", "a link that leaves"},
      {"hardlink.tar.gz", "a link that leaves"}, {"device.tar.gz", "not a file, folder or link"},
      {"garbage.tar.gz", "refused"}};
  for (const auto& [name, why] : refused) {
    EXPECT_THAT(error_of([&] { storage::unpack_model_archive((dir / name).string(), cache); }),
                ::testing::AllOf(HasSubstr(name), HasSubstr(why)))
        << name;
  }
  ::setenv("TUNESERVE_MAX_ARCHIVE_BYTES", "1000", 1);
  EXPECT_THAT(error_of([&] { storage::unpack_model_archive((dir / "big.tar.gz").string(), cache); }),
              HasSubstr("TUNESERVE_MAX_ARCHIVE_BYTES"));
  ::unsetenv("TUNESERVE_MAX_ARCHIVE_BYTES");
  // Nothing refused was left in the cache; links inside the folder and a folder at the root are fine.
  EXPECT_FALSE(fs::exists(dir / "cache/models") && !fs::is_empty(dir / "cache/models"));
  const std::string inside = storage::unpack_model_archive((dir / "inside.tar.gz").string(), cache);
  EXPECT_EQ(read_file(fs::path(inside) / "w"), "x");
  EXPECT_TRUE(storage::unpack_model_archive((dir / "nested.tar.gz").string(), cache).ends_with("/model"));
  // Packing: the files at the root, no checkpoints, no archive in the archive.
  fs::create_directories(dir / "src/checkpoint-5");
  std::ofstream(dir / "src/checkpoint-5/x") << "x";
  std::ofstream(dir / "src/model.tar.gz") << "old";
  storage::pack_model_dir((dir / "src").string(), (dir / "src/model.tar.gz").string());
  ASSERT_EQ(run_command("tar tzf " + (dir / "src/model.tar.gz").string(), out), 0);
  EXPECT_EQ(out, "config.json\n");
  fs::remove_all(dir);
}

// The issue's "done when": aws s3 cp data into S3 -> train --train s3:// --output-dir s3:// ->
// serve --model s3://.../model.tar.gz answers /invocations; the AWS CLI fetches the artifact.
TEST_F(S3Test, TrainFromS3ToS3ThenServeTheArchive) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  {
    std::ifstream in(shared_path("data/amazon_polarity/train.jsonl"));
    std::ofstream train(root_ / "train.jsonl"), test(root_ / "test.jsonl");
    std::string line;
    for (int i = 0; i < 96 && std::getline(in, line); ++i) (i < 64 ? train : test) << line << "\n";
  }
  std::string out;
  ASSERT_EQ(aws("s3 cp " + (root_ / "train.jsonl").string() + " s3://bucket/job/data/train/train.jsonl", out), 0) << out;
  ASSERT_EQ(aws("s3 cp " + (root_ / "test.jsonl").string() + " s3://bucket/job/data/test.jsonl", out), 0) << out;
  ASSERT_EQ(run_command(env_ + fmt::format("{} train --model {} --tokenizer {} --train s3://bucket/job/data/train/ "
                                           "--test s3://bucket/job/data/test.jsonl --text content --label label "
                                           "--max-steps 4 --save-strategy no --output-dir s3://bucket/job/output",
                                           TUNESERVE_BINARY, shared_path("models/distilbert-tiny-init"),
                                           shared_path("tokenizers/bert-base-cased")),
                        out),
            0)
      << out;
  EXPECT_THAT(out, HasSubstr("model archive: s3://bucket/job/output/model.tar.gz"));
  ASSERT_EQ(aws("s3 cp s3://bucket/job/output/model.tar.gz " + (root_ / "model.tar.gz").string(), out), 0) << out;
  ASSERT_EQ(run_command("tar tzf " + (root_ / "model.tar.gz").string(), out), 0);
  for (const char* f : {"config.json\n", "model.safetensors\n", "tokenizer.json\n", "eval_results.json\n"})
    EXPECT_THAT(out, HasSubstr(f));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("/")));  // files at the archive root
  ASSERT_EQ(aws("s3 cp s3://bucket/job/output/eval_results.json -", out), 0) << out;
  EXPECT_THAT(out, HasSubstr("eval_accuracy"));

  const int port = tuneserve::testing::free_port();
  BackgroundProcess serve("env " + env_ + fmt::format("{} serve --model s3://bucket/job/output/model.tar.gz --port {}",
                                             TUNESERVE_BINARY, port),
                          (root_ / "serve.log").string());
  ASSERT_TRUE(serve.wait_for_line("(loaded on)", std::chrono::seconds(60))) << serve.log();
  const auto answer = tuneserve::testing::http_request(port, "POST", "/invocations", R"({"inputs": "I love it"})",
                                                       {{"Content-Type", "application/json"}});
  EXPECT_EQ(answer.status, 200) << answer.body;
  // The same answer as predict on the model the job left in its staging folder.
  ASSERT_EQ(run_command(env_ + fmt::format("{} predict --model s3://bucket/job/output/model.tar.gz 'I love it' 2>/dev/null",
                                           TUNESERVE_BINARY),
                        out),
            0);
  EXPECT_EQ(answer.body + "\n", out);
}

}  // namespace
}  // namespace tuneserve::aws

// End to end: the real `tuneserve serve` binary with the tiny DistilBERT on loopback, driven by
// curl, the AWS CLI (v1 on PATH and Debian's v2) and @huggingface/inference (npm-installed into
// the build folder by this test's setup). Answers are checked against `tuneserve predict` (the
// pipeline tested against transformers) and a batched run against single requests.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/cpus.h"
#include "serve/http_client.h"
#include "test_util.h"

namespace tuneserve::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using testing::binary_path;
using testing::http_request;
using testing::shared_path;

const char* kModel = "models/distilbert-tiny-init";
const char* kTokenizer = "tokenizers/bert-base-cased";

struct Shell {
  int status = -1;
  std::string out;
};

// Runs a shell command, capturing stdout (stderr goes to the test log).
Shell sh(const std::string& command) {
  Shell r;
  FILE* p = popen(command.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int rc = pclose(p);
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

bool have(const std::string& tool) { return sh("command -v " + tool + " >/dev/null 2>&1").status == 0; }

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The server as a child process; the first stdout line says its port.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {binary_path(), "serve", "--model", shared_path(kModel),
                                      "--tokenizer", shared_path(kTokenizer), "--host", "127.0.0.1",
                                      "--port", "0", "--threads", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    stdout_ = fdopen(out[0], "r");
    port_ = read_port();
    // With a management API, the second line says its port.
    if (std::find(extra.begin(), extra.end(), "--management-port") != extra.end()) management_port_ = read_port();
  }
  ~ServerProcess() {
    if (pid_ > 0 && !reaped_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (stdout_) fclose(stdout_);
  }
  int port() const { return port_; }
  int management_port() const { return management_port_; }
  // Resident memory of the server process (VmRSS), in MB.
  long rss_mb() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6) / 1024;
    return -1;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  bool wait_ready(std::chrono::seconds timeout = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (port_ > 0 && http_request(port_, "GET", "/ping").status == 200) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  // SIGTERM and the exit status (-1 if it did not exit within the timeout).
  int terminate(std::chrono::seconds timeout = 30s) {
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

 private:
  int read_port() {
    char line[512];
    if (!stdout_ || !fgets(line, sizeof line, stdout_)) return -1;
    const std::string s(line);
    const auto colon = s.rfind(':');
    return colon == std::string::npos ? -1 : std::atoi(s.c_str() + colon + 1);
  }
  pid_t pid_ = -1;
  int port_ = -1;
  int management_port_ = -1;
  FILE* stdout_ = nullptr;
  bool reaped_ = false;
};

// What `tuneserve predict` prints for these arguments: the pipeline's exact return value.
json predicted(const std::string& args) {
  Shell r = sh(binary_path() + " predict --model " + shared_path(kModel) + " --tokenizer " +
             shared_path(kTokenizer) + " --threads 1 " + args);
  EXPECT_EQ(r.status, 0) << r.out;
  return json::parse(r.out);
}

void expect_scores_near(const json& a, const json& b, const std::string& what) {
  ASSERT_EQ(a.type(), b.type()) << what << ": " << a.dump() << " vs " << b.dump();
  if (a.is_array()) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (std::size_t i = 0; i < a.size(); ++i) expect_scores_near(a[i], b[i], what);
    return;
  }
  ASSERT_TRUE(a.is_object()) << what;
  EXPECT_EQ(a["label"], b["label"]) << what;
  EXPECT_NEAR(a["score"].get<double>(), b["score"].get<double>(), 1e-5) << what;
}

class EndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED(kModel);
    TUNESERVE_REQUIRE_SHARED(kTokenizer);
  }
};

// Without --workers, a batching server runs one worker (its pass on every CPU); without batching,
// serve starts one worker per CPU the process may use (core/cpus.h: affinity and cgroup quota), as
// SageMaker's toolkit does; --workers still decides when given.
TEST_F(EndToEnd, WorkersDefaultToOnePassOrOnePerCpu) {
  auto workers_of = [](ServerProcess& server, int want) {
    int seen = -1;
    for (int i = 0; i < 100 && seen != want; i++) {  // scaled up just after the model is loaded
      const auto r = http_request(server.port(), "GET", "/info");
      if (r.status == 200) seen = json::parse(r.body).value("workers", -1);
      if (seen != want) std::this_thread::sleep_for(100ms);
    }
    return seen;
  };
  ServerProcess batching;
  ASSERT_TRUE(batching.wait_ready());
  EXPECT_EQ(workers_of(batching, 1), 1);
  ServerProcess unbatched({"--max-batch-requests", "1"});
  ASSERT_TRUE(unbatched.wait_ready());
  EXPECT_EQ(workers_of(unbatched, tuneserve::available_cpus()), tuneserve::available_cpus());
  ServerProcess chosen({"--workers", "3"});
  ASSERT_TRUE(chosen.wait_ready());
  EXPECT_EQ(workers_of(chosen, 3), 3);
}

TEST_F(EndToEnd, CurlGetsThePipelinesAnswer) {
  ServerProcess server({"--device", "cpu"});
  ASSERT_TRUE(server.wait_ready()) << "server did not become ready";
  const json want = predicted("'I love it'");
  Shell r = sh("curl -sS -X POST " + server.url() +
             "/invocations -H 'Content-Type: application/json' -d '{\"inputs\":\"I love it\"}'");
  ASSERT_EQ(r.status, 0);
  expect_scores_near(json::parse(r.out), want, "curl /invocations");

  const json want_list = predicted("'I love it' 'Terrible, it broke.' --top-k all");
  r = sh("curl -sS -X POST " + server.url() +
         "/invocations -H 'Content-Type: application/json' -d '{\"inputs\":[\"I love it\","
         "\"Terrible, it broke.\"],\"parameters\":{\"top_k\":null}}'");
  expect_scores_near(json::parse(r.out), want_list, "curl batch top_k=null");

  r = sh("printf 'inputs\\nI love it\\n' | curl -sS -X POST " + server.url() +
         "/invocations -H 'Content-Type: text/csv' -H 'Accept: text/csv' --data-binary @-");
  EXPECT_EQ(r.out.substr(0, 18), "input,label,score\n") << r.out;
  r = sh("curl -sS -o /dev/null -w '%{http_code}' " + server.url() + "/metrics");
  EXPECT_EQ(r.out, "200");
  json info = json::parse(sh("curl -sS " + server.url() + "/info").out);
  EXPECT_EQ(info["model_type"], "distilbert");
  EXPECT_EQ(info["device"], "cpu");
  EXPECT_EQ(info["models"][0]["device"], "cpu");
  EXPECT_EQ(server.terminate(), 0);
}

// Runs `aws sagemaker-runtime invoke-endpoint` with each installed AWS CLI (credentials = secret
// for access key "test") and calls check(cli, shell result, output file); the result's out holds
// stdout, and stderr too when merge_stderr.
template <typename Check>
int with_each_aws_cli(const std::string& url, const std::string& secret, Check check, bool merge_stderr = false) {
  const std::string dir = fs::temp_directory_path() / ("tuneserve_aws_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string env = "AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=" + secret +
                          " AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null "
                          "AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_MAX_ATTEMPTS=1 ";
  int clients = 0;
  // aws-cli 1 (pyenv, on PATH) takes --body as text; aws-cli 2 needs raw-in-base64-out for that.
  for (auto [aws, extra] : {std::pair<std::string, std::string>{"aws", ""},
                            {"/usr/bin/aws", " --cli-binary-format raw-in-base64-out"}}) {
    if (!have(aws)) continue;
    const std::string out = dir + "/out.json";
    fs::remove(out);
    const Shell r = sh(env + aws + " sagemaker-runtime invoke-endpoint --endpoint-url " + url +
                       " --endpoint-name my-endpoint --content-type application/json --body " +
                       quote(R"({"inputs":"Terrible, it broke."})") + extra + " " + out + (merge_stderr ? " 2>&1" : ""));
    check(aws, r, out);
    ++clients;
  }
  fs::remove_all(dir);
  return clients;
}

TEST_F(EndToEnd, AwsCliInvokeEndpoint) {
  ServerProcess server;
  ASSERT_TRUE(server.wait_ready());
  const json want = predicted("'Terrible, it broke.'");
  const int clients = with_each_aws_cli(server.url(), "test", [&](const std::string& aws, const Shell& r,
                                                                  const std::string& out) {
    ASSERT_EQ(r.status, 0) << aws << ": " << r.out;
    EXPECT_EQ(json::parse(r.out)["ContentType"], "application/json") << aws;
    std::ifstream in(out);
    expect_scores_near(json::parse(in), want, aws);
  });
  if (clients == 0) GTEST_SKIP() << "no AWS CLI installed (Debian package awscli)";
  EXPECT_EQ(server.terminate(), 0);
}

// With --sigv4-credentials the server checks the AWS CLI's signatures itself: the right secret
// passes, a wrong one is refused with the reason.
TEST_F(EndToEnd, AwsCliSignaturesChecked) {
  ServerProcess server({"--sigv4-credentials", "test:s3cr3t/key", "--api-key", "bearer-key"});
  ASSERT_TRUE(server.wait_ready());
  const json want = predicted("'Terrible, it broke.'");
  const int clients = with_each_aws_cli(server.url(), "s3cr3t/key", [&](const std::string& aws, const Shell& r,
                                                                        const std::string& out) {
    ASSERT_EQ(r.status, 0) << aws << ": " << r.out;
    std::ifstream in(out);
    expect_scores_near(json::parse(in), want, aws);
  });
  if (clients == 0) GTEST_SKIP() << "no AWS CLI installed (Debian package awscli)";
  with_each_aws_cli(server.url(), "wrong", [&](const std::string& aws, const Shell& r, const std::string&) {
    EXPECT_NE(r.status, 0) << aws << ": " << r.out;
    EXPECT_THAT(r.out, ::testing::HasSubstr("signature does not match")) << aws;
  }, true);
  Shell r = sh("curl -sS -o /dev/null -w '%{http_code}' -X POST " + server.url() +
               "/invocations -H 'Authorization: Bearer bearer-key' -H 'Content-Type: application/json' "
               "-d '{\"inputs\":\"x\"}'");
  EXPECT_EQ(r.out, "200") << "the API key works beside the signatures";
  EXPECT_EQ(server.terminate(), 0);
}

TEST_F(EndToEnd, HuggingFaceJsClient) {
  if (!have("node") || !have("npm")) GTEST_SKIP() << "node/npm missing (Debian nodejs, npm)";
  // Test setup: install the client once into the (gitignored) build folder.
  const fs::path prefix = fs::path(binary_path()).parent_path() / "serve_js";
  if (!fs::exists(prefix / "node_modules/@huggingface/inference/package.json")) {
    Shell r = sh("timeout 300 npm install --prefix " + prefix.string() +
               " --no-audit --no-fund --silent @huggingface/inference@4.13 2>&1");
    if (r.status != 0) GTEST_SKIP() << "npm install @huggingface/inference failed: " << r.out;
  }
  ServerProcess server;
  ASSERT_TRUE(server.wait_ready());
  const json want = predicted("'I love it' --top-k all");
  Shell r = sh("NODE_PATH=" + (prefix / "node_modules").string() + " node " +
             std::string(TUNESERVE_SOURCE_DIR) + "/tests/serve/js/classify.mjs " + server.url() +
             " 'I love it'");
  ASSERT_EQ(r.status, 0) << r.out;
  expect_scores_near(json::parse(r.out), want, "@huggingface/inference");
  EXPECT_EQ(server.terminate(), 0);
}

TEST_F(EndToEnd, BatchedAnswersEqualSingleAnswers) {
  ServerProcess server({"--max-batch-delay-ms", "50", "--request-threads", "2"});
  ASSERT_TRUE(server.wait_ready());
  std::vector<std::string> texts;
  for (int i = 0; i < 16; ++i)
    texts.push_back(fmt::format("Review {}: {}", i, std::string(static_cast<std::size_t>(i) * 7, 'a') + " it broke, but the battery is great"));
  std::vector<json> single;
  for (const auto& t : texts)
    single.push_back(json::parse(http_request(server.port(), "POST", "/invocations",
                                              json{{"inputs", t}, {"parameters", {{"top_k", nullptr}}}}.dump()).body));
  std::vector<std::future<testing::HttpResponse>> futures;
  for (const auto& t : texts)
    futures.push_back(std::async(std::launch::async, [&, t] {
      return http_request(server.port(), "POST", "/invocations",
                          json{{"inputs", t}, {"parameters", {{"top_k", nullptr}}}}.dump());
    }));
  for (std::size_t i = 0; i < texts.size(); ++i) {
    auto r = futures[i].get();
    ASSERT_EQ(r.status, 200) << r.body;
    expect_scores_near(json::parse(r.body), single[i], texts[i]);
  }
  // The concurrent requests did share forward passes.
  const std::string metrics = http_request(server.port(), "GET", "/metrics").body;
  auto count = [&](const std::string& name) {
    auto p = metrics.find(name + "{model=\"model\"} ");
    return p == std::string::npos ? -1.0 : std::stod(metrics.substr(p + name.size() + 17));
  };
  EXPECT_LT(count("tuneserve_batch_size_count"), 2.0 * texts.size()) << metrics;
  EXPECT_EQ(server.terminate(), 0);
}

TEST_F(EndToEnd, SigtermFinishesInFlightRequests) {
  ServerProcess server({"--max-batch-requests", "1"});
  ASSERT_TRUE(server.wait_ready());
  std::vector<std::future<testing::HttpResponse>> futures;
  for (int i = 0; i < 8; ++i)
    futures.push_back(std::async(std::launch::async, [&, i] {
      return http_request(server.port(), "POST", "/invocations",
                          json{{"inputs", std::string(300, 'x') + std::to_string(i)}}.dump());
    }));
  std::this_thread::sleep_for(100ms);  // the requests are accepted and queued
  EXPECT_EQ(server.terminate(), 0);
  int ok = 0;
  for (auto& f : futures) ok += f.get().status == 200;
  EXPECT_EQ(ok, 8);
}

// Issue 11: PUT /models/m?workers=16 under load raised RSS from 0.48 to 2.0 GB, and it stayed there
// after workers=1: every worker's activation arena was kept. Scaling down now releases them.
TEST_F(EndToEnd, ScalingWorkersDownReleasesTheirActivationMemory) {
  const fs::path store = fs::temp_directory_path() / ("tuneserve_e2e_store_" + std::to_string(getpid()));
  fs::create_directories(store);
  ServerProcess server({"--workers", "4", "--management-port", "0", "--model-store", store.string(),
                        "--max-batch-delay-ms", "1"});
  ASSERT_TRUE(server.wait_ready());
  ASSERT_GT(server.management_port(), 0);
  // 32 inputs of ~250 tokens: two requests fill a 16384-token batch, ~115 MB of activations for
  // the tiny model; 16 at once keep all four workers busy.
  std::vector<std::string> words;
  for (int i = 0; i < 32; ++i) {
    std::string text;
    for (int w = 0; w < 250; ++w) text += fmt::format("review{} ", i);
    words.push_back(text);
  }
  const std::string body = json{{"inputs", words}}.dump();
  auto load = [&] {
    std::vector<std::future<int>> futures;
    for (int i = 0; i < 16; ++i)
      futures.push_back(std::async(std::launch::async, [&] {
        testing::Connection c(server.port());
        c.send(fmt::format("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: {}\r\n\r\n{}", body.size(), body));
        return c.read_response(120s).status;  // a loaded machine takes a while for 16 x 8192 tokens
      }));
    for (auto& f : futures) EXPECT_EQ(f.get(), 200);
  };
  load();
  const long busy = server.rss_mb();
  auto r = http_request(server.management_port(), "PUT", "/models/model?workers=1");
  ASSERT_EQ(r.status, 200) << r.body;
  const long scaled_down = server.rss_mb();
  EXPECT_LT(scaled_down, busy - 200) << "RSS " << busy << " MB with 4 workers, " << scaled_down << " MB after workers=1";
  load();  // one worker keeps one arena
  EXPECT_LT(server.rss_mb(), busy - 200);
  EXPECT_EQ(server.terminate(), 0);
  fs::remove_all(store);
}

}  // namespace
}  // namespace tuneserve::serve

// The HTTP server in-process with a fake model: routes and client shapes, content negotiation,
// limits (payload, header, connections, slow clients), backpressure (503), timeouts (504),
// dropped work, API key, metrics, the management API and graceful shutdown.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <future>
#include <thread>

#include <gmock/gmock.h>

#include <ctime>
#include <map>

#include <nlohmann/json.hpp>

#include "core/memory.h"
#include "serve/fake_backend.h"
#include "serve/http_client.h"
#include "serve/server.h"

namespace tuneserve::serve {
namespace {

using nlohmann::json;
using testing::Connection;
using testing::FakeBackend;
using testing::http_request;
using namespace std::chrono_literals;
using namespace tuneserve::aws;  // the signer the test plays the client with

ServerConfig test_config() {
  ServerConfig c;
  c.host = "127.0.0.1";
  c.port = 0;
  c.io_threads = 2;
  c.request_threads = 2;
  c.drain_timeout = 5s;
  return c;
}

struct TestServer {
  explicit TestServer(ServerConfig config = test_config(), BatchConfig batch = {},
                      bool load = true)
      : registry(metrics, batch), backend(std::make_shared<FakeBackend>()) {
    if (load) registry.add("m", "fake-dir", backend, 0.5);
    server = std::make_unique<Server>(std::move(config), registry, metrics);
    server->start();
  }
  int port() const { return server->port(); }
  Metrics metrics;
  ModelRegistry registry;
  std::shared_ptr<FakeBackend> backend;
  std::unique_ptr<Server> server;
};

// Softmax of the fake model's logits for `text`, computed here independently.
std::vector<double> expected_scores(const FakeBackend& b, const std::string& text) {
  auto logits = FakeBackend::row(b.tokenize(TextInput{text, std::nullopt}, {}), 2);
  double m = std::max(logits[0], logits[1]);
  double e0 = std::exp(logits[0] - m), e1 = std::exp(logits[1] - m);
  return {e0 / (e0 + e1), e1 / (e0 + e1)};
}

TEST(Server, PingIs503UntilAModelIsLoaded) {
  TestServer s(test_config(), {}, /*load=*/false);
  auto r = http_request(s.port(), "GET", "/ping");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["error_type"], "unhealthy");
  s.registry.add("m", "dir", s.backend, 0.1);
  EXPECT_EQ(http_request(s.port(), "GET", "/ping").status, 200);
  EXPECT_EQ(http_request(s.port(), "GET", "/health").status, 200);
}

TEST(Server, SageMakerAndHuggingFaceShapes) {
  TestServer s;
  const auto want = expected_scores(*s.backend, "I love it");
  const int best = want[1] > want[0] ? 1 : 0;
  const char* names[] = {"NEGATIVE", "POSITIVE"};

  // SageMaker (/invocations, the AWS CLI's /endpoints/NAME/invocations): the pipeline's flat list.
  for (const char* path : {"/invocations", "/endpoints/any-name/invocations", "/predict", "/predictions/m"}) {
    auto r = http_request(s.port(), "POST", path, R"({"inputs": "I love it"})");
    ASSERT_EQ(r.status, 200) << path << " " << r.body;
    EXPECT_EQ(r.headers["content-type"], "application/json");
    json j = json::parse(r.body);
    ASSERT_TRUE(j.is_array()) << r.body;
    ASSERT_EQ(j.size(), 1u);
    EXPECT_EQ(j[0]["label"], names[best]);
    EXPECT_NEAR(j[0]["score"].get<double>(), want[best], 1e-6);
  }
  // Hugging Face Inference API on POST /: a list per input with every label.
  auto r = http_request(s.port(), "POST", "/", R"({"inputs": "I love it"})", {{"Accept", "*/*"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  ASSERT_TRUE(j.is_array() && j.size() == 1 && j[0].is_array() && j[0].size() == 2) << r.body;
  EXPECT_EQ(j[0][0]["label"], names[best]);
  EXPECT_NEAR(j[0][1]["score"].get<double>(), want[1 - best], 1e-6);

  // A batch with parameters.
  r = http_request(s.port(), "POST", "/invocations",
                   R"({"inputs": ["I love it", "awful"], "parameters": {"top_k": null}})");
  j = json::parse(r.body);
  ASSERT_EQ(j.size(), 2u);
  ASSERT_TRUE(j[1].is_array());
  EXPECT_NEAR(j[0][0]["score"].get<double>(), want[best], 1e-6);

  EXPECT_EQ(http_request(s.port(), "POST", "/predictions/nope", R"({"inputs": "x"})").status, 404);
  EXPECT_EQ(http_request(s.port(), "GET", "/nowhere").status, 404);
  EXPECT_EQ(http_request(s.port(), "GET", "/invocations").status, 405);
  r = http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})",
                   {{"X-Amzn-SageMaker-Target-Model", "other"}});
  EXPECT_EQ(r.status, 404);
}

TEST(Server, ContentTypesAndAccept) {
  TestServer s;
  auto r = http_request(s.port(), "POST", "/invocations", "inputs\n\"I love it\"\nawful\n",
                        {{"Content-Type", "text/csv"}, {"Accept", "text/csv"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "text/csv");
  EXPECT_EQ(r.body.substr(0, 18), "input,label,score\n");
  EXPECT_EQ(std::count(r.body.begin(), r.body.end(), '\n'), 3);

  r = http_request(s.port(), "POST", "/invocations", "{\"inputs\": \"a\"}\n\"b\"\n",
                   {{"Content-Type", "application/jsonlines"}, {"Accept", "application/jsonlines"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(std::count(r.body.begin(), r.body.end(), '\n'), 2);
  EXPECT_TRUE(json::parse(r.body.substr(0, r.body.find('\n'))).is_object());

  r = http_request(s.port(), "POST", "/invocations", "I love it", {{"Content-Type", "text/plain"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_NEAR(json::parse(r.body)[0]["score"].get<double>(),
              std::max(expected_scores(*s.backend, "I love it")[0], expected_scores(*s.backend, "I love it")[1]), 1e-6);

  r = http_request(s.port(), "POST", "/invocations", "a=b",
                   {{"Content-Type", "application/x-www-form-urlencoded"}});
  EXPECT_EQ(r.status, 415);
  EXPECT_NE(r.body.find("text/csv"), std::string::npos);
  r = http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})", {{"Accept", "image/png"}});
  EXPECT_EQ(r.status, 406);
  EXPECT_EQ(json::parse(r.body)["error_type"], "not_acceptable");
}

TEST(Server, BadInputGetsClearErrors) {
  ServerConfig config = test_config();
  config.limits.max_inputs = 4;
  TestServer s(config);
  auto expect = [&](const std::string& body, int status, const std::string& type,
                    std::map<std::string, std::string> headers = {}) {
    auto r = http_request(s.port(), "POST", "/invocations", body, headers);
    EXPECT_EQ(r.status, status) << body << " -> " << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.body;
    EXPECT_EQ(j["error_type"], type) << r.body;
    EXPECT_FALSE(j["error"].get<std::string>().empty());
  };
  expect("{\"inputs\": ", 400, "validation");
  expect(R"({"inputs": 5})", 400, "validation");
  expect(R"({"inputs": []})", 400, "empty");
  expect(R"({"inputs": ["a","b","c","d","e"]})", 413, "too_many_inputs");
  expect(R"({"inputs": "x", "parameters": {"temperature": 0.5}})", 400, "validation");
  expect(std::string("bad \xFF"), 400, "validation", {{"Content-Type", "text/plain"}});
  expect(R"({"inputs": "BOOM"})", 400, "validation");  // the tokenizer refused it
  expect(R"({"inputs": "x", "parameters": {"max_length": 100000}})", 400, "validation");
  // Over-long text: truncated by default, 422 with truncation off (the fake model takes 32 tokens).
  std::string words;
  for (int i = 0; i < 50; ++i) words += fmt::format("w{} ", i);
  EXPECT_EQ(http_request(s.port(), "POST", "/invocations", json{{"inputs", words}}.dump()).status, 200);
  expect(json{{"inputs", words}, {"parameters", {{"truncation", false}}}}.dump(), 422, "too_long");
}

// Issue 11: a 120 KB body nested 60,000 deep overflowed the stack when an error message printed
// the value; every route that decodes JSON now refuses it with a short 400, and the server lives.
TEST(Server, DeeplyNestedJsonIsA400OnEveryRoute) {
  namespace fs = std::filesystem;
  const fs::path store = fs::temp_directory_path() / fmt::format("tuneserve_deep_{}", ::getpid());
  fs::create_directories(store / "m");
  ServerConfig config = test_config();
  config.management_port = 0;
  config.model_store = store.string();
  config.loader = [](const std::string&) { return std::make_shared<FakeBackend>(); };
  TestServer s(config);
  const std::string deep = std::string(60000, '[') + std::string(60000, ']');
  const std::string body = R"({"inputs":"a","parameters":{"truncation":)" + deep + "}}";
  auto expect_400 = [&](int port, const std::string& path, const std::string& request_body,
                        std::map<std::string, std::string> headers = {}) {
    auto r = http_request(port, "POST", path, request_body, headers);
    EXPECT_EQ(r.status, 400) << path;
    EXPECT_LT(r.body.size(), 1000u) << path << ": the error quotes the input";
    json j = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.body;
    EXPECT_NE(j["error"].get<std::string>().find("nested deeper than 64"), std::string::npos) << r.body;
  };
  for (const char* path : {"/invocations", "/", "/tokenize", "/endpoints/e/invocations", "/predictions/m"})
    expect_400(s.port(), path, body);
  expect_400(s.port(), "/invocations", "\"a\"\n" + deep + "\n", {{"Content-Type", "application/jsonlines"}});
  expect_400(s.server->management_port(), "/models", R"({"name": )" + deep + R"(, "path": "m"})");
  EXPECT_EQ(http_request(s.port(), "GET", "/ping").status, 200);
  // Nesting within the limit still decodes (and fails for what it is, a list as truncation).
  std::string ok = R"({"inputs":"a","parameters":{"truncation":)" + std::string(60, '[') + std::string(60, ']') + "}}";
  auto r = http_request(s.port(), "POST", "/invocations", ok);
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("parameters.truncation"), std::string::npos) << r.body;
  fs::remove_all(store);
}

// Issue 11: NaN weights gave {"score": NaN}, which is not JSON; now a 500 naming the model.
TEST(Server, NonFiniteScoresAreA500NamingTheModel) {
  TestServer s;
  s.backend->set_nan(true);
  for (const char* path : {"/invocations", "/"}) {
    auto r = http_request(s.port(), "POST", path, R"({"inputs": ["fine", "also fine"]})");
    EXPECT_EQ(r.status, 500) << r.body;
    json j = json::parse(r.body, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << r.body;
    EXPECT_EQ(j["error_type"], "backend");
    EXPECT_NE(j["error"].get<std::string>().find("model m: the forward pass gave a non-finite score"), std::string::npos)
        << r.body;
  }
  s.backend->set_nan(false);
  EXPECT_EQ(http_request(s.port(), "POST", "/invocations", R"({"inputs": "fine"})").status, 200);
}

TEST(Server, KeepAliveServesManyRequestsOnOneConnection) {
  TestServer s;
  Connection c(s.port());
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 5; ++i) {
    auto r = c.request("POST", "/invocations", json{{"inputs", fmt::format("text {}", i)}}.dump());
    ASSERT_EQ(r.status, 200) << i;
  }
  EXPECT_EQ(c.request("GET", "/ping").status, 200);
}

TEST(Server, PayloadTooLargeIsRefusedBeforeTheBodyIsRead) {
  ServerConfig config = test_config();
  config.max_payload_bytes = 1024;
  TestServer s(config);
  Connection c(s.port());
  // Announce 100 MB and send none of it: the answer must come from the header alone.
  ASSERT_TRUE(c.send("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 104857600\r\n\r\n"));
  auto r = c.read_response(2s);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(json::parse(r.body)["error_type"], "payload_too_large");
  EXPECT_EQ(r.headers["connection"], "close");
}

TEST(Server, HeaderLimitAndMalformedRequests) {
  ServerConfig config = test_config();
  config.max_header_bytes = 2048;
  TestServer s(config);
  auto r = http_request(s.port(), "GET", "/ping", "", {{"X-Big", std::string(4096, 'a')}});
  EXPECT_EQ(r.status, 431);
  Connection c(s.port());
  ASSERT_TRUE(c.send("NOT HTTP AT ALL\r\n\r\n"));
  EXPECT_EQ(c.read_response(2s).status, 400);
}

TEST(Server, FullQueueAnswers503AtOnceWithRetryAfter) {
  BatchConfig batch;
  batch.queue_size = 2;
  batch.max_batch_requests = 1;
  TestServer s(test_config(), batch);
  s.backend->hold();
  Connection a(s.port()), b(s.port());
  const std::string req = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"inputs\": \"x\"}";
  ASSERT_TRUE(a.send(req));
  ASSERT_TRUE(s.backend->wait_running(1));
  ASSERT_TRUE(b.send(req));
  for (int i = 0; i < 100 && s.registry.find("m")->batcher->admitted() < 2; ++i) std::this_thread::sleep_for(5ms);
  const auto start = std::chrono::steady_clock::now();
  auto r = http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers["retry-after"], "1");
  EXPECT_EQ(json::parse(r.body)["error_type"], "overloaded");
  s.backend->release();
  EXPECT_EQ(a.read_response().status, 200);
  EXPECT_EQ(b.read_response().status, 200);
  EXPECT_EQ(http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})").status, 200);
}

TEST(Server, TimeoutAnswers504AndDropsTheQueuedWork) {
  ServerConfig config = test_config();
  config.response_timeout = 300ms;
  BatchConfig batch;
  batch.max_batch_requests = 1;
  TestServer s(config, batch);
  s.backend->hold();
  Connection a(s.port()), b(s.port());
  const std::string req = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"inputs\": \"x\"}";
  ASSERT_TRUE(a.send(req));
  ASSERT_TRUE(s.backend->wait_running(1));
  ASSERT_TRUE(b.send(req));  // queued behind the held forward pass
  EXPECT_EQ(a.read_response(3s).status, 504);
  auto rb = b.read_response(3s);
  EXPECT_EQ(rb.status, 504);
  EXPECT_EQ(json::parse(rb.body)["error_type"], "timeout");
  s.backend->release();
  s.server->stop();
  EXPECT_EQ(s.backend->batches().size(), 1u);  // b never reached the model
  // Issue 11: a's batch was running when a timed out; with nobody left to answer, it stopped.
  EXPECT_EQ(s.backend->stopped(), 1);
  EXPECT_EQ(s.registry.find("m")->batcher->jobs_dropped(), 2u);
}

TEST(Server, ABatchStopsOnlyWhenAllItsRequestsAreGone) {
  BatchConfig batch;
  batch.max_batch_requests = 2;
  batch.max_batch_delay = 100ms;
  TestServer s(test_config(), batch);
  s.backend->set_delay(500ms);  // each forward pass takes this long, then polls stop()
  const std::string req = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"inputs\": \"x\"}";
  auto wait_batches = [&](std::size_t n) {
    for (int i = 0; i < 400 && s.backend->batches().size() < n; ++i) std::this_thread::sleep_for(5ms);
    return s.backend->batches().size() >= n;
  };
  {
    Connection first(s.port()), stays(s.port());
    auto leaves = std::make_unique<Connection>(s.port());
    ASSERT_TRUE(first.send(req));
    ASSERT_TRUE(s.backend->wait_running(1));
    ASSERT_TRUE(leaves->send(req));  // these two queue behind the running pass and go together
    ASSERT_TRUE(stays.send(req));
    ASSERT_TRUE(wait_batches(2));
    leaves.reset();
    EXPECT_EQ(stays.read_response(3s).status, 200);  // one request of the batch still waits
    EXPECT_EQ(first.read_response(3s).status, 200);
    EXPECT_EQ(s.backend->batches()[1].first, 2u);
    EXPECT_EQ(s.backend->stopped(), 0);
  }
  {
    auto a = std::make_unique<Connection>(s.port()), b = std::make_unique<Connection>(s.port());
    ASSERT_TRUE(a->send(req));
    ASSERT_TRUE(b->send(req));
    ASSERT_TRUE(wait_batches(3));
    a.reset();  // both leave while their batch runs
    b.reset();
  }
  for (int i = 0; i < 200 && s.backend->stopped() < 1; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(s.backend->stopped(), 1);
  EXPECT_EQ(s.backend->batches()[2].first, 2u);
}

TEST(Server, ClientThatLeavesIsDroppedBeforeCompute) {
  BatchConfig batch;
  batch.max_batch_requests = 1;
  TestServer s(test_config(), batch);
  s.backend->hold();
  Connection a(s.port());
  const std::string req = "POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"inputs\": \"x\"}";
  ASSERT_TRUE(a.send(req));
  ASSERT_TRUE(s.backend->wait_running(1));
  {
    Connection gone(s.port());
    ASSERT_TRUE(gone.send(req));
    auto model = s.registry.find("m");
    // Queued in the batcher, not only admitted: a request whose client leaves before it is
    // tokenized never reaches the batcher (and is not counted as dropped there).
    for (int i = 0; i < 400 && model->batcher->queued() < 1; ++i) std::this_thread::sleep_for(5ms);
    ASSERT_EQ(model->batcher->queued(), 1u);
  }  // closes the socket while its request waits
  std::this_thread::sleep_for(200ms);
  s.backend->release();
  EXPECT_EQ(a.read_response().status, 200);
  auto model = s.registry.find("m");
  for (int i = 0; i < 200 && model->batcher->admitted() > 0; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_EQ(model->batcher->jobs_dropped(), 1u);
  EXPECT_EQ(s.backend->batches().size(), 1u);
}

TEST(Server, ApiKeyGuardsEverythingButHealth) {
  ServerConfig config = test_config();
  config.api_key = "sekrit";
  TestServer s(config);
  EXPECT_EQ(http_request(s.port(), "GET", "/ping").status, 200);
  auto r = http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(json::parse(r.body)["error_type"], "unauthorized");
  EXPECT_EQ(http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})",
                         {{"Authorization", "Bearer wrong!"}}).status, 401);
  EXPECT_EQ(http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})",
                         {{"Authorization", "Bearer sekrit"}}).status, 200);
}

// The signing itself is checked against botocore's signatures in sigv4_test.cpp; here, that the
// server feeds the request it received (method, target, every header, body) to the check.
TEST(Server, SigV4CredentialsGuardInference) {
  ServerConfig config = test_config();
  config.sigv4 = {"AKID", "secret"};
  TestServer s(config);
  const std::string body = R"({"inputs": "x"})";
  const std::time_t now = std::time(nullptr);
  char amz_date[17];
  std::strftime(amz_date, sizeof amz_date, "%Y%m%dT%H%M%SZ", std::gmtime(&now));
  auto sign = [&](const std::string& secret, const std::string& signed_body) {
    const std::string date(amz_date, 8), scope = date + "/us-east-1/sagemaker/aws4_request";
    const SignedRequest r{"POST", "/endpoints/e/invocations",
                          {{"Host", "127.0.0.1"}, {"Content-Type", "application/json"}, {"X-Amz-Date", amz_date}},
                          signed_body};
    const std::string canonical = sigv4_canonical_request(r, {"content-type", "host", "x-amz-date"});
    const std::string to_sign = sigv4_string_to_sign(amz_date, scope, canonical);
    return std::map<std::string, std::string>{
        {"Content-Type", "application/json"},
        {"X-Amz-Date", amz_date},
        {"Authorization", "AWS4-HMAC-SHA256 Credential=AKID/" + scope +
                              ", SignedHeaders=content-type;host;x-amz-date, Signature=" +
                              sigv4_signature(secret, date, "us-east-1", "sagemaker", to_sign)}};
  };
  EXPECT_EQ(http_request(s.port(), "GET", "/ping").status, 200);
  auto r = http_request(s.port(), "POST", "/endpoints/e/invocations", body, sign("secret", body));
  EXPECT_EQ(r.status, 200) << r.body;
  r = http_request(s.port(), "POST", "/endpoints/e/invocations", body, sign("wrong", body));
  EXPECT_EQ(r.status, 403);
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(), ::testing::HasSubstr("signature does not match"));
  r = http_request(s.port(), "POST", "/endpoints/e/invocations", body, sign("secret", R"({"inputs": "y"})"));
  EXPECT_EQ(r.status, 403) << "a body other than the signed one must not pass";
  r = http_request(s.port(), "POST", "/endpoints/e/invocations", body);
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(), ::testing::HasSubstr("SigV4-signed requests only"));
  EXPECT_EQ(http_request(s.port(), "POST", "/invocations", body, {{"Authorization", "Bearer secret"}}).status, 401);
}

TEST(Server, BearerOnlyEndpointRefusesSignatures) {
  ServerConfig config = test_config();
  config.api_key = "sekrit";
  TestServer s(config);
  auto r = http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})",
                        {{"Authorization", "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=0"}});
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(json::parse(r.body)["error"].get<std::string>(), ::testing::HasSubstr("not SigV4"));
}

TEST(Server, SlowAndIdleClientsAreCutOff) {
  ServerConfig config = test_config();
  config.idle_timeout = 300ms;
  TestServer s(config);
  Connection slow(s.port());
  ASSERT_TRUE(slow.send("GET /ping HTTP/1.1\r\nHo"));  // and never finishes the header
  EXPECT_TRUE(slow.closed_within(2s));
  Connection idle(s.port());
  EXPECT_EQ(idle.request("GET", "/ping").status, 200);
  EXPECT_TRUE(idle.closed_within(2s));
}

TEST(Server, ConnectionLimit) {
  ServerConfig config = test_config();
  config.max_connections = 2;
  TestServer s(config);
  Connection a(s.port()), b(s.port());
  EXPECT_EQ(a.request("GET", "/ping").status, 200);
  EXPECT_EQ(b.request("GET", "/ping").status, 200);
  Connection c(s.port());
  auto r = c.request("POST", "/invocations", R"({"inputs": "x"})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(json::parse(r.body)["error_type"], "overloaded");
  EXPECT_TRUE(c.closed_within(2s));
  // Issue 11: a health check is still answered while every connection is taken (then closed).
  Connection health(s.port());
  r = health.request("GET", "/ping");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["connection"], "close");
  EXPECT_TRUE(health.closed_within(2s));
  EXPECT_EQ(http_request(s.port(), "GET", "/health").status, 200);
  a.close();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(http_request(s.port(), "GET", "/ping").status, 200);
}

TEST(Server, ConcurrentRequestsAreBatchedAndEqualSingleRequests) {
  BatchConfig batch;
  batch.max_batch_delay = 20ms;
  TestServer s(test_config(), batch);
  std::vector<std::string> texts;
  for (int i = 0; i < 12; ++i) texts.push_back(fmt::format("review number {} {}", i, std::string(i, '!')));
  std::map<std::string, std::string> single;
  for (const auto& t : texts)
    single[t] = http_request(s.port(), "POST", "/invocations",
                             json{{"inputs", t}, {"parameters", {{"top_k", nullptr}}}}.dump()).body;
  const std::size_t before = s.backend->batches().size();
  s.backend->hold();
  std::vector<std::future<testing::HttpResponse>> futures;
  for (const auto& t : texts)
    futures.push_back(std::async(std::launch::async, [&, t] {
      return http_request(s.port(), "POST", "/invocations",
                          json{{"inputs", t}, {"parameters", {{"top_k", nullptr}}}}.dump());
    }));
  ASSERT_TRUE(s.backend->wait_running(1));
  std::this_thread::sleep_for(100ms);
  s.backend->release();
  for (std::size_t i = 0; i < texts.size(); ++i) {
    auto r = futures[i].get();
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, single[texts[i]]) << texts[i];
  }
  auto batches = s.backend->batches();
  std::size_t largest = 0;
  for (std::size_t i = before; i < batches.size(); ++i) largest = std::max(largest, batches[i].first);
  EXPECT_GT(largest, 1u);
}

TEST(Server, MetricsAndInfo) {
  TestServer s;
  http_request(s.port(), "POST", "/invocations", R"({"inputs": "x"})");
  http_request(s.port(), "POST", "/invocations", R"({"inputs": 1})");
  auto r = http_request(s.port(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("tuneserve_requests_total{route=\"/invocations\",code=\"200\"} 1"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("tuneserve_requests_total{route=\"/invocations\",code=\"400\"} 1"), std::string::npos);
  for (const char* name : {"tuneserve_request_duration_seconds_bucket", "tuneserve_queue_duration_seconds_count",
                           "tuneserve_tokenize_duration_seconds_sum", "tuneserve_inference_duration_seconds_bucket",
                           "tuneserve_batch_size_bucket", "tuneserve_batch_tokens_count", "tuneserve_queue_depth",
                           "tuneserve_in_flight", "tuneserve_model_load_seconds{model=\"m\"} 0.5"})
    EXPECT_NE(r.body.find(name), std::string::npos) << name;
  json info = json::parse(http_request(s.port(), "GET", "/info").body);
  EXPECT_EQ(info["model_type"], "fake");
  EXPECT_EQ(info["labels"], json({"NEGATIVE", "POSITIVE"}));
  EXPECT_EQ(info["max_input_length"], 32);
  EXPECT_EQ(info["device"], "fake:0");
  EXPECT_TRUE(info.contains("max_batch_tokens"));
  EXPECT_TRUE(info.contains("version"));
  auto tok = http_request(s.port(), "POST", "/tokenize", R"({"inputs": ["a b", "c"]})");
  ASSERT_EQ(tok.status, 200) << tok.body;
  json t = json::parse(tok.body);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0]["input_ids"].size(), 4u);  // [CLS] a b [SEP]
}

TEST(Server, ManagementLoadsFromTheStoreOnly) {
  namespace fs = std::filesystem;
  const fs::path store = fs::temp_directory_path() / fmt::format("tuneserve_store_{}", ::getpid());
  fs::create_directories(store / "m2");
  fs::create_directories(store.string() + "_outside");
  fs::remove(store / "link");
  fs::create_directory_symlink(store.string() + "_outside", store / "link");
  ServerConfig config = test_config();
  config.management_port = 0;
  config.model_store = store.string();
  std::vector<std::string> loaded;
  config.loader = [&](const std::string& dir) {
    loaded.push_back(dir);
    return std::make_shared<FakeBackend>(3);
  };
  TestServer s(config);
  const int mp = s.server->management_port();
  ASSERT_GT(mp, 0);
  EXPECT_EQ(http_request(s.port(), "GET", "/models").status, 404);  // not on the public port

  auto r = http_request(mp, "POST", "/models", R"({"name": "m2", "path": "m2", "workers": 2})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(json::parse(r.body)["workers"], 2);
  EXPECT_EQ(json::parse(r.body)["threads_per_worker"], 3);
  ASSERT_EQ(loaded.size(), 1u);
  EXPECT_EQ(fs::path(loaded[0]), fs::weakly_canonical(store / "m2"));
  r = http_request(s.port(), "POST", "/predictions/m2", R"({"inputs": "x", "parameters": {"top_k": 3}})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body).size(), 3u);

  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "x", "path": "../"})").status, 403);
  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "x", "path": "/etc"})").status, 400);
  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "x", "path": "link"})").status, 403);
  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "x", "path": "missing"})").status, 404);
  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "m2", "path": "m2"})").status, 409);
  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "bad/name", "path": "m2"})").status, 400);
  EXPECT_EQ(loaded.size(), 1u);

  r = http_request(mp, "PUT", "/models/m2?workers=3");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["workers"], 3);
  EXPECT_EQ(json::parse(r.body)["threads_per_worker"], 2);
  json list = json::parse(http_request(mp, "GET", "/models").body);
  EXPECT_EQ(list["models"].size(), 2u);
  EXPECT_EQ(list["models"][1]["threads_per_worker"], 2);
  EXPECT_EQ(http_request(mp, "DELETE", "/models/m2").status, 200);
  EXPECT_EQ(http_request(s.port(), "POST", "/predictions/m2", R"({"inputs": "x"})").status, 404);
  EXPECT_EQ(http_request(mp, "DELETE", "/models/m2").status, 404);
  fs::remove_all(store);
  fs::remove_all(store.string() + "_outside");
}

// Issue 11: eight concurrent POST /models of one name all loaded the model, then seven got 400.
TEST(Server, ConcurrentLoadsOfOneNameLoadOnceAndTheRestGet409) {
  namespace fs = std::filesystem;
  const fs::path store = fs::temp_directory_path() / fmt::format("tuneserve_race_{}", ::getpid());
  fs::create_directories(store / "m2");
  ServerConfig config = test_config();
  config.management_port = 0;
  config.model_store = store.string();
  std::atomic<int> loads{0};
  fs::create_directories(store / "broken");
  config.loader = [&](const std::string& dir) {
    if (dir.ends_with("broken")) fail("{}: no model here", dir);
    ++loads;
    std::this_thread::sleep_for(300ms);  // loading takes a while; the other requests arrive meanwhile
    return std::make_shared<FakeBackend>();
  };
  TestServer s(config);
  const int mp = s.server->management_port();
  std::vector<std::future<int>> answers;
  for (int i = 0; i < 8; ++i)
    answers.push_back(std::async(std::launch::async, [&] {
      return http_request(mp, "POST", "/models", R"({"name": "m2", "path": "m2"})").status;
    }));
  std::map<int, int> by_status;
  for (auto& a : answers) ++by_status[a.get()];
  EXPECT_EQ(by_status[201], 1);
  EXPECT_EQ(by_status[409], 7);
  EXPECT_EQ(loads.load(), 1);
  // A failed load gives the name back.
  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "m3", "path": "broken"})").status, 400);
  EXPECT_EQ(http_request(mp, "POST", "/models", R"({"name": "m3", "path": "m2"})").status, 201);
  fs::remove_all(store);
}

// Issue 11: workers are bounded by the memory their activations need, with a clear refusal.
TEST(Server, WorkersAreBoundedByMemoryAndScalingDownReleasesIt) {
  const auto available = available_memory();
  if (!available) GTEST_SKIP() << "this machine reports no available memory (/proc/meminfo)";
  ServerConfig config = test_config();
  config.management_port = 0;
  TestServer s(config);
  // Each forward pass would take a quarter of the memory available now: 1 worker runs, about 4 more fit.
  s.backend->set_forward_bytes(*available / 4);
  const int mp = s.server->management_port();
  auto r = http_request(mp, "PUT", "/models/m?workers=16");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("16 workers need about"), std::string::npos) << r.body;
  EXPECT_THAT(r.body, ::testing::ContainsRegex("at most [3-7] workers fit"));
  EXPECT_EQ(s.registry.find("m")->batcher->workers(), 1);
  r = http_request(mp, "PUT", "/models/m?workers=2");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(s.backend->concurrency(), 2);
  ASSERT_EQ(http_request(mp, "PUT", "/models/m?workers=1").status, 200);
  EXPECT_EQ(s.backend->concurrency(), 1);  // the backend is told to let the second arena go
}

TEST(Server, StopFinishesInFlightRequests) {
  TestServer s;
  s.backend->hold();
  Connection a(s.port());
  ASSERT_TRUE(a.send("POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"inputs\": \"x\"}"));
  ASSERT_TRUE(s.backend->wait_running(1));
  Connection idle(s.port());
  EXPECT_EQ(idle.request("GET", "/ping").status, 200);
  auto stopped = std::async(std::launch::async, [&] { s.server->stop(); });
  EXPECT_TRUE(idle.closed_within(2s));  // idle keep-alive connections close at once
  EXPECT_EQ(stopped.wait_for(200ms), std::future_status::timeout);  // still draining
  s.backend->release();
  auto r = a.read_response();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["connection"], "close");
  EXPECT_EQ(stopped.wait_for(5s), std::future_status::ready);
  Connection late(s.port());
  EXPECT_FALSE(late.ok() && late.request("GET", "/ping").status == 200);
}

}  // namespace
}  // namespace tuneserve::serve

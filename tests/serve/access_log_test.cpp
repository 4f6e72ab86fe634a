// The server's per-request access log (method, path, status, bytes, ms, request id, as JSON records
// here), X-Request-Id (the client's when sane, else generated, in the header and the log alike),
// SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT's default response type, and 413s that name the variables
// raising the limit.
#include <gtest/gtest.h>

#include <algorithm>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>

#include "core/log.h"
#include "serve/fake_backend.h"
#include "serve/http_client.h"
#include "serve/request.h"
#include "serve/server.h"

namespace tuneserve::serve {
namespace {

using nlohmann::json;
using testing::Connection;
using testing::FakeBackend;
using testing::http_request;
using namespace std::chrono_literals;

ServerConfig config() {
  ServerConfig c;
  c.host = "127.0.0.1";
  c.port = 0;
  c.io_threads = 1;
  c.request_threads = 1;
  return c;
}

struct Running {
  explicit Running(ServerConfig c) : registry(metrics, BatchConfig{}) {
    registry.add("m", "fake-dir", std::make_shared<FakeBackend>(), 0.1);
    server = std::make_unique<Server>(std::move(c), registry, metrics);
    server->start();
  }
  Metrics metrics;
  ModelRegistry registry;
  std::unique_ptr<Server> server;
};

class AccessLog : public ::testing::Test {
 protected:
  void SetUp() override {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    logging::configure("info", "json", sink);
  }
  void TearDown() override { logging::configure("", ""); }
  std::vector<json> records() {
    std::vector<json> all;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) {
      auto r = json::parse(line);
      if (r.contains("request_id")) all.push_back(r);
    }
    return all;
  }
  // The access record of `id`, waiting briefly: it is written once the answer has been sent.
  json record_of(const std::string& id) {
    for (int i = 0; i < 200; i++) {
      for (const auto& r : records())
        if (r["request_id"] == id) return r;
      std::this_thread::sleep_for(10ms);
    }
    return json();
  }
  std::ostringstream out;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink;
};

TEST(RequestId, ClientIdsAreKeptWhenSane) {
  EXPECT_EQ(request_id("abc-123_x.y:z"), "abc-123_x.y:z");
  for (const std::string& bad : {std::string(), std::string("has space"), std::string("a\"b"), std::string(129, 'a'),
                                std::string("caf\xc3\xa9")}) {
    const std::string id = request_id(bad);
    EXPECT_EQ(id.size(), 32u) << bad;
    EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos) << id;
  }
  EXPECT_NE(request_id(""), request_id("")) << "generated ids differ";
}

TEST_F(AccessLog, OneRecordPerRequestWithTheEchoedId) {
  Running s(config());
  auto r = http_request(s.server->port(), "POST", "/invocations", R"({"inputs": "I love it"})",
                        {{"Content-Type", "application/json"}, {"X-Request-Id", "client-7"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["x-request-id"], "client-7");
  json rec = record_of("client-7");
  ASSERT_FALSE(rec.is_null()) << out.str();
  EXPECT_EQ(rec["method"], "POST");
  EXPECT_EQ(rec["path"], "/invocations");
  EXPECT_EQ(rec["status"], 200);
  EXPECT_EQ(rec["bytes"].get<std::size_t>(), r.body.size());
  EXPECT_GE(rec["ms"].get<double>(), 0.0);
  EXPECT_EQ(rec["level"], "info");

  // No id, or one that is not sane: a generated one, the same in the header and the log.
  r = http_request(s.server->port(), "GET", "/ping?x=1", "", {{"X-Request-Id", "no spaces please"}});
  ASSERT_EQ(r.status, 200);
  const std::string generated = r.headers["x-request-id"];
  ASSERT_EQ(generated.size(), 32u) << generated;
  rec = record_of(generated);
  ASSERT_FALSE(rec.is_null()) << out.str();
  EXPECT_EQ(rec["path"], "/ping?x=1");
  EXPECT_EQ(rec["method"], "GET");

  // Errors are logged with their status; a 404 too.
  r = http_request(s.server->port(), "GET", "/nowhere", "", {{"X-Request-Id", "lost"}});
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(record_of("lost")["status"], 404);
}

TEST_F(AccessLog, PayloadLimitNamesItsVariablesAndIsLogged) {
  ServerConfig c = config();
  c.max_payload_bytes = 64;
  Running s(c);
  Connection conn(s.server->port());
  ASSERT_TRUE(conn.send("POST /invocations HTTP/1.1\r\nHost: x\r\nX-Request-Id: big-1\r\nContent-Type: application/json\r\n"
                        "Content-Length: 1000\r\n\r\n"));
  auto r = conn.read_response(2s);
  ASSERT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("SAGEMAKER_MAX_REQUEST_SIZE"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("SAGEMAKER_MAX_PAYLOAD_IN_MB"), std::string::npos) << r.body;
  EXPECT_EQ(r.headers["x-request-id"], "big-1");
  const json rec = record_of("big-1");
  EXPECT_EQ(rec["status"], 413) << out.str();
  EXPECT_EQ(rec["method"], "POST");
}

TEST_F(AccessLog, DefaultAcceptAppliesWithoutAnAcceptHeader) {
  ServerConfig c = config();
  c.default_accept = Format::jsonlines;
  Running s(c);
  auto r = http_request(s.server->port(), "POST", "/invocations", R"({"inputs": ["a", "b"]})",
                        {{"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/jsonlines");
  EXPECT_EQ(std::count(r.body.begin(), r.body.end(), '\n'), 2);
  r = http_request(s.server->port(), "POST", "/invocations", R"({"inputs": ["a", "b"]})",
                   {{"Content-Type", "application/json"}, {"Accept", "application/json"}});
  EXPECT_EQ(r.headers["content-type"], "application/json") << "a named type still wins";
}

}  // namespace
}  // namespace tuneserve::serve

// Handler plugins loaded from the example libraries: input_fn/output_fn around the model,
// transform_fn instead of it, errors from hooks, and the plugins the server must refuse.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "serve/fake_backend.h"
#include "serve/handler_plugin.h"
#include "serve/http_client.h"
#include "serve/server.h"
#include "test_util.h"

namespace tuneserve::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::FakeBackend;
using testing::http_request;

std::string plugin(const std::string& name) {
  return (fs::path(testing::binary_path()).parent_path() / "examples/handler" / ("lib" + name + ".so")).string();
}

struct PluginServer {
  explicit PluginServer(std::shared_ptr<HandlerPlugin> handler)
      : registry(metrics, BatchConfig{}), backend(std::make_shared<FakeBackend>()) {
    registry.add("m", "dir", backend, 0);
    ServerConfig config;
    config.host = "127.0.0.1";
    config.port = 0;
    config.request_threads = 2;
    config.handler = std::move(handler);
    server = std::make_unique<Server>(config, registry, metrics);
    server->start();
  }
  Metrics metrics;
  ModelRegistry registry;
  std::shared_ptr<FakeBackend> backend;
  std::unique_ptr<Server> server;
};

TEST(Handler, InputAndOutputHooksAroundTheModel) {
  auto handler = HandlerPlugin::open(plugin("review_handler"));
  EXPECT_TRUE(handler->has_input() && handler->has_output());
  EXPECT_FALSE(handler->has_transform() || handler->has_predict());
  const fs::path dir = fs::temp_directory_path() / fmt::format("tuneserve_handler_{}", getpid());
  fs::create_directories(dir);
  std::ofstream(dir / "labels.json") << R"({"POSITIVE": "good", "NEGATIVE": "bad"})";
  handler->model_fn(dir.string());
  fs::remove_all(dir);

  PluginServer s(handler);
  auto r = http_request(s.server->port(), "POST", "/invocations",
                        "{\"review\": \"I love it\"}\n{\"review\": \"awful\"}\n",
                        {{"Content-Type", "application/x-reviews"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.headers["content-type"], "application/jsonlines");
  std::size_t line = 0, start = 0;
  for (const char* text : {"I love it", "awful"}) {
    const std::size_t end = r.body.find('\n', start);
    ASSERT_NE(end, std::string::npos);
    json j = json::parse(r.body.substr(start, end - start));
    start = end + 1;
    // Independent expectation: softmax of the fake model's logits.
    auto logits = FakeBackend::row(s.backend->tokenize(TextInput{text, std::nullopt}, {}), 2);
    const double p1 = 1 / (1 + std::exp(logits[0] - logits[1]));
    EXPECT_EQ(j["sentiment"], p1 > 0.5 ? "good" : "bad") << line;
    EXPECT_NEAR(j["confidence"].get<double>(), std::max(p1, 1 - p1), 1e-6);
    ++line;
  }
  r = http_request(s.server->port(), "POST", "/invocations", "{\"text\": 1}\n",
                   {{"Content-Type", "application/x-reviews"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["error_type"], "handler");
  EXPECT_NE(r.body.find("line 1"), std::string::npos);
}

TEST(Handler, TransformReplacesEverything) {
  PluginServer s(HandlerPlugin::open(plugin("echo_transform")));
  auto r = http_request(s.server->port(), "POST", "/invocations", "anything at all",
                        {{"Content-Type", "application/octet-stream"}, {"Accept", "x/y"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = json::parse(r.body);
  EXPECT_EQ(j["echo"], "anything at all");
  EXPECT_EQ(j["accept"], "x/y");
  EXPECT_TRUE(s.backend->batches().empty());  // the model never ran
  r = http_request(s.server->port(), "POST", "/invocations", "fail", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(r.status, 422);
  EXPECT_NE(r.body.find("asked to fail"), std::string::npos);
}

TEST(Handler, RefusesBadPlugins) {
  try {
    HandlerPlugin::open(plugin("review_handler_invalid"));
    ADD_FAILURE() << "a plugin with transform_fn and input_fn loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("transform_fn"), std::string::npos) << e.what();
  }
  EXPECT_THROW(HandlerPlugin::open("/nonexistent/libnothing.so"), Error);
  // A library that is not a handler (no tuneserve_handler_abi): libz is always there.
  EXPECT_THROW(HandlerPlugin::open("libz.so.1"), Error);
}

}  // namespace
}  // namespace tuneserve::serve

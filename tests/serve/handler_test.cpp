// Handler plugins loaded from the example libraries: input_fn/output_fn around the model,
// transform_fn instead of it, predict_fn on the model's logits (also from a model's code/ folder),
// errors from hooks, and the plugins the server must refuse.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "background_process.h"
#include "pipeline/pipeline.h"
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

// softmax(logits / T), what the temperature_softmax example must answer, computed here on its own.
std::vector<double> tempered(const std::vector<float>& logits, double temperature) {
  std::vector<double> p(logits.size());
  double sum = 0;
  for (std::size_t k = 0; k < logits.size(); ++k) sum += p[k] = std::exp(logits[k] / temperature);
  for (double& v : p) v /= sum;
  return p;
}

// The answer's score of each label, by name.
std::map<std::string, double> scores_of(const json& row) {
  std::map<std::string, double> out;
  for (const auto& s : row) out[s["label"].get<std::string>()] = s["score"].get<double>();
  return out;
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

// predict_fn reaches the model: its logits, tokenized and batched as the endpoint does, and a
// temperature-scaled softmax of them; a bad parameter is the handler's 400.
TEST(Handler, PredictFnGetsTheModelsLogits) {
  auto handler = HandlerPlugin::open(plugin("temperature_softmax"));
  EXPECT_TRUE(handler->has_predict());
  handler->model_fn(fs::temp_directory_path().string());  // no code/temperature.json: T = 1
  PluginServer s(handler);
  for (double temperature : {1.0, 0.25}) {
    const json request = {{"inputs", {"I love it", "awful"}}, {"parameters", {{"temperature", temperature}}}};
    auto r = http_request(s.server->port(), "POST", "/invocations", request.dump(), {{"Content-Type", "application/json"}});
    ASSERT_EQ(r.status, 200) << r.body;
    const json answer = json::parse(r.body);
    ASSERT_EQ(answer.size(), 2u) << r.body;
    for (std::size_t i = 0; i < 2; ++i) {
      const std::string text = request["inputs"][i];
      const auto want = tempered(FakeBackend::row(s.backend->tokenize(TextInput{text, std::nullopt}, {}), 2), temperature);
      const auto got = scores_of(answer[i]);
      const auto& names = s.backend->info().labels.id2label;
      ASSERT_EQ(got.size(), 2u) << answer[i];
      EXPECT_NEAR(got.at(names[0]), want[0], 1e-6) << text << " T=" << temperature;
      EXPECT_NEAR(got.at(names[1]), want[1], 1e-6) << text << " T=" << temperature;
    }
  }
  auto r = http_request(s.server->port(), "POST", "/invocations", R"({"inputs": "x", "parameters": {"temperature": 0}})",
                        {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("temperature"), std::string::npos) << r.body;
  // The model's own request checks reach the client through the handler.
  r = http_request(s.server->port(), "POST", "/invocations", R"({"inputs": 5})", {{"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 400) << r.body;
}

// SageMaker's convention: the handler in MODEL_DIR/code/ serves without any flag, its model_fn
// reading code/temperature.json; the scores are the real model's logits / T, softmaxed.
TEST(Handler, ServesFromTheModelsCodeFolder) {
  TUNESERVE_REQUIRE_SHARED("models/distilbert-tiny-init/model.safetensors");
  TUNESERVE_REQUIRE_SHARED("tokenizers/bert-base-cased/tokenizer.json");
  const fs::path model = fs::temp_directory_path() / fmt::format("tuneserve_code_handler_{}", getpid());
  fs::remove_all(model);
  fs::create_directories(model / "code");
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(testing::shared_path(std::string("models/distilbert-tiny-init/") + f), model / f);
  for (const auto& e : fs::directory_iterator(testing::shared_path("tokenizers/bert-base-cased")))
    fs::copy_file(e.path(), model / e.path().filename());
  fs::copy_file(plugin("temperature_softmax"), model / "code/libtemperature_softmax.so");
  std::ofstream(model / "code/temperature.json") << R"({"temperature": 0.05})";

  const int port = testing::free_port();
  testing::BackgroundProcess serve(fmt::format("{} serve --model {} --host 127.0.0.1 --port {} --threads 1",
                                               testing::binary_path(), model.string(), port),
                                   (model / "serve.log").string());
  ASSERT_TRUE(serve.wait_for_line("(loaded on)", std::chrono::seconds(60))) << serve.log();
  EXPECT_NE(serve.log().find("libtemperature_softmax.so"), std::string::npos) << serve.log();
  const std::vector<std::string> texts = {"Great value for the money.", "It broke after a day."};
  auto r = http_request(port, "POST", "/invocations", json{{"inputs", texts}}.dump(), {{"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body << serve.log();
  const json answer = json::parse(r.body);
  ASSERT_EQ(answer.size(), texts.size()) << r.body;

  const auto pipeline = Pipeline::load(model.string());
  CallOptions raw;
  raw.postprocess.function = ScoreFunction::None;
  raw.postprocess.top_k = TopK::all();
  std::vector<TextInput> inputs;
  for (const auto& t : texts) inputs.push_back(TextInput{t, std::nullopt});
  const auto logits = pipeline->predict(inputs, raw);
  for (std::size_t i = 0; i < texts.size(); ++i) {
    std::vector<float> row;
    for (const auto& label : pipeline->labels().id2label)
      for (const auto& ls : logits[i])
        if (ls.label == label) row.push_back(ls.score);
    const auto want = tempered(row, 0.05);
    const auto got = scores_of(answer[i]);
    for (std::size_t k = 0; k < row.size(); ++k)
      EXPECT_NEAR(got.at(pipeline->labels().id2label[k]), want[k], 1e-4) << texts[i];
  }
  serve.stop();
  fs::remove_all(model);
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

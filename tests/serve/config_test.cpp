// Settings of `tuneserve serve`: config file, SageMaker/TEI environment, and errors that name
// where a bad value came from.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.h"
#include "serve/config.h"

#include "test_util.h"

namespace tuneserve::serve {
namespace {

using tuneserve::testing::error_of;

namespace fs = std::filesystem;

std::string write_temp(const std::string& name, const std::string& text) {
  const fs::path path = fs::temp_directory_path() / fmt::format("tuneserve_{}_{}", getpid(), name);
  std::ofstream(path) << text;
  return path.string();
}

TEST(ServeConfig, FileThenEnvironment) {
  ServeOptions o;
  const std::string path = write_temp("serve.json", R"({"port": 9000, "workers": 3, "max_batch_tokens": "4096",
      "response_timeout": 2.5, "max_payload_mb": 1, "model": "/m", "max_batch_delay_ms": 0.5})");
  apply_config_file(o, path);
  fs::remove(path);
  EXPECT_EQ(o.server.port, 9000);
  EXPECT_EQ(o.batch.workers, 3);
  EXPECT_EQ(o.batch.max_batch_tokens, 4096u);
  EXPECT_EQ(o.server.response_timeout.count(), 2500);
  EXPECT_EQ(o.server.max_payload_bytes, 1024u * 1024u);
  EXPECT_EQ(o.batch.max_batch_delay.count(), 500);
  EXPECT_EQ(o.model, "/m");

  // The environment overrides the file (the CLI applies flags last).
  const std::map<std::string, std::string> env = {
      {"SAGEMAKER_BIND_TO_PORT", "8081"}, {"SAGEMAKER_MODEL_SERVER_WORKERS", "2"},
      {"SAGEMAKER_MODEL_SERVER_TIMEOUT", "30"}, {"SAGEMAKER_MAX_PAYLOAD_IN_MB", "6"},
      {"HF_TASK", "sentiment-analysis"}, {"MAX_BATCH_TOKENS", "8192"}, {"API_KEY", "k"},
      {"PORT", "1"}};  // SAGEMAKER_BIND_TO_PORT is listed first and wins
  apply_environment(o, [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
  EXPECT_EQ(o.server.port, 8081);
  EXPECT_EQ(o.batch.workers, 2);
  EXPECT_EQ(o.server.response_timeout.count(), 30000);
  EXPECT_EQ(o.server.max_payload_bytes, 6u * 1024u * 1024u);
  EXPECT_EQ(o.task, "sentiment-analysis");
  EXPECT_EQ(o.batch.max_batch_tokens, 8192u);
  EXPECT_EQ(o.server.api_key, "k");
}

// SageMaker's model-server variables: the request size in bytes wins over the one in MB, and the
// default Accept names one supported type.
TEST(ServeConfig, SageMakerRequestSizeAndDefaultAccept) {
  ServeOptions o;
  EXPECT_FALSE(o.workers_given);
  EXPECT_EQ(o.server.default_accept, Format::json);
  std::map<std::string, std::string> env = {{"SAGEMAKER_MAX_PAYLOAD_IN_MB", "1"},
                                            {"SAGEMAKER_MAX_REQUEST_SIZE", "1000"},
                                            {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "application/jsonlines"},
                                            {"SAGEMAKER_MODEL_SERVER_WORKERS", "3"}};
  auto from = [&](const char* name) -> const char* {
    auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  };
  apply_environment(o, from);
  EXPECT_EQ(o.server.max_payload_bytes, 1000u);
  EXPECT_EQ(o.server.default_accept, Format::jsonlines);
  EXPECT_TRUE(o.workers_given);
  EXPECT_EQ(o.batch.workers, 3);
  env = {{"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "text/csv"}};
  apply_environment(o, from);
  EXPECT_EQ(o.server.default_accept, Format::csv);
  for (const char* bad : {"image/png", "*/*", "application/json, text/csv"}) {
    env = {{"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", bad}};
    EXPECT_NE(error_of([&] { apply_environment(o, from); }).find("environment SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"),
              std::string::npos)
        << bad;
  }
  env = {{"SAGEMAKER_MAX_REQUEST_SIZE", "6MB"}};
  EXPECT_NE(error_of([&] { apply_environment(o, from); }).find("SAGEMAKER_MAX_REQUEST_SIZE"), std::string::npos);
}

TEST(ServeConfig, ErrorsNameTheSource) {
  ServeOptions o;
  auto env = [](const char* value) {
    return [value](const char* name) -> const char* {
      return std::string(name) == "SAGEMAKER_MODEL_SERVER_WORKERS" ? value : nullptr;
    };
  };
  EXPECT_NE(error_of([&] { apply_environment(o, env("two")); }).find("SAGEMAKER_MODEL_SERVER_WORKERS"), std::string::npos);
  EXPECT_NE(error_of([&] { apply_environment(o, env("0")); }).find("1..256"), std::string::npos);
  std::string path = write_temp("bad.json", R"({"max_batch_tokenz": 5})");
  EXPECT_NE(error_of([&] { apply_config_file(o, path); }).find("unknown setting \"max_batch_tokenz\""), std::string::npos);
  fs::remove(path);
  path = write_temp("bad2.json", R"({"task": "translation"})");
  EXPECT_NE(error_of([&] { apply_config_file(o, path); }).find("task"), std::string::npos);
  fs::remove(path);
  path = write_temp("bad3.json", "{not json");
  EXPECT_NE(error_of([&] { apply_config_file(o, path); }).find("bad3.json: invalid JSON"), std::string::npos);
  fs::remove(path);
  EXPECT_NE(error_of([&] { apply_config_file(o, "/nonexistent/serve.json"); }).find("/nonexistent/serve.json"), std::string::npos);
  for (const auto& s : serve_settings()) EXPECT_EQ(flag_of(s).find('_'), std::string::npos) << flag_of(s);
}

TEST(ServeConfig, DeviceFromFileEnvironmentOrFlagIsParsedWhereItCameFrom) {
  ServeOptions o;
  EXPECT_EQ(o.device, "");  // the CPU unless asked
  std::string path = write_temp("device.json", R"({"device": "cuda"})");
  apply_config_file(o, path);
  fs::remove(path);
  EXPECT_EQ(o.device, "cuda:0");
  apply_environment(o, [](const char* name) -> const char* {
    return std::string(name) == "TUNESERVE_DEVICE" ? "cpu" : nullptr;
  });
  EXPECT_EQ(o.device, "cpu");
  const std::string bad_env = error_of([&] {
    apply_environment(o, [](const char* name) -> const char* {
      return std::string(name) == "TUNESERVE_DEVICE" ? "gpu" : nullptr;
    });
  });
  EXPECT_NE(bad_env.find("environment TUNESERVE_DEVICE: device 'gpu'"), std::string::npos) << bad_env;
  path = write_temp("device2.json", R"({"device": "cuda:x"})");
  const std::string bad_file = error_of([&] { apply_config_file(o, path); });
  fs::remove(path);
  EXPECT_NE(bad_file.find("device: device 'cuda:x'"), std::string::npos) << bad_file;
}

TEST(ServeConfig, WeightCheckIsOnUnlessTurnedOff) {
  ServeOptions o;
  EXPECT_TRUE(o.weight_check);
  const std::string path = write_temp("weights.json", R"({"weight_check": false})");
  apply_config_file(o, path);
  fs::remove(path);
  EXPECT_FALSE(o.weight_check);
  for (const auto& s : serve_settings())
    if (s.name == "weight_check") {
      apply_setting(o, s, "true", "flag");
      EXPECT_TRUE(o.weight_check);
      EXPECT_NE(error_of([&] { apply_setting(o, s, "maybe", "flag --weight-check"); }).find("expected true or false"),
                std::string::npos);
    }
}

TEST(ServeConfig, DtypeFromFileEnvironmentOrFlagIsCheckedWhereItCameFrom) {
  ServeOptions o;
  EXPECT_EQ(o.dtype, "fp32");
  std::string path = write_temp("dtype.json", R"({"dtype": "bfloat16"})");
  apply_config_file(o, path);
  fs::remove(path);
  EXPECT_EQ(o.dtype, "bf16");
  apply_environment(o, [](const char* name) -> const char* {
    return std::string(name) == "TUNESERVE_DTYPE" ? "fp32" : nullptr;
  });
  EXPECT_EQ(o.dtype, "fp32");
  const std::string bad_env = error_of([&] {
    apply_environment(o, [](const char* name) -> const char* {
      return std::string(name) == "TUNESERVE_DTYPE" ? "int8" : nullptr;
    });
  });
  EXPECT_NE(bad_env.find("environment TUNESERVE_DTYPE: dtype 'int8': expected fp32 or bf16"), std::string::npos)
      << bad_env;
}

}  // namespace
}  // namespace tuneserve::serve

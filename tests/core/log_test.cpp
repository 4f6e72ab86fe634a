// core/log.h: levels and formats from flags or the environment, JSON lines that parse (with
// quotes, newlines and invalid UTF-8 in messages), access records whose fields become keys.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/log.h"

namespace {

using tuneserve::logging::configure;

std::vector<std::string> lines_of(const std::ostringstream& out) {
  std::vector<std::string> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class Logging : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv("TUNESERVE_LOG_LEVEL");
    ::unsetenv("TUNESERVE_LOG_FORMAT");
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  }
  void TearDown() override {
    ::unsetenv("TUNESERVE_LOG_LEVEL");
    ::unsetenv("TUNESERVE_LOG_FORMAT");
    configure("", "");  // back to stderr for the other tests
  }
  std::ostringstream out;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink;
};

TEST_F(Logging, JsonLinesParseAndCarryTimeLevelMessage) {
  configure("info", "json", sink);
  spdlog::info("a \"quoted\" {} with\nnewline and bad UTF-8 \xff", "value");
  spdlog::debug("hidden at info");
  spdlog::warn("second");
  const auto lines = lines_of(out);
  ASSERT_EQ(lines.size(), 2u) << out.str();
  const auto first = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(first["level"], "info");
  EXPECT_EQ(first["message"].get<std::string>().substr(0, 26), "a \"quoted\" value with\nnewl");
  const std::string time = first["time"];
  ASSERT_EQ(time.size(), 24u) << time;  // 2026-12-06T08:30:59.123Z
  EXPECT_EQ(time[10], 'T');
  EXPECT_EQ(time.back(), 'Z');
  EXPECT_EQ(nlohmann::json::parse(lines[1])["level"], "warning");
}

TEST_F(Logging, AccessRecordsAreObjectsInJsonAndALineInText) {
  configure("", "json", sink);
  nlohmann::ordered_json fields = {{"method", "POST"}, {"path", "/invocations"}, {"status", 200}, {"bytes", 57},
                                   {"ms", 4.25}, {"request_id", "abc"}};
  tuneserve::logging::access(fields, "POST /invocations 200 57 B 4.25 ms abc");
  auto record = nlohmann::json::parse(lines_of(out).at(0));
  EXPECT_EQ(record["method"], "POST");
  EXPECT_EQ(record["status"], 200);
  EXPECT_DOUBLE_EQ(record["ms"].get<double>(), 4.25);
  EXPECT_EQ(record["request_id"], "abc");
  EXPECT_EQ(record["level"], "info");
  EXPECT_FALSE(record.contains("message"));

  out.str("");
  configure("", "text", sink);
  tuneserve::logging::access(fields, "POST /invocations 200 57 B 4.25 ms abc");
  const auto text = lines_of(out).at(0);
  EXPECT_NE(text.find("[info] POST /invocations 200 57 B 4.25 ms abc"), std::string::npos) << text;

  out.str("");
  configure("warn", "text", sink);  // access records are info: off at warn
  tuneserve::logging::access(fields, "hidden");
  EXPECT_EQ(out.str(), "");
}

TEST_F(Logging, EnvironmentIsTheFallbackAndBadValuesNameTheirSource) {
  ::setenv("TUNESERVE_LOG_LEVEL", "error", 1);
  ::setenv("TUNESERVE_LOG_FORMAT", "json", 1);
  configure("", "", sink);
  spdlog::warn("hidden at error");
  spdlog::error("shown");
  ASSERT_EQ(lines_of(out).size(), 1u) << out.str();
  EXPECT_EQ(nlohmann::json::parse(lines_of(out)[0])["message"], "shown");

  out.str("");
  configure("debug", "text", sink);  // flags win over the environment
  spdlog::debug("shown at debug");
  EXPECT_NE(out.str().find("[debug] shown at debug"), std::string::npos) << out.str();

  ::setenv("TUNESERVE_LOG_LEVEL", "loud", 1);
  try {
    configure("", "text", sink);
    FAIL() << "an unknown level was accepted";
  } catch (const tuneserve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("TUNESERVE_LOG_LEVEL: 'loud' is not a log level"), std::string::npos) << e.what();
  }
  try {
    configure("info", "xml", sink);
    FAIL() << "an unknown format was accepted";
  } catch (const tuneserve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--log-format: 'xml'"), std::string::npos) << e.what();
  }
}

}  // namespace

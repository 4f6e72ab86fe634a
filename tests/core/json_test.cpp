// core/json.h: the one bounded JSON parser (depth, size) and bounded excerpts for messages.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/json.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;

std::string nested(int depth, char open = '[', char close = ']') {
  return std::string(static_cast<std::size_t>(depth), open) + std::string(static_cast<std::size_t>(depth), close);
}

std::string error_of(std::string_view text, const JsonLimits& limits = {}) {
  try {
    parse_json(text, "where.json", limits);
  } catch (const JsonError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Json, DepthLimitCountsOpenContainers) {
  EXPECT_EQ(parse_json(nested(64), "x").dump().size(), 128u);
  EXPECT_EQ(error_of(nested(65)), "where.json: JSON nested deeper than 64 levels");
  EXPECT_EQ(error_of(nested(1'000'000)), "where.json: JSON nested deeper than 64 levels");
  std::string objects;
  for (int i = 0; i < 10; ++i) objects += "{\"a\":";
  objects += "1" + std::string(10, '}');
  EXPECT_EQ(parse_json(objects, "x", {1024, 10})["a"]["a"]["a"].is_object(), true);
  EXPECT_NE(error_of(objects, {1024, 9}).find("deeper than 9"), std::string::npos);
}

TEST(Json, SizeLimitAndInvalidInputAreErrorsNamingWhere) {
  EXPECT_EQ(error_of("[1, 2, 3]", {8, 64}), "where.json: 9 bytes of JSON, over the limit of 8 bytes");
  const std::string bad = error_of("{\"a\": tru}");
  EXPECT_EQ(bad.rfind("where.json: invalid JSON: parse error at line 1, column 10", 0), 0u) << bad;
  EXPECT_NE(error_of("[1e999]").find("number overflow"), std::string::npos);
  EXPECT_NE(error_of("\"a\x80\"").find("invalid JSON"), std::string::npos);
  // nlohmann quotes the last token it read; a megabyte token must not reach the message.
  const std::string token = "[\"" + std::string(1 << 20, 'x');
  EXPECT_LT(error_of(token, {2 << 20, 64}).size(), 500u);
}

TEST(Json, FilesAreCheckedForSizeBeforeReading) {
  const fs::path path = fs::temp_directory_path() / ("tuneserve_json_" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << "{\"key\": [1, 2, 3]}";
  EXPECT_EQ(read_json_file(path.string())["key"].size(), 3u);
  try {
    read_json_file(path.string(), {10, 64});
    ADD_FAILURE() << "no error";
  } catch (const JsonError& e) {
    EXPECT_NE(std::string(e.what()).find(path.string() + ": 18 bytes, over the limit of 10 bytes"), std::string::npos)
        << e.what();
  }
  fs::remove(path);
  EXPECT_THROW(read_json_file(path.string()), Error);
}

TEST(Json, ExcerptsAreBoundedAndKeepUtf8Whole) {
  EXPECT_EQ(json_excerpt(nlohmann::json{{"a", 1}}), "{\"a\":1}");
  const std::string long_text(10000, 'y');
  EXPECT_LE(json_excerpt(nlohmann::json(long_text)).size(), 230u);
  EXPECT_EQ(text_excerpt("abc", 2), "ab... (3 bytes)");
  // "é" is two bytes: a cut inside it backs up to before it.
  EXPECT_EQ(text_excerpt("a\xC3\xA9z", 2), "a... (4 bytes)");
  EXPECT_EQ(json_excerpt(nlohmann::json(std::string("bad \xFF"))), "\"bad \xEF\xBF\xBD\"");
}

// The rule of issue 11, kept: outside core/json.cpp, nothing in src/ calls nlohmann's parser directly.
TEST(Json, EveryParseInTheProgramGoesThroughParseJson) {
  const fs::path src = fs::path(TUNESERVE_SOURCE_DIR) / "src";
  if (!fs::is_directory(src)) GTEST_SKIP() << "no source tree at " << src;
  std::vector<std::string> offenders;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    const auto ext = entry.path().extension();
    if (ext != ".cpp" && ext != ".h" && ext != ".cu" && ext != ".cuh") continue;
    if (entry.path() == src / "core" / "json.cpp") continue;
    std::ifstream in(entry.path());
    std::string line;
    for (int number = 1; std::getline(in, line); ++number)
      for (const char* call : {"json::parse(", "json::accept(", "json::sax_parse(", "json::from_cbor(", "json::from_msgpack("})
        if (line.find(call) != std::string::npos)
          offenders.push_back(entry.path().string() + ":" + std::to_string(number) + ": " + line);
  }
  EXPECT_TRUE(offenders.empty()) << "use parse_json / read_json_file (core/json.h):\n"
                                 << ::testing::PrintToString(offenders);
}

}  // namespace
}  // namespace tuneserve

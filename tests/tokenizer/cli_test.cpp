// `tuneserve tokenize` run as a process: its JSONL output equals the library's encodings, options
// reach the encoder, and a malformed line is an error naming the line, exit status 1.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct CliResult {
  int status;
  std::vector<json> lines;
  std::string err;
};

class TokenizeCli : public ::testing::Test {
 protected:
  fs::path dir;
  std::string tokenizer_dir;
  void SetUp() override {
    tokenizer_dir = testing::shared_path("tokenizers/bert-base-uncased");
    if (!fs::exists(tokenizer_dir)) GTEST_SKIP() << "reference material missing: " << tokenizer_dir;
    dir = fs::temp_directory_path() / ("tuneserve_cli_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
  }
  void TearDown() override {
    if (!dir.empty()) fs::remove_all(dir);
  }

  CliResult run(const std::string& input, const std::string& args) {
    std::ofstream(dir / "in.jsonl") << input;
    const std::string command = testing::binary_path() + " tokenize --tokenizer " + tokenizer_dir + " " + args +
                                " < " + (dir / "in.jsonl").string() + " > " + (dir / "out.jsonl").string() +
                                " 2> " + (dir / "err.txt").string();
    const int raw = std::system(command.c_str());
    CliResult r{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, {}, {}};
    std::ifstream out(dir / "out.jsonl");
    for (std::string line; std::getline(out, line);) r.lines.push_back(json::parse(line));
    std::stringstream err;
    err << std::ifstream(dir / "err.txt").rdbuf();
    r.err = err.str();
    return r;
  }

  static json as_json(const Encoding& e, bool mask) {
    json offsets = json::array();
    for (auto [b, end] : e.offsets) offsets.push_back({b, end});
    json j = {{"ids", e.ids}, {"type_ids", e.type_ids}, {"offsets", offsets}};
    if (mask) j["attention_mask"] = e.attention_mask;
    return j;
  }
};

TEST_F(TokenizeCli, OutputEqualsTheLibrary) {
  const Tokenizer t = Tokenizer::from_dir(tokenizer_dir);
  const CliResult r = run(
      "{\"text\": \"Héllo wörld! [SEP] 日本\"}\n"
      "{\"text\": \"Is this good?\", \"text_pair\": \"Yes, very good.\"}\n"
      "{\"text\": \"\", \"text_pair\": null}\r\n",
      "");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 3u);
  EXPECT_EQ(r.lines[0], as_json(t.encode("Héllo wörld! [SEP] 日本"), false));
  EXPECT_EQ(r.lines[1], as_json(t.encode("Is this good?", std::string_view("Yes, very good.")), false));
  EXPECT_EQ(r.lines[2], as_json(t.encode(""), false));
}

TEST_F(TokenizeCli, TruncationAndPaddingOptions) {
  const Tokenizer t = Tokenizer::from_dir(tokenizer_dir);
  const std::string a = "one two three four five six seven eight nine ten", b = "alpha beta gamma";
  const std::string input = "{\"text\": \"" + a + "\", \"text_pair\": \"" + b + "\"}\n{\"text\": \"short\"}\n";
  EncodeOptions o;
  o.max_length = 8;
  o.truncation = Truncation::OnlyFirst;
  CliResult r = run(input, "--max-length 8 --truncation only_first");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_EQ(r.lines.size(), 2u);
  EXPECT_EQ(r.lines[0], as_json(t.encode(a, std::string_view(b), o), false));
  EXPECT_EQ(r.lines[0]["ids"].size(), 8u);

  o.truncation = Truncation::LongestFirst;
  o.padding = Padding::Longest;
  r = run(input, "--max-length 8 --padding longest");  // longest_first is the default with --max-length
  ASSERT_EQ(r.status, 0) << r.err;
  const auto batch = t.encode_batch({a, "short"}, {}, o);  // the same lines as one padded batch
  ASSERT_EQ(r.lines.size(), 2u);
  EXPECT_EQ(r.lines[1]["ids"].size(), 8u);
  EXPECT_EQ(r.lines[1], as_json(batch[1], true));
  EXPECT_EQ(r.lines[1]["attention_mask"].back(), 0);
}

TEST_F(TokenizeCli, MalformedLineNamesItsNumberAndExitsOne) {
  CliResult r = run("{\"text\": \"fine\"}\n{\"text\": 12}\n{\"text\": \"never reached\"}\n", "");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_EQ(r.lines.size(), 1u);  // the good line before it was written

  r = run("{\"text\": \"fine\"}\nnot json at all\n", "");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("invalid JSON"), std::string::npos) << r.err;

  r = run("{\"txt\": \"typo\"}\n", "");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("line 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("\"text\""), std::string::npos) << r.err;

  r = run("{\"text\": \"x\"}\n", "--truncation sideways");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("sideways"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace tuneserve

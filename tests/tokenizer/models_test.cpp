// The BPE and Unigram models on small vocabularies, with cases from Hugging Face `tokenizers`' own
// tests (models/bpe/model.rs, models/unigram/model.rs), the pre-tokenizers' rewriting rules, and
// bad tokenizer files: each error names the file, the field or line, and what is wrong.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Ids = std::vector<std::int32_t>;
using Spans = std::vector<std::pair<std::int32_t, std::int32_t>>;

class SmallModel : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tuneserve_models_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  Tokenizer load(const json& model, const json& extra = json::object()) {
    json root = {{"model", model}};
    root.update(extra);
    std::ofstream(dir_ / "tokenizer.json") << root.dump();
    return Tokenizer::from_dir(dir_.string());
  }
  std::string error(const std::string& file, const std::string& text) {
    std::ofstream(dir_ / file) << text;
    return testing::error_of([&] { Tokenizer::from_dir(dir_.string()); });
  }
  static Ids ids(const Tokenizer& t, const std::string& text) { return t.encode(text).ids; }

  fs::path dir_;
};

json unrelated_bpe() {
  json vocab = json::object();
  std::int32_t id = 0;
  for (const char* t : {"u", "n", "r", "e", "l", "a", "t", "d", "re", "at", "ed", "un", "ated", "rel", "related",
                        "unrelated"})
    vocab[t] = id++;
  return {{"type", "BPE"},
          {"vocab", vocab},
          {"merges", {"r e", "a t", "e d", "u n", "at ed", "re l", "rel ated", "un related"}}};
}

TEST_F(SmallModel, BpeMergesByRankIntoTheWholeWord) {
  const Tokenizer t = load(unrelated_bpe());
  EXPECT_STREQ(t.kind(), "BPE");
  EXPECT_EQ(ids(t, "unrelated"), (Ids{15}));
  // Without the last merges the rank order decides: "un" + "related" needs rank 7.
  json partial = unrelated_bpe();
  partial["merges"] = {"r e", "a t", "e d", "u n", "at ed", "re l", "rel ated"};
  EXPECT_EQ(ids(load(partial), "unrelated"), (Ids{11, 14}));
  // The [left, right] merge form of newer files reads the same.
  json tuples = unrelated_bpe();
  tuples["merges"] = json::array();
  const json strings = unrelated_bpe()["merges"];
  for (const auto& m : strings) {
    const std::string s = m.get<std::string>();
    tuples["merges"].push_back(json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)}));
  }
  EXPECT_EQ(ids(load(tuples), "unrelated"), (Ids{15}));
}

TEST_F(SmallModel, BpeUnknownCharsFuseOnlyWhenAsked) {
  json model = {{"type", "BPE"}, {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}}}, {"merges", json::array()},
                {"unk_token", "<unk>"}};
  const Encoding apart = load(model).encode("accb");
  EXPECT_EQ(apart.ids, (Ids{1, 0, 0, 2}));
  EXPECT_EQ(apart.offsets, (Spans{{0, 1}, {1, 2}, {2, 3}, {3, 4}}));
  model["fuse_unk"] = true;
  const Encoding fused = load(model).encode("accb");
  EXPECT_EQ(fused.ids, (Ids{1, 0, 2}));
  EXPECT_EQ(fused.offsets, (Spans{{0, 1}, {1, 3}, {3, 4}}));
  // Without an unk_token an unknown char is dropped, as tokenizers drops it.
  model.erase("unk_token");
  EXPECT_EQ(ids(load(model), "accb"), (Ids{1, 2}));
  // byte_fallback: a char missing from the vocabulary becomes its UTF-8 bytes' pieces.
  json bytes = {{"type", "BPE"}, {"vocab", {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}}},
                {"merges", json::array()}, {"unk_token", "<unk>"}, {"byte_fallback", true}};
  const Encoding e = load(bytes).encode("a\u00e9");
  EXPECT_EQ(e.ids, (Ids{1, 2, 3}));
  EXPECT_EQ(e.offsets, (Spans{{0, 1}, {1, 2}, {1, 2}}));
}

// A Unigram vocabulary: [[piece, score], ...] in id order.
json pieces(const std::vector<std::pair<std::string, double>>& list) {
  json out = json::array();
  for (const auto& [piece, score] : list) out.push_back(json::array({piece, score}));
  return out;
}

json abcd_unigram() {
  return {{"type", "Unigram"},
          {"unk_id", 0},
          {"vocab", pieces({{"<unk>", 0.0}, {"a", 0.0}, {"b", 0.0}, {"c", 0.0}, {"d", 0.0}, {"cd", 1.0}, {"ab", 2.0},
                            {"abc", 5.0}, {"abcd", 10.0}})}};
}

TEST_F(SmallModel, UnigramTakesTheBestScoringSplitAndFusesUnknowns) {
  const Tokenizer t = load(abcd_unigram());
  EXPECT_STREQ(t.kind(), "Unigram");
  // tokenizers' doc example: "abcdacdxx" -> abcd a cd xx (the two unknown x fused).
  const Encoding e = t.encode("abcdacdxx");
  EXPECT_EQ(e.ids, (Ids{8, 1, 5, 0}));
  EXPECT_EQ(e.offsets, (Spans{{0, 4}, {4, 5}, {5, 7}, {7, 9}}));
  // byte_fallback: the unknown piece becomes its bytes, each spanning the piece.
  json model = abcd_unigram();
  model["byte_fallback"] = true;
  model["vocab"].push_back(json::array({"<0x78>", 0.0}));
  const Encoding b = load(model).encode("axx");
  EXPECT_EQ(b.ids, (Ids{1, 9, 9}));
  EXPECT_EQ(b.offsets, (Spans{{0, 1}, {1, 3}, {1, 3}}));
  // Without unk_id an uncovered char is an error, not a silent drop.
  model = abcd_unigram();
  model["unk_id"] = nullptr;
  EXPECT_NE(testing::error_of([&] { load(model).encode("ax"); }).find("no unk_id"), std::string::npos);
}

TEST_F(SmallModel, MetaspaceAndByteLevelRewriteWordsAsTokenizersDoes) {
  json unigram = {{"type", "Unigram"}, {"unk_id", 0},
                  {"vocab", pieces({{"<unk>", 0.0}, {"\u2581", -1.0}, {"\u2581a", -1.0}, {"b", -1.0}, {"\u2581b", -2.0}})}};
  // prepend_scheme always: every word gets the replacement; first: only the text's first word.
  json meta = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  json pre = {{"type", "Sequence"}, {"pretokenizers", {{{"type", "WhitespaceSplit"}}, meta}}};
  EXPECT_EQ(ids(load(unigram, {{"pre_tokenizer", pre}}), "a  b"), (Ids{2, 4}));
  pre["pretokenizers"][1]["prepend_scheme"] = "first";
  EXPECT_EQ(ids(load(unigram, {{"pre_tokenizer", pre}}), "a  b"), (Ids{2, 3}));
  // Without WhitespaceSplit the spaces themselves become replacements that split the text.
  EXPECT_EQ(ids(load(unigram, {{"pre_tokenizer", meta}}), "a  b"), (Ids{2, 1, 4}));

  // ByteLevel: GPT-2's split keeps a space with the word after it; bytes map to printable chars.
  json vocab = json::object();
  std::int32_t id = 0;
  for (const char* t : {"a", "b", "\u0120", "\u0120b", "\u010a"}) vocab[t] = id++;
  const Tokenizer bl = load({{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\u0120 b"}}},
                            {{"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
                             {"post_processor", {{"type", "ByteLevel"}, {"trim_offsets", true}}}});
  const Encoding e = bl.encode("a  b\n");
  EXPECT_EQ(e.ids, (Ids{0, 2, 3, 4}));
  // trim_offsets: the "Ġ" token keeps no char, "Ġb" only its letter.
  EXPECT_EQ(e.offsets, (Spans{{0, 1}, {2, 2}, {3, 4}, {4, 5}}));
}

TEST_F(SmallModel, BadFilesNameTheFileTheFieldAndTheProblem) {
  const std::string file = (dir_ / "tokenizer.json").string();
  std::string m = error("tokenizer.json", R"({"model": {"type": "WordLevel", "vocab": {"a": 0}}})");
  EXPECT_NE(m.find("WordLevel"), std::string::npos) << m;
  EXPECT_NE(m.find(file), std::string::npos) << m;
  m = error("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})");
  EXPECT_NE(m.find("model (BPE).merges[0]"), std::string::npos) << m;
  EXPECT_NE(m.find("\"ab\" is not in the vocabulary"), std::string::npos) << m;
  m = error("tokenizer.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b c"]}})");
  EXPECT_NE(m.find("two pieces separated by one space"), std::string::npos) << m;
  m = error("tokenizer.json", R"({"model": {"type": "Unigram", "unk_id": 5, "vocab": [["a", -1.0]]}})");
  EXPECT_NE(m.find("unk_id 5 is outside the vocabulary"), std::string::npos) << m;
  m = error("tokenizer.json", R"({"model": {"type": "Unigram", "vocab": [["a"]]}})");
  EXPECT_NE(m.find("vocab[0]: must be [piece, score]"), std::string::npos) << m;
  m = error("tokenizer.json", R"({"normalizer": {"type": "Precompiled", "precompiled_charsmap": "!!!!"},
                                  "model": {"type": "Unigram", "vocab": [["a", 0.0]]}})");
  EXPECT_NE(m.find("not valid base64"), std::string::npos) << m;
  m = error("tokenizer.json", R"({"normalizer": {"type": "Precompiled", "precompiled_charsmap": "/////w=="},
                                  "model": {"type": "Unigram", "vocab": [["a", 0.0]]}})");
  EXPECT_NE(m.find("does not fit"), std::string::npos) << m;
  m = error("tokenizer.json", R"({"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s"}},
                                  "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  EXPECT_NE(m.find("pre_tokenizer type \"Split\" is not supported"), std::string::npos) << m;
  fs::remove(dir_ / "tokenizer.json");

  // vocab.json + merges.txt: a merge whose piece the vocabulary lacks names its line.
  std::ofstream(dir_ / "vocab.json") << R"({"a": 0, "b": 1, "ab": 2, "<s>": 3, "</s>": 4})";
  m = error("merges.txt", "#version: 0.2\na b\nab c\n");
  EXPECT_NE(m.find("merges.txt: line 3"), std::string::npos) << m;
  EXPECT_NE(m.find("\"c\" is not in the vocabulary"), std::string::npos) << m;
  fs::remove(dir_ / "merges.txt");
  m = testing::error_of([&] { Tokenizer::from_dir(dir_.string()); });
  EXPECT_NE(m.find("vocab.json without the merges.txt"), std::string::npos) << m;
}

TEST_F(SmallModel, InvalidUtf8IsAnErrorForEveryKind) {
  for (const json& model : {unrelated_bpe(), abcd_unigram()}) {
    const Tokenizer t = load(model);
    EXPECT_NE(testing::error_of([&] { t.encode(std::string("ab \xC3\x28")); }).find("not valid UTF-8"),
              std::string::npos)
        << t.kind();
  }
}

}  // namespace
}  // namespace tuneserve

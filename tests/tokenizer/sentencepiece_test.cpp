// SentencePiece .model tokenizers against Python's sentencepiece (tests/tokenizer/spm_reference.py,
// Debian python3-sentencepiece under /usr/bin/python3) on the randomised corpus (corpus.h):
// ALBERT's spiece.model as is and with AlbertTokenizer's preprocessing, DeBERTa-v3's spm.model
// (byte fallback); then Hugging Face's conventions around them: the [CLS] A [SEP] B [SEP]
// template, special tokens split out of the text, AlbertTokenizer's [MASK] taking the space
// before it, DebertaV2Tokenizer's [MASK] added after the pieces.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "corpus.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Ids = std::vector<std::int32_t>;

const char* kPython = "/usr/bin/python3";

class SentencePieceTokenizer : public ::testing::Test {
 protected:
  void SetUp() override {
    TUNESERVE_REQUIRE_SHARED("tokenizers/albert-base-v2/spiece.model");
    std::string out;
    if (testing::run_command(std::string(kPython) + " -c 'import sentencepiece'", out) != 0)
      GTEST_SKIP() << kPython << " cannot import sentencepiece (Debian python3-sentencepiece): " << out;
    tmp_ = fs::temp_directory_path() /
           ("tuneserve_spm_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(tmp_);
  }
  void TearDown() override {
    if (!tmp_.empty()) fs::remove_all(tmp_);
  }

  // Python sentencepiece's ids for each text (no special tokens).
  std::vector<Ids> reference(const std::string& model, const std::vector<std::string>& texts, bool albert) {
    {
      std::ofstream in(tmp_ / "in.jsonl");
      for (const auto& t : texts) in << json{{"text", t}}.dump() << "\n";
    }
    std::string log;
    const int status = testing::run_command(std::string(kPython) + " " + TUNESERVE_SOURCE_DIR +
                                                "/tests/tokenizer/spm_reference.py " + model + " " +
                                                (tmp_ / "in.jsonl").string() + " " + (tmp_ / "out.jsonl").string() +
                                                (albert ? " --albert" : ""),
                                            log);
    EXPECT_EQ(status, 0) << log;
    std::vector<Ids> out;
    for (const auto& line : testing::lines_of((tmp_ / "out.jsonl").string())) out.push_back(json::parse(line).get<Ids>());
    EXPECT_EQ(out.size(), texts.size());
    return out;
  }

  // A directory holding `model` (linked, not copied) under `name` and a tokenizer_config.json.
  std::string dir_with_class(const std::string& model, const std::string& name, const json& config) {
    const fs::path dir = tmp_ / "tokenizer";
    fs::create_directories(dir);
    fs::create_symlink(model, dir / name);
    std::ofstream(dir / "tokenizer_config.json") << config.dump();
    return dir.string();
  }

  // Compares the corpus texts (and pair halves) without special tokens; texts holding a special
  // token's spelling are left to the convention tests below.
  void check_corpus(const Tokenizer& tokenizer, const std::string& model, bool albert, const char* form) {
    const bool full = std::getenv("TUNESERVE_CROSSCHECK_FULL") != nullptr;
    std::vector<std::string> texts;
    std::size_t skipped = 0;
    for (const auto& input : testing::corpus(full))
      for (const std::string* t : {&input.text, input.pair ? &*input.pair : nullptr}) {
        if (!t) continue;
        const bool special = std::any_of(std::begin(kSpecials), std::end(kSpecials),
                                         [&](const char* s) { return t->find(s) != std::string::npos; });
        if (special) ++skipped;
        else texts.push_back(*t);
      }
    const auto expected = reference(model, texts, albert);
    EncodeOptions plain;
    plain.add_special_tokens = false;
    std::size_t matched = 0, shown = 0;
    for (std::size_t i = 0; i < texts.size() && i < expected.size(); ++i) {
      const Ids got = tokenizer.encode(texts[i], std::nullopt, plain).ids;
      if (got == expected[i]) {
        ++matched;
        continue;
      }
      if (shown++ < 5)
        ADD_FAILURE() << form << "\n  text:   " << json(texts[i]).dump() << "\n  python: " << json(expected[i]).dump()
                      << "\n  ours:   " << json(got).dump();
    }
    std::printf("%-28s compared %zu, matched %zu; skipped %zu texts holding a special token's spelling\n", form,
                texts.size(), matched, skipped);
    EXPECT_EQ(matched, texts.size()) << form;
  }

  static constexpr const char* kSpecials[] = {"[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "<pad>", "<unk>"};
  fs::path tmp_;
};

TEST_F(SentencePieceTokenizer, AlbertModelMatchesPythonSentencepiece) {
  const std::string model = testing::shared_path("tokenizers/albert-base-v2/spiece.model");
  const Tokenizer t = Tokenizer::from_dir(testing::shared_path("tokenizers/albert-base-v2"));
  EXPECT_STREQ(t.kind(), "SentencePiece");
  EXPECT_EQ(t.vocab_size(), 30000u);
  check_corpus(t, model, false, "albert spiece.model");
}

TEST_F(SentencePieceTokenizer, AlbertTokenizerClassPreprocessesLikeTransformers) {
  const std::string model = testing::shared_path("tokenizers/albert-base-v2/spiece.model");
  const Tokenizer t = Tokenizer::from_dir(dir_with_class(model, "spiece.model", {{"tokenizer_class", "AlbertTokenizer"}}));
  EXPECT_TRUE(t.lowercase());
  check_corpus(t, model, true, "albert + AlbertTokenizer");
}

TEST_F(SentencePieceTokenizer, DebertaV3ModelWithByteFallbackMatchesPythonSentencepiece) {
  TUNESERVE_REQUIRE_SHARED("tokenizers/deberta-v3-base/spm.model");
  const std::string model = testing::shared_path("tokenizers/deberta-v3-base/spm.model");
  const Tokenizer t = Tokenizer::from_dir(testing::shared_path("tokenizers/deberta-v3-base"));
  check_corpus(t, model, false, "deberta-v3 spm.model");
}

TEST_F(SentencePieceTokenizer, TemplateAndSpecialTokensFollowTransformers) {
  const std::string model = testing::shared_path("tokenizers/albert-base-v2/spiece.model");
  const Tokenizer plain = Tokenizer::from_dir(testing::shared_path("tokenizers/albert-base-v2"));
  const auto py = reference(model, {"a short text", "and a second one", "hello", " world", "hello "}, false);
  ASSERT_EQ(py.size(), 5u);
  // [CLS] A [SEP] and [CLS] A [SEP] B [SEP], type ids 0 then 1; ids of the pieces the model holds.
  EXPECT_EQ(plain.cls_id(), 2);
  EXPECT_EQ(plain.sep_id(), 3);
  EXPECT_EQ(plain.pad_id(), 0);
  const Encoding single = plain.encode("a short text");
  Ids expected = {2};
  expected.insert(expected.end(), py[0].begin(), py[0].end());
  expected.push_back(3);
  EXPECT_EQ(single.ids, expected);
  const Encoding pair = plain.encode("a short text", std::string_view("and a second one"));
  expected.insert(expected.end(), py[1].begin(), py[1].end());
  expected.push_back(3);
  EXPECT_EQ(pair.ids, expected);
  Ids types(py[0].size() + 2, 0);
  types.insert(types.end(), py[1].size() + 1, 1);
  EXPECT_EQ(pair.type_ids, types);
  EXPECT_EQ(plain.num_special_tokens(true), 3u);

  // Special tokens are split out of the text before SentencePiece sees it; AlbertTokenizer's
  // [MASK] takes the space before it.
  EncodeOptions no_specials;
  no_specials.add_special_tokens = false;
  Ids with_mask = py[4];  // "hello " (no class: [MASK] leaves the space to the text before it)
  with_mask.push_back(4);
  with_mask.insert(with_mask.end(), py[3].begin(), py[3].end());
  EXPECT_EQ(plain.encode("hello [MASK] world", std::nullopt, no_specials).ids, with_mask);
  const Tokenizer albert =
      Tokenizer::from_dir(dir_with_class(model, "spiece.model", {{"tokenizer_class", "AlbertTokenizer"}}));
  Ids lstripped = py[2];
  lstripped.push_back(4);
  lstripped.insert(lstripped.end(), py[3].begin(), py[3].end());
  const Encoding masked = albert.encode("hello [MASK] world", std::nullopt, no_specials);
  EXPECT_EQ(masked.ids, lstripped);
  // Offsets are the pieces' text without the whitespace SentencePiece folds into "▁": [MASK] with
  // the space it took.
  EXPECT_EQ(masked.offsets[py[2].size()], (std::pair<std::int32_t, std::int32_t>{5, 12}));
}

TEST_F(SentencePieceTokenizer, DebertaV2TokenizerAddsItsMaskAfterThePieces) {
  TUNESERVE_REQUIRE_SHARED("tokenizers/deberta-v3-base/spm.model");
  const std::string model = testing::shared_path("tokenizers/deberta-v3-base/spm.model");
  const Tokenizer bare = Tokenizer::from_dir(testing::shared_path("tokenizers/deberta-v3-base"));
  EXPECT_FALSE(bare.token_to_id("[MASK]").has_value());
  const Tokenizer t = Tokenizer::from_dir(dir_with_class(model, "spm.model", {{"tokenizer_class", "DebertaV2Tokenizer"}}));
  EXPECT_EQ(t.token_to_id("[MASK]"), 128000);
  EXPECT_EQ(t.mask_id(), 128000);
  EXPECT_EQ(t.vocab_size(), 128001u);
  EXPECT_EQ(t.cls_id(), 1);
  EXPECT_EQ(t.sep_id(), 2);
  const Encoding e = t.encode("a [MASK] b");
  EXPECT_NE(std::find(e.ids.begin(), e.ids.end(), 128000), e.ids.end());
}

TEST_F(SentencePieceTokenizer, BrokenOrUnsupportedModelsSayWhy) {
  const fs::path bad = tmp_ / "bad";
  fs::create_directories(bad);
  std::ofstream(bad / "spiece.model") << "this is not a protobuf";
  EXPECT_NE(testing::error_of([&] { Tokenizer::from_dir(bad.string()); }).find("not a SentencePiece model"),
            std::string::npos);
  const std::string model = testing::shared_path("tokenizers/albert-base-v2/spiece.model");
  const std::string other = dir_with_class(model, "spiece.model", {{"tokenizer_class", "XLMRobertaTokenizer"}});
  EXPECT_NE(testing::error_of([&] { Tokenizer::from_dir(other); }).find("XLMRobertaTokenizer is not supported"),
            std::string::npos);
}

}  // namespace
}  // namespace tuneserve

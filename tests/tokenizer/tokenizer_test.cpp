// Tokenizer behaviour beyond the goldens: truncation strategies (tokenizers' rules), padding,
// special ids read from the files, added-token flags (cases from tokenizers' own tests),
// thread safety, and clear errors for bad files and bad text.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include <unistd.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kLong =
    "This blender is the best kitchen purchase I have made in years, it crushes ice in seconds and "
    "cleans up easily.";
const char* kShort = "Great value!";

Tokenizer cased() {
  static const Tokenizer t = Tokenizer::from_dir(testing::shared_path("tokenizers/bert-base-cased"));
  return t;
}

// Content tokens of `text` (no template), from the untruncated encoding.
std::vector<std::int32_t> content_ids(const Tokenizer& t, std::string_view text) {
  EncodeOptions plain;
  plain.add_special_tokens = false;
  return t.encode(text, std::nullopt, plain).ids;
}

std::vector<std::int32_t> prefix(const std::vector<std::int32_t>& v, std::size_t n) {
  return {v.begin(), v.begin() + static_cast<std::ptrdiff_t>(std::min(n, v.size()))};
}

std::vector<std::int32_t> bert_pair(const Tokenizer& t, const std::vector<std::int32_t>& a,
                                    const std::vector<std::int32_t>& b) {
  std::vector<std::int32_t> ids = {t.cls_id()};
  ids.insert(ids.end(), a.begin(), a.end());
  ids.push_back(t.sep_id());
  ids.insert(ids.end(), b.begin(), b.end());
  ids.push_back(t.sep_id());
  return ids;
}

class TokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::shared_path("tokenizers/bert-base-cased/tokenizer.json")))
      GTEST_SKIP() << "reference material missing: ../shared/tokenizers";
  }
};

TEST_F(TokenizerTest, SpecialIdsAndVocabularyComeFromTheFiles) {
  // Independent reference: the line numbers of vocab.txt.
  std::ifstream in(testing::shared_path("tokenizers/bert-base-cased/vocab.txt"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto line_of = [&](const std::string& token) {
    return static_cast<std::int32_t>(std::find(lines.begin(), lines.end(), token) - lines.begin());
  };
  const Tokenizer t = cased();
  EXPECT_EQ(t.vocab_size(), lines.size());
  EXPECT_EQ(t.pad_id(), line_of("[PAD]"));
  EXPECT_EQ(t.cls_id(), line_of("[CLS]"));
  EXPECT_EQ(t.sep_id(), line_of("[SEP]"));
  EXPECT_EQ(t.unk_id(), line_of("[UNK]"));
  EXPECT_EQ(t.mask_id(), line_of("[MASK]"));
  EXPECT_EQ(t.token_to_id("##ing"), line_of("##ing"));
  EXPECT_EQ(t.id_to_token(line_of("kitchen")), "kitchen");
  EXPECT_FALSE(t.token_to_id("not-a-token-anywhere").has_value());
  EXPECT_THROW(t.id_to_token(-1), Error);
  EXPECT_THROW(t.id_to_token(static_cast<std::int32_t>(t.vocab_size())), Error);
  EXPECT_EQ(t.model_max_length(), std::optional<std::size_t>(512));
  EXPECT_EQ(t.num_special_tokens(false), 2u);
  EXPECT_EQ(t.num_special_tokens(true), 3u);
  EXPECT_FALSE(t.lowercase());
  EXPECT_TRUE(Tokenizer::from_dir(testing::shared_path("tokenizers/bert-base-uncased")).lowercase());
}

TEST_F(TokenizerTest, PairLayoutTypesMasksAndSequenceIds) {
  const Tokenizer t = cased();
  const auto a = content_ids(t, kShort), b = content_ids(t, kLong);
  const Encoding e = t.encode(kShort, kLong);
  EXPECT_EQ(e.ids, bert_pair(t, a, b));
  const std::size_t n = e.size();
  ASSERT_EQ(e.type_ids.size(), n);
  ASSERT_EQ(e.attention_mask.size(), n);
  ASSERT_EQ(e.special_tokens_mask.size(), n);
  ASSERT_EQ(e.offsets.size(), n);
  ASSERT_EQ(e.sequence_ids.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    const bool special = i == 0 || i == a.size() + 1 || i == n - 1;
    const bool second = i > a.size() + 1;
    EXPECT_EQ(e.special_tokens_mask[i], special ? 1 : 0) << i;
    EXPECT_EQ(e.type_ids[i], second ? 1 : 0) << i;
    EXPECT_EQ(e.sequence_ids[i], special ? -1 : (second ? 1 : 0)) << i;
    EXPECT_EQ(e.attention_mask[i], 1);
    if (special) {
      EXPECT_EQ(e.offsets[i], std::make_pair(0, 0));
    }
  }
  // Offsets of the pair are positions in the pair's own text.
  EXPECT_EQ(e.offsets[a.size() + 2], std::make_pair(0, 4));  // "This"
}

TEST_F(TokenizerTest, TruncationLongestFirstFollowsTokenizers) {
  const Tokenizer t = cased();
  const auto a = content_ids(t, kLong), s = content_ids(t, kShort);
  ASSERT_GT(a.size(), 20u);
  ASSERT_EQ(s.size(), 3u);
  EncodeOptions o;
  o.truncation = Truncation::LongestFirst;

  o.max_length = 10;  // single: 8 content tokens + [CLS] [SEP]
  Encoding e = t.encode(kLong, std::nullopt, o);
  std::vector<std::int32_t> expected = {t.cls_id()};
  for (auto id : prefix(a, 8)) expected.push_back(id);
  expected.push_back(t.sep_id());
  EXPECT_EQ(e.ids, expected);
  EXPECT_EQ(e.offsets[8], t.encode(kLong).offsets[8]);

  o.max_length = 15;  // budget 12: the short side (3) stays whole, the long side gets 9
  EXPECT_EQ(t.encode(kLong, std::string_view(kShort), o).ids, bert_pair(t, prefix(a, 9), s));
  EXPECT_EQ(t.encode(kShort, std::string_view(kLong), o).ids, bert_pair(t, s, prefix(a, 9)));

  o.max_length = 7;  // budget 4 < both kept whole: split 2 / 2
  EXPECT_EQ(t.encode(kLong, std::string_view(kLong), o).ids, bert_pair(t, prefix(a, 2), prefix(a, 2)));
  o.max_length = 8;  // odd budget 5: the first gets 2, the second 3 (tokenizers gives the extra to n2)
  EXPECT_EQ(t.encode(kLong, std::string_view(kLong), o).ids, bert_pair(t, prefix(a, 2), prefix(a, 3)));
  // Short sequence longer than half the budget: both cut to half (tokenizers case 3).
  o.max_length = 7;
  EXPECT_EQ(t.encode(kShort, std::string_view(kLong), o).ids, bert_pair(t, prefix(s, 2), prefix(a, 2)));

  o.max_length = 1000;  // nothing to cut
  EXPECT_EQ(t.encode(kLong, std::string_view(kShort), o).ids, bert_pair(t, a, s));
  o.max_length = 0;  // model_max_length (512) from tokenizer_config.json
  EXPECT_EQ(t.encode(kLong, std::string_view(kShort), o).ids, bert_pair(t, a, s));
}

TEST_F(TokenizerTest, TruncationOnlyFirstAndOnlySecond) {
  const Tokenizer t = cased();
  const auto a = content_ids(t, kLong), s = content_ids(t, kShort);
  EncodeOptions o;
  o.max_length = 15;  // budget 12, total a + 3: remove a.size() - 9
  o.truncation = Truncation::OnlyFirst;
  EXPECT_EQ(t.encode(kLong, std::string_view(kShort), o).ids, bert_pair(t, prefix(a, 9), s));
  EXPECT_THROW(t.encode(kShort, std::string_view(kLong), o), Error);  // first too short to remove enough
  o.truncation = Truncation::OnlySecond;
  EXPECT_EQ(t.encode(kShort, std::string_view(kLong), o).ids, bert_pair(t, s, prefix(a, 9)));
  EXPECT_THROW(t.encode(kLong, std::string_view(kShort), o), Error);
  EXPECT_THROW(t.encode(kLong, std::nullopt, o), Error);  // no pair to cut
  o.truncation = Truncation::LongestFirst;
  o.max_length = 2;  // fewer than the 3 special tokens of a pair
  EXPECT_THROW(t.encode(kLong, std::string_view(kShort), o), Error);
}

TEST_F(TokenizerTest, PaddingLongestMaxLengthAndMultiple) {
  const Tokenizer t = cased();
  EncodeOptions o;
  o.padding = Padding::Longest;
  const auto batch = t.encode_batch({kShort, kLong, ""}, {}, o);
  ASSERT_EQ(batch.size(), 3u);
  const Encoding full = t.encode(kLong);
  for (const Encoding& e : batch) {
    ASSERT_EQ(e.size(), full.size());
    ASSERT_EQ(e.attention_mask.size(), full.size());
  }
  const Encoding& shortest = batch[2];  // [CLS] [SEP] + padding
  EXPECT_EQ(shortest.ids[0], t.cls_id());
  EXPECT_EQ(shortest.ids[1], t.sep_id());
  for (std::size_t i = 2; i < shortest.size(); ++i) {
    EXPECT_EQ(shortest.ids[i], t.pad_id());
    EXPECT_EQ(shortest.attention_mask[i], 0);
    EXPECT_EQ(shortest.special_tokens_mask[i], 1);
    EXPECT_EQ(shortest.type_ids[i], t.pad_type_id());
    EXPECT_EQ(shortest.sequence_ids[i], -1);
    EXPECT_EQ(shortest.offsets[i], std::make_pair(0, 0));
  }
  EXPECT_EQ(batch[1].ids, full.ids);

  o.padding = Padding::MaxLength;
  o.max_length = 40;
  EXPECT_EQ(t.encode(kShort, std::nullopt, o).size(), 40u);
  o.pad_to_multiple_of = 16;  // 40 -> 48
  EXPECT_EQ(t.encode(kShort, std::nullopt, o).size(), 48u);
  o.padding = Padding::Longest;  // single encode: only the multiple applies (5 -> 16)
  EXPECT_EQ(t.encode(kShort, std::nullopt, o).size(), 16u);
  EXPECT_THROW(t.encode_batch({kShort, kLong}, {kShort}, o), Error);
}

// Every kind (BPE and Unigram keep per-thread word caches, SentencePiece runs libsentencepiece).
TEST_F(TokenizerTest, EncodeIsThreadSafe) {
  for (const char* name : {"bert-base-uncased", "roberta-base", "t5-small", "albert-base-v2"}) {
    if (!fs::exists(testing::shared_path(std::string("tokenizers/") + name))) continue;
    const Tokenizer t = Tokenizer::from_dir(testing::shared_path(std::string("tokenizers/") + name));
    std::vector<std::string> texts;
    for (int i = 0; i < 200; ++i)
      texts.push_back(std::string(i % 2 ? kLong : kShort) + " Número " + std::to_string(i) + " 日本語 [SEP] café");
    std::vector<Encoding> expected;
    for (const auto& text : texts) expected.push_back(t.encode(text));
    std::vector<int> mismatches(4, 0);
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w)
      threads.emplace_back([&, w] {
        for (int round = 0; round < 5; ++round)
          for (std::size_t i = 0; i < texts.size(); ++i) {
            const Encoding e = t.encode(texts[(i + static_cast<std::size_t>(w) * 37) % texts.size()]);
            const Encoding& x = expected[(i + static_cast<std::size_t>(w) * 37) % texts.size()];
            if (e.ids != x.ids || e.offsets != x.offsets) ++mismatches[static_cast<std::size_t>(w)];
          }
      });
    for (auto& th : threads) th.join();
    for (int m : mismatches) EXPECT_EQ(m, 0) << name;
  }
}

TEST_F(TokenizerTest, BadTextAndBadFilesAreClearErrors) {
  const Tokenizer t = cased();
  try {
    t.encode(std::string("ok \xC3\x28 bad"));
    FAIL() << "invalid UTF-8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Tokenizer::from_dir("/nonexistent/tokenizer/dir"), Error);
  EXPECT_THROW(parse_truncation("sideways"), Error);
  EXPECT_THROW(parse_padding("sometimes"), Error);
  EXPECT_EQ(parse_truncation("only_second"), Truncation::OnlySecond);
  EXPECT_EQ(parse_padding("max_length"), Padding::MaxLength);
}

// A small tokenizer.json written to a temporary directory.
class SmallTokenizer : public ::testing::Test {
 protected:
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("tuneserve_tok_" + std::to_string(::getpid()) + "_" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }

  Tokenizer write(json added_tokens, bool lowercase = true, const std::string& extra_json_text = "") {
    json vocab = json::object();
    std::int32_t id = 0;
    for (const char* token : {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "hi", "there", "my", "name", "a", "##ony",
                              "is", ",", "-", "x", "##y"})
      vocab[token] = id++;
    json root = {{"version", "1.0"},
                 {"truncation", nullptr},
                 {"padding", nullptr},
                 {"added_tokens", added_tokens},
                 {"normalizer",
                  {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                   {"strip_accents", nullptr}, {"lowercase", lowercase}}},
                 {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
                 {"post_processor", nullptr},
                 {"decoder", nullptr},
                 {"model",
                  {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                   {"max_input_chars_per_word", 100}, {"vocab", vocab}}}};
    std::ofstream(dir / "tokenizer.json") << (extra_json_text.empty() ? root.dump() : extra_json_text);
    return Tokenizer::from_dir(dir.string());
  }

  static json added(const std::string& content, std::int32_t id, bool single_word, bool lstrip, bool rstrip,
                    bool normalized) {
    return {{"id", id}, {"content", content}, {"single_word", single_word}, {"lstrip", lstrip},
            {"rstrip", rstrip}, {"normalized", normalized}, {"special", false}};
  }

  // Offsets of the tokens with id `id` in the encoding of `text`.
  static std::vector<std::pair<std::int32_t, std::int32_t>> spans(const Tokenizer& t, const std::string& text,
                                                                  std::int32_t id) {
    const Encoding e = t.encode(text);
    std::vector<std::pair<std::int32_t, std::int32_t>> out;
    for (std::size_t i = 0; i < e.size(); ++i)
      if (e.ids[i] == id) out.push_back(e.offsets[i]);
    return out;
  }
};

using Spans = std::vector<std::pair<std::int32_t, std::int32_t>>;

// Cases from tokenizers' added_vocabulary.rs tests (test_single_word_is_correct and friends).
TEST_F(SmallTokenizer, SingleWordMatchesOnlyWholeWords) {
  const Tokenizer t = write(json::array({added("<mask>", 15, true, false, false, false)}));
  EXPECT_EQ(spans(t, "<mask> My name <mask> A<mask> <mask>ony <mask>", 15), (Spans{{0, 6}, {15, 21}, {40, 46}}));
  // Punctuation is not a word char; a combining mark is.
  EXPECT_EQ(spans(t, "<mask>, <mask>- \u25CC\u0330<mask>", 15), (Spans{{0, 6}, {8, 14}}));
}

TEST_F(SmallTokenizer, LstripAndRstripTakeTheSurroundingWhitespace) {
  const Tokenizer t = write(json::array({added("<mask>", 15, true, true, true, false)}));
  // tokenizers' test_lstrip_unicode_space: " <mask> ", "\t<mask>\t", "<mask>\u2000" (no overlap).
  EXPECT_EQ(spans(t, "Hi <mask> there\t<mask>\t<mask>\u2000", 15), (Spans{{2, 10}, {15, 23}, {23, 30}}));
  // The words around are still tokenized normally.
  const Encoding e = t.encode("Hi <mask> there");
  EXPECT_EQ(e.ids, (std::vector<std::int32_t>{4, 15, 5}));
}

TEST_F(SmallTokenizer, NormalizedAddedTokensMatchTheNormalizedText) {
  const Tokenizer t = write(json::array({added("MyToken", 15, false, false, false, true),
                                         added("RawTok", 16, false, false, false, false)}));
  // Lowercasing makes "MYTOKEN" match the normalized pattern "mytoken"; raw ones match as written.
  EXPECT_EQ(spans(t, "hi MYTOKEN there mytoken", 15), (Spans{{3, 10}, {17, 24}}));
  EXPECT_EQ(spans(t, "RawTok rawtok", 16), (Spans{{0, 6}}));
  EXPECT_EQ(t.token_to_id("MyToken"), 15);
  EXPECT_EQ(t.id_to_token(16), "RawTok");
  // No post_processor: nothing is added around the text.
  EXPECT_EQ(t.encode("hi there").ids, (std::vector<std::int32_t>{4, 5}));
  EXPECT_EQ(t.num_special_tokens(true), 0u);
  // Without a [PAD] in any config, the BertTokenizer default name resolves in the vocabulary.
  EXPECT_EQ(t.pad_id(), 3);
}

TEST_F(SmallTokenizer, WordPieceUnknownsAndLongWords) {
  const Tokenizer t = write(json::array());
  // "xy" = x ##y; "xz" has no piece for z: the whole word is one [UNK] spanning it.
  const Encoding e = t.encode("xy xz");
  EXPECT_EQ(e.ids, (std::vector<std::int32_t>{13, 14, 0}));
  EXPECT_EQ(e.offsets, (Spans{{0, 1}, {1, 2}, {3, 5}}));
  // 100 chars is fine, 101 is [UNK] (max_input_chars_per_word counts code points).
  EXPECT_EQ(t.encode("x" + std::string(99, 'y')).size(), 100u);  // x ##y ##y ...
  EXPECT_EQ(t.encode("x" + std::string(100, 'y')).ids, (std::vector<std::int32_t>{0}));
  std::string accented;
  for (int i = 0; i < 101; ++i) accented += "\xC3\xA9";  // 101 x U+00E9, 202 bytes
  EXPECT_EQ(t.encode(accented).ids, (std::vector<std::int32_t>{0}));
  EXPECT_EQ(t.encode(accented).offsets, (Spans{{0, 101}}));
}

// tokenizers classifies with Unicode 8.0 tables (unicode.h): U+2E3B (Pd, Unicode 7.0) is
// punctuation, U+2E43 (Po, Unicode 9.0) is an unassigned letter-like char that does not split.
TEST_F(SmallTokenizer, PunctuationFollowsTokenizersUnicodeVersion) {
  const Tokenizer t = write(json::array(), false);
  EXPECT_EQ(t.encode("x\u2E3By").offsets, (Spans{{0, 1}, {1, 2}, {2, 3}}));
  EXPECT_EQ(t.encode("x\u2E43y").offsets, (Spans{{0, 3}}));
  // U+061C (Cf, 6.3) is removed as a control char; U+0378 (unassigned) stays in the word.
  EXPECT_EQ(t.encode("x\u061Cy").ids, (std::vector<std::int32_t>{13, 14}));
  EXPECT_EQ(t.encode("x\u0378y").ids, (std::vector<std::int32_t>{0}));
}

TEST_F(SmallTokenizer, UnsupportedOrBrokenFilesNameTheProblem) {
  auto message = [&](const std::string& text) {
    try {
      write(json::array(), true, text);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("{not json").find("invalid JSON"), std::string::npos);
  EXPECT_NE(message(R"({"model": {"type": "BPE", "vocab": {}}})").find("model (BPE): missing \"merges\""),
            std::string::npos);
  EXPECT_NE(message(R"({"model": {"type": "WordPiece", "vocab": {"a": 0}}})").find("[UNK]"), std::string::npos);
  EXPECT_NE(message(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": -4}}})").find("out of range"),
            std::string::npos);
  EXPECT_NE(message(R"({"model": {"type": "WordPiece", "vocab": {"[UNK]": 0, "a": 2000000000}}})").find("far beyond"),
            std::string::npos);
  EXPECT_NE(message(R"({"normalizer": {"type": "NFKC"}, "model": {"vocab": {"[UNK]": 0}}})").find("NFKC"),
            std::string::npos);
}

}  // namespace
}  // namespace tuneserve

// Prep with the real tokenizer on the shared data: stored rows equal direct encodes, the length
// statistics equal the ones measured with the reference stack (../shared/README.md), and the
// `tuneserve prep` command end to end, CSV and JSONL giving the same dataset.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "data/prep.h"
#include "temp_files.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace tuneserve::data;
using tuneserve::testing::binary_path;
using tuneserve::testing::shared_path;

namespace {

const char* kCased = "tokenizers/bert-base-cased";

// Amazon reviews with the integer "label" column, truncated at max_length.
PrepOptions amazon(const std::string& file, std::vector<std::string> text, std::int64_t max_length) {
  PrepOptions o;
  o.read.files = {shared_path("data/amazon_polarity/" + file)};
  o.read.text_columns = std::move(text);
  o.read.label_column = "label";
  o.max_length = max_length;
  return o;
}

// What prep must store for a row: the tokenizer's own encode with longest_first truncation.
tuneserve::Encoding direct_encode(const tuneserve::Tokenizer& tok, const std::string& text,
                                  std::optional<std::string_view> pair, std::size_t max_length) {
  tuneserve::EncodeOptions eo;
  eo.truncation = tuneserve::Truncation::LongestFirst;
  eo.max_length = max_length;
  return tok.encode(text, pair, eo);
}

void expect_same_rows(const TokenizedDataset& a, const TokenizedDataset& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t r = 0; r < a.size(); ++r) {
    auto x = a.input_ids(r), y = b.input_ids(r);
    ASSERT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << "row " << r;
    auto tx = a.token_type_ids(r), ty = b.token_type_ids(r);
    ASSERT_TRUE(std::equal(tx.begin(), tx.end(), ty.begin(), ty.end())) << "row " << r;
    ASSERT_EQ(a.label(r), b.label(r)) << "row " << r;
  }
}

}  // namespace

// ../shared/README.md: amazon_polarity/train.jsonl content, cased tokenizer, truncated at 512:
// mean 100.7, median 90, p90 189, max 456.
TEST(PrepTokenizer, AmazonLengthsMatchTheReference) {
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  TUNESERVE_REQUIRE_SHARED(kCased);
  const auto tok = tuneserve::Tokenizer::from_dir(shared_path(kCased));
  const PrepOptions o = amazon("train.jsonl", {"content"}, 512);
  const auto enc = tokenizer_encoder(tok, shared_path(kCased), o.max_length);
  const auto p = prepare(o, enc);
  const auto& m = p.train.manifest();
  ASSERT_EQ(m.rows, 4000);
  EXPECT_NEAR(m.lengths.mean, 100.7, 0.05);
  EXPECT_EQ(m.lengths.median, 90);
  EXPECT_EQ(m.lengths.p90, 189);
  EXPECT_EQ(m.lengths.max, 456);
  EXPECT_EQ(m.id2label, (std::vector<std::string>{"LABEL_0", "LABEL_1"}));
  EXPECT_EQ(m.label_counts[0] + m.label_counts[1], 4000);
  EXPECT_EQ(m.pad_token_id, tok.pad_id());
  EXPECT_EQ(m.tokenizer_file, "tokenizer.json");

  // Every stored row is what the tokenizer gives for that text (a sample, to stay fast).
  const auto ex = read_examples(o.read);
  for (std::size_t r = 0; r < ex.size(); r += 97) {
    const auto want = direct_encode(tok, ex.text[r], std::nullopt, 512);
    const auto got = p.train.input_ids(r);
    ASSERT_EQ(std::vector<std::int32_t>(got.begin(), got.end()), want.ids) << "row " << r;
  }
}

TEST(PrepTokenizer, PairsTruncateLongestFirst) {
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/test.jsonl");
  TUNESERVE_REQUIRE_SHARED(kCased);
  const auto tok = tuneserve::Tokenizer::from_dir(shared_path(kCased));
  PrepOptions o = amazon("test.jsonl", {"title", "content"}, 32);
  o.select = 200;
  const auto p = prepare(o, tokenizer_encoder(tok, shared_path(kCased), 32));
  const auto ex = read_examples(o.read);
  for (std::size_t r = 0; r < 200; ++r) {
    const auto want = direct_encode(tok, ex.text[r], std::string_view(ex.text_pair[r]), 32);
    const auto got = p.train.input_ids(r);
    const auto types = p.train.token_type_ids(r);
    ASSERT_EQ(std::vector<std::int32_t>(got.begin(), got.end()), want.ids) << "row " << r;
    ASSERT_EQ(std::vector<std::int32_t>(types.begin(), types.end()), want.type_ids) << "row " << r;
    ASSERT_LE(got.size(), 32u);
  }
}

// The original CSV (classes 1/2, no header) through the command line equals the JSONL form
// prepared in-process: same shuffle, selection, split, tokens and labels.
TEST(PrepCli, CsvCommandEqualsJsonlInProcess) {
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.csv");
  TUNESERVE_REQUIRE_SHARED(kCased);
  const auto out = tuneserve::testing::data_temp_dir() / "cli_amazon";
  std::filesystem::remove_all(out);
  std::string log;
  const int rc = tuneserve::testing::run_command(binary_path() + " prep --input " + shared_path("data/amazon_polarity/train.csv") +
                         " --columns class,title,content --text content --label class --label-map 1:0,2:1"
                         " --label-names negative,positive --tokenizer " + shared_path(kCased) +
                         " --max-length 128 --shuffle --seed 3 --select 1000 --test-size 0.1 --quiet --output " +
                         out.string(),
                     log);
  ASSERT_EQ(rc, 0) << log;
  EXPECT_NE(log.find("train: 900 rows"), std::string::npos) << log;
  const auto train = TokenizedDataset::open((out / "train").string());
  const auto test = TokenizedDataset::open((out / "test").string());
  EXPECT_EQ(train.manifest().id2label, (std::vector<std::string>{"negative", "positive"}));
  EXPECT_EQ(test.size(), 100u);

  const auto tok = tuneserve::Tokenizer::from_dir(shared_path(kCased));
  PrepOptions o = amazon("train.jsonl", {"content"}, 128);
  o.shuffle = true;
  o.seed = 3;
  o.select = 1000;
  o.test_size = 0.1;
  const auto p = prepare(o, tokenizer_encoder(tok, shared_path(kCased), 128));
  expect_same_rows(train, p.train);
  expect_same_rows(test, *p.test);
  std::filesystem::remove_all(out);
}

TEST(PrepCli, BadRowStopsWithFileAndLine) {
  TUNESERVE_REQUIRE_SHARED(kCased);
  const auto bad = tuneserve::testing::write_file("cli_bad.jsonl", "{\"text\":\"fine\",\"label\":1}\n{\"text\":\"oops\"\n");
  const auto out = tuneserve::testing::data_temp_dir() / "cli_bad";
  std::string log;
  const std::string cmd = binary_path() + " prep --input " + bad + " --text text --label label --tokenizer " +
                          shared_path(kCased) + " --quiet --output " + out.string();
  EXPECT_EQ(tuneserve::testing::run_command(cmd, log), 1) << log;
  EXPECT_NE(log.find("cli_bad.jsonl: line 2: invalid JSON"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(out / "manifest.json"));
  EXPECT_EQ(tuneserve::testing::run_command(cmd + " --skip-bad-rows", log), 0) << log;
  EXPECT_NE(log.find("skipped 1 bad rows"), std::string::npos) << log;
  EXPECT_EQ(TokenizedDataset::open(out.string()).manifest().skipped_rows, 1);
}

// Data prepared at the tokenizer's 512 trains a 256-position model: a dataset cut at batch time
// holds exactly the rows a prep at the shorter length writes (single texts), and text pairs, which
// cannot be re-cut without their texts, stop with the flag that fixes it.
TEST(PrepTokenizer, TruncatedRowsEqualAPrepAtThatLength) {
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.jsonl");
  TUNESERVE_REQUIRE_SHARED(kCased);
  const auto tok = tuneserve::Tokenizer::from_dir(shared_path(kCased));
  PrepOptions o = amazon("test.jsonl", {"content"}, 512);
  const auto long_rows = prepare(o, tokenizer_encoder(tok, shared_path(kCased), 512)).train;
  EXPECT_EQ(long_rows.manifest().special_suffix, 1);
  o.max_length = 100;
  const auto short_rows = prepare(o, tokenizer_encoder(tok, shared_path(kCased), 100)).train;
  const TokenizedDataset cut = long_rows.truncated(100, "max_length 100");
  ASSERT_EQ(cut.size(), short_rows.size());
  std::int64_t shortened = 0;
  for (std::size_t r = 0; r < cut.size(); ++r) {
    const std::int64_t row = static_cast<std::int64_t>(r);
    const auto got = cut.batch(std::span(&row, 1));
    const auto want = short_rows.batch(std::span(&row, 1));
    ASSERT_EQ(got.tokens.input_ids, want.tokens.input_ids) << "row " << r;
    ASSERT_EQ(got.tokens.token_type_ids, want.tokens.token_type_ids) << "row " << r;
    shortened += long_rows.length(r) > 100;
  }
  EXPECT_GT(shortened, 100);  // the cut was exercised

  const auto pairs = prepare(amazon("test.jsonl", {"title", "content"}, 512),
                             tokenizer_encoder(tok, shared_path(kCased), 512)).train;
  const std::string error = tuneserve::testing::error_of([&] { pairs.truncated(100, "max_length 100"); });
  EXPECT_NE(error.find("tuneserve prep --max-length 100"), std::string::npos) << error;
  EXPECT_EQ(pairs.truncated(1000, "").size(), pairs.size());  // nothing to cut: fine
}

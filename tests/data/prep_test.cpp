// The prep pipeline with a stand-in word-level encoder: labels (integers, strings, --label-map,
// --label-names), skipped rows, shuffle/select/split against the numpy-exact orders, and output
// that does not depend on the thread count.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "data/prep.h"
#include "data/shuffle.h"
#include "temp_files.h"

using namespace tuneserve::data;
using tuneserve::testing::error_of;
using tuneserve::testing::write_file;

namespace {

// [CLS]=1 words [SEP]=2 (a word's id is a hash of it), the pair's words and [SEP] with type id 1;
// truncation drops tokens from the end.
Encoder word_encoder(std::int64_t max_length) {
  Encoder e;
  e.path = "word-encoder";
  e.hash = "none";
  e.pad_token_id = 0;
  e.encode = [max_length](std::string_view text, std::optional<std::string_view> pair) {
    tuneserve::Encoding enc;
    auto add_words = [&](std::string_view s, int type) {
      std::istringstream in{std::string(s)};
      for (std::string w; in >> w;) {
        enc.ids.push_back(static_cast<std::int32_t>(10 + std::hash<std::string>{}(w) % 1000000));
        enc.type_ids.push_back(type);
      }
      enc.ids.push_back(2);
      enc.type_ids.push_back(type);
    };
    enc.ids.push_back(1);
    enc.type_ids.push_back(0);
    add_words(text, 0);
    if (pair) add_words(*pair, 1);
    if (max_length > 0 && static_cast<std::int64_t>(enc.ids.size()) > max_length) {
      enc.ids.resize(static_cast<std::size_t>(max_length));
      enc.type_ids.resize(static_cast<std::size_t>(max_length));
    }
    return enc;
  };
  return e;
}

ReadOptions read_options(const std::string& path, std::vector<std::string> text, std::string label) {
  ReadOptions r;
  r.files = {path};
  r.text_columns = std::move(text);
  r.label_column = std::move(label);
  return r;
}

}  // namespace

TEST(Labels, IntegersStringsMapsAndNames) {
  const auto ints = write_file("ints.jsonl", "{\"t\":\"a\",\"l\":2}\n{\"t\":\"b\",\"l\":0}\n");
  auto ex = read_examples(read_options(ints, {"t"}, "l"));
  EXPECT_EQ(ex.labels, (std::vector<std::int32_t>{2, 0}));
  EXPECT_EQ(ex.id2label, (std::vector<std::string>{"LABEL_0", "LABEL_1", "LABEL_2"}));  // numbers name nothing

  const auto strs = write_file("strs.csv", "t,l\na,pos\nb,neg\nc,neutral\nd,pos\n");
  ex = read_examples(read_options(strs, {"t"}, "l"));
  EXPECT_EQ(ex.id2label, (std::vector<std::string>{"neg", "neutral", "pos"}));  // sorted, like datasets
  EXPECT_EQ(ex.labels, (std::vector<std::int32_t>{2, 0, 1, 2}));

  auto named = read_options(strs, {"t"}, "l");
  named.labels.names = {"pos", "neg", "neutral"};  // e.g. a training set's id2label
  ex = read_examples(named);
  EXPECT_EQ(ex.labels, (std::vector<std::int32_t>{0, 1, 2, 0}));

  const auto classes = write_file("classes.csv", "\"1\",\"t\",\"c\"\n\"2\",\"t\",\"d\"\n");
  auto mapped = read_options(classes, {"content"}, "class");
  mapped.table.columns = {"class", "title", "content"};
  mapped.labels.map = parse_label_map("1:0,2:1");
  ex = read_examples(mapped);
  EXPECT_EQ(ex.labels, (std::vector<std::int32_t>{0, 1}));
  EXPECT_EQ(ex.id2label, (std::vector<std::string>{"LABEL_0", "LABEL_1"}));  // raw classes are not names
  auto words = read_options(strs, {"t"}, "l");
  words.labels.map = parse_label_map("neg:0,neutral:0,pos:1");
  EXPECT_EQ(read_examples(words).id2label, (std::vector<std::string>{"neg", "pos"}));  // words are
  mapped.labels.names = {"negative", "positive"};
  EXPECT_EQ(read_examples(mapped).id2label, (std::vector<std::string>{"negative", "positive"}));

  EXPECT_THROW(parse_label_map("1:0,2"), tuneserve::Error);
  EXPECT_THROW(parse_label_map("1:-1"), tuneserve::Error);
  EXPECT_THROW(parse_label_map("1:0,1:1"), tuneserve::Error);
}

TEST(Labels, BadLabelsStopWithFileLineOrAreSkippedAndCounted) {
  const auto path = write_file("badlabels.jsonl",
                               "{\"t\":\"a\",\"l\":1}\n{\"t\":\"b\",\"l\":-1}\n{\"t\":\"c\",\"l\":0}\n{\"t\":\"d\"}\n"
                               "{\"t\":\"e\",\"l\":\"\"}\n");
  auto opts = read_options(path, {"t"}, "l");
  const auto msg = error_of([&] { read_examples(opts); });
  EXPECT_NE(msg.find("badlabels.jsonl: line 4: field 'l' is missing"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--skip-bad-rows"), std::string::npos) << msg;

  opts.skip_bad_rows = true;
  auto ex = read_examples(opts);
  // Lines 4 (no label) and 5 (empty label) are bad when read; of the integers 1, -1, 0 left,
  // -1 is rejected when labels are assigned.
  EXPECT_EQ(ex.text, (std::vector<std::string>{"a", "c"}));
  EXPECT_EQ(ex.labels, (std::vector<std::int32_t>{1, 0}));
  EXPECT_EQ(ex.skipped_rows, 3);
  ASSERT_EQ(ex.skipped.size(), 3u);
  std::vector<std::int64_t> lines;
  for (const auto& s : ex.skipped) lines.push_back(s.line);
  std::sort(lines.begin(), lines.end());
  EXPECT_EQ(lines, (std::vector<std::int64_t>{2, 4, 5}));
  EXPECT_EQ(ex.sources.at(0).rows, 5);

  auto mapped = read_options(path, {"t"}, "l");
  mapped.skip_bad_rows = true;
  mapped.labels.map = parse_label_map("0:0,1:1");
  ex = read_examples(mapped);
  EXPECT_EQ(ex.text, (std::vector<std::string>{"a", "c"}));
}

TEST(Prep, ShuffleSelectSplitFollowTheNumpyOrder) {
  std::string content;
  for (int i = 0; i < 103; ++i) content += "{\"t\":\"row " + std::to_string(i) + "\",\"l\":" + std::to_string(i % 2) + "}\n";
  const auto path = write_file("rows.jsonl", content);
  PrepOptions o;
  o.read = read_options(path, {"t"}, "l");
  o.shuffle = true;
  o.seed = 5;
  o.select = 80;
  o.test_size = 0.2;
  o.max_length = 0;
  const auto enc = word_encoder(0);
  auto p = prepare(o, enc);
  ASSERT_TRUE(p.test.has_value());
  const auto order = shuffle_select(103, true, 5, 80);
  const auto split = train_test_split(80, 0.2, 5);
  ASSERT_EQ(p.train.size(), split.train.size());
  ASSERT_EQ(p.test->size(), 16u);
  // "row N" encodes as [1, id("row"), id(N), 2]; the label is N % 2.
  auto row_number = [&](const TokenizedDataset& d, std::size_t r) {
    auto ids = d.input_ids(r);
    return ids[2];
  };
  for (std::size_t i = 0; i < split.test.size(); ++i) {
    const auto src = order[static_cast<std::size_t>(split.test[i])];
    const auto want = enc.encode("row " + std::to_string(src), std::nullopt).ids[2];
    EXPECT_EQ(row_number(*p.test, i), want) << i;
    EXPECT_EQ(p.test->label(i), src % 2);
  }
  EXPECT_EQ(p.train.manifest().split, "train");
  EXPECT_EQ(p.train.manifest().label_counts[0] + p.train.manifest().label_counts[1], 64);
}

TEST(Prep, OutputIsTheSameForAnyThreadCount) {
  std::string content = "a,b,label\n";
  for (int i = 0; i < 1000; ++i)
    content += "\"first " + std::string(static_cast<std::size_t>(i % 37), 'x') + "\",\"second words " +
               std::to_string(i) + " more\"," + (i % 3 == 0 ? "yes" : "no") + "\n";
  const auto path = write_file("pairs.csv", content);
  PrepOptions o;
  o.read = read_options(path, {"a", "b"}, "label");
  o.max_length = 5;
  o.padding = Padding::MaxLength;
  std::vector<TokenizedDataset> outs;
  for (int threads : {1, 2, 5}) {
    o.threads = threads;
    outs.push_back(prepare(o, word_encoder(o.max_length)).train);
  }
  for (const auto& d : outs) {
    ASSERT_EQ(d.size(), 1000u);
    for (std::size_t r = 0; r < d.size(); ++r) {
      auto a = outs[0].input_ids(r), b = d.input_ids(r);
      ASSERT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end())) << r;
      auto ta = outs[0].token_type_ids(r), tb = d.token_type_ids(r);
      ASSERT_TRUE(std::equal(ta.begin(), ta.end(), tb.begin(), tb.end())) << r;
    }
  }
  const auto& m = outs[0].manifest();
  EXPECT_EQ(m.id2label, (std::vector<std::string>{"no", "yes"}));
  EXPECT_EQ(m.label_counts, (std::vector<std::int64_t>{666, 334}));
  EXPECT_EQ(m.lengths.max, 5);
  EXPECT_EQ(m.lengths.at_max_length, 1000);
  EXPECT_EQ(outs[0].batch(std::vector<std::int64_t>{0, 1}).tokens.padded_length, 5);
  // Type ids: [CLS] first [SEP] are 0, the pair's words 1.
  auto t = outs[0].token_type_ids(0);
  EXPECT_EQ(std::vector<std::int32_t>(t.begin(), t.end()), (std::vector<std::int32_t>{0, 0, 0, 1, 1}));
}

TEST(Prep, WrittenManifestRecordsWhatHappened) {
  const auto path = write_file("m.tsv", "label\tsentence\n1\tgood\n0\tbad\nx\n1\tok fine\n");
  PrepOptions o;
  o.read = read_options(path, {"sentence"}, "label");
  o.read.skip_bad_rows = true;
  o.max_length = 16;
  auto enc = word_encoder(16);
  enc.hash = file_hash(path);
  auto p = prepare(o, enc);
  const auto dir = tuneserve::testing::data_temp_dir() / "prepared";
  p.train.write(dir.string());
  auto d = TokenizedDataset::open(dir.string());
  const auto& m = d.manifest();
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.skipped_rows, 1);
  ASSERT_EQ(m.skipped.size(), 1u);
  EXPECT_EQ(m.skipped[0].line, 4);
  EXPECT_NE(m.skipped[0].reason.find("1 fields, expected 2"), std::string::npos);
  ASSERT_EQ(m.sources.size(), 1u);
  EXPECT_EQ(m.sources[0].rows, 4);
  EXPECT_EQ(m.sources[0].format, "tsv");
  EXPECT_EQ(m.tokenizer_hash.substr(0, 8), "fnv1a64:");
  EXPECT_EQ(m.label_counts, (std::vector<std::int64_t>{1, 2}));
  EXPECT_EQ(m.lengths.histogram, (std::vector<std::int64_t>{3}));
  EXPECT_EQ(m.lengths.max, 4);
}

TEST(Prep, UnlabelledDataAndSeparateTestFile) {
  const auto train = write_file("sep_train.jsonl", "{\"t\":\"a b\",\"l\":\"pos\"}\n{\"t\":\"c\",\"l\":\"neg\"}\n");
  const auto test = write_file("sep_test.jsonl", "{\"t\":\"d\",\"l\":\"pos\"}\n{\"t\":\"e\",\"l\":\"pos\"}\n");
  PrepOptions o;
  o.read = read_options(train, {"t"}, "l");
  o.test_files = {test};
  o.max_length = 0;
  auto p = prepare(o, word_encoder(0));
  ASSERT_TRUE(p.test.has_value());
  EXPECT_EQ(p.test->manifest().id2label, (std::vector<std::string>{"neg", "pos"}));
  EXPECT_EQ(p.test->label(0), 1);  // "pos" keeps the training set's id even though it is alone here
  EXPECT_EQ(p.test->manifest().label_counts, (std::vector<std::int64_t>{0, 2}));
  EXPECT_EQ(p.test->manifest().sources.at(0).path, test);
  o.test_size = 0.5;
  EXPECT_THROW(prepare(o, word_encoder(0)), tuneserve::Error);

  PrepOptions u;
  u.read = read_options(train, {"t"}, "");
  auto d = prepare(u, word_encoder(0)).train;
  EXPECT_FALSE(d.has_labels());
  EXPECT_EQ(d.size(), 2u);
  EXPECT_TRUE(d.batch(std::vector<std::int64_t>{0, 1}).labels.empty());
  EXPECT_THROW(d.label(0), tuneserve::Error);
  const auto dir = tuneserve::testing::data_temp_dir() / "unlabelled";
  d.write(dir.string());
  EXPECT_FALSE(TokenizedDataset::open(dir.string()).has_labels());
  EXPECT_FALSE(std::filesystem::exists(dir / "labels.bin"));
}

// The reference workflow selects 10k training and 2k test rows: --shuffle applies to a separate
// test file too (datasets' test.shuffle(seed)), and --test-select keeps its first N.
TEST(Prep, SeparateTestFileIsShuffledAndSelected) {
  std::string text;
  for (int i = 0; i < 40; ++i) text += fmt::format("{{\"t\":\"w{}\",\"l\":{}}}\n", i, i % 2);
  const auto train = write_file("sel_train.jsonl", text);
  const auto test = write_file("sel_test.jsonl", text);
  PrepOptions o;
  o.read = read_options(train, {"t"}, "l");
  o.test_files = {test};
  o.max_length = 0;
  o.shuffle = true;
  o.seed = 7;
  o.select = 10;
  o.test_select = 5;
  auto p = prepare(o, word_encoder(0));
  ASSERT_EQ(p.train.size(), 10u);
  ASSERT_EQ(p.test->size(), 5u);
  EXPECT_EQ(p.test->manifest().select, 5);
  EXPECT_TRUE(p.test->manifest().shuffled);
  const auto want = shuffle_select(40, true, 7, 5);
  const auto enc = word_encoder(0);
  for (std::size_t r = 0; r < 5; ++r) {
    const auto ids = p.test->input_ids(r);
    const auto expected = enc.encode(fmt::format("w{}", want[r]), std::nullopt).ids;
    EXPECT_EQ(std::vector<std::int32_t>(ids.begin(), ids.end()), expected) << "test row " << r;
  }
  o.test_files.clear();
  EXPECT_NE(error_of([&] { prepare(o, word_encoder(0)); }).find("--test-select"), std::string::npos);
}

TEST(Prep, RegressionTargetsAreFloats) {
  const auto path = write_file("stsb.jsonl",
                               "{\"a\":\"x\",\"b\":\"y\",\"score\":3.8}\n{\"a\":\"p\",\"b\":\"q\",\"score\":\"0.25\"}\n"
                               "{\"a\":\"p\",\"b\":\"q\",\"score\":\"high\"}\n{\"a\":\"s\",\"b\":\"t\",\"score\":5}\n");
  PrepOptions o;
  o.read = read_options(path, {"a", "b"}, "score");
  o.read.problem_type = kRegression;
  const auto msg = error_of([&] { prepare(o, word_encoder(0)); });
  EXPECT_NE(msg.find("stsb.jsonl: line 3: label column 'score': target 'high' is not a finite number"), std::string::npos) << msg;
  o.read.skip_bad_rows = true;
  auto d = prepare(o, word_encoder(0)).train;
  ASSERT_EQ(d.size(), 3u);
  EXPECT_TRUE(d.regression());
  EXPECT_FLOAT_EQ(d.targets(0)[0], 3.8f);
  EXPECT_FLOAT_EQ(d.targets(1)[0], 0.25f);
  EXPECT_FLOAT_EQ(d.targets(2)[0], 5.0f);
  EXPECT_THROW(d.label(0), tuneserve::Error);
  const auto dir = tuneserve::testing::data_temp_dir() / "regression";
  d.write(dir.string());
  auto back = TokenizedDataset::open(dir.string());
  EXPECT_EQ(back.manifest().problem_type, "regression");
  const auto b = back.batch(std::vector<std::int64_t>{2, 0});
  EXPECT_EQ(b.values, (std::vector<float>{5.0f, 3.8f}));
  EXPECT_TRUE(b.labels.empty());
}

TEST(Prep, RegressionWithSeveralTargets) {
  const auto path = write_file("va.jsonl",
                               "{\"t\":\"a\",\"v\":1.5,\"r\":-2,\"both\":[1.5,-2]}\n"
                               "{\"t\":\"b\",\"v\":0,\"r\":0.5,\"both\":[0,0.5]}\n");
  PrepOptions o;
  o.read = read_options(path, {"t"}, "v,r");
  o.read.problem_type = kRegression;
  auto d = prepare(o, word_encoder(0)).train;
  EXPECT_EQ(d.num_labels(), 2u);
  EXPECT_EQ(d.manifest().id2label, (std::vector<std::string>{"v", "r"}));  // several targets are named
  EXPECT_EQ(d.batch(std::vector<std::int64_t>{1, 0}).values, (std::vector<float>{0.0f, 0.5f, 1.5f, -2.0f}));
  o.read.label_column = "both";  // one column holding the targets as a JSON array
  auto a = prepare(o, word_encoder(0)).train;
  EXPECT_EQ(std::vector<float>(a.values().begin(), a.values().end()), (std::vector<float>{1.5f, -2.0f, 0.0f, 0.5f}));
  o.read.label_column = "t";  // a text column is not an array, and arrays stay refused there
  EXPECT_NE(error_of([&] { prepare(o, word_encoder(0)); }).find("target 'a' is not a finite number"), std::string::npos);
  const auto ragged = write_file("ragged.jsonl", "{\"t\":\"a\",\"y\":[1,2]}\n{\"t\":\"b\",\"y\":[3]}\n");
  o.read = read_options(ragged, {"t"}, "y");
  o.read.problem_type = kRegression;
  EXPECT_NE(error_of([&] { prepare(o, word_encoder(0)); }).find("ragged.jsonl: line 2: 1 targets where the rows before have 2"),
            std::string::npos);
  o.read = read_options(path, {"both"}, "v");
  EXPECT_NE(error_of([&] { prepare(o, word_encoder(0)); }).find("field 'both' is a array"), std::string::npos);
}

TEST(Prep, MultiLabelFromListsAndColumns) {
  // GoEmotions' form: comma-separated ids in a TSV column, names from --label-names.
  const auto tsv = write_file("emo.tsv", "text\tlabels\nso happy\t1,2\nmeh\t0\nyay\t2\n");
  PrepOptions o;
  o.read = read_options(tsv, {"text"}, "labels");
  o.read.problem_type = kMultiLabel;
  o.read.labels.names = {"neutral", "joy", "love"};
  auto d = prepare(o, word_encoder(0)).train;
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d.num_labels(), 3u);
  EXPECT_EQ(std::vector<float>(d.values().begin(), d.values().end()),
            (std::vector<float>{0, 1, 1, 1, 0, 0, 0, 0, 1}));
  EXPECT_EQ(d.manifest().label_counts, (std::vector<std::int64_t>{1, 1, 2}));
  const auto dir = tuneserve::testing::data_temp_dir() / "multi_label";
  d.write(dir.string());
  const auto back = TokenizedDataset::open(dir.string());
  EXPECT_TRUE(back.manifest().multi_label());
  EXPECT_EQ(back.batch(std::vector<std::int64_t>{2}).values, (std::vector<float>{0, 0, 1}));
  EXPECT_THROW(back.label(0), tuneserve::Error);

  // JSON arrays of names (sorted when no names are given; [] is a row without labels), and a test
  // file numbered like the training rows.
  const auto jsonl = write_file("emo.jsonl", "{\"t\":\"a\",\"y\":[\"love\",\"joy\"]}\n{\"t\":\"b\",\"y\":[]}\n");
  const auto test = write_file("emo_test.jsonl", "{\"t\":\"c\",\"y\":[\"love\"]}\n{\"t\":\"d\",\"y\":[\"anger\"]}\n");
  o.read = read_options(jsonl, {"t"}, "y");
  o.read.problem_type = kMultiLabel;
  o.test_files = {test};
  const auto msg = error_of([&] { prepare(o, word_encoder(0)); });
  EXPECT_NE(msg.find("emo_test.jsonl: line 2: label 'anger' is not one of --label-names"), std::string::npos) << msg;
  o.read.skip_bad_rows = true;
  const auto p = prepare(o, word_encoder(0));
  EXPECT_EQ(p.train.manifest().id2label, (std::vector<std::string>{"joy", "love"}));
  EXPECT_EQ(std::vector<float>(p.train.values().begin(), p.train.values().end()), (std::vector<float>{1, 1, 0, 0}));
  ASSERT_EQ(p.test->size(), 1u);
  EXPECT_EQ(std::vector<float>(p.test->values().begin(), p.test->values().end()), (std::vector<float>{0, 1}));

  // One 0/1 column per label: the columns name the labels.
  const auto hot = write_file("hot.csv", "text,joy,love\nx,1,0\ny,0,1\nz,1,2\n");
  o = PrepOptions{};
  o.read = read_options(hot, {"text"}, "joy,love");
  o.read.problem_type = kMultiLabel;
  EXPECT_NE(error_of([&] { prepare(o, word_encoder(0)); }).find("hot.csv: line 4: label column 'love' holds '2'; a multi-hot column takes 0 or 1"),
            std::string::npos);
  o.read.skip_bad_rows = true;
  const auto h = prepare(o, word_encoder(0)).train;
  EXPECT_EQ(h.manifest().id2label, (std::vector<std::string>{"joy", "love"}));
  EXPECT_EQ(std::vector<float>(h.values().begin(), h.values().end()), (std::vector<float>{1, 0, 0, 1}));
}

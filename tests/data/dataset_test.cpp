// Tokenized dataset files and batching: write -> open round trip, padding policies, and clear
// errors for damaged directories and bad row indices.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <unistd.h>

#include "core/error.h"
#include "data/dataset.h"

namespace fs = std::filesystem;
using namespace tuneserve::data;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("tuneserve_data_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  return p;
}

// Rows of random lengths with ids that encode (row, position), so every copy can be checked.
TokenizedRows make_rows(int n, std::vector<std::vector<std::int32_t>>& ids_out) {
  std::mt19937 rng(7);
  TokenizedRows rows;
  for (int r = 0; r < n; ++r) {
    const int len = 2 + static_cast<int>(rng() % 9);
    std::vector<std::int32_t> ids, types;
    for (int t = 0; t < len; ++t) {
      ids.push_back(1000 * r + t + 1);
      types.push_back(t >= len / 2 ? 1 : 0);
    }
    ids_out.push_back(ids);
    rows.add(ids, types, r % 3);
  }
  return rows;
}

Manifest make_manifest() {
  Manifest m;
  m.split = "train";
  m.id2label = {"a", "b", "c"};
  m.label_counts = {0, 0, 0};
  m.text_columns = {"text"};
  m.label_column = "label";
  m.pad_token_id = 0;
  m.max_length = 16;
  return m;
}

}  // namespace

TEST(Dataset, WriteOpenRoundTrip) {
  std::vector<std::vector<std::int32_t>> ids;
  auto mem = TokenizedDataset::from_rows(make_rows(25, ids), make_manifest());
  const auto dir = temp_dir("roundtrip");
  mem.write(dir.string());
  auto disk = TokenizedDataset::open(dir.string());
  ASSERT_EQ(disk.size(), 25u);
  EXPECT_EQ(disk.total_tokens(), mem.total_tokens());
  EXPECT_EQ(disk.manifest().id2label, mem.manifest().id2label);
  EXPECT_EQ(disk.manifest().max_length, 16);
  for (std::size_t r = 0; r < disk.size(); ++r) {
    auto got = disk.input_ids(r);
    ASSERT_EQ(std::vector<std::int32_t>(got.begin(), got.end()), ids[r]) << "row " << r;
    auto types = disk.token_type_ids(r);
    auto mem_types = mem.token_type_ids(r);
    EXPECT_TRUE(std::equal(types.begin(), types.end(), mem_types.begin(), mem_types.end()));
    EXPECT_EQ(disk.label(r), static_cast<std::int32_t>(r % 3));
  }
  fs::remove_all(dir);
}

TEST(Dataset, BatchPacksRowsAndStandsForLongestOrMaxLength) {
  std::vector<std::vector<std::int32_t>> ids;
  auto manifest = make_manifest();
  manifest.pad_token_id = 7;
  auto d = TokenizedDataset::from_rows(make_rows(10, ids), manifest);
  const std::vector<std::int64_t> rows = {4, 0, 9};
  std::size_t longest = 0;
  for (auto r : rows) longest = std::max(longest, ids[static_cast<std::size_t>(r)].size());

  for (auto policy : {Padding::Longest, Padding::MaxLength}) {
    const LabeledBatch b = d.batch(rows, policy);
    const tuneserve::PackedBatch& p = b.tokens;
    ASSERT_EQ(p.size(), 3);
    ASSERT_EQ(b.size(), 3);
    EXPECT_FALSE(p.padded());
    EXPECT_EQ(p.padded_length, policy == Padding::Longest ? static_cast<int>(longest) : 16);
    EXPECT_NO_THROW(p.check());
    for (int i = 0; i < p.size(); ++i) {
      const auto& want = ids[static_cast<std::size_t>(rows[static_cast<std::size_t>(i)])];
      EXPECT_EQ(b.labels[static_cast<std::size_t>(i)], rows[static_cast<std::size_t>(i)] % 3);
      EXPECT_EQ(b.rows[static_cast<std::size_t>(i)], rows[static_cast<std::size_t>(i)]);
      EXPECT_EQ(p.output_rows[static_cast<std::size_t>(i)], p.cu_seqlens[static_cast<std::size_t>(i)]);
      std::vector<std::int32_t> got(p.input_ids.begin() + p.cu_seqlens[i], p.input_ids.begin() + p.cu_seqlens[i + 1]);
      EXPECT_EQ(got, want);
      const auto types = d.token_type_ids(static_cast<std::size_t>(rows[static_cast<std::size_t>(i)]));
      EXPECT_TRUE(std::equal(types.begin(), types.end(), p.token_type_ids.begin() + p.cu_seqlens[i],
                             p.token_type_ids.begin() + p.cu_seqlens[i + 1]));
    }
    EXPECT_EQ(p.real_tokens(), p.tokens());
  }
}

TEST(Dataset, BadRowIndexIsAnError) {
  std::vector<std::vector<std::int32_t>> ids;
  auto d = TokenizedDataset::from_rows(make_rows(3, ids), make_manifest());
  const std::vector<std::int64_t> rows = {0, 3};
  EXPECT_THROW(d.batch(rows), tuneserve::Error);
  const std::vector<std::int64_t> negative = {-1};
  EXPECT_THROW(d.batch(negative), tuneserve::Error);
}

TEST(Dataset, DamagedDirectoryNamesTheFile) {
  std::vector<std::vector<std::int32_t>> ids;
  auto d = TokenizedDataset::from_rows(make_rows(5, ids), make_manifest());
  const auto dir = temp_dir("damaged");
  d.write(dir.string());
  fs::resize_file(dir / "input_ids.bin", fs::file_size(dir / "input_ids.bin") - 4);
  try {
    TokenizedDataset::open(dir.string());
    FAIL() << "expected an error";
  } catch (const tuneserve::Error& e) {
    EXPECT_NE(std::string(e.what()).find("input_ids.bin"), std::string::npos) << e.what();
  }
  fs::remove(dir / "manifest.json");
  EXPECT_THROW(TokenizedDataset::open(dir.string()), tuneserve::Error);
  fs::remove_all(dir);
}

TEST(Dataset, LengthStatsMatchHandComputation) {
  const std::vector<std::int64_t> lengths = {5, 1, 40, 3, 33, 2, 64, 7, 9, 10};
  LengthStats s = length_stats(lengths, 40, 32);  // 40 and 64 reach max_length 40
  EXPECT_EQ(s.min, 1);
  EXPECT_EQ(s.max, 64);
  EXPECT_DOUBLE_EQ(s.mean, 17.4);
  // sorted: 1 2 3 5 7 9 10 33 40 64; median = (7+9)/2 = 8; p90 at 8.1 -> 40 + 0.1*24 = 42.4
  EXPECT_EQ(s.median, 8);
  EXPECT_EQ(s.p90, 42);
  EXPECT_EQ(s.histogram, (std::vector<std::int64_t>{7, 2, 1}));
  EXPECT_EQ(s.at_max_length, 2);
}

// Readers against generated input: random fields written with RFC 4180 quoting read back
// exactly, and random bytes never crash, hang or produce a row of the wrong shape.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "data/reader.h"
#include "temp_files.h"

using namespace tuneserve::data;
using tuneserve::testing::write_file;

namespace {

std::string quote(const std::string& field) {
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

TEST(CsvProperty, RandomFieldsRoundTrip) {
  std::mt19937 rng(11);
  const std::string alphabet[] = {"a", "b", " ", ",", "\"", "\n", "\t", "\xC3\xA9", "\xE2\x82\xAC", "x\"y", "'"};
  std::vector<std::vector<std::string>> rows;
  std::string csv = "c0,c1,c2\r\n";
  for (int r = 0; r < 400; ++r) {
    std::vector<std::string> row;
    for (int c = 0; c < 3; ++c) {
      std::string f;
      const int len = static_cast<int>(rng() % 6);
      for (int k = 0; k < len; ++k) f += alphabet[rng() % std::size(alphabet)];
      row.push_back(f);
      // Quote only when needed, as writers do; a field starting with a quote must be quoted.
      const bool needs = f.find_first_of(",\"\n") != std::string::npos;
      if (c) csv += ',';
      csv += needs || rng() % 4 == 0 ? quote(f) : f;
    }
    csv += r % 2 ? "\r\n" : "\n";
    rows.push_back(row);
  }
  const auto path = write_file("roundtrip.csv", csv);
  TableReader reader(path, {}, {"c0", "c1", "c2"});
  SelectedRow row;
  std::string reason;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    ASSERT_EQ(reader.next(row, reason), TableReader::Status::Row) << "row " << r << ": " << reason;
    ASSERT_EQ(row.values, rows[r]) << "row " << r;
  }
  EXPECT_EQ(reader.next(row, reason), TableReader::Status::End);
}

TEST(ReaderFuzz, RandomBytesNeverCrashOrHang) {
  std::mt19937 rng(5);
  const char pieces[] = {'"', ',', '\t', '\n', '\r', 'a', '{', '}', ':', '[', '\xC3', '\xA9', '\xFF', '1', ' '};
  for (int trial = 0; trial < 120; ++trial) {  // each trial writes files: keep it quick
    std::string content;
    const int len = static_cast<int>(rng() % 200);
    for (int k = 0; k < len; ++k) content += pieces[rng() % sizeof pieces];
    for (const char* ext : {".csv", ".tsv", ".jsonl"}) {
      const auto path = write_file(std::string("fuzz") + ext, content);
      TableOptions options;
      options.columns = {"a", "b"};
      std::vector<std::string> selectors = {"a", "b"};
      if (std::string(ext) == ".jsonl") options.columns.clear();
      TableReader reader(path, options, selectors);
      SelectedRow row;
      std::string reason;
      std::int64_t last_line = 0;
      for (int guard = 0;; ++guard) {
        ASSERT_LT(guard, 1000) << "reader does not finish";
        TableReader::Status s;
        try {
          s = reader.next(row, reason);
        } catch (const tuneserve::Error& e) {
          // The one whole-file error: a JSONL file whose first line opens a JSON array.
          ASSERT_NE(std::string(e.what()).find("JSON array"), std::string::npos) << e.what();
          break;
        }
        if (s == TableReader::Status::End) break;
        ASSERT_GE(row.line, last_line);
        last_line = row.line;
        if (s == TableReader::Status::Row) {
          ASSERT_EQ(row.values.size(), 2u);
          for (const auto& v : row.values) ASSERT_EQ(invalid_utf8_at(v), std::string_view::npos);
        } else {
          ASSERT_FALSE(reason.empty());
        }
      }
    }
  }
}

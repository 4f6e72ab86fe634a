// Readers: RFC 4180 CSV, TSV, JSONL, gzip, UTF-8 validation and column selection, on crafted
// files for each error case and on the real files in ../shared/data.
#include <gtest/gtest.h>

#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "data/reader.h"
#include "temp_files.h"
#include "test_util.h"

using namespace tuneserve::data;
using tuneserve::testing::shared_path;
using tuneserve::testing::error_of;
using tuneserve::testing::write_file;

namespace {

struct Read {
  std::vector<SelectedRow> rows;
  std::vector<std::pair<std::int64_t, std::string>> bad;  // line, reason
};

Read read_all(const std::string& path, const TableOptions& options, std::vector<std::string> selectors) {
  TableReader reader(path, options, std::move(selectors));
  Read out;
  SelectedRow row;
  std::string reason;
  for (;;) {
    auto s = reader.next(row, reason);
    if (s == TableReader::Status::End) break;
    if (s == TableReader::Status::Bad) out.bad.emplace_back(row.line, reason);
    else out.rows.push_back(row);
  }
  return out;
}

}  // namespace

TEST(Utf8, ValidatorFindsEveryKindOfBadSequence) {
  EXPECT_EQ(invalid_utf8_at("plain ascii, long enough for the fast path"), std::string_view::npos);
  EXPECT_EQ(invalid_utf8_at("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), std::string_view::npos);
  EXPECT_EQ(invalid_utf8_at("abc\xFF"), 3u);                  // never valid
  EXPECT_EQ(invalid_utf8_at("\xC0\x80"), 0u);                 // overlong NUL
  EXPECT_EQ(invalid_utf8_at("x\xE0\x80\xAF"), 1u);            // overlong 3-byte
  EXPECT_EQ(invalid_utf8_at("12345678\xED\xA0\x80"), 8u);     // surrogate U+D800
  EXPECT_EQ(invalid_utf8_at("\xF4\x90\x80\x80"), 0u);         // above U+10FFFF
  EXPECT_EQ(invalid_utf8_at("ab\xE2\x82"), 2u);               // cut short
  EXPECT_EQ(invalid_utf8_at("latin-1 caf\xE9!"), 11u);        // the usual real-world case
}

TEST(Csv, QuotingEmbeddedNewlinesAndCrlf) {
  const auto path = write_file("q.csv",
                               "id,text,label\r\n"
                               "1,plain,a\r\n"
                               "2,\"with, comma\",b\r\n"
                               "3,\"say \"\"hi\"\"\",c\r\n"
                               "4,\"two\r\nlines\",d\r\n"
                               "\r\n"
                               "5,,e\r\n"
                               "6,\"\",f");  // no final newline
  auto r = read_all(path, {}, {"text", "label"});
  ASSERT_TRUE(r.bad.empty()) << r.bad.front().second;
  ASSERT_EQ(r.rows.size(), 6u);
  EXPECT_EQ(r.rows[0].values, (std::vector<std::string>{"plain", "a"}));
  EXPECT_EQ(r.rows[1].values[0], "with, comma");
  EXPECT_EQ(r.rows[2].values[0], "say \"hi\"");
  EXPECT_EQ(r.rows[3].values[0], "two\nlines");
  EXPECT_EQ(r.rows[4].values[0], "");
  EXPECT_EQ(r.rows[5].values, (std::vector<std::string>{"", "f"}));
  // Line numbers are those of each record's first line (the blank line 7 is not a row).
  EXPECT_EQ(r.rows[3].line, 5);
  EXPECT_EQ(r.rows[4].line, 8);
}

TEST(Csv, HeaderlessByColumnsOrIndex) {
  const auto path = write_file("nohead.csv", "\"1\",\"t1\",\"c1\"\n\"2\",\"t2\",\"c2\"\n");
  TableOptions named;
  named.columns = {"class", "title", "content"};
  auto r = read_all(path, named, {"title", "content", "class"});
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[1].values, (std::vector<std::string>{"t2", "c2", "2"}));
  TableOptions no_header;
  no_header.header = HeaderMode::No;
  r = read_all(path, no_header, {"2", "0"});
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[0].values, (std::vector<std::string>{"c1", "1"}));
  // Indices with an undecided header are ambiguous: the error says what to pass.
  EXPECT_NE(error_of([&] { read_all(path, {}, {"2", "0"}); }).find("--no-header"), std::string::npos);
  // A name that is not in the header lists the columns and the --columns hint.
  const auto msg = error_of([&] { read_all(path, {}, {"content"}); });
  EXPECT_NE(msg.find("column 'content' not found"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--columns"), std::string::npos) << msg;
}

TEST(Csv, BadRecordsNameTheirLineAndReadingContinues) {
  const auto path = write_file("bad.csv",
                               "text,label\n"
                               "ok,1\n"
                               "\"closed\"x,1\n"        // line 3: junk after a closing quote
                               "too,many,fields\n"      // line 4
                               "fine,0\n"               // line 5
                               "\"never closed,1\n"     // line 6: runs to the end of the file
                               "more\n");
  auto r = read_all(path, {}, {"text", "label"});
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[1].values[0], "fine");
  ASSERT_EQ(r.bad.size(), 3u);
  EXPECT_EQ(r.bad[0].first, 3);
  EXPECT_NE(r.bad[0].second.find("after the closing quote"), std::string::npos);
  EXPECT_EQ(r.bad[1].first, 4);
  EXPECT_NE(r.bad[1].second.find("3 fields, expected 2"), std::string::npos);
  EXPECT_EQ(r.bad[2].first, 6);
  EXPECT_NE(r.bad[2].second.find("never closed"), std::string::npos);
}

TEST(Csv, InvalidUtf8NamesTheLine) {
  const auto path = write_file("latin1.csv", "text,label\ngood,1\ncaf\xE9,0\n\"multi\nline \xFF\",1\nafter,1\n");
  auto r = read_all(path, {}, {"text", "label"});
  ASSERT_EQ(r.rows.size(), 2u);
  EXPECT_EQ(r.rows[1].values[0], "after");
  ASSERT_EQ(r.bad.size(), 2u);
  EXPECT_EQ(r.bad[0].first, 3);
  EXPECT_NE(r.bad[0].second.find("invalid UTF-8 at byte 4"), std::string::npos) << r.bad[0].second;
  EXPECT_EQ(r.bad[1].first, 4);  // the record starts on line 4, the bad byte is on line 5
  EXPECT_NE(r.bad[1].second.find("line 5"), std::string::npos) << r.bad[1].second;
  // A LineReader alone throws, naming file and line.
  LineReader lines(path);
  std::string line;
  ASSERT_TRUE(lines.next(line));
  ASSERT_TRUE(lines.next(line));
  const auto msg = error_of([&] { lines.next(line); });
  EXPECT_NE(msg.find("latin1.csv: line 3: invalid UTF-8"), std::string::npos) << msg;
}

TEST(Tsv, QuotesAreOrdinaryAndBomIsSkipped) {
  const auto path = write_file("t.tsv", "\xEF\xBB\xBFlabel\tsentence\r\n1\tit 's \"fine\r\n0\ta\tb\r\n");
  auto r = read_all(path, {}, {"sentence", "label"});
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.rows[0].values, (std::vector<std::string>{"it 's \"fine", "1"}));
  ASSERT_EQ(r.bad.size(), 1u);
  EXPECT_EQ(r.bad[0].first, 3);
}

TEST(Jsonl, FieldsTypesAndErrors) {
  const auto path = write_file("j.jsonl",
                               "{\"text\": \"a \\u00e9 \\n b\", \"label\": 1}\n"
                               "\n"
                               "{\"text\": \"x\", \"label\": \"pos\"}\n"
                               "{\"text\": \"x\"}\n"
                               "{\"text\": null, \"label\": 0}\n"
                               "[1, 2]\n"
                               "{\"text\": \"x\", \"label\": 0\n"
                               "{\"text\": [\"x\"], \"label\": 0}\n"
                               "{\"text\": \"last\", \"label\": 0}");
  auto r = read_all(path, {}, {"text", "label"});
  ASSERT_EQ(r.rows.size(), 3u);
  EXPECT_EQ(r.rows[0].values, (std::vector<std::string>{"a \xC3\xA9 \n b", "1"}));
  EXPECT_EQ(r.rows[1].values[1], "pos");
  EXPECT_EQ(r.rows[1].line, 3);
  EXPECT_EQ(r.rows[2].line, 9);
  ASSERT_EQ(r.bad.size(), 5u);
  EXPECT_EQ(r.bad[0].first, 4);
  EXPECT_NE(r.bad[0].second.find("field 'label' is missing"), std::string::npos);
  EXPECT_NE(r.bad[1].second.find("is null"), std::string::npos);
  EXPECT_NE(r.bad[2].second.find("JSON object"), std::string::npos);
  EXPECT_NE(r.bad[3].second.find("invalid JSON"), std::string::npos);
  EXPECT_NE(r.bad[4].second.find("array"), std::string::npos);
}

TEST(Jsonl, AJsonArrayFileGetsAClearError) {
  const auto path = write_file("array.json", "[\n  {\"text\": \"a\", \"label\": 0}\n]\n");
  const auto msg = error_of([&] { read_all(path, {}, {"text", "label"}); });
  EXPECT_NE(msg.find("array.json: line 1: this is a JSON array, not JSON Lines"), std::string::npos) << msg;
}

TEST(Gzip, ReadsCompressedAndRejectsTruncated) {
  std::string content = "{\"text\": \"row\", \"label\": 0}\n";
  std::string big;
  for (int i = 0; i < 20000; ++i) big += content;
  const auto path = write_file("rows.jsonl.gz", big);
  auto r = read_all(path, {}, {"text", "label"});
  EXPECT_EQ(r.rows.size(), 20000u);
  EXPECT_TRUE(r.bad.empty());
  // Cut the compressed file short: reading must fail, not end quietly.
  const auto cut = (tuneserve::testing::data_temp_dir() / "cut.jsonl.gz").string();
  std::filesystem::copy_file(path, cut, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::resize_file(cut, std::filesystem::file_size(cut) / 2);
  const auto msg = error_of([&] { read_all(cut, {}, {"text", "label"}); });
  EXPECT_NE(msg.find("cut.jsonl.gz: damaged compressed data"), std::string::npos) << msg;
}

TEST(Formats, DetectionAndOpenErrors) {
  EXPECT_EQ(detect_format("a/b.CSV"), Format::Csv);
  EXPECT_EQ(detect_format("x.tsv.gz"), Format::Tsv);
  EXPECT_EQ(detect_format("x.jsonl.gz"), Format::Jsonl);
  EXPECT_THROW(detect_format("x.parquet"), tuneserve::Error);
  EXPECT_NE(error_of([] { LineReader r("/nonexistent/file.csv"); }).find("/nonexistent/file.csv"), std::string::npos);
}

// The same Amazon rows as original CSV (class 1/2, no header) and as JSONL (label 0/1).
TEST(RealData, AmazonCsvAndJsonlAgree) {
  TUNESERVE_REQUIRE_SHARED("data/amazon_polarity/train.csv");
  TableOptions csv;
  csv.columns = {"class", "title", "content"};
  auto a = read_all(shared_path("data/amazon_polarity/train.csv"), csv, {"title", "content", "class"});
  auto b = read_all(shared_path("data/amazon_polarity/train.jsonl"), {}, {"title", "content", "label"});
  ASSERT_TRUE(a.bad.empty()) << a.bad.front().second;
  ASSERT_TRUE(b.bad.empty()) << b.bad.front().second;
  ASSERT_EQ(a.rows.size(), 4000u);
  ASSERT_EQ(b.rows.size(), 4000u);
  for (std::size_t i = 0; i < a.rows.size(); ++i) {
    ASSERT_EQ(a.rows[i].values[0], b.rows[i].values[0]) << "row " << i;
    ASSERT_EQ(a.rows[i].values[1], b.rows[i].values[1]) << "row " << i;
    ASSERT_EQ(std::stoi(a.rows[i].values[2]) - 1, std::stoi(b.rows[i].values[2])) << "row " << i;
  }
}

TEST(RealData, Sst2TsvWithCrlf) {
  TUNESERVE_REQUIRE_SHARED("data/sst2/train.tsv");
  auto train = read_all(shared_path("data/sst2/train.tsv"), {}, {"sentence", "label"});
  ASSERT_TRUE(train.bad.empty()) << train.bad.front().second;
  ASSERT_EQ(train.rows.size(), 67349u);
  EXPECT_EQ(train.rows[0].values[0], "hide new secretions from the parental units");
  for (const auto& r : train.rows) ASSERT_EQ(r.values[0].find('\r'), std::string::npos);
  auto dev = read_all(shared_path("data/sst2/dev.tsv"), {}, {"content", "label"});
  EXPECT_EQ(dev.rows.size(), 872u);
  EXPECT_TRUE(dev.bad.empty());
}

TEST(RealData, ImdbGzipJsonl) {
  TUNESERVE_REQUIRE_SHARED("data/imdb/test.jsonl.gz");
  auto r = read_all(shared_path("data/imdb/test.jsonl.gz"), {}, {"text", "label"});
  ASSERT_TRUE(r.bad.empty()) << r.bad.front().second;
  ASSERT_EQ(r.rows.size(), 25000u);
  std::size_t with_br = 0;
  for (const auto& row : r.rows) with_br += row.values[0].find("<br />") != std::string::npos;
  EXPECT_GT(with_br, 10000u);  // the tags are kept as text, as datasets keeps them
}

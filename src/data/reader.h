// Raw training data in: CSV, TSV and JSONL files, each optionally gzip-compressed, streamed
// line by line with line numbers, UTF-8 validation and column selection by name or index.
//
// CSV follows RFC 4180: fields may be quoted with ", a quote inside is written "", quoted fields
// may hold delimiters and line breaks (kept as "\n"), lines may end in CRLF. TSV is unquoted by
// default (the GLUE convention: a " is an ordinary character). A UTF-8 byte-order mark is skipped.
// Blank lines are not rows. Every problem names the file and the line where its record starts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"


namespace tuneserve::data {

enum class Format { Auto, Csv, Tsv, Jsonl };
Format parse_format(const std::string& name);  // auto | csv | tsv | jsonl
const char* format_name(Format format);
// From the extension, looking through ".gz": .csv, .tsv/.tab, .jsonl/.ndjson/.json. Error otherwise.
Format detect_format(const std::string& path);

// Offset of the first byte that breaks UTF-8 (overlongs, surrogates and > U+10FFFF included),
// or npos when `text` is valid.
std::size_t invalid_utf8_at(std::string_view text);

// Invalid UTF-8 on a line: the line is consumed, so a reader that skips bad rows can carry on.
class InvalidUtf8 : public Error {
 public:
  InvalidUtf8(const std::string& path, std::int64_t line, std::string detail);
  std::int64_t line;
  std::string detail;  // "invalid UTF-8 at byte N (0xXX)..."
};

// Physical lines of a plain or gzip file (zlib reads both), without the "\n" or "\r\n".
class LineReader {
 public:
  explicit LineReader(const std::string& path);  // Error naming the path if it cannot be opened
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  // False at the end. InvalidUtf8 (naming file:line) after consuming a bad line; Error for a
  // damaged gzip stream.
  bool next(std::string& line);
  std::int64_t line_number() const { return line_; }  // 1-based, of the line last returned
  std::uint64_t bytes_read() const { return consumed_; }  // uncompressed bytes so far
  const std::string& path() const { return path_; }

 private:
  bool fill();
  std::string path_;
  void* gz_ = nullptr;  // gzFile
  std::vector<char> buf_;
  std::size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  std::int64_t line_ = 0;
  std::uint64_t consumed_ = 0;
};

enum class HeaderMode { Auto, Yes, No };

struct TableOptions {
  Format format = Format::Auto;
  // Auto: no header when `columns` names them, a header when every selector is a name, and an
  // error asking for --header / --no-header when a CSV/TSV selector is an index.
  HeaderMode header = HeaderMode::Auto;
  std::vector<std::string> columns;      // names for a header-less CSV/TSV (--columns)
  std::optional<bool> quoting;           // default: CSV quoted, TSV not
  // JSONL: selectors from this index on may hold a JSON array (a multi-label row's labels, several
  // regression targets), returned as its JSON text; before it an array is a bad record.
  std::size_t arrays_from = static_cast<std::size_t>(-1);
};

// One record's selected values, in selector order, and the line where the record starts.
struct SelectedRow {
  std::int64_t line = 0;
  std::vector<std::string> values;
};

// Reads one file and picks columns. Selectors are column names, or 0-based indices for CSV/TSV.
class TableReader {
 public:
  TableReader(const std::string& path, const TableOptions& options, std::vector<std::string> selectors);
  ~TableReader();
  TableReader(TableReader&&) noexcept;
  enum class Status { Row, End, Bad };
  // Row: `row` is filled. Bad: `reason` says why, `row.line` where; the bad record was consumed,
  // so the next call continues after it. End: no more records.
  Status next(SelectedRow& row, std::string& reason);
  Format format() const;
  const std::vector<std::string>& header() const;  // column names when known (CSV/TSV)
  const std::string& path() const;
  std::uint64_t bytes_read() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tuneserve::data

// CSV / TSV / JSONL readers over a gzip-transparent line stream, with column selection.
// A record's problems are reported as (line, reason) so the caller can stop or skip and count.
#include "data/reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"

namespace tuneserve::data {

using json = nlohmann::json;

Format parse_format(const std::string& name) {
  if (name == "auto") return Format::Auto;
  if (name == "csv") return Format::Csv;
  if (name == "tsv") return Format::Tsv;
  if (name == "jsonl") return Format::Jsonl;
  fail("format '{}': expected auto, csv, tsv or jsonl", name);
}

const char* format_name(Format format) {
  switch (format) {
    case Format::Csv: return "csv";
    case Format::Tsv: return "tsv";
    case Format::Jsonl: return "jsonl";
    case Format::Auto: break;
  }
  return "auto";
}

Format detect_format(const std::string& path) {
  std::string name = path;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  auto ends = [&](std::string_view suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends(".gz")) name.resize(name.size() - 3);
  if (ends(".csv")) return Format::Csv;
  if (ends(".tsv") || ends(".tab")) return Format::Tsv;
  if (ends(".jsonl") || ends(".ndjson") || ends(".json")) return Format::Jsonl;
  fail("{}: cannot tell the format from the extension; pass --format csv|tsv|jsonl", path);
}

std::size_t invalid_utf8_at(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    // ASCII fast path, eight bytes at a time.
    if (i + 8 <= n) {
      std::uint64_t word;
      std::memcpy(&word, s + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (std::size_t k = 2; k < len; ++k)
      if ((s[i + k] & 0xC0) != 0x80) return i;
    i += len;
  }
  return std::string_view::npos;
}

// ---------------------------------------------------------------------------------------------
// LineReader

namespace {
constexpr std::size_t kChunk = 1 << 16;  // grows (doubling) for longer lines
constexpr std::size_t kMaxLine = 64u << 20;  // a longer "line" is almost surely a binary file
}  // namespace

LineReader::LineReader(const std::string& path) : path_(path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("{}: cannot open: {}", path, std::strerror(errno));
  gzbuffer(f, kChunk);
  gz_ = f;
  buf_.resize(kChunk);
}

LineReader::~LineReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

bool LineReader::fill() {
  if (eof_) return false;
  if (begin_ > 0) {  // keep the partial line, make room after it
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buf_.size()) {
    if (buf_.size() >= kMaxLine) fail("{}: line {} is longer than {} bytes (not a text file?)", path_, line_ + 1, kMaxLine);
    buf_.resize(buf_.size() * 2);
  }
  auto f = static_cast<gzFile>(gz_);
  const int got = gzread(f, buf_.data() + end_, static_cast<unsigned>(buf_.size() - end_));
  if (got < 0) {
    int code = 0;
    fail("{}: read error near line {}: {}", path_, line_ + 1, gzerror(f, &code));
  }
  if (got == 0) {
    int code = 0;
    const char* msg = gzerror(f, &code);
    // A gzip stream cut short reads as end-of-file with Z_BUF_ERROR; that must not pass silently.
    if (code != Z_OK) fail("{}: damaged compressed data near line {}: {}", path_, line_ + 1, msg);
    eof_ = true;
    return false;
  }
  end_ += static_cast<std::size_t>(got);
  return true;
}

bool LineReader::next(std::string& line) {
  std::size_t scan = begin_;
  for (;;) {
    const char* nl = static_cast<const char*>(std::memchr(buf_.data() + scan, '\n', end_ - scan));
    if (nl) {
      const auto at = static_cast<std::size_t>(nl - buf_.data());
      line.assign(buf_.data() + begin_, at - begin_);
      consumed_ += at + 1 - begin_;
      begin_ = at + 1;
      break;
    }
    const std::size_t scanned = end_ - begin_;
    if (!fill()) {
      if (begin_ == end_) return false;
      line.assign(buf_.data() + begin_, end_ - begin_);  // last line without "\n"
      consumed_ += end_ - begin_;
      begin_ = end_;
      break;
    }
    scan = begin_ + scanned;
  }
  ++line_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.erase(0, 3);
  if (const auto bad = invalid_utf8_at(line); bad != std::string_view::npos)
    throw InvalidUtf8(path_, line_,
                      fmt::format("invalid UTF-8 at byte {} (0x{:02X}); the file must be UTF-8 encoded", bad + 1,
                                  static_cast<unsigned char>(line[bad])));
  return true;
}

InvalidUtf8::InvalidUtf8(const std::string& path, std::int64_t line_number, std::string what)
    : Error(fmt::format("{}: line {}: {}", path, line_number, what)), line(line_number), detail(std::move(what)) {}

// ---------------------------------------------------------------------------------------------
// TableReader

namespace {

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

// Column names for an error message; a "header" that is really a data row can be long.
std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) {
    if (!out.empty()) out += ", ";
    if (n.size() <= 40) {
      out += n;
      continue;
    }
    std::size_t cut = 37;
    while (cut > 0 && (static_cast<unsigned char>(n[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
    out += n.substr(0, cut) + "...";
  }
  return out;
}

// Why a record is bad; thrown inside the reader, turned into Status::Bad at next().
struct BadRecord {
  std::string reason;
};

constexpr std::size_t kMaxRecord = 16u << 20;  // an unbalanced quote must not swallow the file

}  // namespace

struct TableReader::Impl {
  LineReader lines;
  Format format;
  char delimiter = ',';
  bool quoting = true;
  std::vector<std::string> selectors;
  std::size_t arrays_from = static_cast<std::size_t>(-1);  // TableOptions::arrays_from
  std::vector<std::string> header;
  std::vector<std::size_t> picks;  // CSV/TSV: field index per selector
  std::size_t expected_fields = 0;  // 0 = learn from the first record
  std::string line;
  std::vector<std::string> fields;
  std::int64_t record_start = 0;  // first line of the record being read (0 before it starts)
  bool seen_record = false;

  Impl(const std::string& path, Format f) : lines(path), format(f) {}

  // Splits one record, pulling more physical lines while a quoted field is open.
  // False at end of file.
  bool read_record() {
    do {
      if (!lines.next(line)) return false;
    } while (line.empty());
    record_start = lines.line_number();
    fields.clear();
    fields.emplace_back();
    std::size_t record_bytes = 0;
    std::size_t i = 0;
    for (;;) {
      // At the start of a field.
      std::string* field = &fields.back();
      if (quoting && i < line.size() && line[i] == '"') {
        ++i;
        for (;;) {  // inside quotes, possibly across lines
          const std::size_t q = line.find('"', i);
          if (q == std::string::npos) {
            field->append(line, i, std::string::npos);
            field->push_back('\n');
            record_bytes += line.size() + 1;
            if (record_bytes > kMaxRecord)
              throw BadRecord{fmt::format("quoted field runs past {} bytes; unbalanced quote?", kMaxRecord)};
            if (!lines.next(line))
              throw BadRecord{fmt::format("quoted field in column {} is never closed", fields.size())};
            i = 0;
            continue;
          }
          field->append(line, i, q - i);
          if (q + 1 < line.size() && line[q + 1] == '"') {  // "" is a literal quote
            field->push_back('"');
            i = q + 2;
            continue;
          }
          i = q + 1;
          break;
        }
        if (i < line.size() && line[i] != delimiter)
          throw BadRecord{fmt::format("unexpected character '{}' after the closing quote of column {}",
                                      line[i], fields.size())};
      } else {
        const std::size_t d = line.find(delimiter, i);
        const std::size_t stop = d == std::string::npos ? line.size() : d;
        field->append(line, i, stop - i);
        i = stop;
      }
      if (i >= line.size()) break;
      ++i;  // the delimiter
      fields.emplace_back();
    }
    return true;
  }

  void resolve(const TableOptions& options) {
    bool all_names = true;
    for (const auto& s : selectors) all_names = all_names && !all_digits(s);
    HeaderMode mode = options.header;
    if (!options.columns.empty()) {
      if (mode == HeaderMode::Yes)
        fail("{}: --columns names the columns of a header-less file; it cannot be used with --header", lines.path());
      mode = HeaderMode::No;
      header = options.columns;
    } else if (mode == HeaderMode::Auto) {
      if (!all_names)
        fail("{}: columns are chosen by index; say whether the first line is a header (--header or "
             "--no-header) or name the columns with --columns",
             lines.path());
      mode = HeaderMode::Yes;
    }
    if (mode == HeaderMode::Yes) {
      try {
        if (!read_record()) fail("{}: empty file, expected a header line", lines.path());
      } catch (const BadRecord& bad) {
        fail("{}: line {}: header: {}", lines.path(), record_start, bad.reason);
      }
      header = fields;
    }
    if (!header.empty()) expected_fields = header.size();
    for (const auto& s : selectors) {
      const auto it = std::find(header.begin(), header.end(), s);
      if (it != header.end()) {
        picks.push_back(static_cast<std::size_t>(it - header.begin()));
      } else if (all_digits(s)) {
        picks.push_back(std::stoul(s));
        if (!header.empty() && picks.back() >= header.size())
          fail("{}: column index {} out of range: the file has {} columns ({})", lines.path(), s, header.size(),
               joined(header));
      } else if (header.empty()) {
        fail("{}: column '{}': the file has no header; name the columns with --columns or use indices",
             lines.path(), s);
      } else {
        fail("{}: column '{}' not found; columns are: {}{}", lines.path(), s, joined(header),
             mode == HeaderMode::Yes ? " (from the first line; if the file has no header, name the columns "
                                       "with --columns)"
                                     : "");
      }
    }
  }

  void next_csv(SelectedRow& row) {
    if (!read_record()) {
      row.line = -1;
      return;
    }
    row.line = record_start;
    if (expected_fields == 0) expected_fields = fields.size();
    if (fields.size() != expected_fields)
      throw BadRecord{fmt::format("{} fields, expected {}{}", fields.size(), expected_fields,
                                  format == Format::Tsv && fields.size() < expected_fields
                                      ? " (a tab missing?)"
                                      : "")};
    row.values.clear();
    for (std::size_t p : picks) {
      if (p >= fields.size()) throw BadRecord{fmt::format("no column {} in a row of {} fields", p, fields.size())};
      row.values.push_back(std::move(fields[p]));
    }
  }

  void next_jsonl(SelectedRow& row) {
    do {
      if (!lines.next(line)) {
        row.line = -1;
        return;
      }
    } while (line.find_first_not_of(" \t") == std::string::npos);
    row.line = record_start = lines.line_number();
    if (!seen_record && line.find_first_not_of(" \t") != std::string::npos && line[line.find_first_not_of(" \t")] == '[')
      fail("{}: line {}: this is a JSON array, not JSON Lines (one object per line); convert it with "
           "jq -c '.[]' {}",
           lines.path(), row.line, lines.path());
    seen_record = true;
    json j;
    try {
      j = parse_json(line, "", {kJsonRecordBytes});  // the reason gets "file: line N: " in front
    } catch (const JsonError& e) {
      throw BadRecord{e.what()};
    }
    if (!j.is_object()) throw BadRecord{"expected a JSON object per line"};
    row.values.clear();
    for (std::size_t s = 0; s < selectors.size(); ++s) {
      const std::string& key = selectors[s];
      const auto it = j.find(key);
      if (it == j.end()) throw BadRecord{fmt::format("field '{}' is missing", key)};
      if (it->is_array() && s >= arrays_from) {
        row.values.push_back(it->dump());
      } else if (it->is_string()) {
        row.values.push_back(it->get<std::string>());
      } else if (it->is_number() || it->is_boolean()) {
        row.values.push_back(it->dump());
      } else if (it->is_null()) {
        throw BadRecord{fmt::format("field '{}' is null", key)};
      } else {
        throw BadRecord{fmt::format("field '{}' is a {}, expected a string or a number", key, it->type_name())};
      }
    }
  }
};

TableReader::TableReader(const std::string& path, const TableOptions& options, std::vector<std::string> selectors) {
  const Format format = options.format == Format::Auto ? detect_format(path) : options.format;
  impl_ = std::make_unique<Impl>(path, format);
  impl_->selectors = std::move(selectors);
  impl_->arrays_from = options.arrays_from;
  if (format == Format::Jsonl) return;  // fields are found by name in each object
  impl_->delimiter = format == Format::Tsv ? '\t' : ',';
  impl_->quoting = options.quoting.value_or(format == Format::Csv);
  impl_->resolve(options);
}

TableReader::~TableReader() = default;
TableReader::TableReader(TableReader&&) noexcept = default;

TableReader::Status TableReader::next(SelectedRow& row, std::string& reason) {
  impl_->record_start = 0;
  try {
    if (impl_->format == Format::Jsonl)
      impl_->next_jsonl(row);
    else
      impl_->next_csv(row);
  } catch (const BadRecord& bad) {
    row.line = impl_->record_start;
    reason = bad.reason;
    return Status::Bad;
  } catch (const InvalidUtf8& bad) {
    // Inside a multi-line record the row is named by its first line, the fault by its own.
    row.line = impl_->record_start ? impl_->record_start : bad.line;
    reason = bad.line == row.line ? bad.detail : fmt::format("line {}: {}", bad.line, bad.detail);
    return Status::Bad;
  }
  return row.line < 0 ? Status::End : Status::Row;
}

Format TableReader::format() const { return impl_->format; }
const std::vector<std::string>& TableReader::header() const { return impl_->header; }
const std::string& TableReader::path() const { return impl_->lines.path(); }
std::uint64_t TableReader::bytes_read() const { return impl_->lines.bytes_read(); }

}  // namespace tuneserve::data

// Data preparation pipeline: read and label examples, order them like `datasets`, tokenize on
// a few threads into one flat buffer per split. Dimensions: N rows.
#include "data/prep.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "checkpoint/config.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "data/shuffle.h"

namespace tuneserve::data {

namespace {

// Progress on stderr: redrawn in place on a terminal, a plain line every few seconds otherwise.
class Progress {
 public:
  Progress(bool enabled, std::string what) : enabled_(enabled), what_(std::move(what)) {
    tty_ = enabled_ && ::isatty(STDERR_FILENO);
  }
  void update(std::int64_t done, std::int64_t total, const char* unit) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < (tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000))) return;
    last_ = now;
    print(done, total, unit, false);
  }
  void finish(std::int64_t done, std::int64_t total, const char* unit) {
    if (enabled_) print(done, total, unit, true);
  }

 private:
  void print(std::int64_t done, std::int64_t total, const char* unit, bool last) {
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
    std::string msg = total > 0 ? fmt::format("prep: {} {}/{} {} ({:.0f}%), {:.0f} {}/s", what_, done, total, unit,
                                              100.0 * static_cast<double>(done) / static_cast<double>(total), rate, unit)
                                : fmt::format("prep: {} {} {}, {:.0f} {}/s", what_, done, unit, rate, unit);
    if (tty_)
      std::fprintf(stderr, "\r%s\033[K%s", msg.c_str(), last ? "\n" : "");
    else
      std::fprintf(stderr, "%s\n", msg.c_str());
  }
  bool enabled_, tty_ = false;
  std::string what_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_ = start_;
};

std::optional<std::int64_t> parse_int(const std::string& s) {
  std::int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || s.empty()) return std::nullopt;
  return v;
}

struct Skipper {
  const ReadOptions& options;
  RawExamples& out;
  void bad(const std::string& file, std::int64_t line, const std::string& reason) {
    if (!options.skip_bad_rows)
      fail("{}: line {}: {} (pass --skip-bad-rows to skip and count such rows)", file, line, reason);
    ++out.skipped_rows;
    if (out.skipped.size() < kMaxListedSkips) {
      out.skipped.push_back({file, line, reason});
      std::fprintf(stderr, "prep: skipping %s: line %lld: %s\n", file.c_str(), static_cast<long long>(line),
                   reason.c_str());
    }
  }
};

// Raw label strings -> ids, following LabelOptions; rows whose label does not fit are bad.
void assign_labels(const ReadOptions& options, const std::vector<std::string>& raw, RawExamples& ex) {
  const auto& lo = options.labels;
  std::vector<std::optional<std::int32_t>> ids(raw.size());
  std::vector<std::string> why(raw.size());
  if (!lo.map.empty()) {
    std::map<std::string, std::int32_t> m(lo.map.begin(), lo.map.end());
    std::int32_t top = -1;
    for (const auto& [k, v] : lo.map) top = std::max(top, v);
    std::string keys;
    for (const auto& [k, v] : lo.map) keys += (keys.empty() ? "" : ", ") + k;
    for (std::size_t i = 0; i < raw.size(); ++i) {
      const auto it = m.find(raw[i]);
      if (it != m.end()) ids[i] = it->second;
      else why[i] = fmt::format("label '{}' is not in --label-map ({})", raw[i], keys);
    }
    // id2label: --label-names when given, else the first word mapped to each id (raw numbers such
    // as the CSV's classes 1/2 are not names), else LABEL_i.
    ex.id2label.assign(static_cast<std::size_t>(top + 1), "");
    for (const auto& [k, v] : lo.map)
      if (ex.id2label[static_cast<std::size_t>(v)].empty() && !parse_int(k)) ex.id2label[static_cast<std::size_t>(v)] = k;
    for (std::size_t id = 0; id < ex.id2label.size(); ++id) {
      if (id < lo.names.size()) ex.id2label[id] = lo.names[id];
      if (ex.id2label[id].empty()) ex.id2label[id] = default_label_name(id);
    }
  } else {
    bool all_names = !lo.names.empty();
    bool all_ints = true;
    for (const auto& r : raw) {
      all_names = all_names && std::find(lo.names.begin(), lo.names.end(), r) != lo.names.end();
      all_ints = all_ints && parse_int(r).has_value();
    }
    if (all_ints && !all_names) {
      std::int64_t top = -1;
      for (std::size_t i = 0; i < raw.size(); ++i) {
        const std::int64_t v = *parse_int(raw[i]);
        if (v < 0)
          why[i] = fmt::format("label {} is negative (unlabelled rows, as in some test splits?)", v);
        else if (!lo.names.empty() && v >= static_cast<std::int64_t>(lo.names.size()))
          why[i] = fmt::format("label {} has no name in --label-names ({} names)", v, lo.names.size());
        else if (v > 1000000)
          why[i] = fmt::format("label {} is not a class id (over 1000000)", v);
        else {
          ids[i] = static_cast<std::int32_t>(v);
          top = std::max(top, v);
        }
      }
      if (!lo.names.empty()) {
        ex.id2label = lo.names;
      } else {
        for (std::int64_t id = 0; id <= top; ++id) ex.id2label.push_back(default_label_name(static_cast<std::size_t>(id)));
      }
    } else {
      // Strings: the given names in order, else sorted like datasets' class_encode_column.
      ex.id2label = lo.names;
      if (ex.id2label.empty()) {
        ex.id2label = raw;
        std::sort(ex.id2label.begin(), ex.id2label.end());
        ex.id2label.erase(std::unique(ex.id2label.begin(), ex.id2label.end()), ex.id2label.end());
      }
      std::map<std::string, std::int32_t> index;
      for (std::size_t id = 0; id < ex.id2label.size(); ++id) index.emplace(ex.id2label[id], static_cast<std::int32_t>(id));
      for (std::size_t i = 0; i < raw.size(); ++i) {
        const auto it = index.find(raw[i]);
        if (it != index.end()) ids[i] = it->second;
        else why[i] = fmt::format("label '{}' is not one of --label-names", raw[i]);
      }
    }
  }
  // Drop (or stop at) the rows whose label did not fit, keeping the others in order.
  Skipper skip{options, ex};
  std::size_t kept = 0;
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (!ids[i]) {
      skip.bad(ex.sources[static_cast<std::size_t>(ex.where[i].file)].path, ex.where[i].line, why[i]);
      continue;
    }
    if (kept != i) {  // a self-move would empty the string
      ex.text[kept] = std::move(ex.text[i]);
      if (!ex.text_pair.empty()) ex.text_pair[kept] = std::move(ex.text_pair[i]);
      ex.where[kept] = ex.where[i];
    }
    ex.labels.push_back(*ids[i]);
    ++kept;
  }
  ex.text.resize(kept);
  if (!ex.text_pair.empty()) ex.text_pair.resize(kept);
  ex.where.resize(kept);
}

}  // namespace

std::vector<std::pair<std::string, std::int32_t>> parse_label_map(const std::string& spec) {
  std::vector<std::pair<std::string, std::int32_t>> out;
  std::size_t start = 0;
  while (start <= spec.size()) {
    const std::size_t comma = std::min(spec.find(',', start), spec.size());
    const std::string entry = spec.substr(start, comma - start);
    const std::size_t colon = entry.rfind(':');
    const auto id = colon == std::string::npos ? std::nullopt : parse_int(entry.substr(colon + 1));
    if (colon == std::string::npos || colon == 0 || !id || *id < 0 || *id > 1000000)
      fail("--label-map entry '{}': expected VALUE:ID with ID a non-negative integer, e.g. 1:0,2:1", entry);
    for (const auto& [k, v] : out)
      if (k == entry.substr(0, colon)) fail("--label-map: value '{}' is mapped twice", k);
    out.emplace_back(entry.substr(0, colon), static_cast<std::int32_t>(*id));
    start = comma + 1;
  }
  return out;
}

RawExamples read_examples(const ReadOptions& options) {
  if (options.files.empty()) fail("no input files (--input)");
  if (options.text_columns.empty() || options.text_columns.size() > 2)
    fail("--text takes one column or two (a text pair), got {}", options.text_columns.size());
  std::vector<std::string> selectors = options.text_columns;
  const bool labelled = !options.label_column.empty();
  if (labelled) selectors.push_back(options.label_column);
  const bool pairs = options.text_columns.size() == 2;

  RawExamples ex;
  std::vector<std::string> raw_labels;
  Skipper skip{options, ex};
  Progress progress(options.progress, "read");
  for (std::size_t f = 0; f < options.files.size(); ++f) {
    const auto& path = options.files[f];
    TableReader reader(path, options.table, selectors);
    ex.sources.push_back({path, format_name(reader.format()), 0});
    SelectedRow row;
    std::string reason;
    for (;;) {
      const auto status = reader.next(row, reason);
      if (status == TableReader::Status::End) break;
      ex.sources.back().rows++;
      if (status == TableReader::Status::Bad) {
        skip.bad(path, row.line, reason);
        continue;
      }
      if (labelled && row.values.back().empty()) {
        skip.bad(path, row.line, fmt::format("label column '{}' is empty", options.label_column));
        continue;
      }
      if (labelled && options.regression) {
        const std::string& raw = row.values.back();
        char* end = nullptr;
        const double v = std::strtod(raw.c_str(), &end);
        if (end != raw.c_str() + raw.size() || !std::isfinite(v) || std::isspace(static_cast<unsigned char>(raw[0]))) {
          skip.bad(path, row.line, fmt::format("regression target '{}' is not a finite number", raw));
          continue;
        }
        ex.values.push_back(static_cast<float>(v));
      }
      ex.text.push_back(std::move(row.values[0]));
      if (pairs) ex.text_pair.push_back(std::move(row.values[1]));
      if (labelled && !options.regression) raw_labels.push_back(std::move(row.values.back()));
      ex.where.push_back({static_cast<std::int32_t>(f), row.line});
      progress.update(static_cast<std::int64_t>(ex.text.size()), 0, "rows");
    }
  }
  if (labelled && !options.regression) assign_labels(options, raw_labels, ex);
  progress.finish(static_cast<std::int64_t>(ex.text.size()), 0, "rows");
  if (ex.skipped_rows > 0) {
    std::fprintf(stderr, "prep: skipped %lld bad rows%s\n", static_cast<long long>(ex.skipped_rows),
                 ex.skipped_rows > static_cast<std::int64_t>(kMaxListedSkips) ? " (the first 100 are listed above and in the manifest)" : "");
  }
  return ex;
}

std::string file_hash(const std::string& path) {
  MappedFile file(path);
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::uint8_t b : file.bytes()) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return fmt::format("fnv1a64:{:016x}", h);
}

TokenizedDataset tokenize_rows(const RawExamples& ex, std::span<const std::int64_t> order, const Encoder& encoder,
                               const PrepOptions& options, const std::string& split) {
  const bool pairs = !ex.text_pair.empty();
  const bool labelled = !options.read.label_column.empty();
  const bool regression = options.read.regression;
  // Fixed-size chunks claimed by whichever thread is free; each chunk fills its own buffers, so
  // the concatenation in chunk order is the same whatever the thread count or timing.
  constexpr std::size_t kChunkRows = 256;
  const std::size_t n = order.size();
  const std::size_t chunks = (n + kChunkRows - 1) / kChunkRows;
  std::vector<TokenizedRows> parts(chunks);
  std::atomic<std::size_t> next{0};
  std::atomic<std::int64_t> done{0};
  std::mutex error_mutex;
  std::string first_error;
  Progress progress(options.read.progress, split == "all" ? "tokenized" : "tokenized " + split);
  std::mutex progress_mutex;

  auto work = [&] {
    for (;;) {
      const std::size_t c = next.fetch_add(1);
      if (c >= chunks) return;
      {
        std::lock_guard lock(error_mutex);
        if (!first_error.empty()) return;
      }
      auto& part = parts[c];
      const std::size_t end = std::min(n, (c + 1) * kChunkRows);
      for (std::size_t k = c * kChunkRows; k < end; ++k) {
        const auto row = static_cast<std::size_t>(order[k]);
        try {
          const Encoding e = pairs ? encoder.encode(ex.text[row], std::string_view(ex.text_pair[row]))
                                   : encoder.encode(ex.text[row], std::nullopt);
          std::optional<std::int32_t> label;
          std::optional<float> value;
          if (labelled && regression) value = ex.values[row];
          else if (labelled) label = ex.labels[row];
          if (e.type_ids.empty() && !e.ids.empty()) {
            const std::vector<std::int32_t> zeros(e.ids.size(), 0);
            part.add(e.ids, zeros, label, value);
          } else {
            part.add(e.ids, e.type_ids, label, value);
          }
        } catch (const std::exception& err) {
          std::lock_guard lock(error_mutex);
          const auto& w = ex.where[row];
          if (first_error.empty())
            first_error = fmt::format("{}: line {}: tokenizing: {}", ex.sources[static_cast<std::size_t>(w.file)].path,
                                      w.line, err.what());
          return;
        }
      }
      const std::int64_t d = done.fetch_add(static_cast<std::int64_t>(end - c * kChunkRows)) +
                             static_cast<std::int64_t>(end - c * kChunkRows);
      std::lock_guard lock(progress_mutex);
      progress.update(d, static_cast<std::int64_t>(n), "rows");
    }
  };
  const int threads = std::max(1, std::min<int>(options.threads, static_cast<int>(chunks)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (!first_error.empty()) throw Error(first_error);
  progress.finish(static_cast<std::int64_t>(n), static_cast<std::int64_t>(n), "rows");

  TokenizedRows rows;
  std::size_t total = 0;
  for (const auto& p : parts) total += p.input_ids.size();
  rows.input_ids.reserve(total);
  rows.token_type_ids.reserve(total);
  rows.offsets.reserve(n + 1);
  std::vector<std::int64_t> lengths;
  lengths.reserve(n);
  for (auto& p : parts) {
    const auto base = static_cast<std::int64_t>(rows.input_ids.size());
    rows.input_ids.insert(rows.input_ids.end(), p.input_ids.begin(), p.input_ids.end());
    rows.token_type_ids.insert(rows.token_type_ids.end(), p.token_type_ids.begin(), p.token_type_ids.end());
    for (std::size_t r = 1; r < p.offsets.size(); ++r) {
      rows.offsets.push_back(base + p.offsets[r]);
      lengths.push_back(p.offsets[r] - p.offsets[r - 1]);
    }
    rows.labels.insert(rows.labels.end(), p.labels.begin(), p.labels.end());
    rows.values.insert(rows.values.end(), p.values.begin(), p.values.end());
    p = TokenizedRows{};
  }

  Manifest m;
  m.split = split;
  m.has_labels = labelled;
  if (regression) m.problem_type = "regression";
  m.id2label = labelled ? ex.id2label : std::vector<std::string>{};
  m.label_counts.assign(m.id2label.size(), 0);
  for (auto l : rows.labels) m.label_counts[static_cast<std::size_t>(l)]++;
  m.text_columns = options.read.text_columns;
  m.label_column = options.read.label_column;
  m.tokenizer_path = encoder.path;
  m.tokenizer_file = encoder.file;
  m.tokenizer_hash = encoder.hash;
  m.pad_token_id = encoder.pad_token_id;
  m.pad_token_type_id = encoder.pad_token_type_id;
  m.special_suffix = encoder.special_suffix;
  m.max_length = options.max_length;
  m.padding = options.padding;
  m.lengths = length_stats(lengths, options.max_length);
  m.sources = ex.sources;
  m.shuffled = options.shuffle;
  m.seed = options.seed;
  m.select = options.select;
  m.test_size = options.test_size;
  m.skipped_rows = ex.skipped_rows;
  m.skipped = ex.skipped;
  return TokenizedDataset::from_rows(std::move(rows), std::move(m));
}

Prepared prepare(const PrepOptions& options, const Encoder& encoder) {
  if (options.test_size != 0.0 && !options.test_files.empty())
    fail("--test-size splits the input; it cannot be combined with a separate test file");
  if (options.test_select >= 0 && options.test_files.empty())
    fail("--test-select picks rows of a separate test file (--test-input); with --test-size the split decides");
  const RawExamples ex = read_examples(options.read);
  const auto n = static_cast<std::int64_t>(ex.size());
  if (n == 0) fail("no rows to prepare in {}", options.read.files.front());
  const auto order = shuffle_select(n, options.shuffle, options.seed, options.select);
  if (!options.test_files.empty()) {
    ReadOptions test_read = options.read;
    test_read.files = options.test_files;
    // Number the test labels like the training labels (a map, if given, already does).
    if (test_read.labels.map.empty() && !test_read.label_column.empty() && !test_read.regression)
      test_read.labels.names = ex.id2label;
    const RawExamples test_ex = read_examples(test_read);
    if (test_ex.size() == 0) fail("no rows to prepare in {}", options.test_files.front());
    const auto test_order =
        shuffle_select(static_cast<std::int64_t>(test_ex.size()), options.shuffle, options.seed, options.test_select);
    auto train = tokenize_rows(ex, order, encoder, options, "train");
    PrepOptions as_test = options;  // the test manifest records the test file's selection
    as_test.select = options.test_select;
    auto test = tokenize_rows(test_ex, test_order, encoder, as_test, "test");
    return {std::move(train), std::move(test)};
  }
  if (options.test_size == 0.0) return {tokenize_rows(ex, order, encoder, options, "all"), std::nullopt};
  const auto split = train_test_split(static_cast<std::int64_t>(order.size()), options.test_size, options.seed);
  auto pick = [&](const std::vector<std::int64_t>& positions) {
    std::vector<std::int64_t> rows;
    rows.reserve(positions.size());
    for (auto p : positions) rows.push_back(order[static_cast<std::size_t>(p)]);
    return rows;
  };
  auto train = tokenize_rows(ex, pick(split.train), encoder, options, "train");
  auto test = tokenize_rows(ex, pick(split.test), encoder, options, "test");
  return {std::move(train), std::move(test)};
}

}  // namespace tuneserve::data

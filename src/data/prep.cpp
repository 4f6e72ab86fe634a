// Data preparation pipeline: read and label examples, order them like `datasets`, tokenize on
// a few threads into one flat buffer per split. Dimensions: N rows.
#include <spdlog/spdlog.h>

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
#include <limits>
#include <map>
#include <mutex>
#include <thread>

#include "checkpoint/config.h"
#include "core/error.h"
#include "core/json.h"
#include "core/progress.h"
#include "core/mapped_file.h"
#include "data/shuffle.h"

namespace tuneserve::data {

namespace {

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
      spdlog::warn("prep: skipping {}: line {}: {}", file, line, reason);
    }
  }
};

// Raw label strings -> ids, following LabelOptions: an id per label, or the reason it does not fit.
struct LabelIds {
  std::vector<std::optional<std::int32_t>> ids;
  std::vector<std::string> why;
  std::vector<std::string> id2label;
};

LabelIds number_labels(const LabelOptions& lo, const std::vector<std::string>& raw) {
  LabelIds out;
  auto& ids = out.ids;
  auto& why = out.why;
  ids.resize(raw.size());
  why.resize(raw.size());
  std::vector<std::string>& id2label = out.id2label;
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
    id2label.assign(static_cast<std::size_t>(top + 1), "");
    for (const auto& [k, v] : lo.map)
      if (id2label[static_cast<std::size_t>(v)].empty() && !parse_int(k)) id2label[static_cast<std::size_t>(v)] = k;
    for (std::size_t id = 0; id < id2label.size(); ++id) {
      if (id < lo.names.size()) id2label[id] = lo.names[id];
      if (id2label[id].empty()) id2label[id] = default_label_name(id);
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
        id2label = lo.names;
      } else {
        for (std::int64_t id = 0; id <= top; ++id) id2label.push_back(default_label_name(static_cast<std::size_t>(id)));
      }
    } else {
      // Strings: the given names in order, else sorted like datasets' class_encode_column.
      id2label = lo.names;
      if (id2label.empty()) {
        id2label = raw;
        std::sort(id2label.begin(), id2label.end());
        id2label.erase(std::unique(id2label.begin(), id2label.end()), id2label.end());
      }
      std::map<std::string, std::int32_t> index;
      for (std::size_t id = 0; id < id2label.size(); ++id) index.emplace(id2label[id], static_cast<std::int32_t>(id));
      for (std::size_t i = 0; i < raw.size(); ++i) {
        const auto it = index.find(raw[i]);
        if (it != index.end()) ids[i] = it->second;
        else why[i] = fmt::format("label '{}' is not one of --label-names", raw[i]);
      }
    }
  }
  return out;
}

// Keeps the rows whose `why` is empty (in order; the K targets of each with them) and reports the
// others as bad rows (stop, or skip and count).
void keep_good_rows(const ReadOptions& options, const std::vector<std::string>& why, RawExamples& ex) {
  Skipper skip{options, ex};
  const auto K = static_cast<std::size_t>(std::max<std::int64_t>(ex.num_targets, 1));
  const bool targets = !ex.values.empty();
  std::size_t kept = 0;
  for (std::size_t i = 0; i < why.size(); ++i) {
    if (!why[i].empty()) {
      skip.bad(ex.sources[static_cast<std::size_t>(ex.where[i].file)].path, ex.where[i].line, why[i]);
      continue;
    }
    if (kept != i) {  // a self-move would empty the string
      ex.text[kept] = std::move(ex.text[i]);
      if (!ex.text_pair.empty()) ex.text_pair[kept] = std::move(ex.text_pair[i]);
      ex.where[kept] = ex.where[i];
      if (!ex.labels.empty()) ex.labels[kept] = ex.labels[i];
      if (targets) std::copy_n(ex.values.begin() + static_cast<std::ptrdiff_t>(i * K), K, ex.values.begin() + static_cast<std::ptrdiff_t>(kept * K));
    }
    ++kept;
  }
  ex.text.resize(kept);
  if (!ex.text_pair.empty()) ex.text_pair.resize(kept);
  ex.where.resize(kept);
  if (!ex.labels.empty()) ex.labels.resize(kept);
  if (targets) ex.values.resize(kept * K);
}

// Single-label: one class id per row.
void assign_labels(const ReadOptions& options, const std::vector<std::string>& raw, RawExamples& ex) {
  LabelIds l = number_labels(options.labels, raw);
  ex.id2label = std::move(l.id2label);
  ex.labels.resize(raw.size(), 0);
  for (std::size_t i = 0; i < raw.size(); ++i)
    if (l.ids[i]) ex.labels[i] = *l.ids[i];
  keep_good_rows(options, l.why, ex);
}

// The items of one multi-label cell: a JSON array (["joy", "love"], [3, 27]) or comma-separated
// ("3,27", GoEmotions' form); "[]" is a row with no label, an empty cell is not.
std::optional<std::vector<std::string>> label_items(const std::string& cell, std::string& why) {
  std::vector<std::string> items;
  if (!cell.empty() && cell.front() == '[') {
    nlohmann::json j;
    try {
      j = parse_json(cell, "label list");
    } catch (const JsonError& e) {
      why = e.what();
      return std::nullopt;
    }
    for (const auto& item : j) {
      if (item.is_string()) items.push_back(item.get<std::string>());
      else if (item.is_number_integer()) items.push_back(item.dump());
      else {
        why = fmt::format("label list '{}' holds a {}; expected label names or integer ids", text_excerpt(cell), item.type_name());
        return std::nullopt;
      }
    }
    return items;
  }
  std::size_t start = 0;
  while (start <= cell.size()) {
    const std::size_t comma = std::min(cell.find(',', start), cell.size());
    std::string item = cell.substr(start, comma - start);
    const auto first = item.find_first_not_of(' '), last = item.find_last_not_of(' ');
    if (first == std::string::npos) {
      why = fmt::format("label list '{}' has an empty item", text_excerpt(cell));
      return std::nullopt;
    }
    items.push_back(item.substr(first, last - first + 1));
    start = comma + 1;
  }
  return items;
}

// Multi-label from one list column: every row's items numbered together (names, ids, --label-map),
// each row a multi-hot vector over id2label.
void assign_label_lists(const ReadOptions& options, const std::vector<std::string>& cells, RawExamples& ex) {
  std::vector<std::string> why(cells.size()), flat;
  std::vector<std::size_t> first(cells.size() + 1, 0);
  for (std::size_t i = 0; i < cells.size(); ++i) {
    if (auto items = label_items(cells[i], why[i])) flat.insert(flat.end(), items->begin(), items->end());
    first[i + 1] = flat.size();
  }
  LabelIds l = number_labels(options.labels, flat);
  ex.id2label = std::move(l.id2label);
  const std::size_t K = ex.id2label.size();
  ex.num_targets = static_cast<std::int64_t>(K);
  ex.values.assign(cells.size() * K, 0.0f);
  for (std::size_t i = 0; i < cells.size(); ++i) {
    for (std::size_t f = first[i]; f < first[i + 1] && why[i].empty(); ++f) {
      if (l.ids[f]) ex.values[i * K + static_cast<std::size_t>(*l.ids[f])] = 1.0f;
      else why[i] = l.why[f];
    }
  }
  keep_good_rows(options, why, ex);
}

std::vector<std::string> split_columns(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = std::min(list.find(',', start), list.size());
    if (comma == start) fail("--label '{}': empty column name", list);
    out.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// A float target, or nullopt with the reason.
std::optional<float> parse_target(const std::string& raw, std::string& why) {
  char* end = nullptr;
  const double v = std::strtod(raw.c_str(), &end);
  if (raw.empty() || end != raw.c_str() + raw.size() || !std::isfinite(v) || std::isspace(static_cast<unsigned char>(raw[0])) ||
      std::abs(v) > std::numeric_limits<float>::max()) {
    why = fmt::format("target '{}' is not a finite number", text_excerpt(raw));
    return std::nullopt;
  }
  return static_cast<float>(v);
}

// The K float targets of one row from its label cells: regression values (one column per target,
// or one JSON array), or 0/1 multi-hot columns. Empty with `why` set when one does not parse.
std::vector<float> row_targets(const ReadOptions& options, const std::vector<std::string>& columns,
                               std::span<const std::string> cells, std::string& why) {
  std::vector<float> out;
  const bool multi = options.problem_type == kMultiLabel;
  if (!multi && cells.size() == 1 && !cells[0].empty() && cells[0].front() == '[') {
    nlohmann::json j;
    try {
      j = parse_json(cells[0], "target list");
    } catch (const JsonError& e) {
      why = e.what();
      return {};
    }
    for (const auto& v : j) {
      if (!v.is_number()) {
        why = fmt::format("target list '{}' holds a {}; expected numbers", text_excerpt(cells[0]), v.type_name());
        return {};
      }
      out.push_back(v.get<float>());
    }
    if (out.empty()) why = "target list is empty";
    return out;
  }
  for (std::size_t c = 0; c < cells.size(); ++c) {
    const std::string& raw = cells[c];
    if (multi) {
      if (raw == "1" || raw == "1.0" || raw == "true") out.push_back(1.0f);
      else if (raw == "0" || raw == "0.0" || raw == "false") out.push_back(0.0f);
      else {
        why = fmt::format("label column '{}' holds '{}'; a multi-hot column takes 0 or 1", columns[c], text_excerpt(raw));
        return {};
      }
    } else if (auto v = parse_target(raw, why)) {
      out.push_back(*v);
    } else {
      why = fmt::format("label column '{}': {}", columns[c], why);
      return {};
    }
  }
  return out;
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
  const bool classes = options.problem_type == kSingleLabel;
  if (!is_problem_type(options.problem_type))
    fail("problem type '{}': expected {}, {} or {}", options.problem_type, kSingleLabel, kMultiLabel, kRegression);
  // Single-label: one column (its name may hold a comma); float kinds: "a,b,c" names K columns.
  std::vector<std::string> label_columns;
  if (labelled && classes) label_columns = {options.label_column};
  else if (labelled) label_columns = split_columns(options.label_column);
  // Multi-label from one list column (else from K multi-hot columns).
  const bool label_lists = options.problem_type == kMultiLabel && label_columns.size() == 1;
  selectors.insert(selectors.end(), label_columns.begin(), label_columns.end());
  const bool pairs = options.text_columns.size() == 2;
  const std::size_t first_label = options.text_columns.size();

  RawExamples ex;
  std::vector<std::string> raw_labels;
  Skipper skip{options, ex};
  CountProgress progress(options.progress, "prep: read");
  for (std::size_t f = 0; f < options.files.size(); ++f) {
    const auto& path = options.files[f];
    TableOptions table = options.table;
    table.arrays_from = first_label;
    TableReader reader(path, table, selectors);
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
      if (labelled) {
        std::string why;
        for (std::size_t c = first_label; c < row.values.size() && why.empty(); ++c)
          if (row.values[c].empty()) why = fmt::format("label column '{}' is empty", selectors[c]);
        if (why.empty() && !classes && !label_lists) {
          std::vector<float> t = row_targets(options, label_columns,
                                             std::span<const std::string>(row.values).subspan(first_label), why);
          if (why.empty() && ex.num_targets == 0) ex.num_targets = static_cast<std::int64_t>(t.size());
          if (why.empty() && static_cast<std::int64_t>(t.size()) != ex.num_targets)
            why = fmt::format("{} targets where the rows before have {}", t.size(), ex.num_targets);
          if (why.empty()) ex.values.insert(ex.values.end(), t.begin(), t.end());
        }
        if (!why.empty()) {
          skip.bad(path, row.line, why);
          continue;
        }
      }
      ex.text.push_back(std::move(row.values[0]));
      if (pairs) ex.text_pair.push_back(std::move(row.values[1]));
      if (labelled && (classes || label_lists)) raw_labels.push_back(std::move(row.values.back()));
      ex.where.push_back({static_cast<std::int32_t>(f), row.line});
      progress.update(static_cast<std::int64_t>(ex.text.size()), 0, "rows");
    }
  }
  if (labelled && classes) assign_labels(options, raw_labels, ex);
  if (labelled && label_lists) assign_label_lists(options, raw_labels, ex);
  if (labelled && !classes && !label_lists) {
    // Multi-hot columns name their labels; regression targets are named only when there are several.
    ex.id2label = options.labels.names;
    if (ex.id2label.empty() && (options.problem_type == kMultiLabel || label_columns.size() > 1)) ex.id2label = label_columns;
    if (!ex.id2label.empty() && static_cast<std::int64_t>(ex.id2label.size()) != ex.num_targets)
      fail("--label-names gives {} names for {} targets per row", ex.id2label.size(), ex.num_targets);
  }
  progress.finish(static_cast<std::int64_t>(ex.text.size()), 0, "rows");
  if (ex.skipped_rows > 0) {
    spdlog::warn("prep: skipped {} bad rows{}", ex.skipped_rows,
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
  const auto K = static_cast<std::size_t>(ex.num_targets);
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
  CountProgress progress(options.read.progress, split == "all" ? "prep: tokenized" : "prep: tokenized " + split);
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
          std::span<const float> targets;
          if (labelled && K > 0) targets = std::span<const float>(ex.values).subspan(row * K, K);
          else if (labelled) label = ex.labels[row];
          if (e.type_ids.empty() && !e.ids.empty()) {
            const std::vector<std::int32_t> zeros(e.ids.size(), 0);
            part.add(e.ids, zeros, label, targets);
          } else {
            part.add(e.ids, e.type_ids, label, targets);
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
  m.problem_type = options.read.problem_type;
  m.num_targets = labelled && K > 0 ? ex.num_targets : 1;
  m.id2label = labelled ? ex.id2label : std::vector<std::string>{};
  m.label_counts.assign(m.id2label.size(), 0);
  for (auto l : rows.labels) m.label_counts[static_cast<std::size_t>(l)]++;
  if (m.problem_type == kMultiLabel)  // rows holding each label
    for (std::size_t i = 0; i < rows.values.size(); ++i) m.label_counts[i % K] += rows.values[i] != 0.0f;
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
    if (test_read.labels.map.empty() && !test_read.label_column.empty()) test_read.labels.names = ex.id2label;
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

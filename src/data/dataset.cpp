// Tokenized dataset directory: write, map back with size checks, and packed batches of rows.
// Dimensions: N rows, B rows in a batch, T the padded length a batch stands for.
#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"

namespace tuneserve::data {

namespace fs = std::filesystem;
using json = nlohmann::json;

Padding parse_padding(const std::string& name) {
  if (name == "longest") return Padding::Longest;
  if (name == "max_length") return Padding::MaxLength;
  fail("padding '{}': expected 'longest' or 'max_length'", name);
}

const char* padding_name(Padding padding) {
  return padding == Padding::Longest ? "longest" : "max_length";
}

LengthStats length_stats(std::span<const std::int64_t> lengths, std::int64_t max_length,
                         std::int64_t bin_width) {
  LengthStats s;
  s.bin_width = bin_width;
  if (lengths.empty()) return s;
  std::vector<std::int64_t> sorted(lengths.begin(), lengths.end());
  std::sort(sorted.begin(), sorted.end());
  const std::size_t n = sorted.size();
  s.min = sorted.front();
  s.max = sorted.back();
  // numpy's default (linear) percentile, rounded down: median and p90 are reported as integers.
  auto percentile = [&](double q) {
    const double pos = q * static_cast<double>(n - 1);
    const auto lo = static_cast<std::size_t>(pos);
    const std::size_t hi = std::min(lo + 1, n - 1);
    const double v = static_cast<double>(sorted[lo]) +
                     (pos - static_cast<double>(lo)) * static_cast<double>(sorted[hi] - sorted[lo]);
    return static_cast<std::int64_t>(v);
  };
  s.median = percentile(0.5);
  s.p90 = percentile(0.9);
  double sum = 0;
  for (auto v : sorted) sum += static_cast<double>(v);
  s.mean = sum / static_cast<double>(n);
  s.histogram.assign(static_cast<std::size_t>(s.max / bin_width + 1), 0);
  for (auto v : sorted) {
    s.histogram[static_cast<std::size_t>(v / bin_width)]++;
    if (max_length > 0 && v >= max_length) s.at_max_length++;
  }
  return s;
}

bool is_problem_type(const std::string& name) {
  return name == kSingleLabel || name == kMultiLabel || name == kRegression;
}

json Manifest::to_json() const {
  json j;
  j["format"] = "tuneserve-tokenized-dataset";
  j["version"] = 1;
  j["split"] = split;
  j["rows"] = rows;
  j["tokens"] = tokens;
  j["has_labels"] = has_labels;
  j["problem_type"] = problem_type;
  if (float_targets()) j["num_targets"] = num_targets;
  j["id2label"] = id2label;
  j["label_counts"] = label_counts;
  j["text_columns"] = text_columns;
  j["label_column"] = label_column;
  j["tokenizer"] = {{"path", tokenizer_path},
                    {"file", tokenizer_file},
                    {"hash", tokenizer_hash},
                    {"pad_token_id", pad_token_id},
                    {"pad_token_type_id", pad_token_type_id},
                    {"special_suffix", special_suffix}};
  j["max_length"] = max_length;
  j["padding"] = padding_name(padding);
  j["lengths"] = {{"min", lengths.min},
                  {"max", lengths.max},
                  {"mean", lengths.mean},
                  {"median", lengths.median},
                  {"p90", lengths.p90},
                  {"at_max_length", lengths.at_max_length},
                  {"bin_width", lengths.bin_width},
                  {"histogram", lengths.histogram}};
  json src = json::array();
  for (const auto& s : sources) src.push_back({{"path", s.path}, {"format", s.format}, {"rows", s.rows}});
  j["sources"] = src;
  j["shuffle"] = {{"shuffled", shuffled}, {"seed", seed}, {"select", select}, {"test_size", test_size}};
  json sk = json::array();
  for (const auto& s : skipped) sk.push_back({{"file", s.file}, {"line", s.line}, {"reason", s.reason}});
  j["skipped_rows"] = skipped_rows;
  j["skipped"] = sk;
  return j;
}

Manifest Manifest::from_json(const json& j, const std::string& where) {
  Manifest m;
  try {
    if (j.value("format", "") != "tuneserve-tokenized-dataset")
      fail("{}: not a tuneserve tokenized dataset manifest (field 'format')", where);
    m.split = j.at("split").get<std::string>();
    m.rows = j.at("rows").get<std::int64_t>();
    m.tokens = j.at("tokens").get<std::int64_t>();
    m.has_labels = j.at("has_labels").get<bool>();
    m.problem_type = j.value("problem_type", kSingleLabel);
    m.num_targets = j.value("num_targets", std::int64_t{1});
    m.id2label = j.at("id2label").get<std::vector<std::string>>();
    m.label_counts = j.at("label_counts").get<std::vector<std::int64_t>>();
    m.text_columns = j.at("text_columns").get<std::vector<std::string>>();
    m.label_column = j.at("label_column").get<std::string>();
    const auto& t = j.at("tokenizer");
    m.tokenizer_path = t.at("path").get<std::string>();
    m.tokenizer_file = t.at("file").get<std::string>();
    m.tokenizer_hash = t.at("hash").get<std::string>();
    m.pad_token_id = t.at("pad_token_id").get<std::int32_t>();
    m.pad_token_type_id = t.at("pad_token_type_id").get<std::int32_t>();
    m.special_suffix = t.value("special_suffix", 1);  // datasets written before it: BERT-style [SEP]
    m.max_length = j.at("max_length").get<std::int64_t>();
    m.padding = parse_padding(j.at("padding").get<std::string>());
    const auto& l = j.at("lengths");
    m.lengths.min = l.at("min").get<std::int64_t>();
    m.lengths.max = l.at("max").get<std::int64_t>();
    m.lengths.mean = l.at("mean").get<double>();
    m.lengths.median = l.at("median").get<std::int64_t>();
    m.lengths.p90 = l.at("p90").get<std::int64_t>();
    m.lengths.at_max_length = l.at("at_max_length").get<std::int64_t>();
    m.lengths.bin_width = l.at("bin_width").get<std::int64_t>();
    m.lengths.histogram = l.at("histogram").get<std::vector<std::int64_t>>();
    for (const auto& s : j.at("sources"))
      m.sources.push_back({s.at("path").get<std::string>(), s.at("format").get<std::string>(),
                           s.at("rows").get<std::int64_t>()});
    const auto& sh = j.at("shuffle");
    m.shuffled = sh.at("shuffled").get<bool>();
    m.seed = sh.at("seed").get<std::uint64_t>();
    m.select = sh.at("select").get<std::int64_t>();
    m.test_size = sh.at("test_size").get<double>();
    m.skipped_rows = j.at("skipped_rows").get<std::int64_t>();
    for (const auto& s : j.at("skipped"))
      m.skipped.push_back({s.at("file").get<std::string>(), s.at("line").get<std::int64_t>(),
                           s.at("reason").get<std::string>()});
  } catch (const json::exception& e) {
    fail("{}: {}", where, e.what());
  }
  if (m.rows < 0 || m.tokens < 0) fail("{}: negative row or token count", where);
  if (m.special_suffix < 0 || m.special_suffix > 8) fail("{}: tokenizer.special_suffix {} out of range", where, m.special_suffix);
  if (!is_problem_type(m.problem_type))
    fail("{}: problem_type '{}' is not {}, {} or {}", where, m.problem_type, kSingleLabel, kMultiLabel, kRegression);
  if (m.has_labels && !m.regression() && m.id2label.empty()) fail("{}: has_labels but id2label is empty", where);
  if (m.num_targets < 1 || m.num_targets > 100000) fail("{}: num_targets {} out of range [1, 100000]", where, m.num_targets);
  if (m.multi_label() && static_cast<std::size_t>(m.num_targets) != m.id2label.size())
    fail("{}: num_targets {} but {} label names", where, m.num_targets, m.id2label.size());
  if (!m.label_counts.empty() && m.label_counts.size() != m.id2label.size())
    fail("{}: {} label counts for {} labels", where, m.label_counts.size(), m.id2label.size());
  return m;
}

void TokenizedRows::add(std::span<const std::int32_t> ids, std::span<const std::int32_t> type_ids,
                        std::optional<std::int32_t> label, std::span<const float> targets) {
  if (ids.size() != type_ids.size())
    fail("row {}: {} token ids but {} type ids", size(), ids.size(), type_ids.size());
  input_ids.insert(input_ids.end(), ids.begin(), ids.end());
  token_type_ids.insert(token_type_ids.end(), type_ids.begin(), type_ids.end());
  offsets.push_back(static_cast<std::int64_t>(input_ids.size()));
  if (label) labels.push_back(*label);
  values.insert(values.end(), targets.begin(), targets.end());
}

// Either the four mappings of an opened directory or the vectors of an in-memory dataset.
struct TokenizedDataset::Storage {
  MappedFile ids, types, offsets, labels;
  TokenizedRows owned;
};

namespace {

template <typename T>
std::span<const T> typed(const MappedFile& f) {
  return {reinterpret_cast<const T*>(f.data()), f.size() / sizeof(T)};
}

void check_size(const MappedFile& f, std::size_t count, std::size_t elem, const char* what) {
  if (f.size() != count * elem)
    fail("{}: {} bytes, expected {} ({} {} of {} bytes, from manifest.json)", f.path(), f.size(),
         count * elem, count, what, elem);
}

template <typename T>
void write_array(const fs::path& path, std::span<const T> values) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) fail("{}: cannot create", path.string());
  out.write(reinterpret_cast<const char*>(values.data()),
            static_cast<std::streamsize>(values.size_bytes()));
  if (!out) fail("{}: write failed", path.string());
}

}  // namespace

TokenizedDataset TokenizedDataset::open(const std::string& dir) {
  const fs::path root(dir);
  const std::string manifest_path = (root / "manifest.json").string();
  if (!fs::exists(manifest_path))
    fail("{}: not a tokenized dataset directory (no manifest.json; write one with `tuneserve prep`)", dir);
  const json j = read_json_file(manifest_path, {kJsonLargeFileBytes});
  TokenizedDataset d;
  d.manifest_ = Manifest::from_json(j, manifest_path);
  auto storage = std::make_shared<Storage>();
  const auto n = static_cast<std::size_t>(d.manifest_.rows);
  const auto tokens = static_cast<std::size_t>(d.manifest_.tokens);
  storage->offsets = MappedFile((root / "offsets.bin").string());
  check_size(storage->offsets, n + 1, sizeof(std::int64_t), "row offsets");
  storage->ids = MappedFile((root / "input_ids.bin").string());
  check_size(storage->ids, tokens, sizeof(std::int32_t), "token ids");
  storage->types = MappedFile((root / "token_type_ids.bin").string());
  check_size(storage->types, tokens, sizeof(std::int32_t), "type ids");
  if (d.manifest_.has_labels) {
    storage->labels = MappedFile((root / "labels.bin").string());
    if (d.manifest_.float_targets())
      check_size(storage->labels, n * static_cast<std::size_t>(d.manifest_.num_targets), 4, "float32 targets");
    else
      check_size(storage->labels, n, 4, "int32 labels");
  }
  d.rows_ = n;
  d.offsets_ = typed<std::int64_t>(storage->offsets);
  d.input_ids_ = typed<std::int32_t>(storage->ids);
  d.token_type_ids_ = typed<std::int32_t>(storage->types);
  if (d.manifest_.has_labels && d.manifest_.float_targets()) d.values_ = typed<float>(storage->labels);
  else if (d.manifest_.has_labels) d.labels_ = typed<std::int32_t>(storage->labels);
  // A truncated or corrupted offsets file must not turn into reads past the token arrays.
  if (d.offsets_[0] != 0 || d.offsets_[n] != d.manifest_.tokens)
    fail("{}: offsets must start at 0 and end at {} tokens", storage->offsets.path(), tokens);
  for (std::size_t r = 0; r < n; ++r)
    if (d.offsets_[r + 1] < d.offsets_[r])
      fail("{}: row {} ends before it starts", storage->offsets.path(), r);
  const auto K = static_cast<std::size_t>(d.manifest_.num_targets);
  for (std::size_t i = 0; i < d.values_.size(); ++i) {
    if (!std::isfinite(d.values_[i])) fail("{}: row {} has target {}", storage->labels.path(), i / K, d.values_[i]);
    if (d.manifest_.multi_label() && d.values_[i] != 0.0f && d.values_[i] != 1.0f)
      fail("{}: row {} has multi-hot value {} (expected 0 or 1)", storage->labels.path(), i / K, d.values_[i]);
  }
  const auto num_labels = static_cast<std::int32_t>(d.manifest_.id2label.size());
  for (std::size_t r = 0; r < d.labels_.size(); ++r)
    if (d.labels_[r] < 0 || d.labels_[r] >= num_labels)
      fail("{}: row {} has label {} outside [0, {})", storage->labels.path(), r, d.labels_[r], num_labels);
  d.storage_ = std::move(storage);
  return d;
}

TokenizedDataset TokenizedDataset::from_rows(TokenizedRows rows, Manifest manifest) {
  const std::size_t K = static_cast<std::size_t>(manifest.num_targets);
  const std::size_t have = manifest.float_targets() ? rows.values.size() : rows.labels.size();
  const std::size_t want = manifest.float_targets() ? rows.size() * K : rows.size();
  if (manifest.has_labels && have != want) fail("dataset: {} rows but {} labels ({} expected)", rows.size(), have, want);
  TokenizedDataset d;
  auto storage = std::make_shared<Storage>();
  storage->owned = std::move(rows);
  const auto& o = storage->owned;
  d.rows_ = o.size();
  d.offsets_ = o.offsets;
  d.input_ids_ = o.input_ids;
  d.token_type_ids_ = o.token_type_ids;
  if (manifest.has_labels && manifest.float_targets()) d.values_ = o.values;
  else if (manifest.has_labels) d.labels_ = o.labels;
  manifest.rows = static_cast<std::int64_t>(d.rows_);
  manifest.tokens = static_cast<std::int64_t>(o.input_ids.size());
  d.manifest_ = std::move(manifest);
  d.storage_ = std::move(storage);
  return d;
}

void TokenizedDataset::write(const std::string& dir) const {
  const fs::path root(dir);
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) fail("{}: cannot create directory: {}", dir, ec.message());
  // An old manifest must not vouch for half-rewritten arrays if this write stops midway.
  fs::remove(root / "manifest.json", ec);
  write_array(root / "input_ids.bin", input_ids_);
  write_array(root / "token_type_ids.bin", token_type_ids_);
  write_array(root / "offsets.bin", offsets_);
  if (manifest_.has_labels && manifest_.float_targets()) write_array(root / "labels.bin", values_);
  else if (manifest_.has_labels) write_array(root / "labels.bin", labels_);
  Manifest m = manifest_;
  m.rows = static_cast<std::int64_t>(rows_);
  m.tokens = total_tokens();
  // The manifest goes last so a directory with a manifest is a complete one.
  const fs::path tmp = root / "manifest.json.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) fail("{}: cannot create", tmp.string());
    out << m.to_json().dump(2) << "\n";
    if (!out) fail("{}: write failed", tmp.string());
  }
  fs::rename(tmp, root / "manifest.json", ec);
  if (ec) fail("{}: cannot rename to manifest.json: {}", tmp.string(), ec.message());
}

std::int64_t TokenizedDataset::total_tokens() const { return offsets_.empty() ? 0 : offsets_[rows_]; }

void TokenizedDataset::check_row(std::int64_t row) const {
  if (row < 0 || static_cast<std::size_t>(row) >= rows_)
    fail("dataset row {} out of range [0, {})", row, rows_);
}

std::span<const std::int32_t> TokenizedDataset::input_ids(std::size_t row) const {
  check_row(static_cast<std::int64_t>(row));
  return input_ids_.subspan(static_cast<std::size_t>(offsets_[row]),
                            static_cast<std::size_t>(offsets_[row + 1] - offsets_[row]));
}

std::span<const std::int32_t> TokenizedDataset::token_type_ids(std::size_t row) const {
  check_row(static_cast<std::int64_t>(row));
  return token_type_ids_.subspan(static_cast<std::size_t>(offsets_[row]),
                                 static_cast<std::size_t>(offsets_[row + 1] - offsets_[row]));
}

std::int64_t TokenizedDataset::length(std::size_t row) const {
  check_row(static_cast<std::int64_t>(row));
  return offsets_[row + 1] - offsets_[row];
}

std::int32_t TokenizedDataset::label(std::size_t row) const {
  check_row(static_cast<std::int64_t>(row));
  if (!has_labels()) fail("dataset has no labels (no label column was given)");
  if (manifest_.float_targets()) fail("dataset row {}: a {} dataset has float targets (targets()), not class ids", row, manifest_.problem_type);
  return labels_[row];
}

std::span<const float> TokenizedDataset::targets(std::size_t row) const {
  check_row(static_cast<std::int64_t>(row));
  if (!has_labels() || !manifest_.float_targets()) fail("dataset row {}: a dataset of class ids has no float targets", row);
  const auto K = static_cast<std::size_t>(manifest_.num_targets);
  return values_.subspan(row * K, K);
}

TokenizedDataset TokenizedDataset::truncated(std::int64_t max_length, const std::string& why) const {
  if (max_length <= 0 || manifest_.lengths.max <= max_length) return *this;
  if (manifest_.text_columns.size() > 1)
    fail("{}: rows of text pairs up to {} tokens are longer than {} ({}); prepare the data with "
         "`tuneserve prep --max-length {}`", manifest_.split, manifest_.lengths.max, max_length, why, max_length);
  if (max_length <= manifest_.special_suffix)
    fail("max_length {} leaves no room for text next to {} closing special tokens", max_length, manifest_.special_suffix);
  TokenizedDataset out = *this;
  out.truncate_to_ = max_length;
  out.manifest_.max_length = max_length;
  return out;
}

LabeledBatch TokenizedDataset::batch(std::span<const std::int64_t> rows, std::optional<Padding> padding) const {
  LabeledBatch b;
  std::vector<std::int32_t> cut_ids, cut_types;
  for (auto r : rows) {
    check_row(r);
    const auto row = static_cast<std::size_t>(r);
    if (length(row) == 0) fail("dataset row {}: no tokens (an empty text and a tokenizer without [CLS]?)", r);
    if (truncate_to_ > 0 && length(row) > truncate_to_) {
      // Head up to the limit, then the closing special tokens (see truncated()).
      const auto keep = static_cast<std::size_t>(truncate_to_ - manifest_.special_suffix);
      const auto tail = static_cast<std::size_t>(manifest_.special_suffix);
      for (auto* part : {&cut_ids, &cut_types}) part->clear();
      const auto ids = input_ids(row), types = token_type_ids(row);
      cut_ids.insert(cut_ids.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
      cut_ids.insert(cut_ids.end(), ids.end() - static_cast<std::ptrdiff_t>(tail), ids.end());
      cut_types.insert(cut_types.end(), types.begin(), types.begin() + static_cast<std::ptrdiff_t>(keep));
      cut_types.insert(cut_types.end(), types.end() - static_cast<std::ptrdiff_t>(tail), types.end());
      b.tokens.append(cut_ids, cut_types);
    } else {
      b.tokens.append(input_ids(row), token_type_ids(row));
    }
    b.rows.push_back(r);
    if (!labels_.empty()) b.labels.push_back(labels_[row]);
    if (!values_.empty()) {
      const auto t = targets(row);
      b.values.insert(b.values.end(), t.begin(), t.end());
    }
  }
  if (padding.value_or(manifest_.padding) == Padding::MaxLength && manifest_.max_length > 0)
    b.tokens.padded_length = std::max(b.tokens.padded_length, static_cast<int>(manifest_.max_length));
  return b;
}

}  // namespace tuneserve::data

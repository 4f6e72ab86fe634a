// Tokenized datasets: the on-disk layout `tuneserve prep` writes, the memory-mapped reader the
// trainer opens, and the batching that turns a list of row indices into a PackedBatch with targets.
//
// Dimensions: N rows, B rows in a batch, T the padded length a batch stands for.
//
// On-disk layout of one dataset directory (all little-endian, no headers, memory-mappable):
//   input_ids.bin       int32 [total tokens]   every row's token ids, rows back to back, unpadded
//   token_type_ids.bin  int32 [total tokens]   segment ids, same layout as input_ids.bin
//   offsets.bin         int64 [N + 1]          row r is [offsets[r], offsets[r+1]); offsets[0] = 0
//   labels.bin          int32 [N]              class id per row (absent when the data has no labels),
//                       or float32 [N, K] targets when the manifest's problem_type is "regression"
//                       (K values per row) or "multi_label_classification" (K 0/1 per row: multi-hot)
//   manifest.json       row/token counts, label names and counts, tokenizer identity, max_length,
//                       padding policy, length statistics, source files, skipped rows (Manifest)
// Rows are stored unpadded and batches stay unpadded (core/packed_batch.h); the padding policy sets
// the padded length a batch stands for (its PackedBatch::padded_length, which keys the dropout
// masks): the batch's longest row (`longest`, the default) or max_length (`max_length`, the
// reference workflow's shape).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/packed_batch.h"

namespace tuneserve::data {

// transformers' config.problem_type names: what the labels are and which loss trains them.
inline constexpr const char* kSingleLabel = "single_label_classification";  // class ids; cross-entropy
inline constexpr const char* kMultiLabel = "multi_label_classification";    // multi-hot; BCE-with-logits
inline constexpr const char* kRegression = "regression";                    // float targets; MSE
bool is_problem_type(const std::string& name);

enum class Padding { Longest, MaxLength };
Padding parse_padding(const std::string& name);  // "longest" | "max_length"; Error otherwise
const char* padding_name(Padding padding);

struct SourceFile {
  std::string path;
  std::string format;  // csv | tsv | jsonl
  std::int64_t rows = 0;  // rows read from this file (before skipping, selection, split)
};

struct SkippedRow {
  std::string file;
  std::int64_t line = 0;
  std::string reason;
};

struct LengthStats {
  std::int64_t min = 0, max = 0, median = 0, p90 = 0;
  double mean = 0.0;
  std::int64_t bin_width = 32;         // histogram[i] counts lengths in [i*w, (i+1)*w)
  std::vector<std::int64_t> histogram;
  std::int64_t at_max_length = 0;      // rows that reached max_length (cut, or exactly that long)
};

struct Manifest {
  std::int64_t rows = 0;
  std::int64_t tokens = 0;
  std::string split;                       // "train", "test" or "all"
  // Index = label id; empty when unlabelled. Regression: the K target columns' names when K > 1,
  // else empty.
  std::vector<std::string> id2label;
  std::vector<std::int64_t> label_counts;  // per id, rows of this split (multi-label: rows holding it)
  bool has_labels = true;
  std::string problem_type = kSingleLabel; // kSingleLabel | kMultiLabel | kRegression
  std::int64_t num_targets = 1;            // K float targets per row (regression, multi-label)
  bool regression() const { return problem_type == kRegression; }
  bool multi_label() const { return problem_type == kMultiLabel; }
  bool float_targets() const { return regression() || multi_label(); }
  // The model's num_labels for this data: K for float targets, else the number of classes.
  std::size_t num_labels() const {
    return float_targets() ? static_cast<std::size_t>(num_targets) : id2label.size();
  }
  std::vector<std::string> text_columns;   // one, or two for pairs
  std::string label_column;
  // Tokenizer identity: where it was and a hash of the vocabulary file, so a trainer can refuse
  // a dataset tokenized with another vocabulary.
  std::string tokenizer_path;
  std::string tokenizer_file;              // tokenizer_file()'s name: tokenizer.json, vocab.txt ... (hashed)
  std::string tokenizer_hash;              // "fnv1a64:<16 hex digits>" of that file's bytes
  std::int32_t pad_token_id = 0;
  std::int32_t pad_token_type_id = 0;
  // Special tokens the template puts after a single text ([SEP]: 1), so that a row can be cut
  // shorter later exactly as the tokenizer would have cut it (TokenizedDataset::truncated).
  std::int32_t special_suffix = 1;
  std::int64_t max_length = 0;             // truncation length (0 = none)
  Padding padding = Padding::Longest;
  LengthStats lengths;
  std::vector<SourceFile> sources;
  bool shuffled = false;
  std::uint64_t seed = 0;
  std::int64_t select = -1;                // rows kept by --select (-1 = all)
  double test_size = 0.0;
  std::int64_t skipped_rows = 0;           // bad rows skipped with --skip-bad-rows (whole input)
  std::vector<SkippedRow> skipped;         // the first ones, with file:line and reason

  nlohmann::json to_json() const;
  static Manifest from_json(const nlohmann::json& j, const std::string& where);  // Error names `where`
};

// Lengths -> LengthStats (histogram bins of `bin_width`; max_length 0 = no truncation).
LengthStats length_stats(std::span<const std::int64_t> lengths, std::int64_t max_length,
                         std::int64_t bin_width = 32);

// Owned token storage, built in memory by prep (or by a test) before it is written or used.
struct TokenizedRows {
  std::vector<std::int32_t> input_ids;       // [total tokens]
  std::vector<std::int32_t> token_type_ids;  // [total tokens]
  std::vector<std::int64_t> offsets{0};      // [N + 1]
  std::vector<std::int32_t> labels;          // [N] class ids (empty when unlabelled or float targets)
  std::vector<float> values;                 // [N, K] float targets (empty otherwise)
  void add(std::span<const std::int32_t> ids, std::span<const std::int32_t> type_ids,
           std::optional<std::int32_t> label, std::span<const float> targets = {});
  std::size_t size() const { return offsets.size() - 1; }
};

// A batch of dataset rows: their tokens packed, and their targets.
struct LabeledBatch {
  PackedBatch tokens;                // B sequences, padded_length from the padding policy
  std::vector<std::int32_t> labels;  // (B) class ids; empty when unlabelled or float targets
  std::vector<float> values;         // (B, K) float targets (regression, multi-hot); empty otherwise
  std::vector<std::int64_t> rows;    // (B) dataset row of each sequence
  std::int64_t size() const { return static_cast<std::int64_t>(rows.size()); }
};

class TokenizedDataset {
 public:
  // Maps a directory written by write() / `tuneserve prep`; checks every file's size against the
  // manifest and the offsets for monotonicity, naming the file on any mismatch.
  static TokenizedDataset open(const std::string& dir);
  // The in-memory path: prep straight from raw files without writing anything.
  static TokenizedDataset from_rows(TokenizedRows rows, Manifest manifest);

  // Writes the directory layout above (creates `dir`); the manifest's counts are refreshed.
  void write(const std::string& dir) const;

  std::size_t size() const { return rows_; }
  std::int64_t total_tokens() const;
  std::span<const std::int32_t> input_ids(std::size_t row) const;       // (length)
  std::span<const std::int32_t> token_type_ids(std::size_t row) const;  // (length)
  std::int64_t length(std::size_t row) const;
  bool has_labels() const { return manifest_.has_labels; }
  std::int32_t label(std::size_t row) const;
  std::span<const std::int32_t> labels() const { return labels_; }  // empty for float targets
  bool regression() const { return manifest_.regression(); }
  std::span<const float> targets(std::size_t row) const;           // (K) float targets of a row
  std::span<const float> values() const { return values_; }         // (N, K)
  std::size_t num_labels() const { return manifest_.num_labels(); }
  const Manifest& manifest() const { return manifest_; }

  // The given rows, in that order. The padded length follows the manifest (longest in the batch,
  // or max_length) unless `padding` overrides it. Error on an out-of-range row.
  LabeledBatch batch(std::span<const std::int64_t> rows, std::optional<Padding> padding = {}) const;

  // The same rows as the tokenizer would have made them with truncation at `max_length` (a
  // prepared dataset is tokens, not a promise of length: data prepared at 512 trains a 256-position
  // model). A single text keeps its first max_length - special_suffix tokens and its closing
  // special tokens, which is what longest_first truncation gives; text pairs cannot be re-cut
  // without their texts, so rows of pairs longer than `max_length` are an Error that says which
  // `prep --max-length` fixes it. Batches of the result are cut; input_ids(row) stays the stored row.
  TokenizedDataset truncated(std::int64_t max_length, const std::string& why) const;

 private:
  struct Storage;
  std::shared_ptr<const Storage> storage_;  // keeps the mappings or the owned vectors alive
  Manifest manifest_;
  std::size_t rows_ = 0;
  std::span<const std::int32_t> input_ids_, token_type_ids_, labels_;
  std::span<const float> values_;
  std::span<const std::int64_t> offsets_;
  std::int64_t truncate_to_ = 0;  // 0: rows as stored
  void check_row(std::int64_t row) const;
};

}  // namespace tuneserve::data

// Data preparation: raw files -> examples (text, optional pair, label id) -> shuffle / select /
// split like Hugging Face `datasets` -> tokenized datasets, in memory or written to disk.
//
// Dimensions: N rows.
//
// The same code serves `tuneserve prep` (writes directories) and `tuneserve train` on raw files
// (keeps the TokenizedDataset in memory). Bad rows stop with file:line and the reason, or, with
// skip_bad_rows, are counted, listed in the manifest and reported on stderr.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/reader.h"
#include "tokenizer/encoding.h"

namespace tuneserve {
class Tokenizer;
}

namespace tuneserve::data {

struct LabelOptions {
  // --label-map 1:0,2:1: raw value -> id. Values outside the map are bad rows.
  std::vector<std::pair<std::string, std::int32_t>> map;
  // --label-names neg,pos: id2label. For string labels it is also the mapping (name -> index);
  // for integer labels it only names them. A trainer reading a test file passes the training
  // set's id2label here so both files number their labels alike.
  std::vector<std::string> names;
};
// "1:0,2:1" -> {{"1",0},{"2",1}}; Error naming the bad entry.
std::vector<std::pair<std::string, std::int32_t>> parse_label_map(const std::string& spec);

struct ReadOptions {
  std::vector<std::string> files;         // read in order, as one table
  TableOptions table;
  std::vector<std::string> text_columns;  // one column, or two for a text pair
  // Empty: unlabelled data. Single-label: one column. Regression: one column per target (or one
  // holding a JSON array of numbers). Multi-label: one column of label lists ("3,27", ["joy"]) or
  // one 0/1 column per label (multi-hot; the columns name the labels).
  std::string label_column;               // a column, or "a,b,c"
  LabelOptions labels;
  std::string problem_type = kSingleLabel;  // kSingleLabel | kMultiLabel | kRegression
  bool skip_bad_rows = false;
  bool progress = false;                  // progress lines on stderr
};

// Examples in file order, after bad rows were skipped.
struct RawExamples {
  std::vector<std::string> text;
  std::vector<std::string> text_pair;     // empty unless two text columns
  std::vector<std::int32_t> labels;       // ids (single-label); empty otherwise
  std::vector<float> values;              // (N, num_targets): regression targets or multi-hot labels
  std::int64_t num_targets = 0;           // K float targets per row (0: class ids or unlabelled)
  std::vector<std::string> id2label;
  struct Where {
    std::int32_t file;
    std::int64_t line;
  };
  std::vector<Where> where;               // source of each row, for error messages
  std::vector<SourceFile> sources;
  std::int64_t skipped_rows = 0;
  std::vector<SkippedRow> skipped;        // the first kMaxListedSkips
  std::size_t size() const { return text.size(); }
};
inline constexpr std::size_t kMaxListedSkips = 100;

RawExamples read_examples(const ReadOptions& options);

// How rows become tokens. The tokenizer module provides one (tokenizer_encoder); tests may
// plug in their own. `encode` must be safe to call from several threads at once, and truncate
// to max_length itself when max_length > 0.
struct Encoder {
  std::function<Encoding(std::string_view text, std::optional<std::string_view> pair)> encode;
  std::string path;        // tokenizer directory
  std::string file;        // the file whose bytes identify the vocabulary
  std::string hash;        // "fnv1a64:..." of that file
  std::int32_t pad_token_id = 0;
  std::int32_t pad_token_type_id = 0;
  std::int32_t special_suffix = 1;  // special tokens after a single text (Manifest::special_suffix)
};

// Which file identifies a tokenizer directory's vocabulary and that file's hash: what a dataset's
// manifest records, so a trainer can refuse a dataset tokenized by another tokenizer.
struct TokenizerIdentity {
  std::string file;  // tokenizer.json, else vocab.txt
  std::string hash;  // file_hash of it
};
TokenizerIdentity tokenizer_identity(const std::string& dir);

// "fnv1a64:<16 hex digits>" of a file's bytes (Error naming the path when unreadable).
std::string file_hash(const std::string& path);

// An Encoder over a loaded tokenizer: special tokens added, truncation longest_first to
// max_length (0 = none), no padding (batches pad), identity from `dir`'s tokenizer_file().
Encoder tokenizer_encoder(const Tokenizer& tokenizer, const std::string& dir, std::int64_t max_length);

struct PrepOptions {
  ReadOptions read;
  bool shuffle = false;
  std::uint64_t seed = 42;
  std::int64_t select = -1;       // keep the first N rows (of the shuffled order); -1 = all
  double test_size = 0.0;         // 0: no split; (0,1): fraction; >= 1: test rows
  // A separate test set (e.g. test.jsonl), read with the same columns, its labels numbered like
  // the training rows', shuffled like them when `shuffle` (the same seed: datasets'
  // test.shuffle(seed)) and cut to test_select rows (-1 = all). Not combined with test_size.
  std::vector<std::string> test_files;
  std::int64_t test_select = -1;
  std::int64_t max_length = 512;  // truncation; 0 = none
  Padding padding = Padding::Longest;
  int threads = 2;                // tokenization threads; output order does not depend on it
};

struct Prepared {
  TokenizedDataset train;                // the whole selection when there is no split
  std::optional<TokenizedDataset> test;  // with test_size or test_files
};

// Tokenizes rows `order` of `examples` (parallel, deterministic order) into a dataset.
TokenizedDataset tokenize_rows(const RawExamples& examples, std::span<const std::int64_t> order,
                               const Encoder& encoder, const PrepOptions& options, const std::string& split);

// read_examples + shuffle/select + split (or test_files) + tokenize_rows.
Prepared prepare(const PrepOptions& options, const Encoder& encoder);

}  // namespace tuneserve::data

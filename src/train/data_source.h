// Where training and evaluation rows come from: raw files (csv/tsv/jsonl, .gz) prepared in memory
// with the tokenizer (the same code as `tuneserve prep`), or directories `tuneserve prep` wrote.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "data/dataset.h"

namespace tuneserve::train {

struct DataSpec {
  std::string text = "text";   // column, or "a,b" for pairs
  std::string label = "label";
  std::string label_map;       // "1:0,2:1"
  std::string columns;         // "class,title,content" for a header-less CSV/TSV
  std::string label_names;     // "negative,positive": id2label (raw files)
  std::string problem_type;    // raw files: data::kSingleLabel (when empty), kMultiLabel, kRegression;
                               // prepared directories must match it when it is set
  std::string tokenizer;       // directory (raw files only)
  long max_length = 512;       // truncation (raw files only)
  int threads = 2;             // tokenization threads
  bool progress = false;       // reader progress lines on stderr
  bool skip_bad_rows = false;  // count and skip malformed rows (raw files)
};

struct TrainingData {
  data::TokenizedDataset train;
  std::optional<data::TokenizedDataset> test;
};

// `train` and `test` (optional, may be "") are files or prepared directories; a raw test file gets
// its labels numbered like the training data's. Errors name the path.
TrainingData load_training_data(const std::string& train, const std::string& test, const DataSpec& spec);

// One labelled dataset (for `tuneserve eval`): labels numbered by `label_names` when given (the
// model's id2label), so "positive" in the file means the model's "positive".
data::TokenizedDataset load_labelled_data(const std::string& path, const DataSpec& spec,
                                          const std::vector<std::string>& label_names = {});

// The tokenizer the trained model ships with, checked against the data: a prepared dataset
// records its tokenizer's identity (data::tokenizer_identity), and a model that tokenizes otherwise
// than its training data would serve wrong answers. `tokenizer` is the run's tokenizer directory
// (the model's own when none was given): used when it holds tokenizer files and matches every
// prepared set (Error naming both otherwise); without tokenizer files, the dataset's own
// tokenizer directory is used (Error when it is gone).
std::string training_tokenizer(const TrainingData& data, const std::string& tokenizer);

// The model's label names for a dataset: its id2label, else LABEL_i for each of its K outputs
// (one regression target has no name).
std::vector<std::string> model_label_names(const data::Manifest& manifest);

// The longest sequence `config` accepts (RoBERTa's position table holds padding_idx + 1 extra rows).
long model_max_tokens(const ModelConfig& config);

}  // namespace tuneserve::train

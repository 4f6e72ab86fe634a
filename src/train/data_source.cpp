// Training/evaluation data: raw files go through data::prepare in memory, prepared directories
// are memory-mapped. Label numbering is shared between a training set and its test set.
#include "train/data_source.h"

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "data/prep.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve::train {

namespace fs = std::filesystem;

namespace {

bool is_prepared(const std::string& path) { return fs::is_directory(path) && fs::exists(fs::path(path) / "manifest.json"); }

std::vector<std::string> split_list(const std::string& what, const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    if (part.empty()) fail("--{} '{}': empty column name", what, text);
    out.push_back(part);
  }
  return out;
}

data::PrepOptions prep_options(const std::string& file, const DataSpec& spec) {
  if (!fs::exists(file)) fail("data file {} does not exist", file);
  data::PrepOptions o;
  o.read.files = {file};
  o.read.text_columns = split_list("text", spec.text);
  if (o.read.text_columns.empty() || o.read.text_columns.size() > 2)
    fail("--text '{}': give one column, or two for text pairs", spec.text);
  if (!spec.columns.empty()) o.read.table.columns = split_list("columns", spec.columns);
  if (!spec.label_names.empty()) o.read.labels.names = split_list("label-names", spec.label_names);
  o.read.label_column = spec.label;
  if (!spec.problem_type.empty()) o.read.problem_type = spec.problem_type;
  if (!spec.label_map.empty()) o.read.labels.map = data::parse_label_map(spec.label_map);
  o.read.progress = spec.progress;
  o.read.skip_bad_rows = spec.skip_bad_rows;
  o.max_length = spec.max_length;
  o.threads = spec.threads;
  return o;
}

data::Encoder make_encoder(const DataSpec& spec, std::optional<Tokenizer>& holder) {
  if (spec.tokenizer.empty()) fail("raw data files need a tokenizer (--tokenizer DIR)");
  holder.emplace(Tokenizer::from_dir(spec.tokenizer));
  return data::tokenizer_encoder(*holder, spec.tokenizer, spec.max_length);
}

void require_labels(const data::TokenizedDataset& d, const std::string& path, const DataSpec& spec) {
  if (!d.has_labels()) fail("{}: the data has no labels (--label names the label column)", path);
  if (!spec.problem_type.empty() && spec.problem_type != d.manifest().problem_type)
    fail("{}: the data was prepared for {}, not {} (--problem-type)", path, d.manifest().problem_type, spec.problem_type);
}

}  // namespace

std::string training_tokenizer(const TrainingData& data, const std::string& tokenizer) {
  const data::Manifest& train = data.train.manifest();
  const bool has_files = tokenizer_file(tokenizer).has_value();
  // Rows written without a tokenizer (token ids made elsewhere) and a model without one: there is
  // nothing to check or to ship with the model.
  if (!has_files && train.tokenizer_path.empty() && train.tokenizer_hash.empty()) return "";
  const std::string chosen = has_files ? tokenizer : train.tokenizer_path;
  if (!has_files && !fs::is_directory(chosen))
    fail("{} has no tokenizer files and the training data's tokenizer ({}) is gone; pass --tokenizer DIR "
         "(the tokenizer the data was prepared with)", tokenizer, train.tokenizer_path);
  const data::TokenizerIdentity id = data::tokenizer_identity(chosen);
  auto check = [&](const data::Manifest& m) {
    if (m.tokenizer_hash.empty() || (m.tokenizer_file == id.file && m.tokenizer_hash == id.hash)) return;
    fail("the prepared '{}' rows were tokenized with {} ({} {}), but the tokenizer here, {}, has {} {}: the "
         "model would see other tokens than the data's; pass --tokenizer {} or prepare the data with this tokenizer",
         m.split, m.tokenizer_path, m.tokenizer_file, m.tokenizer_hash, chosen, id.file, id.hash, m.tokenizer_path);
  };
  check(train);
  if (data.test) check(data.test->manifest());
  return chosen;
}

std::vector<std::string> model_label_names(const data::Manifest& manifest) {
  if (!manifest.id2label.empty()) return manifest.id2label;
  std::vector<std::string> names;
  for (std::size_t i = 0; i < manifest.num_labels(); i++) names.push_back(default_label_name(i));
  return names;
}

long model_max_tokens(const ModelConfig& config) {
  const long positions = config.max_position_embeddings;
  return config.arch == Arch::Roberta ? positions - config.pad_token_id - 1 : positions;
}

TrainingData load_training_data(const std::string& train, const std::string& test, const DataSpec& spec) {
  std::optional<Tokenizer> tokenizer;
  if (is_prepared(train)) {
    TrainingData out{data::TokenizedDataset::open(train), std::nullopt};
    require_labels(out.train, train, spec);
    DataSpec as_train = spec;  // a raw test file holds what the prepared training rows hold
    as_train.problem_type = out.train.manifest().problem_type;
    if (!test.empty()) out.test = load_labelled_data(test, as_train, out.train.manifest().id2label);
    return out;
  }
  data::PrepOptions o = prep_options(train, spec);
  const bool raw_test = !test.empty() && !is_prepared(test);
  if (raw_test) {
    if (!fs::exists(test)) fail("data file {} does not exist", test);
    o.test_files = {test};
  }
  data::Prepared p = data::prepare(o, make_encoder(spec, tokenizer));
  TrainingData out{std::move(p.train), std::move(p.test)};
  require_labels(out.train, train, spec);
  DataSpec as_train = spec;
  as_train.problem_type = out.train.manifest().problem_type;
  if (!test.empty() && !raw_test) out.test = load_labelled_data(test, as_train, out.train.manifest().id2label);
  return out;
}

data::TokenizedDataset load_labelled_data(const std::string& path, const DataSpec& spec,
                                          const std::vector<std::string>& label_names) {
  if (is_prepared(path)) {
    data::TokenizedDataset d = data::TokenizedDataset::open(path);
    require_labels(d, path, spec);
    // Labels are compared by id; only two real names for one id disagree (LABEL_i names nothing).
    const auto& names = d.manifest().id2label;
    for (std::size_t i = 0; i < names.size() && i < label_names.size(); i++) {
      if (names[i] != label_names[i] && names[i] != default_label_name(i) && label_names[i] != default_label_name(i))
        fail("{}: label {} is '{}' here but '{}' in the training data/model; prepare both with the same labels",
             path, i, names[i], label_names[i]);
    }
    return d;
  }
  std::optional<Tokenizer> tokenizer;
  data::PrepOptions o = prep_options(path, spec);
  o.read.labels.names = label_names;
  data::Prepared p = data::prepare(o, make_encoder(spec, tokenizer));
  require_labels(p.train, path, spec);
  return std::move(p.train);
}

}  // namespace tuneserve::train

// `tuneserve prep`: raw CSV/TSV/JSONL(.gz) -> tokenized dataset directory (or train/ and test/).
// Prints a summary; bad rows stop with file:line unless --skip-bad-rows counts them.
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "data/prep.h"
#include "storage/resolve.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve::cli {
namespace {

struct PrepArgs {
  std::vector<std::string> inputs, test_inputs, text, columns;
  std::string format = "auto", problem_type = data::kSingleLabel, label, label_map, tokenizer, revision = "main", output,
      padding = "longest";
  std::vector<std::string> label_names;
  std::int64_t max_length = 0, select = -1, test_select = -1;
  std::uint64_t seed = 42;
  double test_size = 0.0;
  bool shuffle = false, skip_bad_rows = false, quiet = false;
  std::string quoting;
  int threads = 2;
  bool header = false, no_header = false;
};

void print_summary(const data::TokenizedDataset& d, const std::string& dir) {
  const auto& m = d.manifest();
  std::printf("%s: %lld rows, %lld tokens -> %s\n", m.split.c_str(), static_cast<long long>(m.rows),
              static_cast<long long>(m.tokens), dir.c_str());
  if (m.has_labels && m.regression()) {
    std::printf("  labels: %lld float regression target(s) per row\n", static_cast<long long>(m.num_targets));
  } else if (m.has_labels) {
    std::string labels;
    for (std::size_t i = 0; i < m.id2label.size(); ++i)
      labels += fmt::format("{}{}={} ({})", i ? ", " : "", i, m.id2label[i], m.label_counts[i]);
    std::printf("  labels: %s\n", labels.c_str());
  }
  std::printf("  lengths: min %lld, mean %.1f, median %lld, p90 %lld, max %lld; %lld rows at max_length %lld\n",
              static_cast<long long>(m.lengths.min), m.lengths.mean, static_cast<long long>(m.lengths.median),
              static_cast<long long>(m.lengths.p90), static_cast<long long>(m.lengths.max),
              static_cast<long long>(m.lengths.at_max_length), static_cast<long long>(m.max_length));
}

int run(PrepArgs& a) {
  for (auto* files : {&a.inputs, &a.test_inputs})
    for (std::string& f : *files) f = storage::resolve_data(f);
  data::PrepOptions o;
  o.read.files = a.inputs;
  o.read.table.format = data::parse_format(a.format);
  o.read.table.columns = a.columns;
  if (a.header && a.no_header) fail("--header and --no-header contradict each other");
  if (a.header) o.read.table.header = data::HeaderMode::Yes;
  if (a.no_header) o.read.table.header = data::HeaderMode::No;
  if (a.quoting == "yes") o.read.table.quoting = true;
  else if (a.quoting == "no") o.read.table.quoting = false;
  else if (!a.quoting.empty()) fail("--quoting {}: expected yes or no", a.quoting);
  o.read.text_columns = a.text;
  o.read.label_column = a.label;
  if (!a.label_map.empty()) o.read.labels.map = data::parse_label_map(a.label_map);
  o.read.labels.names = a.label_names;
  o.read.problem_type = a.problem_type;
  o.read.skip_bad_rows = a.skip_bad_rows;
  o.read.progress = !a.quiet;
  o.shuffle = a.shuffle;
  o.seed = a.seed;
  o.select = a.select;
  o.test_size = a.test_size;
  o.test_files = a.test_inputs;
  o.test_select = a.test_select;
  o.padding = data::parse_padding(a.padding);
  o.threads = a.threads;

  a.tokenizer = storage::resolve_tokenizer(a.tokenizer, {a.revision});
  const Tokenizer tokenizer = Tokenizer::from_dir(a.tokenizer);
  // As transformers' truncation=True: the model's limit unless told otherwise.
  o.max_length = a.max_length > 0 ? a.max_length : static_cast<std::int64_t>(tokenizer.model_max_length().value_or(512));
  const data::Encoder encoder = data::tokenizer_encoder(tokenizer, a.tokenizer, o.max_length);

  const data::Prepared p = data::prepare(o, encoder);
  const std::filesystem::path out(a.output);
  if (p.test) {
    p.train.write((out / "train").string());
    p.test->write((out / "test").string());
    print_summary(p.train, (out / "train").string());
    print_summary(*p.test, (out / "test").string());
  } else {
    p.train.write(out.string());
    print_summary(p.train, out.string());
  }
  const auto skipped = p.train.manifest().skipped_rows;
  if (skipped > 0) std::printf("  skipped %lld bad rows (listed in manifest.json)\n", static_cast<long long>(skipped));
  return 0;
}

const Registration registration{Command{
    "prep", "Prepare a dataset: read CSV/TSV/JSONL(.gz), tokenize, write a memory-mappable dataset directory",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<PrepArgs>();
      app.add_option("--input", a->inputs, "Data file(s): .csv, .tsv, .jsonl, optionally .gz")->required();
      app.add_option("--format", a->format, "auto (from the extension), csv, tsv or jsonl")->capture_default_str();
      app.add_option("--text", a->text, "Text column, or two for a text pair (title,content): names or 0-based indices")
          ->required()
          ->delimiter(',');
      app.add_option("--label", a->label, "Label column (omit for unlabelled data); a,b,c: one column per target "
                     "(regression) or per label (multi-label, 0/1)");
      app.add_option("--columns", a->columns, "Column names of a header-less CSV/TSV, e.g. class,title,content")
          ->delimiter(',');
      app.add_flag("--header", a->header, "The first line is a header (default when columns are chosen by name)");
      app.add_flag("--no-header", a->no_header, "The file has no header line");
      app.add_option("--quoting", a->quoting, "yes|no: honour \"quotes\" (default: yes for CSV, no for TSV)");
      app.add_option("--problem-type,--problem_type", a->problem_type,
                     "single_label_classification (a class per row), multi_label_classification (a list of labels, "
                     "or one 0/1 column per label) or regression (float targets: one column each)")
          ->capture_default_str();
      app.add_option("--label-map", a->label_map, "Raw label value to id, e.g. 1:0,2:1");
      app.add_option("--label-names", a->label_names, "id2label names in id order, e.g. negative,positive")
          ->delimiter(',');
      app.add_option("--tokenizer", a->tokenizer,
                     "Tokenizer directory (tokenizer.json, vocab.json + merges.txt, a SentencePiece .model or vocab.txt) "
                     "or Hub id")
          ->required();
      app.add_option("--revision", a->revision, "Hub branch, tag or commit of --tokenizer")->capture_default_str();
      app.add_option("--max-length", a->max_length, "Truncate to this many tokens (default: the tokenizer's model_max_length, else 512)");
      app.add_option("--padding", a->padding, "Batch padding policy recorded for training: longest or max_length")
          ->capture_default_str();
      app.add_option("--output", a->output, "Output directory (with a split: OUTPUT/train and OUTPUT/test)")->required();
      app.add_flag("--shuffle", a->shuffle, "Shuffle like datasets' shuffle(seed) (--test-input too)");
      app.add_option("--seed", a->seed, "Seed for --shuffle and --test-size")->capture_default_str();
      app.add_option("--select", a->select, "Keep the first N rows (after --shuffle), like select(range(N))");
      app.add_option("--test-size", a->test_size, "Split off a test set like train_test_split: a fraction or a row count");
      app.add_option("--test-input", a->test_inputs,
                     "A separate test file, labelled like the input (and shuffled like it with --shuffle)");
      app.add_option("--test-select", a->test_select, "Keep the first N rows of --test-input (after --shuffle)");
      app.add_flag("--skip-bad-rows", a->skip_bad_rows, "Skip malformed rows (counted, listed in the manifest) instead of stopping");
      app.add_option("--threads", a->threads, "Tokenization threads")->capture_default_str();
      app.add_flag("--quiet", a->quiet, "No progress lines");
      return [a] { return run(*a); };
    }}};

}  // namespace
}  // namespace tuneserve::cli

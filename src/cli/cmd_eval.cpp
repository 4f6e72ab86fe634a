// `tuneserve eval`: the metrics of a model's problem type on a labelled file or prepared dataset
// (classification: accuracy, precision, recall, F1, confusion matrix; multi-label: micro/macro F1,
// subset accuracy; regression: MSE, MAE, Pearson, Spearman), as a table or one JSON object.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/command.h"
#include "kernels/device_select.h"
#include "kernels/ops.h"
#include "core/error.h"
#include "model/model.h"
#include "storage/resolve.h"
#include "train/data_source.h"
#include "train/eval_metrics.h"
#include "train/trainer.h"

namespace tuneserve::cli {
namespace {

struct EvalArgs {
  std::string model, tokenizer, revision = "main", data, text = "text", label = "label", label_map, columns, device;
  std::string dtype = "fp32";
  long max_length = 0, batch_size = 32;
  int threads = 0;
  bool json = false, skip_bad_rows = false, no_weight_check = false;
};

int run(EvalArgs a) {
  if (a.batch_size < 1) fail("--batch-size must be >= 1, got {}", a.batch_size);
  // The device and dtype first: a bad value or a CPU-only build fails before any download or read.
  LoadOptions load_options;
  load_options.device = select_device({.value = a.device}).device;
  load_options.dtype = parse_compute_dtype(a.dtype);
  ops::require(backend_for(load_options.device), load_options.dtype, fmt::format("--dtype {}", a.dtype));
  load_options.check_finite = !a.no_weight_check;
  const storage::ModelPaths paths = storage::resolve_model(a.model, a.tokenizer, {a.revision});
  a.model = paths.model;
  a.tokenizer = paths.tokenizer;
  a.data = storage::resolve_data(a.data);
  if (a.threads > 0) Model::set_num_threads(a.threads);
  const Model model = Model::load(a.model, nullptr, load_options);
  train::DataSpec spec;
  spec.text = a.text;
  spec.label = a.label;
  spec.label_map = a.label_map;
  spec.columns = a.columns;
  // Raw files hold what the model learnt (transformers: one output without a problem_type is regression).
  spec.problem_type = model.config().problem_type;
  if (spec.problem_type.empty() && model.config().num_labels == 1) spec.problem_type = data::kRegression;
  spec.tokenizer = a.tokenizer.empty() ? a.model : a.tokenizer;
  const long model_limit = train::model_max_tokens(model.config());
  spec.max_length = a.max_length > 0 ? std::min(a.max_length, model_limit) : model_limit;
  spec.threads = a.threads > 0 ? a.threads : 2;
  spec.skip_bad_rows = a.skip_bad_rows;
  const auto& names = model.config().id2label;
  const data::TokenizedDataset dataset =
      train::load_labelled_data(a.data, spec, names).truncated(spec.max_length, fmt::format("max_length {}", spec.max_length));
  train::training_tokenizer({dataset, std::nullopt}, spec.tokenizer);  // prepared rows: the same tokenizer
  if (dataset.num_labels() > names.size())
    fail("{}: the data has {} labels but the model {} has {}", a.data, dataset.num_labels(), a.model, names.size());
  const auto start = std::chrono::steady_clock::now();
  const train::EvalMetrics m = train::evaluate(model, dataset, a.batch_size);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (a.json) {
    nlohmann::json out = train::metrics_to_json(m, "eval_", names);  // eval_results.json's keys
    train::add_eval_speed(out, m, a.batch_size, seconds);
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s on %s\n\n%s", a.model.c_str(), a.data.c_str(), train::metrics_table(m, names).c_str());
  }
  return 0;
}

const Registration registration{Command{
    "eval", "Evaluate a model on labelled data: accuracy/F1 (classes), micro/macro F1 (multi-label), Pearson/Spearman/MSE (regression)",
    [](CLI::App& app) -> std::function<int()> {
      auto a = std::make_shared<EvalArgs>();
      app.add_option("--model", a->model, "Model directory, Hub id, s3:// URI or model.tar.gz")->required();
      app.add_option("--data", a->data, "Labelled data: csv/tsv/jsonl(.gz) file or a `tuneserve prep` directory")->required();
      app.add_option("--tokenizer", a->tokenizer, "Tokenizer directory or Hub id (default: the model's)");
      app.add_option("--revision", a->revision, "Hub branch, tag or commit of --model/--tokenizer")->capture_default_str();
      app.add_option("--text", a->text, "Text column, or two comma-separated for pairs")->capture_default_str();
      app.add_option("--label", a->label, "Label column; a,b,c: one per regression target or multi-hot label")->capture_default_str();
      app.add_option("--label-map,--label_map", a->label_map, "Raw label to id, e.g. 1:0,2:1");
      app.add_option("--columns", a->columns, "Column names of a header-less CSV/TSV, e.g. class,title,content");
      app.add_option("--max-length,--max_length", a->max_length, "Truncate to this many tokens (default and at most: the model's positions)")
          ->capture_default_str();
      app.add_option("--batch-size,--batch_size,--eval-batch-size,--eval_batch_size", a->batch_size, "Rows per batch")
          ->capture_default_str();
      app.add_option("--threads", a->threads, "CPU threads (0 = all cores)");
      app.add_option("--device", a->device, "cpu | cuda | cuda:N (default: cpu)");
      app.add_option("--dtype", a->dtype, "fp32 | bf16: what the matrix products compute in")->capture_default_str();
      app.add_flag("--skip-bad-rows,--skip_bad_rows", a->skip_bad_rows, "Skip malformed rows (counted) instead of stopping");
      app.add_flag("--json", a->json, "Print one JSON object instead of a table");
      app.add_flag("--no-weight-check", a->no_weight_check, "Load weights holding NaN or Inf instead of refusing them");
      return [a] { return run(*a); };
    }}};

}  // namespace
}  // namespace tuneserve::cli

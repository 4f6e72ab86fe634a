// Data and model of a training run (see run_inputs.h).
#include "train/run_inputs.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "checkpoint/config.h"
#include "train/job_env.h"

namespace tuneserve::train {

RunInputs load_run_inputs(const TrainArgs& args, const Device& device,
                          const std::function<void(const std::string&)>& note) {
  if (args.threads > 0) Model::set_num_threads(static_cast<int>(args.threads));
  const ModelConfig config = load_config(args.model);
  DataSpec spec;
  spec.text = args.text;
  spec.label = args.label;
  spec.label_map = args.label_map;
  spec.columns = args.columns;
  spec.label_names = args.label_names;
  spec.problem_type = args.problem_type;
  spec.tokenizer = args.tokenizer;
  spec.skip_bad_rows = args.skip_bad_rows;
  const long model_limit = model_max_tokens(config);
  spec.max_length = args.max_length > 0 ? std::min(args.max_length, model_limit) : model_limit;
  if (spec.max_length < args.max_length)
    note(fmt::format("max_length {} is more than {} accepts; truncating at {}", args.max_length, args.model,
                     spec.max_length));
  spec.threads = args.threads > 0 ? static_cast<int>(args.threads) : 2;
  const std::string train_path = resolve_data_path(args.train, "train");
  const std::string test_path = args.test.empty() ? "" : resolve_data_path(args.test, "test");
  TrainingData data = load_training_data(train_path, test_path, spec);
  // Prepared directories may hold longer rows than this run takes: cut at batch time.
  const std::string why = args.max_length > 0 && args.max_length <= model_limit
                              ? fmt::format("max_length {}", spec.max_length)
                              : fmt::format("the {} positions of {}", spec.max_length, args.model);
  data.train = data.train.truncated(spec.max_length, why);
  if (data.test) data.test = data.test->truncated(spec.max_length, why);
  std::string tokenizer_dir = training_tokenizer(data, args.tokenizer);
  note(fmt::format("data: {} training rows{}", data.train.size(),
                   data.test ? fmt::format(", {} test rows", data.test->size()) : ""));

  // A head with another number of outputs than the data's labels (or targets) is created anew (as
  // transformers does with num_labels); otherwise the checkpoint's head is kept. The data decides
  // the problem type (its loss and metrics).
  LoadOptions load_options;
  load_options.init_seed = static_cast<std::uint64_t>(args.seed);
  load_options.device = device;
  load_options.dtype = args.bf16 ? DType::BF16 : DType::F32;  // mixed precision: fp32 master weights
  if (static_cast<int>(data.train.num_labels()) != config.num_labels) {
    load_options.labels = model_label_names(data.train.manifest());
    load_options.new_head_on_mismatch = true;
  }
  load_options.problem_type = data.train.manifest().problem_type;
  LoadReport report;
  Model model = Model::load(args.model, &report, load_options);
  if (!report.initialized.empty())
    note(fmt::format("newly initialised (not in the checkpoint): {}", fmt::join(report.initialized, ", ")));
  if (!report.ignored.empty())
    note(fmt::format("not used from the checkpoint: {} tensors ({}, ...)", report.ignored.size(), report.ignored[0]));
  return RunInputs{std::move(data), std::move(model), std::move(tokenizer_dir)};
}

}  // namespace tuneserve::train

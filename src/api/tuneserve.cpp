// The public API (include/tuneserve/tuneserve.h) over pipeline/pipeline (classification) and
// train/ (fine-tuning), the same code `tuneserve predict` and `tuneserve train` run. Built into the
// shared library libtuneserve.so, which exports only what that header declares.
#include <tuneserve/tuneserve.h>

#include <fmt/format.h>

#include <optional>
#include <span>

#include "core/build_info.h"
#include "kernels/device_select.h"
#include "kernels/cpu/isa.h"
#include "pipeline/pipeline.h"
#include "train/args.h"
#include "train/run_inputs.h"
#include "train/trainer.h"

namespace tuneserve {

namespace {

std::vector<ScoredLabel> scored(const std::vector<LabelScore>& result) {
  std::vector<ScoredLabel> out;
  out.reserve(result.size());
  for (const LabelScore& s : result) out.push_back(ScoredLabel{s.label, s.score});
  return out;
}

}  // namespace

std::string version() {
  const BuildInfo& info = build_info();
  return fmt::format("{} (commit {}, {}, kernels {})", info.version, info.commit, info.build_type,
                     cpu_isa_name(kernel_isa()));
}

struct Classifier::Impl {
  std::unique_ptr<Pipeline> pipeline;
  TokenizeOptions tokenize;

  std::vector<std::vector<ScoredLabel>> run(std::span<const TextInput> inputs, const TopK& top_k) const {
    CallOptions options;
    options.tokenize = tokenize;
    options.postprocess.top_k = top_k;
    std::vector<std::vector<ScoredLabel>> out;
    out.reserve(inputs.size());
    for (const auto& result : pipeline->predict(inputs, options)) out.push_back(scored(result));
    return out;
  }
};

Classifier::Classifier(const std::string& model_dir, const ClassifierOptions& options) : impl_(std::make_unique<Impl>()) {
  Pipeline::Options pipeline_options;
  pipeline_options.device = select_device({.value = options.device, .source = "ClassifierOptions::device"}).device;
  pipeline_options.threads = options.threads;
  pipeline_options.max_batch_size = options.max_batch_size;
  impl_->pipeline = Pipeline::load(model_dir, options.tokenizer_dir, pipeline_options);
  if (options.max_length > 0) impl_->tokenize.max_length = options.max_length;
}

Classifier::~Classifier() = default;
Classifier::Classifier(Classifier&&) noexcept = default;
Classifier& Classifier::operator=(Classifier&&) noexcept = default;

ScoredLabel Classifier::classify(const std::string& text) const {
  const TextInput input{text, std::nullopt};
  return impl_->run(std::span(&input, 1), TopK::best(1)).at(0).at(0);
}

std::vector<std::vector<ScoredLabel>> Classifier::classify(const std::vector<std::string>& texts) const {
  std::vector<TextInput> inputs;
  inputs.reserve(texts.size());
  for (const std::string& text : texts) inputs.push_back(TextInput{text, std::nullopt});
  return impl_->run(inputs, TopK::all());
}

std::vector<std::vector<ScoredLabel>> Classifier::classify_pairs(
    const std::vector<std::pair<std::string, std::string>>& pairs) const {
  std::vector<TextInput> inputs;
  inputs.reserve(pairs.size());
  for (const auto& [text, pair] : pairs) inputs.push_back(TextInput{text, pair});
  return impl_->run(inputs, TopK::all());
}

std::vector<std::string> Classifier::labels() const { return impl_->pipeline->labels().id2label; }

FineTuneResult fine_tune(const std::vector<std::pair<std::string, std::string>>& hyperparameters,
                         const FineTuneProgress& progress) {
  train::TrainArgs args;
  args.progress = false;  // no terminal bar from a library; `progress` is the caller's
  for (const auto& [key, value] : hyperparameters) train::set_hyperparameter(args, key, value);
  train::finalize_args(args);
  const Device device = select_device({.value = args.device, .source = "hyperparameter device"}).device;
  FineTuneResult result;
  train::RunInputs in =
      train::load_run_inputs(args, device, [&](const std::string& note) { result.notes.push_back(note); });
  train::TrainHooks hooks;
  hooks.on_step = progress;
  const train::TrainOutcome outcome = train::train_model(in.model, args, in.data.train,
                                                         in.data.test ? &*in.data.test : nullptr,
                                                         {train::final_model_dir(args), args.output_dir, in.tokenizer_dir}, hooks);
  result.steps = outcome.global_step;
  result.epochs = outcome.epoch;
  result.train_loss = outcome.train_results.at("train_loss").get<double>();
  if (outcome.eval_results)
    for (const auto& [key, value] : outcome.eval_results->items())
      if (value.is_number()) result.eval[key] = value.get<double>();
  result.output_dir = train::final_model_dir(args);
  return result;
}

}  // namespace tuneserve

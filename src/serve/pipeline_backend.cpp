// The server's backend over model/pipeline.h (see pipeline_backend.h).
//   B inputs in a batch, K labels
#include "serve/pipeline_backend.h"

#include <fstream>

#include <nlohmann/json.hpp>


namespace tuneserve::serve {

PipelineBackend::PipelineBackend(std::string model_dir, std::string tokenizer_dir,
                                 Pipeline::Options options)
    : model_dir_(std::move(model_dir)), tokenizer_dir_(std::move(tokenizer_dir)),
      options_(options) {
  first_ = Pipeline::load(model_dir_, tokenizer_dir_, options_);
  info_.id = model_dir_;
  info_.labels = first_->labels();
  info_.max_input_length = first_->max_length();
  // The pipeline has read config.json already; model_type is only for /info.
  std::ifstream config(model_dir_ + "/config.json");
  const auto json = nlohmann::json::parse(config, nullptr, false);
  if (!json.is_discarded() && json.contains("model_type") && json["model_type"].is_string())
    info_.model_type = json["model_type"].get<std::string>();
}

Encoding PipelineBackend::tokenize(const TextInput& input, const TokenizeOptions& options) const {
  return first_->tokenize(input, options);
}

std::unique_ptr<Pipeline> PipelineBackend::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      auto p = std::move(idle_.back());
      idle_.pop_back();
      return p;
    }
  }
  return Pipeline::load(model_dir_, tokenizer_dir_, options_);
}

void PipelineBackend::give_back(std::unique_ptr<Pipeline> pipeline) {
  std::lock_guard lock(mutex_);
  idle_.push_back(std::move(pipeline));
}

std::vector<float> PipelineBackend::forward(std::span<const Encoding* const> batch) {
  bool use_first = false;
  {
    std::lock_guard lock(mutex_);
    if (!first_in_use_) first_in_use_ = use_first = true;
  }
  if (use_first) {
    struct Release {
      PipelineBackend* self;
      ~Release() {
        std::lock_guard lock(self->mutex_);
        self->first_in_use_ = false;
      }
    } release{this};
    return first_->forward(batch);
  }
  auto pipeline = acquire();
  try {
    auto logits = pipeline->forward(batch);
    give_back(std::move(pipeline));
    return logits;
  } catch (...) {
    give_back(std::move(pipeline));
    throw;
  }
}

}  // namespace tuneserve::serve

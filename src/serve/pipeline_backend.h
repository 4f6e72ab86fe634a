// The real model behind the server: pipeline/pipeline.h (tokenizer + BERT-family classifier).
// Pipeline::tokenize and Pipeline::forward are thread-safe, so every worker shares one loaded
// pipeline (one copy of the weights, whatever --workers is).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pipeline/pipeline.h"
#include "serve/backend.h"

namespace tuneserve::serve {

class PipelineBackend : public Backend {
 public:
  // Loads model_dir (config.json + model.safetensors) and the tokenizer (tokenizer_dir, or
  // model_dir when empty). `options.threads` is the OpenMP threads of one forward pass; with
  // `share_cpus`, only until set_concurrency(n), which gives each pass the available CPUs / n (at
  // least one), so scaling the workers never runs more threads than CPUs.
  PipelineBackend(const std::string& model_dir, const std::string& tokenizer_dir,
                  const Pipeline::Options& options, bool share_cpus = false);
  const ModelInfo& info() const override { return info_; }
  Encoding tokenize(const TextInput& input, const TokenizeOptions& options) const override {
    return pipeline_->tokenize(input, options);
  }
  std::vector<float> forward(const PackedBatch& batch, const std::function<bool()>& stop) override {
    return pipeline_->forward(batch, stop);
  }
  std::size_t forward_bytes(std::size_t tokens) const override { return pipeline_->forward_bytes(tokens); }
  void set_concurrency(int n) override;
  void release_threads() override;
  const std::vector<std::string>& load_notes() const { return pipeline_->load_notes(); }
  int threads() const override { return pipeline_->threads(); }

 private:
  std::unique_ptr<Pipeline> pipeline_;
  ModelInfo info_;
  bool share_cpus_ = false;
};

}  // namespace tuneserve::serve

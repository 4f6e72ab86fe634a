// The real model behind the server: model/pipeline.h (tokenizer + BERT-family classifier).
// Pipeline::forward takes one caller at a time, so each concurrent worker gets its own Pipeline,
// loaded the first time that many forward passes run at once.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/pipeline.h"
#include "serve/backend.h"

namespace tuneserve::serve {

class PipelineBackend : public Backend {
 public:
  // Loads model_dir (config.json + model.safetensors) and the tokenizer (tokenizer_dir, or
  // model_dir when empty). `options.threads` is the OpenMP threads of one forward pass.
  PipelineBackend(std::string model_dir, std::string tokenizer_dir, Pipeline::Options options);
  const ModelInfo& info() const override { return info_; }
  Encoding tokenize(const TextInput& input, const TokenizeOptions& options) const override;
  std::vector<float> forward(std::span<const Encoding* const> batch) override;
  const std::vector<std::string>& load_notes() const { return first_->load_notes(); }

 private:
  std::unique_ptr<Pipeline> acquire();
  void give_back(std::unique_ptr<Pipeline> pipeline);

  std::string model_dir_, tokenizer_dir_;
  Pipeline::Options options_;
  ModelInfo info_;
  std::unique_ptr<Pipeline> first_;  // tokenizes (thread-safe) and serves the first worker
  std::mutex mutex_;
  std::vector<std::unique_ptr<Pipeline>> idle_;  // pipelines no forward pass is using
  bool first_in_use_ = false;
};

}  // namespace tuneserve::serve

// What the server needs from a model: tokenize one input, run the forward pass on a batch of
// tokenized inputs, and describe itself. The real backend adapts pipeline/pipeline.h
// (pipeline_backend.h); tests use fakes.
//   B inputs in a batch, T tokens of one input, K labels (num_labels)
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/packed_batch.h"
#include "pipeline/pipeline.h"
#include "tokenizer/encoding.h"

namespace tuneserve::serve {

struct ModelInfo {
  std::string id;          // the directory it was loaded from
  std::string model_type;  // config.json model_type: distilbert, bert, roberta, ...
  LabelInfo labels;        // id2label (K) and problem_type, for postprocessing
  int max_input_length = 512;  // default truncation length (Pipeline::max_length())
  std::string device = "cpu";  // where the forward runs: "cpu" or "cuda:N" (Device::str())
  std::string dtype = "fp32";  // what its products compute in: "fp32" or "bf16"
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const ModelInfo& info() const = 0;
  // Thread-safe; called from the server's request threads. Throws tuneserve::Error on bad input,
  // InputTooLongError (pipeline.h) when truncation is off and the input is over max_length.
  virtual Encoding tokenize(const TextInput& input, const TokenizeOptions& options) const = 0;
  // Returns logits (B, K), row-major, for the B sequences of `batch`. Each row depends only on its
  // own input (a batched result equals the single-input result). Thread-safe: every worker calls it
  // concurrently. `stop` may be polled during the pass: when it returns true (every request of the
  // batch has timed out or left) the pass may end early by throwing ForwardStopped (model/model.h).
  virtual std::vector<float> forward(const PackedBatch& batch, const std::function<bool()>& stop) = 0;
  // Memory one forward pass of up to `tokens` tokens holds while it runs (0: unknown), to bound
  // how many workers a model gets.
  virtual std::size_t forward_bytes(std::size_t tokens) const { return 0; }
  // At most `n` forward passes run at once from now: memory kept for more may be released.
  virtual void set_concurrency(int n) {}
  // The calling worker's pass is over and it will answer its batch and wait for clients: threads
  // its passes started and that would keep spinning for their next one may be ended (its next pass
  // starts them again).
  virtual void release_threads() {}
  // OpenMP threads one forward pass uses now (0: not known); /models reports it.
  virtual int threads() const { return 0; }
};

}  // namespace tuneserve::serve

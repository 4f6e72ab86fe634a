// What the server needs from a model: tokenize one input, run the forward pass on a batch of
// tokenized inputs, and describe itself. The real backend adapts model/pipeline.h; tests use fakes.
//   B inputs in a batch, T tokens of one input, K labels (num_labels)
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/encoding.h"

namespace tuneserve::serve {

struct ModelInfo {
  std::string id;                   // model directory (or hub-style id) it was loaded from
  std::string model_type;           // config.json model_type: distilbert, bert, roberta, ...
  std::vector<std::string> labels;  // id2label in label-id order (K entries)
  // multi_label_classification / single_label_classification / "" as config.json says; picks
  // the pipeline's default function_to_apply.
  std::string problem_type;
  int max_input_length = 512;  // max_position_embeddings (minus the model's offset, e.g. RoBERTa's 2)
};

struct TokenizeOptions {
  bool truncation = true;              // cut to max_length; off: the full encoding is returned
  std::optional<int> max_length;       // default: ModelInfo::max_input_length
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const ModelInfo& info() const = 0;
  // Thread-safe; called from the server's request threads. Throws tuneserve::Error on bad input.
  virtual Encoding tokenize(std::string_view text, std::optional<std::string_view> text_pair,
                            const TokenizeOptions& options) const = 0;
  // Returns logits (B, K), row-major. Each row depends only on its own input (a batched result
  // equals the single-input result). Thread-safe: every worker calls it concurrently.
  virtual std::vector<float> forward(std::span<const Encoding* const> batch) = 0;
};

}  // namespace tuneserve::serve

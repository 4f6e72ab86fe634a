// The text-classification pipeline: text -> tokens -> packed batches -> model -> label scores,
// with the semantics of transformers' TextClassificationPipeline (function_to_apply, top_k, output shape).
//
// Dimension legend: B batch (inputs in one forward), NL num_labels.
//
// Three layers, usable separately (the server runs them on different threads):
//   1. tokenize(input, options)       const, thread-safe: truncation on by default to max_length().
//   2. forward(packed batch)          thread-safe: returns logits (B, NL).
//   3. postprocess(logits row, opts)  pure: function_to_apply + top_k + id2label, per request.
// predict() chains them for many inputs, sorted by length into batches, results in input order.
// call_json()/python_json() give exactly what `pipeline("text-classification")(inputs, ...)` returns
// and what Python's json.dumps prints for it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "checkpoint/config.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/packed_batch.h"
#include "tokenizer/encoding.h"

namespace tuneserve {

// Thrown by Pipeline::tokenize when truncation is off and the input is longer than max_length, so
// a server can answer 422 for it and 400 for other bad input.
class InputTooLongError : public Error {
 public:
  using Error::Error;
};

// ---- parameters -----------------------------------------------------------------------------

// transformers' ClassificationFunction plus "default" (= not given: chosen from the config).
enum class ScoreFunction { Default, Sigmoid, Softmax, None };

// "default" | "sigmoid" | "softmax" | "none", case-insensitive as transformers upper-cases it.
ScoreFunction parse_score_function(std::string_view name);
std::string_view score_function_name(ScoreFunction function);

// top_k as the pipeline takes it. Unset (the argument not passed) keeps the pipeline's legacy shape:
// the best label only, as a bare {"label","score"} per input. All (`top_k=None`) and K return a list
// per input sorted by score, descending (ties keep label order, Python's sort is stable).
struct TopK {
  enum class Kind { Unset, All, K };
  Kind kind = Kind::Unset;
  int k = 1;  // only for Kind::K; 0 gives an empty list like Python's scores[:0]
  static TopK unset() { return {}; }
  static TopK all() { return {Kind::All, 0}; }
  static TopK best(int k) { return {Kind::K, k}; }
};

// "all" | "none" | "null" -> All; a non-negative integer -> K. Anything else is an error.
TopK parse_top_k(std::string_view text);

struct PostprocessOptions {
  ScoreFunction function = ScoreFunction::Default;
  TopK top_k;
};

struct TokenizeOptions {
  bool truncation = true;          // off: an input longer than max_length is an error, not cut
  std::optional<int> max_length;   // default: Pipeline::max_length()
};

// Per-call parameters as the Hugging Face inference API sends them:
// {"top_k": int|null|"all", "function_to_apply": str, "truncation": bool, "max_length": int}.
// An unknown key or a wrong type is an error naming the key.
struct CallOptions {
  TokenizeOptions tokenize;
  PostprocessOptions postprocess;
};
CallOptions parse_parameters(const nlohmann::json& parameters);

// ---- inputs ---------------------------------------------------------------------------------

struct TextInput {
  std::string text;
  std::optional<std::string> text_pair;
};

// What the caller passed, which decides the output's shape (see call_json).
enum class CallShape {
  Text,  // classifier("text")
  Dict,  // classifier({"text": ..., "text_pair": ...}) (text_pair optional)
  List,  // classifier(["a", {"text": ..., "text_pair": ...}, ...])
};

struct ParsedInputs {
  std::vector<TextInput> inputs;
  CallShape shape = CallShape::Text;
};

// Parses a pipeline `inputs` value: a string, {"text", "text_pair"?}, or a list of those.
// Errors name the offending element ("inputs[3]: expected a string or {\"text\", \"text_pair\"}").
ParsedInputs parse_inputs(const nlohmann::json& inputs);

// ---- postprocessing -------------------------------------------------------------------------

struct LabelScore {
  std::string label;
  float score = 0;
};

// What postprocessing needs from the model's config.json.
struct LabelInfo {
  std::vector<std::string> id2label;  // size NL; "LABEL_i" where config.json has none
  std::string problem_type;           // "", "regression", "single_label_classification", "multi_label_classification"
  int num_labels() const { return static_cast<int>(id2label.size()); }
};

// The function the pipeline applies when none is requested: none for regression; sigmoid for
// multi-label or a single output; softmax for single-label or several outputs.
ScoreFunction resolve_score_function(ScoreFunction requested, const LabelInfo& labels);

// scores = f(logits) in fp32, computed as transformers' numpy code does (softmax shifted by the max).
std::vector<float> apply_score_function(ScoreFunction function, std::span<const float> logits);

// One input's result: Unset -> the best label (first of equal maxima); All/K -> sorted, cut to k.
std::vector<LabelScore> postprocess(std::span<const float> logits, const LabelInfo& labels,
                                    const PostprocessOptions& options);

// One input's result as the pipeline returns it: a bare {"label","score"} object for TopK::Unset,
// else a list of them.
nlohmann::json result_json(const std::vector<LabelScore>& result, const TopK& top_k);

// A whole call's return value: a Text call with Unset top_k is wrapped in a list
// ([{"label","score"}]); a Dict call is not; a List call is one result_json per input.
nlohmann::json call_json(std::span<const std::vector<LabelScore>> results, CallShape shape, const TopK& top_k);

// Serializes like Python's json.dumps (", " and ": " separators, ensure_ascii, floats as repr()): a
// float32 score prints exactly as Python prints that value, [{"label": "LABEL_1", "score": 0.99}].
// (The values themselves agree with PyTorch's to fp32 rounding, not bit for bit: the logits come
// from other GEMM orderings, and numpy's float32 exp differs from libm's in the last place.)
std::string python_json(const nlohmann::json& value);

// repr() of a Python float: shortest round-trip digits, ".0" on integral values, e+XX exponents.
std::string python_float_repr(double value);

// ---- the pipeline ---------------------------------------------------------------------------

class Pipeline {
 public:
  struct Options {
    int threads = 0;                // OpenMP threads for the forward; 0 keeps the runtime default
    int max_batch_size = 32;        // inputs per forward in predict()
    int max_batch_tokens = 16384;   // real tokens per forward in predict()
    Device device;                  // where the model runs (LoadOptions::device)
    DType dtype = DType::F32;       // what its products compute in (LoadOptions::dtype)
    bool check_weights = true;      // refuse NaN/Inf weights at load (LoadOptions::check_finite)
  };

  // Loads config.json + model.safetensors from model_dir and the tokenizer from tokenizer_dir
  // (model_dir when empty). A missing tokenizer or model file is an error naming the directory.
  static std::unique_ptr<Pipeline> load(const std::string& model_dir, const std::string& tokenizer_dir,
                                        const Options& options);
  static std::unique_ptr<Pipeline> load(const std::string& model_dir, const std::string& tokenizer_dir = "") {
    return load(model_dir, tokenizer_dir, Options{});
  }
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Thread-safe. Truncates to options.max_length (default max_length()); with truncation off an
  // input longer than that throws InputTooLongError giving both lengths. Checks every id against
  // the model's vocabulary (an error names the position and id), so one bad input never reaches a
  // batch it shares with others.
  Encoding tokenize(const TextInput& input, const TokenizeOptions& options = {}) const;

  // Thread-safe (activations are per call; each call uses the OpenMP threads it is given): logits
  // (B, NL) row-major in the batch's order. `stop`: see ForwardOptions::stop (model.h).
  std::vector<float> forward(const PackedBatch& batch, const std::function<bool()>& stop = {}) const;

  // Activation memory one forward() of up to `tokens` tokens takes (Model::inference_bytes), and
  // how many forward() calls run at once from now (Model::set_concurrent_forwards).
  std::size_t forward_bytes(std::size_t tokens) const;
  void set_concurrent_forwards(std::size_t n) const;
  // The weights are packed for inference (load() does it, so the first request does not).
  bool inference_prepared() const;
  // OpenMP threads each forward() uses from now on, whichever thread calls it (0: the runtime
  // default); starts as Options::threads.
  void set_threads(int n);
  int threads() const;

  // Thread-safe and pure: one input's logits row (NL) -> its result.
  std::vector<LabelScore> postprocess(std::span<const float> logits, const PostprocessOptions& options) const;

  // All three steps for many inputs: tokenized, sorted by length into batches of at most
  // max_batch_size inputs and max_batch_tokens real tokens, results returned in input order.
  std::vector<std::vector<LabelScore>> predict(std::span<const TextInput> inputs, const CallOptions& options) const;

  const LabelInfo& labels() const;
  const ModelConfig& config() const;  // the model's config.json (model_type: arch_name(config().arch))
  int num_labels() const { return labels().num_labels(); }
  // Default truncation length: min(tokenizer model_max_length, positions the model can embed).
  int max_length() const;
  // Notes from loading (tensors ignored or newly initialised), for the CLI to print as warnings.
  const std::vector<std::string>& load_notes() const;

 private:
  struct Impl;
  explicit Pipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tuneserve

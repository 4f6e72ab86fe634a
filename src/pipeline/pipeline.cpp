// The text-classification pipeline: parameters, input parsing, postprocessing and JSON output with
// transformers' TextClassificationPipeline semantics, plus the batched tokenize -> forward driver.
//
// Dimension legend: B batch, T tokens (padded length), NL num_labels.
#include "pipeline/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <cmath>
#include <exception>
#include <filesystem>
#include <numeric>

#include "checkpoint/config.h"
#include "core/error.h"
#include "core/json.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace tuneserve {

namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string json_type_name(const nlohmann::json& value) { return value.type_name(); }

}  // namespace

// ---- parameters -----------------------------------------------------------------------------

ScoreFunction parse_score_function(std::string_view name) {
  const std::string key = lower(name);
  if (key == "default") return ScoreFunction::Default;
  if (key == "sigmoid") return ScoreFunction::Sigmoid;
  if (key == "softmax") return ScoreFunction::Softmax;
  if (key == "none") return ScoreFunction::None;
  fail("function_to_apply: unknown value '{}' (expected default, sigmoid, softmax or none)", text_excerpt(name));
}

std::string_view score_function_name(ScoreFunction function) {
  switch (function) {
    case ScoreFunction::Default: return "default";
    case ScoreFunction::Sigmoid: return "sigmoid";
    case ScoreFunction::Softmax: return "softmax";
    case ScoreFunction::None: return "none";
  }
  return "default";
}

TopK parse_top_k(std::string_view text) {
  const std::string key = lower(text);
  if (key == "all" || key == "none" || key == "null") return TopK::all();
  int k = -1;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), k);
  if (error != std::errc() || end != text.data() + text.size() || k < 0)
    fail("top_k: '{}' is not a non-negative integer or 'all'", text_excerpt(text));
  return TopK::best(k);
}

CallOptions parse_parameters(const nlohmann::json& parameters) {
  CallOptions options;
  if (parameters.is_null()) return options;
  if (!parameters.is_object()) fail("parameters: expected an object, got {}", json_type_name(parameters));
  for (const auto& [key, value] : parameters.items()) {
    if (key == "top_k") {
      if (value.is_null()) {
        options.postprocess.top_k = TopK::all();
      } else if (value.is_number_integer()) {
        if (value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > 1'000'000)
          fail("parameters.top_k: {} is out of range (expected >= 0, or null for all labels)", json_excerpt(value));
        options.postprocess.top_k = TopK::best(value.get<int>());
      } else if (value.is_string()) {
        options.postprocess.top_k = parse_top_k(value.get<std::string>());
      } else {
        fail("parameters.top_k: expected an integer or null, got {}", json_type_name(value));
      }
    } else if (key == "function_to_apply") {
      if (!value.is_string()) fail("parameters.function_to_apply: expected a string, got {}", json_type_name(value));
      options.postprocess.function = parse_score_function(value.get<std::string>());
    } else if (key == "truncation") {
      // The tokenizer's spellings: a bool, or a strategy name; strategies other than these two
      // would change which side of a pair is cut, which the pipeline does not expose.
      if (value.is_boolean()) {
        options.tokenize.truncation = value.get<bool>();
      } else if (value.is_string() && (value == "longest_first" || value == "do_not_truncate")) {
        options.tokenize.truncation = value == "longest_first";
      } else {
        fail("parameters.truncation: expected true, false, \"longest_first\" or \"do_not_truncate\", got {}",
             json_excerpt(value));
      }
    } else if (key == "max_length") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1 || value.get<std::int64_t>() > 1'000'000)
        fail("parameters.max_length: expected a positive integer, got {}", json_excerpt(value));
      options.tokenize.max_length = value.get<int>();
    } else {
      fail("parameters: unknown parameter '{}' (expected top_k, function_to_apply, truncation, max_length)",
           text_excerpt(key));
    }
  }
  return options;
}

// ---- inputs ---------------------------------------------------------------------------------

namespace {

TextInput parse_one_input(const nlohmann::json& value, const std::string& where) {
  if (value.is_string()) return TextInput{value.get<std::string>(), std::nullopt};
  if (value.is_object()) {
    TextInput input;
    bool has_text = false;
    for (const auto& [key, field] : value.items()) {
      if (key == "text") {
        if (!field.is_string()) fail("{}.text: expected a string, got {}", where, json_type_name(field));
        input.text = field.get<std::string>();
        has_text = true;
      } else if (key == "text_pair") {
        if (field.is_null()) continue;
        if (!field.is_string()) fail("{}.text_pair: expected a string, got {}", where, json_type_name(field));
        input.text_pair = field.get<std::string>();
      } else {
        fail("{}: unknown key '{}' (expected \"text\" and optionally \"text_pair\")", where, text_excerpt(key));
      }
    }
    if (!has_text) fail("{}: missing \"text\"", where);
    return input;
  }
  if (value.is_array())
    fail("{}: a list is not a text; to classify a text pair send {{\"text\": ..., \"text_pair\": ...}}", where);
  fail("{}: expected a string or {{\"text\", \"text_pair\"}}, got {}", where, json_type_name(value));
}

}  // namespace

ParsedInputs parse_inputs(const nlohmann::json& inputs) {
  ParsedInputs parsed;
  if (inputs.is_array()) {
    parsed.shape = CallShape::List;
    parsed.inputs.reserve(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i)
      parsed.inputs.push_back(parse_one_input(inputs[i], fmt::format("inputs[{}]", i)));
    return parsed;
  }
  parsed.shape = inputs.is_object() ? CallShape::Dict : CallShape::Text;
  parsed.inputs.push_back(parse_one_input(inputs, "inputs"));
  return parsed;
}

// ---- postprocessing -------------------------------------------------------------------------

ScoreFunction resolve_score_function(ScoreFunction requested, const LabelInfo& labels) {
  if (requested != ScoreFunction::Default) return requested;
  // The order of transformers' checks: an explicit problem_type wins over the label count.
  if (labels.problem_type == "regression") return ScoreFunction::None;
  if (labels.problem_type == "multi_label_classification" || labels.num_labels() == 1) return ScoreFunction::Sigmoid;
  if (labels.problem_type == "single_label_classification" || labels.num_labels() > 1) return ScoreFunction::Softmax;
  return ScoreFunction::None;
}

std::vector<float> apply_score_function(ScoreFunction function, std::span<const float> logits) {
  std::vector<float> scores(logits.begin(), logits.end());
  switch (function) {
    case ScoreFunction::Sigmoid:
      for (float& s : scores) s = 1.0f / (1.0f + std::exp(-s));
      break;
    case ScoreFunction::Softmax: {
      if (scores.empty()) break;
      const float max = *std::max_element(scores.begin(), scores.end());
      float sum = 0.0f;
      for (float& s : scores) {
        s = std::exp(s - max);
        sum += s;
      }
      for (float& s : scores) s /= sum;
      break;
    }
    case ScoreFunction::None:
      break;
    case ScoreFunction::Default:
      fail("apply_score_function: resolve 'default' against the model config first");
  }
  return scores;
}

std::vector<LabelScore> postprocess(std::span<const float> logits, const LabelInfo& labels,
                                    const PostprocessOptions& options) {
  if (static_cast<int>(logits.size()) != labels.num_labels())
    fail("postprocess: {} logits for a model with {} labels", logits.size(), labels.num_labels());
  const std::vector<float> scores =
      apply_score_function(resolve_score_function(options.function, labels), logits);
  if (scores.empty()) return {};

  if (options.top_k.kind == TopK::Kind::Unset) {
    // numpy argmax: the first of equal maxima (NaN, if present, wins as in numpy).
    std::size_t best = 0;
    for (std::size_t i = 1; i < scores.size(); ++i) {
      if (std::isnan(scores[best])) break;
      if (std::isnan(scores[i]) || scores[i] > scores[best]) best = i;
    }
    return {LabelScore{labels.id2label[best], scores[best]}};
  }
  if (options.top_k.kind == TopK::Kind::K && options.top_k.k < 0) fail("top_k: {} is negative", options.top_k.k);

  std::vector<LabelScore> result;
  result.reserve(scores.size());
  for (std::size_t i = 0; i < scores.size(); ++i) result.push_back(LabelScore{labels.id2label[i], scores[i]});
  std::stable_sort(result.begin(), result.end(),
                   [](const LabelScore& a, const LabelScore& b) { return a.score > b.score; });
  if (options.top_k.kind == TopK::Kind::K && static_cast<std::size_t>(options.top_k.k) < result.size())
    result.resize(static_cast<std::size_t>(options.top_k.k));
  return result;
}

nlohmann::json result_json(const std::vector<LabelScore>& result, const TopK& top_k) {
  auto entry = [](const LabelScore& s) {
    // The float32 score widened to double: what numpy's .item() hands to Python.
    return nlohmann::json{{"label", s.label}, {"score", static_cast<double>(s.score)}};
  };
  if (top_k.kind == TopK::Kind::Unset) {
    if (result.size() != 1) fail("result_json: the default top_k gives one label, got {}", result.size());
    return entry(result[0]);
  }
  nlohmann::json list = nlohmann::json::array();
  for (const LabelScore& s : result) list.push_back(entry(s));
  return list;
}

nlohmann::json call_json(std::span<const std::vector<LabelScore>> results, CallShape shape, const TopK& top_k) {
  if (shape == CallShape::List) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& result : results) list.push_back(result_json(result, top_k));
    return list;
  }
  if (results.size() != 1) fail("call_json: a single-input call has {} results", results.size());
  nlohmann::json one = result_json(results[0], top_k);
  // transformers wraps only a plain string's legacy result in a list ("this pipeline is odd").
  if (shape == CallShape::Text && top_k.kind == TopK::Kind::Unset) return nlohmann::json::array({one});
  return one;
}

std::string python_float_repr(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  // fmt's shortest round-trip form uses Python's exponent thresholds; repr adds ".0" to integers.
  std::string text = fmt::format("{}", value);
  if (text.find_first_of(".e") == std::string::npos) text += ".0";
  return text;
}

namespace {

// Decodes one UTF-8 sequence at text[i]; returns U+FFFD (and advances one byte) on invalid input.
char32_t next_code_point(std::string_view text, std::size_t& i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  int length = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || i + length > text.size()) {
    ++i;
    return 0xFFFD;
  }
  char32_t cp = length == 1 ? b0 : b0 & (0x7F >> length);
  for (int k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  i += length;
  return cp;
}

void append_python_string(std::string& out, std::string_view text) {
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    const char32_t cp = next_code_point(text, i);
    switch (cp) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (cp >= 0x20 && cp <= 0x7E) {
      out += static_cast<char>(cp);
    } else if (cp < 0x10000) {
      out += fmt::format("\\u{:04x}", static_cast<std::uint32_t>(cp));
    } else {  // ensure_ascii writes astral code points as a UTF-16 surrogate pair
      const std::uint32_t v = static_cast<std::uint32_t>(cp) - 0x10000;
      out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
    }
  }
  out += '"';
}

void append_python_json(std::string& out, const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null: out += "null"; return;
    case nlohmann::json::value_t::boolean: out += value.get<bool>() ? "true" : "false"; return;
    case nlohmann::json::value_t::number_integer: out += std::to_string(value.get<std::int64_t>()); return;
    case nlohmann::json::value_t::number_unsigned: out += std::to_string(value.get<std::uint64_t>()); return;
    case nlohmann::json::value_t::number_float: {
      const double v = value.get<double>();
      if (std::isnan(v)) out += "NaN";
      else if (std::isinf(v)) out += v > 0 ? "Infinity" : "-Infinity";
      else out += python_float_repr(v);
      return;
    }
    case nlohmann::json::value_t::string: append_python_string(out, value.get_ref<const std::string&>()); return;
    case nlohmann::json::value_t::array: {
      out += '[';
      bool first = true;
      for (const auto& element : value) {
        if (!first) out += ", ";
        first = false;
        append_python_json(out, element);
      }
      out += ']';
      return;
    }
    case nlohmann::json::value_t::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, element] : value.items()) {
        if (!first) out += ", ";
        first = false;
        append_python_string(out, key);
        out += ": ";
        append_python_json(out, element);
      }
      out += '}';
      return;
    }
    default: fail("python_json: cannot serialize a {}", value.type_name());
  }
}

}  // namespace

std::string python_json(const nlohmann::json& value) {
  std::string out;
  append_python_json(out, value);
  return out;
}

// ---- the pipeline ---------------------------------------------------------------------------

struct Pipeline::Impl {
  Tokenizer tokenizer;
  Model model;
  Options options;
  LabelInfo labels;
  int positions = 0;   // the longest sequence the model can embed
  int max_length = 0;  // default truncation length
  std::vector<std::string> notes;
  std::atomic<int> threads{0};  // set_threads
};

namespace {


std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

// The input as tokens, checked against what the model can embed: ids in [0, V), length <= positions.
void check_encoding(const Encoding& encoding, const ModelConfig& config, int positions) {
  if (encoding.size() == 0) fail("the input has no tokens");
  if (encoding.size() > static_cast<std::size_t>(positions))
    fail("{} tokens, but the model embeds at most {} positions", encoding.size(), positions);
  for (std::size_t t = 0; t < encoding.size(); ++t) {
    const std::int32_t id = encoding.ids[t];
    if (id < 0 || id >= config.vocab_size)
      fail("token id {} at position {} is outside the model's vocabulary of {} ids "
           "(is the tokenizer the model's own?)",
           id, t, config.vocab_size);
  }
}

}  // namespace

Pipeline::Pipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pipeline::~Pipeline() = default;

std::unique_ptr<Pipeline> Pipeline::load(const std::string& model_dir, const std::string& tokenizer_dir,
                                         const Options& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model_dir)) fail("model directory {}: not found", model_dir);
  if (!fs::exists(fs::path(model_dir) / "config.json")) fail("model directory {}: no config.json", model_dir);
  const std::string tok_dir = tokenizer_dir.empty() ? model_dir : tokenizer_dir;
  if (!fs::is_directory(tok_dir)) fail("tokenizer directory {}: not found", tok_dir);
  if (!tokenizer_file(tok_dir)) {
    if (tokenizer_dir.empty())
      fail("model directory {}: no tokenizer (tokenizer.json, vocab.json + merges.txt, a SentencePiece .model or "
           "vocab.txt); give the tokenizer's directory (--tokenizer DIR)", model_dir);
    fail("tokenizer directory {}: no tokenizer.json, vocab.json + merges.txt, SentencePiece .model or vocab.txt",
         tok_dir);
  }
  if (options.max_batch_size < 1 || options.max_batch_tokens < 1)
    fail("pipeline: max_batch_size and max_batch_tokens must be positive (got {} and {})", options.max_batch_size,
         options.max_batch_tokens);
  if (options.threads > 0) Model::set_num_threads(options.threads);

  LoadReport report;
  LoadOptions load_options;
  load_options.device = options.device;
  load_options.dtype = options.dtype;
  load_options.check_finite = options.check_weights;
  std::unique_ptr<Impl> impl(new Impl{Tokenizer::from_dir(tok_dir), Model::load(model_dir, &report, load_options), options,
                                      {}, 0, 0, {}});
  const ModelConfig& config = impl->model.config();
  impl->labels.id2label = config.id2label;
  impl->labels.problem_type = config.problem_type;
  if (impl->labels.id2label.size() != static_cast<std::size_t>(config.num_labels)) {
    impl->labels.id2label.clear();
    for (int i = 0; i < config.num_labels; ++i) impl->labels.id2label.push_back(fmt::format("LABEL_{}", i));
  }
  // RoBERTa numbers positions from padding_idx + 1, so its table holds that many fewer tokens.
  impl->positions = config.arch == Arch::Roberta ? config.max_position_embeddings - config.pad_token_id - 1
                                                 : config.max_position_embeddings;
  impl->max_length = impl->positions;
  if (const auto tok_max = impl->tokenizer.model_max_length())
    impl->max_length = static_cast<int>(std::min<std::size_t>(*tok_max, static_cast<std::size_t>(impl->positions)));

  if (!report.initialized.empty())
    impl->notes.push_back(fmt::format("{}: newly initialised (not in the checkpoint; fine-tune before use): {}",
                                      model_dir, join(report.initialized)));
  if (!report.ignored.empty())
    impl->notes.push_back(fmt::format("{}: unused checkpoint tensors: {}", model_dir, join(report.ignored)));
  if (impl->tokenizer.vocab_size() > static_cast<std::size_t>(config.vocab_size))
    impl->notes.push_back(fmt::format("tokenizer {} has {} tokens but the model embeds {}: inputs with the extra "
                                      "tokens will be rejected",
                                      tok_dir, impl->tokenizer.vocab_size(), config.vocab_size));
  // Inference weights packed now, not by the first request.
  impl->model.prepare_inference();
  // The load's parallel work is done: its OpenMP threads would only idle here, and they slow the
  // threads that run forward passes (Model::release_threads). Measured with a server's batch worker
  // at c=32 (bf16, 2 cores): ~26,000 context switches per 60 passes before, ~230 after, and passes
  // 5-9% faster.
  Model::release_threads();
  impl->threads = options.threads;
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(impl)));
}

Encoding Pipeline::tokenize(const TextInput& input, const TokenizeOptions& options) const {
  const int max_length = options.max_length.value_or(impl_->max_length);
  if (max_length > impl_->positions)
    fail("max_length {} is more than the {} positions the model embeds", max_length, impl_->positions);
  EncodeOptions encode;
  encode.truncation = options.truncation ? Truncation::LongestFirst : Truncation::None;
  encode.max_length = static_cast<std::size_t>(max_length);
  std::optional<std::string_view> pair;
  if (input.text_pair) pair = *input.text_pair;
  Encoding encoding = impl_->tokenizer.encode(input.text, pair, encode);
  if (encoding.size() > static_cast<std::size_t>(max_length))
    throw InputTooLongError(fmt::format("input of {} tokens is longer than the maximum length {} and truncation is off",
                                        encoding.size(), max_length));
  check_encoding(encoding, impl_->model.config(), impl_->positions);
  return encoding;
}

std::vector<float> Pipeline::forward(const PackedBatch& batch, const std::function<bool()>& stop) const {
  // OpenMP's thread count belongs to the calling thread: load() set it on its own thread, and a
  // thread started since (a server's batch worker) would run the runtime default, all cores, so
  // two workers of one thread each would run four spinning threads on two cores.
  if (const int n = impl_->threads.load(); n > 0) Model::set_num_threads(n);
  ForwardOptions options;
  options.stop = stop;
  return impl_->model.forward(batch, options);
}

bool Pipeline::inference_prepared() const { return impl_->model.inference_prepared(); }

void Pipeline::set_threads(int n) {
  if (n < 0) fail("pipeline: threads must be >= 0, got {}", n);
  impl_->threads = n;
}

int Pipeline::threads() const { return impl_->threads.load(); }

std::size_t Pipeline::forward_bytes(std::size_t tokens) const {
  const int T = static_cast<int>(std::min<std::size_t>(tokens, 1 << 30));
  return impl_->model.inference_bytes(T, impl_->positions);
}

void Pipeline::set_concurrent_forwards(std::size_t n) const { impl_->model.set_concurrent_forwards(n); }

std::vector<LabelScore> Pipeline::postprocess(std::span<const float> logits, const PostprocessOptions& options) const {
  return tuneserve::postprocess(logits, impl_->labels, options);
}

std::vector<std::vector<LabelScore>> Pipeline::predict(std::span<const TextInput> inputs,
                                                      const CallOptions& options) const {
  const std::size_t N = inputs.size();
  std::vector<Encoding> encodings(N);
  // Tokenizing is independent per input (Tokenizer::encode is const); the first error by input wins.
  std::vector<std::exception_ptr> errors(N);
#pragma omp parallel for schedule(dynamic, 16)
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(N); ++i) {
    try {
      encodings[i] = tokenize(inputs[i], options.tokenize);
    } catch (...) {
      errors[i] = std::current_exception();
    }
  }
  for (std::size_t i = 0; i < N; ++i) {
    if (!errors[i]) continue;
    try {
      std::rethrow_exception(errors[i]);
    } catch (const std::exception& e) {
      fail("input {}: {}", i, e.what());
    }
  }
  // Sorted by length (a batch's rows then take similar time); a batch closes at max_batch_size inputs
  // or when its real tokens would pass max_batch_tokens.
  std::vector<std::size_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return encodings[a].size() < encodings[b].size(); });
  const int K = num_labels();
  std::vector<std::vector<LabelScore>> results(N);
  std::size_t begin = 0;
  while (begin < N) {
    PackedBatch batch;
    batch.append(encodings[order[begin]].ids, encodings[order[begin]].type_ids);
    std::size_t end = begin + 1;
    while (end < N && static_cast<int>(end - begin) < impl_->options.max_batch_size &&
           batch.tokens() + encodings[order[end]].size() <= static_cast<std::size_t>(impl_->options.max_batch_tokens)) {
      batch.append(encodings[order[end]].ids, encodings[order[end]].type_ids);
      ++end;
    }
    const std::vector<float> logits = forward(batch);
    for (std::size_t j = begin; j < end; ++j)
      results[order[j]] = postprocess(std::span<const float>(logits).subspan((j - begin) * K, K), options.postprocess);
    begin = end;
  }
  return results;
}

const LabelInfo& Pipeline::labels() const { return impl_->labels; }
const ModelConfig& Pipeline::config() const { return impl_->model.config(); }
int Pipeline::max_length() const { return impl_->max_length; }
const std::vector<std::string>& Pipeline::load_notes() const { return impl_->notes; }

}  // namespace tuneserve

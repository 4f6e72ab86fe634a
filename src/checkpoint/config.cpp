// Hugging Face config.json <-> ModelConfig for distilbert, bert, roberta.
// Every error names the file and the field; unknown keys ride along in `raw`.
#include "checkpoint/config.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/json.h"

namespace tuneserve {

const char* arch_name(Arch arch) {
  switch (arch) {
    case Arch::DistilBert: return "distilbert";
    case Arch::Bert: return "bert";
    case Arch::Roberta: return "roberta";
  }
  return "?";
}

std::string ModelConfig::sequence_classification_class() const {
  switch (arch) {
    case Arch::DistilBert: return "DistilBertForSequenceClassification";
    case Arch::Bert: return "BertForSequenceClassification";
    case Arch::Roberta: return "RobertaForSequenceClassification";
  }
  return "";
}

namespace {

// A head of 100k labels is already larger than distilbert-base itself (76.8M weights at hidden 768).
// The bound is about cost: num_labels alone, in a 1 KB file, makes that many names, a label2id map
// and, when the model is saved, a JSON object of each; 911k of them took 2.9 s and 41 MB here, and
// over 10 s in the sanitized fuzzer (fuzz.config's timeout).
constexpr int kMaxLabels = 100'000;

// Field names per architecture (see the table in config.h).
struct Keys {
  const char* hidden_size;
  const char* num_layers;
  const char* num_heads;
  const char* intermediate_size;
  const char* hidden_dropout;
  const char* attention_dropout;
  const char* classifier_dropout;
  const char* activation;
};

Keys keys_for(Arch arch) {
  if (arch == Arch::DistilBert)
    return {"dim", "n_layers", "n_heads", "hidden_dim", "dropout", "attention_dropout",
            "seq_classif_dropout", "activation"};
  return {"hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
          "hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", "hidden_act"};
}

int get_int(const nlohmann::json& j, const char* key, const std::string& source, bool required,
            int fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) fail("{}: field '{}' is missing", source, key);
    return fallback;
  }
  if (!it->is_number_integer()) fail("{}: field '{}' must be an integer, found {}", source, key, json_excerpt(*it));
  const auto v = it->get<std::int64_t>();
  if (v < 0 || v > (1 << 30)) fail("{}: field '{}' out of range: {}", source, key, v);
  return static_cast<int>(v);
}

float get_float(const nlohmann::json& j, const char* key, const std::string& source, float fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) fail("{}: field '{}' must be a number, found {}", source, key, json_excerpt(*it));
  return it->get<float>();
}

std::string get_string(const nlohmann::json& j, const char* key, const std::string& source,
                       const std::string& fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail("{}: field '{}' must be a string, found {}", source, key, json_excerpt(*it));
  return it->get<std::string>();
}

// A float field as transformers writes it: the value as read when it is unchanged (0.1 stays 0.1),
// else the shortest decimal that reads back as the same float (not float->double's 0.10000000149...).
void put_float(nlohmann::json& j, const char* key, float value) {
  if (auto it = j.find(key); it != j.end() && it->is_number() && it->get<float>() == value) return;
  char text[32];
  const auto [end, ec] = std::to_chars(text, text + sizeof text, value);
  j[key] = ec == std::errc() ? std::strtod(std::string(text, end).c_str(), nullptr) : static_cast<double>(value);
}

}  // namespace

std::string default_label_name(std::size_t id) { return "LABEL_" + std::to_string(id); }

bool default_label_names(const std::vector<std::string>& names) {
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] != default_label_name(i)) return false;
  return true;
}

void set_labels(ModelConfig& config, const std::vector<std::string>& names) {
  config.id2label = names;
  config.num_labels = static_cast<int>(names.size());
  config.label2id.clear();
  for (int i = 0; i < config.num_labels; ++i) config.label2id[names[i]] = i;
}

ModelConfig parse_config(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) fail("{}: config must be a JSON object", source);
  ModelConfig c;
  c.raw = j;
  const std::string type = get_string(j, "model_type", source, "");
  if (type == "distilbert") c.arch = Arch::DistilBert;
  else if (type == "bert") c.arch = Arch::Bert;
  else if (type == "roberta") c.arch = Arch::Roberta;
  else if (type.empty()) fail("{}: field 'model_type' is missing (expected distilbert, bert or roberta)", source);
  else fail("{}: field 'model_type' is '{}': supported are distilbert, bert, roberta", source, text_excerpt(type));

  const Keys k = keys_for(c.arch);
  c.hidden_size = get_int(j, k.hidden_size, source, true, 0);
  c.num_layers = get_int(j, k.num_layers, source, true, 0);
  c.num_heads = get_int(j, k.num_heads, source, true, 0);
  c.intermediate_size = get_int(j, k.intermediate_size, source, true, 0);
  c.vocab_size = get_int(j, "vocab_size", source, true, 0);
  c.max_position_embeddings = get_int(j, "max_position_embeddings", source, false, 512);
  c.pad_token_id = get_int(j, "pad_token_id", source, false, c.arch == Arch::Roberta ? 1 : 0);
  c.initializer_range = get_float(j, "initializer_range", source, 0.02f);
  c.hidden_dropout = get_float(j, k.hidden_dropout, source, 0.1f);
  c.attention_dropout = get_float(j, k.attention_dropout, source, 0.1f);
  c.classifier_dropout = get_float(j, k.classifier_dropout, source,
                                   c.arch == Arch::DistilBert ? 0.2f : c.hidden_dropout);
  c.hidden_act = get_string(j, k.activation, source, "gelu");
  if (c.arch == Arch::DistilBert) {
    c.type_vocab_size = 0;
    c.layer_norm_eps = 1e-12f;  // DistilBERT's LayerNorms are built with eps=1e-12 regardless of config
    if (j.value("sinusoidal_pos_embds", false))
      fail("{}: field 'sinusoidal_pos_embds' is true: only learned position embeddings are supported", source);
  } else {
    c.type_vocab_size = get_int(j, "type_vocab_size", source, false, 2);
    c.layer_norm_eps = get_float(j, "layer_norm_eps", source, 1e-12f);
    const std::string pos = get_string(j, "position_embedding_type", source, "absolute");
    if (pos != "absolute")
      fail("{}: field 'position_embedding_type' is '{}': only 'absolute' is supported", source, text_excerpt(pos));
  }
  if (c.hidden_act != "gelu")
    fail("{}: field '{}' is '{}': only 'gelu' (exact erf) is supported", source, k.activation, text_excerpt(c.hidden_act));
  if (c.hidden_size <= 0 || c.num_heads <= 0 || c.hidden_size % c.num_heads != 0)
    fail("{}: field '{}' ({}) must be a positive multiple of '{}' ({})", source, k.hidden_size,
         c.hidden_size, k.num_heads, c.num_heads);
  if (c.num_layers <= 0) fail("{}: field '{}' must be positive", source, k.num_layers);
  if (c.intermediate_size <= 0) fail("{}: field '{}' must be positive", source, k.intermediate_size);
  if (c.vocab_size <= 0) fail("{}: field 'vocab_size' must be positive", source);
  if (c.pad_token_id >= c.vocab_size)
    fail("{}: field 'pad_token_id' ({}) is outside the vocabulary ({})", source, c.pad_token_id, c.vocab_size);
  if (c.max_position_embeddings <= 0) fail("{}: field 'max_position_embeddings' must be positive", source);

  // Labels: id2label decides num_labels, as PretrainedConfig does.
  std::vector<std::string> names;
  if (auto it = j.find("id2label"); it != j.end() && !it->is_null()) {
    if (!it->is_object()) fail("{}: field 'id2label' must be an object {{\"0\": \"name\"}}", source);
    std::map<int, std::string> by_id;
    for (auto& [key, value] : it->items()) {
      std::size_t used = 0;
      int id = -1;
      try {
        id = std::stoi(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || id < 0)
        fail("{}: field 'id2label' key '{}' is not a non-negative integer", source, text_excerpt(key));
      if (!value.is_string()) fail("{}: field 'id2label.{}' must be a string", source, text_excerpt(key));
      by_id[id] = value.get<std::string>();
    }
    for (int i = 0; i < static_cast<int>(by_id.size()); ++i) {
      if (!by_id.count(i)) fail("{}: field 'id2label' has no entry for id {}", source, i);
      names.push_back(by_id[i]);
    }
  } else {
    const int n = get_int(j, "num_labels", source, false, 2);
    // Label names are made before any weight is checked: a huge count must not allocate first.
    if (n > kMaxLabels) fail("{}: field 'num_labels' is {}: at most {} labels are supported", source, n, kMaxLabels);
    for (int i = 0; i < n; ++i) names.push_back(default_label_name(static_cast<std::size_t>(i)));
  }
  if (names.empty()) fail("{}: field 'id2label' is empty", source);
  if (names.size() > static_cast<std::size_t>(kMaxLabels))
    fail("{}: field 'id2label' has {} labels: at most {} labels are supported", source, names.size(), kMaxLabels);
  set_labels(c, names);
  if (auto it = j.find("label2id"); it != j.end() && it->is_object()) {
    c.label2id.clear();
    for (auto& [key, value] : it->items()) {
      if (!value.is_number_integer()) fail("{}: field 'label2id.{}' must be an integer", source, text_excerpt(key));
      c.label2id[key] = value.get<int>();
    }
  }
  c.problem_type = get_string(j, "problem_type", source, "");
  if (!c.problem_type.empty() && c.problem_type != "single_label_classification" &&
      c.problem_type != "multi_label_classification" && c.problem_type != "regression")
    fail("{}: field 'problem_type' is '{}': expected single_label_classification, "
         "multi_label_classification or regression", source, text_excerpt(c.problem_type));
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) fail("{}: field 'architectures' must be a list of strings", source);
    for (auto& a : *it) {
      if (!a.is_string()) fail("{}: field 'architectures' must be a list of strings", source);
      c.architectures.push_back(a.get<std::string>());
    }
  }
  return c;
}

ModelConfig load_config(const std::string& path) {
  std::string file = path;
  if (std::filesystem::is_directory(path)) file = (std::filesystem::path(path) / "config.json").string();
  if (!std::filesystem::exists(file)) fail("{}: no such file (a model directory holds config.json)", file);
  return parse_config(read_json_file(file), file);
}

nlohmann::json config_to_json(const ModelConfig& c) {
  nlohmann::json j = c.raw.is_object() ? c.raw : nlohmann::json::object();
  const Keys k = keys_for(c.arch);
  j["model_type"] = arch_name(c.arch);
  j[k.hidden_size] = c.hidden_size;
  j[k.num_layers] = c.num_layers;
  j[k.num_heads] = c.num_heads;
  j[k.intermediate_size] = c.intermediate_size;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["pad_token_id"] = c.pad_token_id;
  put_float(j, "initializer_range", c.initializer_range);
  put_float(j, k.hidden_dropout, c.hidden_dropout);
  put_float(j, k.attention_dropout, c.attention_dropout);
  // A null classifier_dropout in the source means "use hidden dropout": keep it null.
  if (!(c.arch != Arch::DistilBert && j.contains(k.classifier_dropout) && j[k.classifier_dropout].is_null() &&
        c.classifier_dropout == c.hidden_dropout))
    put_float(j, k.classifier_dropout, c.classifier_dropout);
  j[k.activation] = c.hidden_act;
  if (c.arch != Arch::DistilBert) {
    j["type_vocab_size"] = c.type_vocab_size;
    put_float(j, "layer_norm_eps", c.layer_norm_eps);
  }
  nlohmann::json id2label = nlohmann::json::object();
  for (int i = 0; i < c.num_labels; ++i) id2label[std::to_string(i)] = c.id2label[i];
  j["id2label"] = id2label;
  nlohmann::json label2id = nlohmann::json::object();
  for (auto& [name, id] : c.label2id) label2id[name] = id;
  j["label2id"] = label2id;
  j.erase("num_labels");  // transformers derives it from id2label; a stale copy would contradict it
  if (c.problem_type.empty()) j.erase("problem_type");
  else j["problem_type"] = c.problem_type;
  if (!c.architectures.empty()) j["architectures"] = c.architectures;
  return j;
}

void save_config(const ModelConfig& config, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail("{}: cannot open for writing", tmp);
    out << config_to_json(config).dump(2) << "\n";
    if (!out) fail("{}: write failed", tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail("{}: cannot rename to {}: {}", tmp, path, ec.message());
}

}  // namespace tuneserve

// Hugging Face `config.json` for the BERT family (distilbert, bert, roberta), read into one
// architecture-neutral struct and written back with every key the file had (unknown keys kept).
//
// Field names differ per model_type; the struct uses BERT's meaning:
//   hidden_size        distilbert `dim`,        bert/roberta `hidden_size`          (C)
//   num_layers         distilbert `n_layers`,   bert/roberta `num_hidden_layers`    (L)
//   num_heads          distilbert `n_heads`,    bert/roberta `num_attention_heads`  (NH)
//   intermediate_size  distilbert `hidden_dim`, bert/roberta `intermediate_size`    (F)
//   hidden_dropout     distilbert `dropout`,    bert/roberta `hidden_dropout_prob`
//   attention_dropout  distilbert `attention_dropout`, bert/roberta `attention_probs_dropout_prob`
//   classifier_dropout distilbert `seq_classif_dropout`, bert/roberta `classifier_dropout`
//                      (null there means hidden_dropout, as transformers does)
//   layer_norm_eps     distilbert: fixed 1e-12 (transformers hard-codes it), others `layer_norm_eps`
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tuneserve {

enum class Arch { DistilBert, Bert, Roberta };

const char* arch_name(Arch arch);  // "distilbert" | "bert" | "roberta" (the model_type)

struct ModelConfig {
  Arch arch = Arch::Bert;
  int hidden_size = 768;               // C
  int num_layers = 12;                 // L
  int num_heads = 12;                  // NH (C % NH == 0)
  int intermediate_size = 3072;        // F
  int max_position_embeddings = 512;   // rows of the position table (RoBERTa: T + pad + 1)
  int type_vocab_size = 2;             // 0 for DistilBERT (no token-type table)
  int vocab_size = 30522;              // V
  int pad_token_id = 0;
  float layer_norm_eps = 1e-12f;
  std::string hidden_act = "gelu";     // only exact-erf "gelu" is supported
  float initializer_range = 0.02f;
  float hidden_dropout = 0.1f;
  float attention_dropout = 0.1f;
  float classifier_dropout = 0.1f;     // resolved (never null)
  int num_labels = 2;                  // from id2label when present, else `num_labels`, else 2
  std::vector<std::string> id2label;   // size num_labels; "LABEL_i" when the file has none
  std::map<std::string, int> label2id;
  std::string problem_type;            // "" | "single_label_classification" |
                                       // "multi_label_classification" | "regression"
  std::vector<std::string> architectures;
  nlohmann::json raw;                  // the file as read; to_json() starts from it

  int head_size() const { return hidden_size / num_heads; }  // HS
  // The classification head class name transformers uses for this architecture,
  // e.g. "DistilBertForSequenceClassification".
  std::string sequence_classification_class() const;
};

// Parses a config object; `source` (a path) is named in every error with the offending field.
ModelConfig parse_config(const nlohmann::json& json, const std::string& source);
// `path` is a config.json file or a directory holding one.
ModelConfig load_config(const std::string& path);
// The config as transformers expects it: raw keys kept, the struct's fields written back under
// the architecture's own names, id2label/label2id/num_labels/problem_type/architectures updated.
nlohmann::json config_to_json(const ModelConfig& config);
// Writes config_to_json to `path` (a file path) atomically.
void save_config(const ModelConfig& config, const std::string& path);

// Sets num_labels with default names "LABEL_i" (or the given names) and the matching label2id.
void set_labels(ModelConfig& config, const std::vector<std::string>& names);

// The one naming rule from data to model to endpoint: --label-names, else the data's own words,
// else "LABEL_i" (what transformers calls an unnamed label i).
std::string default_label_name(std::size_t id);
// Every name is its id's default: nothing to carry over or to disagree with.
bool default_label_names(const std::vector<std::string>& names);

}  // namespace tuneserve

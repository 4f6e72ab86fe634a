// Encoder and head weights of a BERT-family classifier as plain structs of pointers into one flat
// buffer, the table mapping each to its Hugging Face name, and loading/saving under those names.
//
// Dimensions: C hidden, F ffn, V vocab, P max positions, TV token types, K labels.
//
// Checkpoint layout read (model.safetensors, or model.safetensors.index.json + shards):
//   <base>.embeddings.{word,position}_embeddings.weight, [bert/roberta: token_type_embeddings.weight]
//   <base>.embeddings.LayerNorm.{weight,bias}      (legacy files: .gamma/.beta)
//   distilbert: <base>.transformer.layer.i.attention.{q,k,v,out}_lin, .sa_layer_norm, .ffn.lin{1,2},
//               .output_layer_norm;   head: pre_classifier, classifier
//   bert/roberta: <base>.encoder.layer.i.attention.self.{query,key,value}, .attention.output.dense,
//               .attention.output.LayerNorm, .intermediate.dense, .output.dense, .output.LayerNorm;
//               head: bert.pooler.dense + classifier / roberta classifier.dense + classifier.out_proj
// <base> is "distilbert" / "bert" / "roberta"; files of a base model may omit "<base>.". Tensors the
// classifier does not use (MLM / NSP heads, position_ids buffers) are ignored and reported.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "checkpoint/config.h"
#include "kernels/backend.h"
#include "model/model.h"

namespace tuneserve {

struct LayerWeights {
  float* qkv_w;       // (3C, C) query | key | value rows (q_lin | k_lin | v_lin)
  float* qkv_b;       // (3C)
  float* attn_out_w;  // (C, C)
  float* attn_out_b;  // (C)
  float* ln1_w;       // (C) attention.output.LayerNorm / sa_layer_norm
  float* ln1_b;       // (C)
  float* fc_w;        // (F, C) intermediate.dense / ffn.lin1
  float* fc_b;        // (F)
  float* proj_w;      // (C, F) output.dense / ffn.lin2
  float* proj_b;      // (C)
  float* ln2_w;       // (C) output.LayerNorm / output_layer_norm
  float* ln2_b;       // (C)
};

struct Weights {
  float* wte = nullptr;       // (V, C)
  float* wpe = nullptr;       // (P, C)
  float* wtt = nullptr;       // (TV, C); null for DistilBERT
  float* emb_ln_w = nullptr;  // (C)
  float* emb_ln_b = nullptr;  // (C)
  std::vector<LayerWeights> layers;
  float* head_w = nullptr;    // (C, C) pre_classifier / bert.pooler.dense / classifier.dense
  float* head_b = nullptr;    // (C)
  float* cls_w = nullptr;     // (K, C) classifier / classifier.out_proj
  float* cls_b = nullptr;     // (K)
};

// Values and gradients share one layout: w.X and g.X point to the same offset in data / grads. Both
// live on the model's device (`backend`): every pointer in w, g and list is device memory (host
// memory on the CPU). Loading and initialising fill a host copy, then upload it.
struct ParamTable {
  const Backend* backend = nullptr;
  DeviceBuffer data;                // (total) floats
  DeviceBuffer grads;               // (total) floats
  std::size_t total = 0;
  Weights w;
  Weights g;
  std::vector<Parameter> list;      // by HF name, pointing into data / grads
  std::vector<std::size_t> offset;  // per list entry: its first float in data / grads
  std::vector<bool> is_head;        // per list entry: created (not an error) when absent from a checkpoint
};

// Lays out every tensor of `config` and allocates values (unset) and gradients (zero) on `backend`.
void build_param_table(ParamTable& table, const ModelConfig& config, const Backend& backend);
// Host values (total floats, in the table's layout) of every tensor as transformers' _init_weights
// does: Linear/Embedding normal(0, initializer_range) (padding row zero), biases zero, LayerNorm 1 / 0.
std::vector<float> init_all_parameters(const ParamTable& table, const ModelConfig& config, std::uint64_t seed);
// Builds `table` on `backend` (as build_param_table) and returns host values read from dir's
// checkpoint; heads absent from it initialised as above and reported. Before anything is
// allocated, every tensor the config needs is checked against the safetensors headers (present
// or a head, floating, the config's shape) and the memory the model takes against what is
// available; with options.check_finite, a NaN or infinity in any tensor is an error naming it.
// Shards of an index must be file names in `dir`.
std::vector<float> load_parameters(ParamTable& table, const ModelConfig& config, const std::string& dir,
                                   const Backend& backend, const LoadOptions& options, LoadReport& report);
// Copies host values (total floats) to the device, and back.
void upload_parameters(ParamTable& table, const std::vector<float>& host);
std::vector<float> download_parameters(const ParamTable& table);
void save_parameters(const ParamTable& table, const std::string& path);

struct PackedLayer {
  std::unique_ptr<PreparedLinear> qkv, attn_out, fc_gelu, proj;
  // Last layer only: the Q rows (C, C) and the K,V rows (2C, C) of qkv apart, for the pass that
  // needs Q of the first tokens only.
  std::unique_ptr<PreparedLinear> q, kv;
};

// Inference copies of the encoder's linear layers, prepared by the backend for products in `dtype`
// (on the CPU: oneDNN's blocked layout, fp32 or bf16, with GELU fused into fc).
struct PackedWeights {
  PackedWeights(const Weights& w, const ModelConfig& config, const Backend& backend, DType dtype);
  std::vector<PackedLayer> layers;
};

}  // namespace tuneserve

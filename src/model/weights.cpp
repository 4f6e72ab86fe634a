// Hugging Face tensor names <-> the flat parameter buffer: building the table, initialising,
// loading (legacy names, missing prefixes, pre-training checkpoints, shards) and saving.
#include "model/weights.h"

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "checkpoint/safetensors.h"
#include "checkpoint/tensor_file.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/rng.h"
#include "kernels/ops.h"

namespace tuneserve {

namespace {

enum class Init { Normal, Zero, One };

struct Spec {
  std::string name;
  std::vector<std::int64_t> shape;
  float** w_slot;   // where Weights keeps the pointer (null: a slice inside a fused tensor)
  float** g_slot;
  Init init;
  bool head;        // absent from pre-training checkpoints: initialised, not an error
  int padding_row;  // embedding row zeroed at init (-1: none)
};

// Every tensor of `c` in layout order, handed to `visit` one at a time, so that a check can stop at
// the first one a checkpoint lacks before anything sized by the config (L layers) is allocated.
// With w and g, the specs point at their slots; without, the slots are null.
void for_each_spec(const ModelConfig& c, Weights* w, Weights* g, const std::function<void(Spec&&)>& visit) {
  const std::int64_t C = c.hidden_size, F = c.intermediate_size, K = c.num_labels;
  const std::string base = std::string(arch_name(c.arch)) + ".";
  auto add = [&](std::string name, std::vector<std::int64_t> shape, float** ws, float** gs, Init init,
                 bool head = false, int pad = -1) {
    visit({std::move(name), std::move(shape), w ? ws : nullptr, g ? gs : nullptr, init, head, pad});
  };
  Weights unused_w, unused_g;  // slots to take addresses of when none are wanted
  Weights& wr = w ? *w : unused_w;
  Weights& gr = g ? *g : unused_g;
  const std::string e = base + "embeddings.";
  add(e + "word_embeddings.weight", {c.vocab_size, C}, &wr.wte, &gr.wte, Init::Normal, false, c.pad_token_id);
  add(e + "position_embeddings.weight", {c.max_position_embeddings, C}, &wr.wpe, &gr.wpe, Init::Normal, false,
      c.arch == Arch::Roberta ? c.pad_token_id : -1);
  if (c.arch != Arch::DistilBert)
    add(e + "token_type_embeddings.weight", {c.type_vocab_size, C}, &wr.wtt, &gr.wtt, Init::Normal);
  add(e + "LayerNorm.weight", {C}, &wr.emb_ln_w, &gr.emb_ln_w, Init::One);
  add(e + "LayerNorm.bias", {C}, &wr.emb_ln_b, &gr.emb_ln_b, Init::Zero);
  if (w) w->layers.assign(c.num_layers, {});
  if (g) g->layers.assign(c.num_layers, {});
  LayerWeights unused_lw{}, unused_lg{};
  for (int l = 0; l < c.num_layers; ++l) {
    LayerWeights& lw = w ? w->layers[l] : unused_lw;
    LayerWeights& lg = g ? g->layers[l] : unused_lg;
    const bool distil = c.arch == Arch::DistilBert;
    const std::string p = base + (distil ? "transformer.layer." : "encoder.layer.") + std::to_string(l) + ".";
    const std::string q = distil ? "attention.q_lin" : "attention.self.query";
    const std::string k = distil ? "attention.k_lin" : "attention.self.key";
    const std::string v = distil ? "attention.v_lin" : "attention.self.value";
    // q, k, v weights then q, k, v biases: consecutive in memory, so they form one fused (3C, C) product.
    add(p + q + ".weight", {C, C}, &lw.qkv_w, &lg.qkv_w, Init::Normal);
    add(p + k + ".weight", {C, C}, nullptr, nullptr, Init::Normal);
    add(p + v + ".weight", {C, C}, nullptr, nullptr, Init::Normal);
    add(p + q + ".bias", {C}, &lw.qkv_b, &lg.qkv_b, Init::Zero);
    add(p + k + ".bias", {C}, nullptr, nullptr, Init::Zero);
    add(p + v + ".bias", {C}, nullptr, nullptr, Init::Zero);
    const std::string o = distil ? "attention.out_lin" : "attention.output.dense";
    add(p + o + ".weight", {C, C}, &lw.attn_out_w, &lg.attn_out_w, Init::Normal);
    add(p + o + ".bias", {C}, &lw.attn_out_b, &lg.attn_out_b, Init::Zero);
    const std::string n1 = distil ? "sa_layer_norm" : "attention.output.LayerNorm";
    add(p + n1 + ".weight", {C}, &lw.ln1_w, &lg.ln1_w, Init::One);
    add(p + n1 + ".bias", {C}, &lw.ln1_b, &lg.ln1_b, Init::Zero);
    const std::string f1 = distil ? "ffn.lin1" : "intermediate.dense";
    add(p + f1 + ".weight", {F, C}, &lw.fc_w, &lg.fc_w, Init::Normal);
    add(p + f1 + ".bias", {F}, &lw.fc_b, &lg.fc_b, Init::Zero);
    const std::string f2 = distil ? "ffn.lin2" : "output.dense";
    add(p + f2 + ".weight", {C, F}, &lw.proj_w, &lg.proj_w, Init::Normal);
    add(p + f2 + ".bias", {C}, &lw.proj_b, &lg.proj_b, Init::Zero);
    const std::string n2 = distil ? "output_layer_norm" : "output.LayerNorm";
    add(p + n2 + ".weight", {C}, &lw.ln2_w, &lg.ln2_w, Init::One);
    add(p + n2 + ".bias", {C}, &lw.ln2_b, &lg.ln2_b, Init::Zero);
  }
  std::string dense, out;
  switch (c.arch) {
    case Arch::DistilBert: dense = "pre_classifier"; out = "classifier"; break;
    case Arch::Bert: dense = "bert.pooler.dense"; out = "classifier"; break;
    case Arch::Roberta: dense = "classifier.dense"; out = "classifier.out_proj"; break;
  }
  add(dense + ".weight", {C, C}, &wr.head_w, &gr.head_w, Init::Normal, true);
  add(dense + ".bias", {C}, &wr.head_b, &gr.head_b, Init::Zero, true);
  add(out + ".weight", {K, C}, &wr.cls_w, &gr.cls_w, Init::Normal, true);
  add(out + ".bias", {K}, &wr.cls_b, &gr.cls_b, Init::Zero, true);
}

std::vector<Spec> make_specs(const ModelConfig& c, Weights& w, Weights& g) {
  std::vector<Spec> specs;
  for_each_spec(c, &w, &g, [&](Spec&& spec) { specs.push_back(std::move(spec)); });
  return specs;
}

std::size_t numel_of(const std::vector<std::int64_t>& shape) {
  std::size_t n = 1;
  for (auto d : shape) n *= static_cast<std::size_t>(d);
  return n;
}

// a + b for parameter counts; configs are capped (2^30 per dimension) but a sum over many layers
// is checked anyway before it sizes an allocation.
std::size_t checked_add(std::size_t a, std::size_t b, const ModelConfig& c) {
  std::size_t out = 0;
  if (__builtin_add_overflow(a, b, &out) || out > (std::size_t{1} << 60))
    fail("a {} model of hidden size {}, {} layers and vocabulary {} has more parameters than fit in memory",
         arch_name(c.arch), c.hidden_size, c.num_layers, c.vocab_size);
  return out;
}

bool is_layernorm_weight(const std::string& name) {
  return name.find("LayerNorm.weight") != std::string::npos || name.find("layer_norm.weight") != std::string::npos;
}

// Every tensor of one checkpoint, possibly spread over shards.
class TensorSource {
 public:
  explicit TensorSource(const std::string& dir) {
    for (const std::string& file : checkpoint_files(dir)) add_file(file);
  }

  const TensorFile* find(const std::string& name) const {
    auto it = where_.find(name);
    return it == where_.end() ? nullptr : readers_[it->second].get();
  }
  std::string describe() const {
    std::string s;
    for (auto& r : readers_) s += (s.empty() ? "" : ", ") + r->path();
    return s;
  }
  const std::map<std::string, std::size_t>& names() const { return where_; }

 private:
  void add_file(const std::string& path) {
    readers_.push_back(open_tensor_file(path));
    for (auto& t : readers_.back()->tensors()) where_[t.name] = readers_.size() - 1;
  }
  std::vector<std::unique_ptr<TensorFile>> readers_;
  std::map<std::string, std::size_t> where_;
};

// Names a tensor may have on disk, most likely first: as transformers writes it, without the
// base-model prefix, and with legacy LayerNorm gamma/beta.
std::vector<std::string> candidate_names(const std::string& name, const std::string& base) {
  std::vector<std::string> out = {name};
  if (name.rfind(base, 0) == 0) out.push_back(name.substr(base.size()));
  const std::size_t n = out.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::string s = out[i];  // a copy: push_back below reallocates
    for (auto [from, to] : {std::pair{"LayerNorm.weight", "LayerNorm.gamma"}, std::pair{"LayerNorm.bias", "LayerNorm.beta"}}) {
      const std::string f = from;
      if (s.size() >= f.size() && s.compare(s.size() - f.size(), f.size(), f) == 0)
        out.push_back(s.substr(0, s.size() - f.size()) + to);
    }
  }
  return out;
}

void init_tensor(float* p, const Spec& spec, float stddev, Rng& rng) {
  const std::size_t n = numel_of(spec.shape);
  switch (spec.init) {
    case Init::Zero: std::fill(p, p + n, 0.0f); break;
    case Init::One: std::fill(p, p + n, 1.0f); break;
    case Init::Normal:
      for (std::size_t i = 0; i < n; ++i) p[i] = rng.normal(0.0f, stddev);
      if (spec.padding_row >= 0 && spec.padding_row < spec.shape[0]) {
        const std::size_t cols = n / static_cast<std::size_t>(spec.shape[0]);
        std::fill(p + spec.padding_row * cols, p + (spec.padding_row + 1) * cols, 0.0f);
      }
      break;
  }
}

}  // namespace

void build_param_table(ParamTable& t, const ModelConfig& c, const Backend& backend) {
  t.w = {};
  t.g = {};
  const std::vector<Spec> specs = make_specs(c, t.w, t.g);
  std::size_t total = 0;
  for (auto& s : specs) total = checked_add(total, numel_of(s.shape), c);
  t.backend = &backend;
  t.total = total;
  t.data = DeviceBuffer(backend, total * sizeof(float));
  t.grads = DeviceBuffer(backend, total * sizeof(float));
  backend.zero(t.grads.data(), total * sizeof(float));
  t.list.clear();
  t.offset.clear();
  t.is_head.clear();
  std::size_t offset = 0;
  for (auto& s : specs) {
    Parameter p;
    p.name = s.name;
    p.shape = s.shape;
    p.numel = numel_of(s.shape);
    p.data = t.data.as<float>() + offset;
    p.grad = t.grads.as<float>() + offset;
    // Trainer's rule: no decay for biases and LayerNorm weights.
    p.weight_decay = !(s.name.size() >= 5 && s.name.compare(s.name.size() - 5, 5, ".bias") == 0) &&
                     !is_layernorm_weight(s.name);
    if (s.w_slot) *s.w_slot = p.data;
    if (s.g_slot) *s.g_slot = p.grad;
    t.offset.push_back(offset);
    offset += p.numel;
    t.list.push_back(std::move(p));
    t.is_head.push_back(s.head);
  }
}

std::vector<float> init_all_parameters(const ParamTable& t, const ModelConfig& c, std::uint64_t seed) {
  Weights w, g;
  const std::vector<Spec> specs = make_specs(c, w, g);
  std::vector<float> host(t.total);
  Rng rng(seed);
  for (std::size_t i = 0; i < specs.size(); ++i) init_tensor(host.data() + t.offset[i], specs[i], c.initializer_range, rng);
  return host;
}

namespace {

bool is_classifier(const Spec& spec) { return spec.head && spec.name.find("classifier") != std::string::npos; }

// The checkpoint tensor that holds `spec` (under one of its candidate names), or null. With
// `new_labels` (LoadOptions::new_head_on_mismatch), a classifier tensor of another shape is not the
// head's: it is created anew.
const TensorFile* find_tensor(const TensorSource& source, const Spec& spec, const std::string& base,
                              std::string& found, bool new_labels) {
  for (const auto& cand : candidate_names(spec.name, base)) {
    if (const TensorFile* reader = source.find(cand)) {
      if (new_labels && is_classifier(spec) && reader->info(cand).shape != spec.shape) return nullptr;
      found = cand;
      return reader;
    }
  }
  return nullptr;
}

// Everything `c` needs, checked against the headers before a byte is allocated for the weights:
// each tensor present (or a head that may be created), floating, of the config's shape; then the
// memory the model takes against what is available. A config that disagrees with its checkpoint
// (hidden size, layers, labels) fails here instead of allocating gigabytes first.
void check_checkpoint(const ModelConfig& c, const TensorSource& source, const Backend& backend, bool new_labels) {
  const std::string base = std::string(arch_name(c.arch)) + ".";
  std::size_t total = 0, largest = 0;
  for_each_spec(c, nullptr, nullptr, [&](Spec&& spec) {
    std::string found;
    const TensorFile* reader = find_tensor(source, spec, base, found, new_labels);
    if (!reader) {
      if (!spec.head)
        fail("{}: tensor '{}' is missing (expected shape {}); is this a {} checkpoint?", source.describe(), spec.name,
             shape_string(spec.shape), arch_name(c.arch));
    } else {
      const TensorInfo& info = reader->info(found);
      if (info.shape != spec.shape) {
        const bool labels = is_classifier(spec);
        fail("{}: tensor '{}' has shape {}, expected {}{}", reader->path(), found, shape_string(info.shape),
             shape_string(spec.shape),
             labels ? fmt::format(" (the config has num_labels = {})", c.num_labels) : std::string());
      }
      if (info.dtype != DType::F32 && info.dtype != DType::F16 && info.dtype != DType::BF16 && info.dtype != DType::F64)
        fail("{}: tensor '{}' is {}, expected a floating dtype", reader->path(), found, dtype_name(info.dtype));
    }
    const std::size_t n = numel_of(spec.shape);
    total = checked_add(total, n, c);
    largest = std::max(largest, n);
  });
  // Host memory: on the CPU values and gradients, plus the host copy loading fills and the largest
  // tensor as read; on a GPU the host copy and that tensor.
  const std::size_t copies = backend.device.is_cuda() ? 1 : 3;
  const std::size_t need = (total * copies + largest) * sizeof(float);
  if (const auto available = available_memory(); available && need > *available)
    fail("{}: the model has {} parameters and needs about {} of memory to load (values, gradients and a load "
         "buffer), but {} is available",
         source.describe(), total, format_bytes(need), format_bytes(*available));
}

// The first NaN or infinity of a tensor: a model that holds one answers NaN for every input.
void check_finite(const std::vector<float>& values, const std::string& path, const std::string& name) {
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      fail("{}: tensor '{}' holds {} at index {}: the model would answer NaN (load it anyway with "
           "--no-weight-check, or serve's --weight-check false)",
           path, name, values[i], i);
}

}  // namespace

std::vector<float> load_parameters(ParamTable& t, const ModelConfig& c, const std::string& dir, const Backend& backend,
                                   const LoadOptions& options, LoadReport& report) {
  const TensorSource source(dir);
  const bool new_labels = !options.labels.empty() && options.new_head_on_mismatch;
  check_checkpoint(c, source, backend, new_labels);
  build_param_table(t, c, backend);
  Weights w, g;
  const std::vector<Spec> specs = make_specs(c, w, g);
  const std::string base = std::string(arch_name(c.arch)) + ".";
  std::vector<float> host(t.total);
  std::set<std::string> used;
  Rng rng(options.init_seed);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const Spec& spec = specs[i];
    float* dst = host.data() + t.offset[i];
    std::string found;
    const TensorFile* reader = find_tensor(source, spec, base, found, new_labels);
    if (!reader) {  // a head (check_checkpoint refused anything else)
      init_tensor(dst, spec, c.initializer_range, rng);
      report.initialized.push_back(spec.name);
      continue;
    }
    const std::vector<float> values = reader->read_f32(found);
    if (options.check_finite) check_finite(values, reader->path(), found);
    std::copy(values.begin(), values.end(), dst);
    used.insert(found);
    if (found != spec.name) report.renamed.push_back(found + " -> " + spec.name);
  }
  for (auto& [name, index] : source.names())
    if (!used.count(name)) report.ignored.push_back(name);
  return host;
}

void upload_parameters(ParamTable& t, const std::vector<float>& host) {
  if (host.size() != t.total) fail("parameter upload of {} floats into a table of {}", host.size(), t.total);
  t.data.upload(host.data(), t.total * sizeof(float));
}

std::vector<float> download_parameters(const ParamTable& t) {
  std::vector<float> host(t.total);
  t.data.download(host.data(), t.total * sizeof(float));
  return host;
}

void save_parameters(const ParamTable& t, const std::string& path) {
  const std::vector<float> host = download_parameters(t);
  SafeTensorsWriter writer;
  writer.set_metadata("format", "pt");
  for (std::size_t i = 0; i < t.list.size(); ++i) writer.add_f32(t.list[i].name, t.list[i].shape, host.data() + t.offset[i]);
  writer.write(path);
}

PackedWeights::PackedWeights(const Weights& w, const ModelConfig& c, const Backend& backend, DType dtype) {
  const int C = c.hidden_size, F = c.intermediate_size;
  const Device& d = backend.device;
  const auto none = LinearActivation::None;
  auto prepare = [&](const float* weight, const float* bias, int K, int N, LinearActivation activation) {
    return ops::prepare_linear(backend, Tensor(weight, d, {N, K}), Tensor(bias, d, {N}), activation, dtype);
  };
  layers.resize(c.num_layers);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    PackedLayer& pl = layers[l];
    pl.qkv = prepare(lw.qkv_w, lw.qkv_b, C, 3 * C, none);
    pl.attn_out = prepare(lw.attn_out_w, lw.attn_out_b, C, C, none);
    pl.fc_gelu = prepare(lw.fc_w, lw.fc_b, C, F, LinearActivation::Gelu);
    pl.proj = prepare(lw.proj_w, lw.proj_b, F, C, none);
    if (l == c.num_layers - 1) {
      const std::size_t CC = static_cast<std::size_t>(C) * C;
      pl.q = prepare(lw.qkv_w, lw.qkv_b, C, C, none);
      pl.kv = prepare(lw.qkv_w + CC, lw.qkv_b + C, C, 2 * C, none);
    }
  }
}

}  // namespace tuneserve

// Grad-norm clipping and AdamW over all parameters of a model, with the Trainer's decay groups, on
// a Backend. The per-tensor arithmetic lives in the backend's kernels (kernels/cpu/adamw.cpp and its
// CUDA twin); this file owns the state, its layout on the device and its checkpoint form.
//
// Dimensions: P parameter tensors, N_p elements of tensor p.
#include "train/optimizer.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "checkpoint/safetensors.h"
#include "core/error.h"

namespace tuneserve::train {

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_layer_norm_module(const std::string& module) {
  const std::string last = lower(module.substr(module.rfind('.') == std::string::npos ? 0 : module.rfind('.') + 1));
  // BERT/RoBERTa "LayerNorm"; DistilBERT "sa_layer_norm", "output_layer_norm", "vocab_layer_norm".
  return last == "layernorm" || last == "layer_norm" || last.ends_with("_layer_norm") ||
         last.ends_with("_layernorm");
}

constexpr std::size_t kAlignFloats = 16;  // 64 bytes: each tensor's moments start on a cache line

}  // namespace

bool uses_weight_decay(const std::string& name) {
  if (lower(name).find("bias") != std::string::npos) return false;
  const auto dot = name.rfind('.');
  if (dot != std::string::npos && is_layer_norm_module(name.substr(0, dot))) return false;
  return true;
}

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return 1.0f;  // torch scales by nan; the trainer reports it
  return static_cast<float>(std::min(1.0, max_norm / (norm + 1e-6)));
}

AdamW::AdamW(const Backend& backend, std::vector<ParamRef> params, AdamWOptions options)
    : backend_(&backend), params_(std::move(params)), options_(options) {
  std::size_t total = 0;
  for (const ParamRef& p : params_) {
    if (p.value == nullptr || p.grad == nullptr) fail("optimizer: parameter {} has no buffer", p.name);
    offsets_.push_back(total);
    total += (p.numel + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  }
  exp_avg_ = DeviceBuffer(backend, total * sizeof(float));
  exp_avg_sq_ = DeviceBuffer(backend, total * sizeof(float));
  backend.zero(exp_avg_.data(), exp_avg_.bytes());
  backend.zero(exp_avg_sq_.data(), exp_avg_sq_.bytes());
  for (std::size_t i = 0; i < params_.size(); i++) {
    const ParamRef& p = params_[i];
    slices_.push_back(OptimizerSlice{p.value, p.grad, exp_avg_.as<float>() + offsets_[i],
                                     exp_avg_sq_.as<float>() + offsets_[i], p.numel, uses_weight_decay(p.name)});
  }
}

double AdamW::grad_norm() const { return backend_->grad_norm(slices_); }

void AdamW::zero_grads() const {
  for (const ParamRef& p : params_) backend_->zero(p.grad, p.numel * sizeof(float));
}

void AdamW::step(double lr, float grad_scale) {
  step_++;
  kernels::cpu::AdamWHyper hyper;
  hyper.lr = lr;
  hyper.beta1 = options_.beta1;
  hyper.beta2 = options_.beta2;
  hyper.eps = options_.eps;
  hyper.weight_decay = options_.weight_decay;  // the backend zeroes it where a slice has no decay
  hyper.step = step_;
  hyper.grad_scale = grad_scale;
  backend_->adamw_update_all(slices_, hyper);
}

void AdamW::save_state(SafeTensorsWriter& writer) const {
  std::vector<float> host;
  for (std::size_t i = 0; i < params_.size(); i++) {
    const auto n = static_cast<std::int64_t>(params_[i].numel);
    host.resize(params_[i].numel);
    for (auto [prefix, state] : {std::pair{"exp_avg.", slices_[i].m}, std::pair{"exp_avg_sq.", slices_[i].v}}) {
      backend_->download(host.data(), state, host.size() * sizeof(float));
      writer.add_f32(prefix + params_[i].name, {n}, host.data());
    }
  }
  writer.set_metadata("adamw.step", std::to_string(step_));
}

void AdamW::load_state(const SafeTensorsReader& reader) {
  // Everything is read and checked before the device state changes.
  std::vector<std::vector<float>> m(params_.size()), v(params_.size());
  for (std::size_t i = 0; i < params_.size(); i++) {
    for (auto [prefix, state] : {std::pair{"exp_avg.", &m[i]}, std::pair{"exp_avg_sq.", &v[i]}}) {
      const std::string name = prefix + params_[i].name;
      if (!reader.contains(name)) fail("{}: optimizer state has no tensor {}", reader.path(), name);
      *state = reader.read_f32(name);
      if (state->size() != params_[i].numel)
        fail("{}: optimizer tensor {} has {} elements, the parameter has {}", reader.path(), name,
             state->size(), params_[i].numel);
    }
  }
  const auto it = reader.metadata().find("adamw.step");
  if (it == reader.metadata().end()) fail("{}: optimizer state has no adamw.step metadata", reader.path());
  long step = 0;
  try {
    step = std::stol(it->second);
  } catch (const std::exception&) {
    fail("{}: optimizer metadata adamw.step is not an integer: '{}'", reader.path(), it->second);
  }
  for (std::size_t i = 0; i < params_.size(); i++) {
    backend_->upload(slices_[i].m, m[i].data(), m[i].size() * sizeof(float));
    backend_->upload(slices_[i].v, v[i].data(), v[i].size() * sizeof(float));
  }
  step_ = step;
}

}  // namespace tuneserve::train

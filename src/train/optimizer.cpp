// Grad-norm clipping and AdamW over all parameters of a model, with the Trainer's decay groups.
// The per-tensor arithmetic lives in kernels/cpu/adamw.cpp; this file owns the state and groups.
//
// Dimensions: P parameter tensors, N_p elements of tensor p.
#include "train/optimizer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

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

}  // namespace

bool uses_weight_decay(const std::string& name) {
  if (lower(name).find("bias") != std::string::npos) return false;
  const auto dot = name.rfind('.');
  if (dot != std::string::npos && is_layer_norm_module(name.substr(0, dot))) return false;
  return true;
}

double global_grad_norm(std::span<const ParamRef> params) {
  double total = 0.0;
  for (const ParamRef& p : params) {
    double sum = 0.0;
    const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(p.numel);
#pragma omp parallel for reduction(+ : sum) schedule(static) if (n > 65536)
    for (std::ptrdiff_t i = 0; i < n; i++) sum += static_cast<double>(p.grad[i]) * p.grad[i];
    total += sum;
  }
  return std::sqrt(total);
}

float clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0 || !std::isfinite(norm)) return 1.0f;  // torch scales by nan; the trainer reports it
  return static_cast<float>(std::min(1.0, max_norm / (norm + 1e-6)));
}

double clip_grad_norm(std::span<const ParamRef> params, double max_norm) {
  const double norm = global_grad_norm(params);
  const float c = clip_coefficient(norm, max_norm);
  if (c < 1.0f) {
    for (const ParamRef& p : params) {
      for (std::size_t i = 0; i < p.numel; i++) p.grad[i] *= c;
    }
  }
  return norm;
}

void zero_grads(std::span<const ParamRef> params) {
  for (const ParamRef& p : params) std::memset(p.grad, 0, p.numel * sizeof(float));
}

AdamW::AdamW(std::vector<ParamRef> params, AdamWOptions options)
    : params_(std::move(params)), options_(options) {
  for (const ParamRef& p : params_) {
    if (p.value == nullptr || p.grad == nullptr) fail("optimizer: parameter {} has no buffer", p.name);
    decay_.push_back(uses_weight_decay(p.name));
    exp_avg_.emplace_back(p.numel, 0.0f);
    exp_avg_sq_.emplace_back(p.numel, 0.0f);
  }
}

void AdamW::step(double lr, float grad_scale) {
  step_++;
  for (std::size_t i = 0; i < params_.size(); i++) {
    kernels::cpu::AdamWHyper hyper;
    hyper.lr = lr;
    hyper.beta1 = options_.beta1;
    hyper.beta2 = options_.beta2;
    hyper.eps = options_.eps;
    hyper.weight_decay = decay_[i] ? options_.weight_decay : 0.0;
    hyper.step = step_;
    hyper.grad_scale = grad_scale;
    kernels::cpu::adamw_update(params_[i].value, params_[i].grad, exp_avg_[i].data(),
                               exp_avg_sq_[i].data(), params_[i].numel, hyper);
  }
}

void AdamW::save_state(SafeTensorsWriter& writer) const {
  for (std::size_t i = 0; i < params_.size(); i++) {
    const auto n = static_cast<std::int64_t>(params_[i].numel);
    writer.add_f32("exp_avg." + params_[i].name, {n}, exp_avg_[i].data());
    writer.add_f32("exp_avg_sq." + params_[i].name, {n}, exp_avg_sq_[i].data());
  }
  writer.set_metadata("adamw.step", std::to_string(step_));
}

void AdamW::load_state(const SafeTensorsReader& reader) {
  for (std::size_t i = 0; i < params_.size(); i++) {
    for (auto [prefix, state] : {std::pair{"exp_avg.", &exp_avg_[i]}, std::pair{"exp_avg_sq.", &exp_avg_sq_[i]}}) {
      const std::string name = prefix + params_[i].name;
      if (!reader.contains(name)) fail("{}: optimizer state has no tensor {}", reader.path(), name);
      std::vector<float> values = reader.read_f32(name);
      if (values.size() != params_[i].numel)
        fail("{}: optimizer tensor {} has {} elements, the parameter has {}", reader.path(), name,
             values.size(), params_[i].numel);
      *state = std::move(values);
    }
  }
  const auto it = reader.metadata().find("adamw.step");
  if (it == reader.metadata().end()) fail("{}: optimizer state has no adamw.step metadata", reader.path());
  try {
    step_ = std::stol(it->second);
  } catch (const std::exception&) {
    fail("{}: optimizer metadata adamw.step is not an integer: '{}'", reader.path(), it->second);
  }
}

}  // namespace tuneserve::train

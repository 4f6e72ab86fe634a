// The Trainer's optimizer step: global grad-norm clipping (torch.nn.utils.clip_grad_norm_) and
// AdamW over every parameter, weight decay on all but biases and LayerNorm weights.
//
// Dimensions: P parameter tensors, N_p elements of tensor p.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "kernels/cpu/adamw.h"

namespace tuneserve {
class SafeTensorsReader;
class SafeTensorsWriter;
}  // namespace tuneserve

namespace tuneserve::train {

// One trainable tensor, named as transformers names it, with its gradient buffer (same size).
struct ParamRef {
  std::string name;
  float* value = nullptr;  // (N_p)
  float* grad = nullptr;   // (N_p)
  std::size_t numel = 0;
};

// transformers' get_decay_parameter_names for the BERT family: no decay for any name containing
// "bias" nor for the parameters of LayerNorm modules ("LayerNorm", "*_layer_norm", "*layernorm").
bool uses_weight_decay(const std::string& name);

// sqrt(sum over tensors of ||grad_p||^2), accumulated in double.
double global_grad_norm(std::span<const ParamRef> params);

// clip_grad_norm_'s factor for gradients of global norm `norm`: min(1, max_norm / (norm + 1e-6));
// 1 when max_norm <= 0 (clipping off) or the norm is not finite.
float clip_coefficient(double norm, double max_norm);

// clip_grad_norm_: returns the norm before clipping and scales every gradient by clip_coefficient.
// (The trainer instead passes the coefficient to AdamW::step, which applies it on the fly.)
double clip_grad_norm(std::span<const ParamRef> params, double max_norm);

void zero_grads(std::span<const ParamRef> params);

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW {
 public:
  AdamW(std::vector<ParamRef> params, AdamWOptions options);

  // One update of every parameter at learning rate `lr` (the schedule's value for this step), with
  // every gradient taken as grad * grad_scale (the clip coefficient).
  void step(double lr, float grad_scale = 1.0f);
  long steps_taken() const { return step_; }
  const std::vector<ParamRef>& params() const { return params_; }
  const AdamWOptions& options() const { return options_; }

  // Optimizer state as tensors "exp_avg.<name>", "exp_avg_sq.<name>" and metadata "adamw.step".
  void save_state(SafeTensorsWriter& writer) const;
  // Restores what save_state wrote; a missing or mis-sized tensor is an Error naming it.
  void load_state(const SafeTensorsReader& reader);

 private:
  std::vector<ParamRef> params_;
  std::vector<bool> decay_;
  std::vector<std::vector<float>> exp_avg_;     // per param (N_p)
  std::vector<std::vector<float>> exp_avg_sq_;  // per param (N_p)
  AdamWOptions options_;
  long step_ = 0;
};

}  // namespace tuneserve::train

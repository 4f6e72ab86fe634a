// The Trainer's optimizer step: global grad-norm clipping (torch.nn.utils.clip_grad_norm_) and
// AdamW over every parameter, weight decay on all but biases and LayerNorm weights, on the device
// of a Backend (kernels/backend.h): parameters, gradients and moments are that device's memory and
// only the grad norm (a double) and save/load of the state cross to the host.
//
// Dimensions: P parameter tensors, N_p elements of tensor p.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace tuneserve {
class SafeTensorsReader;
class SafeTensorsWriter;
}  // namespace tuneserve

namespace tuneserve::train {

// One trainable tensor, named as transformers names it, with its gradient buffer (same size); both
// are memory of the optimizer's backend (host memory for the CPU).
struct ParamRef {
  std::string name;
  float* value = nullptr;  // (N_p)
  float* grad = nullptr;   // (N_p)
  std::size_t numel = 0;
};

// transformers' get_decay_parameter_names for the BERT family: no decay for any name containing
// "bias" nor for the parameters of LayerNorm modules ("LayerNorm", "*_layer_norm", "*layernorm").
bool uses_weight_decay(const std::string& name);

// clip_grad_norm_'s factor for gradients of global norm `norm`: min(1, max_norm / (norm + 1e-6));
// 1 when max_norm <= 0 (clipping off) or the norm is not finite. AdamW::step applies it on the fly,
// which is bitwise the same as scaling the gradient buffers first.
float clip_coefficient(double norm, double max_norm);

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
};

class AdamW {
 public:
  // Moments start at zero in device memory of `backend`, which must outlive the optimizer.
  AdamW(const Backend& backend, std::vector<ParamRef> params, AdamWOptions options);
  // On the CPU (host memory).
  AdamW(std::vector<ParamRef> params, AdamWOptions options) : AdamW(cpu_backend(), std::move(params), options) {}

  // sqrt(sum over tensors of ||grad_p||^2), accumulated in double (backend.grad_norm).
  double grad_norm() const;
  void zero_grads() const;
  // One update of every parameter at learning rate `lr` (the schedule's value for this step), with
  // every gradient taken as grad * grad_scale (the clip coefficient).
  void step(double lr, float grad_scale = 1.0f);
  long steps_taken() const { return step_; }
  const std::vector<ParamRef>& params() const { return params_; }
  const AdamWOptions& options() const { return options_; }
  const Backend& backend() const { return *backend_; }

  // Optimizer state as tensors "exp_avg.<name>", "exp_avg_sq.<name>" and metadata "adamw.step"
  // (downloaded from the device).
  void save_state(SafeTensorsWriter& writer) const;
  // Restores what save_state wrote (uploaded to the device); a missing or mis-sized tensor is an
  // Error naming it, and then the state is left as it was.
  void load_state(const SafeTensorsReader& reader);

 private:
  const Backend* backend_;
  std::vector<ParamRef> params_;
  AdamWOptions options_;
  // exp_avg and exp_avg_sq of every tensor, each tensor's slice 64-byte aligned, in two buffers.
  DeviceBuffer exp_avg_, exp_avg_sq_;
  std::vector<std::size_t> offsets_;     // (P) first float of tensor p in each buffer
  std::vector<OptimizerSlice> slices_;   // (P) what backend.adamw_update_all / grad_norm take
  long step_ = 0;
};

}  // namespace tuneserve::train

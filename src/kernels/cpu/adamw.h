// AdamW update for one parameter tensor (or a range of one), exactly as torch.optim.AdamW
// (single-tensor path) does it. The CPU backend's adamw_update_all (kernels/cpu/backend.cpp) calls it
// on pieces of at most 64Ki elements, all pieces of a step in one parallel region; a larger range is
// split over the threads here.
//
// Dimensions: N elements of one parameter tensor (flat).
// Writes in place: param, m, v (all = , the new state). Reads grad.
#pragma once

#include <cstddef>

namespace tuneserve::kernels::cpu {

struct AdamWHyper {
  double lr = 5e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled: param *= 1 - lr * weight_decay before the Adam step
  long step = 1;              // 1-based count of updates, for bias correction
  float grad_scale = 1.0f;    // gradients are used as grad * grad_scale (grad-norm clipping fused in)
};

// param (N), grad (N), m (N) first moment, v (N) second moment.
void adamw_update(float* param, const float* grad, float* m, float* v, std::size_t n,
                  const AdamWHyper& hyper);

// adamw_update runs a range of at most this many elements on the calling thread and splits a larger
// one into ranges of this size over the OpenMP threads.
inline constexpr std::size_t kAdamWChunk = 65536;

// Sum of x[i]^2 over n elements in double (16 partial sums; serial: the caller splits the work).
double sum_squares(const float* x, std::size_t n);

}  // namespace tuneserve::kernels::cpu

namespace tuneserve {

// One parameter tensor for the fused optimizer update of any backend: value, gradient and the two
// AdamW moments (n elements each, memory of the backend's device), and whether weight decay applies
// (not to biases and LayerNorm weights).
struct OptimizerSlice {
  float* param = nullptr;
  const float* grad = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  std::size_t n = 0;
  bool decay = true;
};

}  // namespace tuneserve

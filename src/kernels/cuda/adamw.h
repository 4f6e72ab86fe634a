// AdamW and global gradient-norm clipping on the GPU. adamw_update is the twin of
// kernels/cpu/adamw.h (one tensor, same arithmetic: torch.optim.AdamW's single-tensor path);
// adamw_update_all is the fused form: every parameter tensor of the model in one launch, with the
// clip coefficient read from device memory so that clipping needs no host round trip.
//
// Dimensions: N elements of one tensor; P tensors, N_p elements of tensor p.
// Writes in place: param, m, v (=, the new state). Reads grad.
#pragma once

#include <cstddef>
#include <span>

#include "kernels/cpu/adamw.h"  // AdamWHyper

namespace tuneserve::cuda {

using kernels::cpu::AdamWHyper;

void adamw_update(float* param, const float* grad, float* m, float* v, std::size_t n, const AdamWHyper& hyper);

// One parameter tensor for the fused update (device pointers, N_p elements each): the backends'
// OptimizerSlice (kernels/cpu/adamw.h).
using ParamSlice = tuneserve::OptimizerSlice;

// Every slice updated with `hyper` (hyper.weight_decay only where slice.decay). Gradients are used
// as grad * hyper.grad_scale * (*grad_scale_device when not null).
void adamw_update_all(std::span<const ParamSlice> slices, const AdamWHyper& hyper,
                      const float* grad_scale_device = nullptr);

// torch.nn.utils.clip_grad_norm_ on device: *norm_device (double) = L2 norm of all gradients
// (sum of squares in double, a fixed reduction order), and, when clip_device is not null,
// *clip_device = min(1, max_norm / (norm + 1e-6)); 1 when max_norm <= 0 or the norm is not finite
// (train/optimizer.h clip_coefficient). Reads the slices' grad and n only.
void global_grad_norm(double* norm_device, float* clip_device, std::span<const ParamSlice> slices, double max_norm);

}  // namespace tuneserve::cuda

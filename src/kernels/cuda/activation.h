// Elementwise activations on the GPU, the twins of kernels/cpu/activation.h (same signatures, device
// pointers): exact GELU (erf), tanh, ReLU.
//
// Dimensions: N elements. Outputs: forward and backward write (=); in place allowed as on CPU.
#pragma once

#include <cstddef>

namespace tuneserve::cuda {

void gelu_forward(float* out, const float* inp, std::size_t N);
void gelu_backward(float* dinp, const float* inp, const float* dout, std::size_t N);  // inp: pre-activation

void tanh_forward(float* out, const float* inp, std::size_t N);
void tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N);  // out: tanh output

void relu_forward(float* out, const float* inp, std::size_t N);
void relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N);  // inp: pre-activation

}  // namespace tuneserve::cuda

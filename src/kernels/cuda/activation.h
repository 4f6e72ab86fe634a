// Elementwise activations on the GPU, the twins of kernels/cpu/activation.h (same signatures, device
// pointers): exact GELU (erf), tanh, ReLU.
//
// Dimensions: N elements. Outputs: forward and backward write (=); in place allowed as on CPU.
#pragma once

#include <cstddef>

namespace tuneserve::cuda {

void gelu_forward(float* out, const float* inp, std::size_t N);
void gelu_backward(float* dinp, const float* inp, const float* dout, std::size_t N);  // inp: pre-activation

// Training keeps cdf = Phi(inp) (N) instead of the GELU output, so backward evaluates no erf (the
// twins of engine2's kernels/cpu gelu_*_cdf): gelu_forward_cdf writes out and cdf; gelu_from_cdf
// rewrites out = inp * cdf; gelu_backward_cdf = gelu_backward from the saved cdf.
void gelu_forward_cdf(float* out, float* cdf, const float* inp, std::size_t N);
void gelu_from_cdf(float* out, const float* inp, const float* cdf, std::size_t N);
void gelu_backward_cdf(float* dinp, const float* inp, const float* cdf, const float* dout, std::size_t N);

void tanh_forward(float* out, const float* inp, std::size_t N);
void tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N);  // out: tanh output

void relu_forward(float* out, const float* inp, std::size_t N);
void relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N);  // inp: pre-activation

// a (N) += b (N): the residual adds between kernels (Backend::add).
void add(float* a, const float* b, std::size_t N);

}  // namespace tuneserve::cuda

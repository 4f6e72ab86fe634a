// Elementwise activations: exact GELU (erf, transformers' "gelu"), tanh (BERT pooler, RoBERTa
// head), ReLU (DistilBERT pre_classifier).
//
// Dimensions: N elements. Outputs: forward and backward write (=); in-place (out == inp) is allowed
// in forward, and dinp == dout is allowed in backward.
#pragma once

#include <cstddef>

namespace tuneserve {

void gelu_forward(float* out, const float* inp, std::size_t N);
void gelu_backward(float* dinp, const float* inp, const float* dout, std::size_t N);  // inp: pre-activation

// Training keeps cdf = Phi(inp) (N) instead of the GELU output, so backward evaluates no erf:
// gelu_forward_cdf writes out and cdf; gelu_from_cdf rewrites out = inp * cdf (bitwise what
// gelu_forward writes, barring underflow); gelu_backward_cdf equals gelu_backward within an ulp
// or two (a different multiply-add is fused).
void gelu_forward_cdf(float* out, float* cdf, const float* inp, std::size_t N);
void gelu_from_cdf(float* out, const float* inp, const float* cdf, std::size_t N);
void gelu_backward_cdf(float* dinp, const float* inp, const float* cdf, const float* dout, std::size_t N);

void tanh_forward(float* out, const float* inp, std::size_t N);
void tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N);  // out: tanh output

void relu_forward(float* out, const float* inp, std::size_t N);
void relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N);  // inp: pre-activation

}  // namespace tuneserve

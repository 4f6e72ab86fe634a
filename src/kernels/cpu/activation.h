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

void tanh_forward(float* out, const float* inp, std::size_t N);
void tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N);  // out: tanh output

void relu_forward(float* out, const float* inp, std::size_t N);
void relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N);  // inp: pre-activation

}  // namespace tuneserve

// Multi-head scaled dot-product self-attention with a padding mask and dropout on the probabilities,
// reading Q, K, V from one fused projection.
//
// Dimensions: B batch, T tokens, C hidden, NH heads, HS = C / NH.
// qkv (B, T, 3C): per token [q (C) | k (C) | v (C)], head h at columns h*HS.. of each third.
// mask (B, T): 1 = attend to this key, 0 = padding (null: all keys). A row with no key to attend
// to gets uniform probabilities, as softmax over transformers' all-min scores does.
// Outputs: forward writes (=) out (B, T, C) and att (B, NH, T, T) (softmax probabilities before
// dropout; may be null when no backward follows). backward writes (=) dqkv (B, T, 3C).
#pragma once

#include <cstdint>

#include "kernels/cpu/dropout.h"

namespace tuneserve {

void attention_forward(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                       int NH, float dropout_p, const DropoutKey& key);

// The same for any head size with plain loops; attention_forward/backward use register-blocked
// paths when HS is a multiple of 16, and these otherwise (and as their test reference).
void attention_forward_generic(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T,
                               int C, int NH, float dropout_p, const DropoutKey& key);

void attention_backward_generic(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T,
                                int C, int NH, float dropout_p, const DropoutKey& key);

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH, float dropout_p, const DropoutKey& key);

}  // namespace tuneserve

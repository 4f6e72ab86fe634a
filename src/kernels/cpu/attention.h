// Multi-head scaled dot-product self-attention with a padding mask and dropout on the probabilities,
// reading Q, K, V from one fused projection.
//
// Dimensions: B batch, T tokens, C hidden, NH heads, HS = C / NH.
// qkv (B, T, 3C): per token [q (C) | k (C) | v (C)], head h at columns h*HS.. of each third.
// mask (B, T): 1 = attend to this key, 0 = padding (null: all keys). A row with no key to attend
// to gets uniform probabilities, as softmax over transformers' all-min scores does.
// Queries may be limited to the first Tq tokens of each row (AttentionRows::queries; Tq = T by
// default): every token is still a key. Outputs: forward writes (=) out (B, Tq, C) and att
// (B, NH, Tq, T) (softmax probabilities before dropout; may be null when no backward follows).
// backward reads dout (B, Tq, C) and writes (=) dqkv (B, T, 3C) (dq rows >= Tq are zero).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/cpu/dropout.h"

namespace tuneserve {

// Which query rows run and where the dropout mask of the probabilities comes from. The defaults are
// the plain (B, T) layout. A caller that runs one packed sequence of a padded batch alone (B = 1,
// T = its length) sets key_T to the padded length and key_offset to b*NH*key_T*key_T, so the mask
// bits equal those of the padded call.
struct AttentionRows {
  int queries = 0;               // Tq: the first Tq tokens of each row are queries (0: all T)
  int key_T = 0;                 // probability (b, h, t, t2) drops by element
  std::uint64_t key_offset = 0;  //   key_offset + ((b*NH + h)*key_T + t)*key_T + t2   (key_T 0: T)
};

void attention_forward(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                       int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows = {});

// Inference in bf16 (no probabilities kept, no dropout): out (B, Tq, C) is the output rounded to bf16
// (to nearest even), the operand of the bf16 product that reads it next. On a CPU with AVX512-BF16 and
// a head size that is a multiple of 32, Q K^T and P V are bf16 products, as under PyTorch's bf16
// autocast: Q (times 1/sqrt(HS)), K, V and the probabilities rounded to bf16, fp32 accumulation, the
// softmax in fp32. Elsewhere it is attention_forward's fp32 result, rounded.
void attention_forward_bf16(Bf16* out, const float* qkv, const std::int32_t* mask, int B, int T, int C, int NH,
                            const AttentionRows& rows = {});

// The same for any head size with plain loops; attention_forward/backward use register-blocked
// paths when HS is a multiple of 16, and these otherwise (and as their test reference).
void attention_forward_generic(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T,
                               int C, int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows = {});

void attention_backward_generic(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T,
                                int C, int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows = {});

void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows = {});

}  // namespace tuneserve

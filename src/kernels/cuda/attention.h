// Multi-head self-attention on the GPU. attention_forward/backward are the twins of
// kernels/cpu/attention.h (padded (B, T) rows with a key mask, probabilities kept in att);
// attention_varlen_* run on packed sequences (cu_seqlens) without padding and keep only one
// log-sum-exp per row and head, recomputing probabilities in backward (FlashAttention-2's scheme:
// tiles of keys in shared memory, online softmax).
//
// Dimensions: B batch, T tokens, C hidden, NH heads, HS = C / NH (32, 64 or 128 here), S sequences,
// R packed rows (R = cu_seqlens[S]).
// qkv (rows, 3C): per token [q | k | v], head h at columns h*HS.. of each third.
// Dropout on the probabilities: element (sequence s, head h, query t, key t2) uses the mask bit of
// index ((s*NH + h)*W + t)*W + t2 of the Philox stream, W the padded width (T for the padded API),
// which is the CPU twin's index: a packed batch reproduces the padded batch's masks bit for bit.
// The padded API takes the CPU twin's AttentionRows: queries limited to the first Tq tokens (out
// (B, Tq, C), att (B, NH, Tq, T), dq rows >= Tq zero) and the dropout index offset/width.
// Outputs: forward writes (=) out, att / lse; backward writes (=) dqkv for every row of a sequence.
#pragma once

#include <cstdint>

#include "kernels/cpu/attention.h"  // AttentionRows
#include "kernels/cpu/dropout.h"    // DropoutKey

namespace tuneserve::cuda {

// qkv (B, T, 3C), mask (B, T) 1 = attend (null: all keys; a row with no key gets uniform
// probabilities, as on CPU). out (B, Tq, C); att (B, NH, Tq, T) softmax before dropout, may be null.
void attention_forward(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                       int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows = {});
// dqkv (B, T, 3C) from dout (B, Tq, C), qkv and att as saved by attention_forward.
void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                        int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows = {});

// qkv (R, 3C) packed; cu_seqlens (S + 1) device offsets, cu_seqlens[0] = 0, lengths >= 1;
// max_seqlen >= every length. out (R, C); lse (R, NH) log-sum-exp of each row's scores, kept for
// backward (may be null at inference). dropout_width W >= max_seqlen (see above).
void attention_varlen_forward(float* out, float* lse, const float* qkv, const std::int32_t* cu_seqlens, int S,
                              int max_seqlen, int C, int NH, float dropout_p, const DropoutKey& key,
                              int dropout_width);
// dqkv (R, 3C) from dout (R, C) and the forward's qkv, out and lse.
void attention_varlen_backward(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                               const std::int32_t* cu_seqlens, int S, int max_seqlen, int C, int NH, float dropout_p,
                               const DropoutKey& key, int dropout_width);

}  // namespace tuneserve::cuda

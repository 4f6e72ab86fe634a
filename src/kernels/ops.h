// The checked kernel layer between the model and a Backend's raw kernels (CTranslate2's split of an
// op's checks from its per-device bodies): each op takes Tensor views, checks that every tensor lives
// on the backend's device, has the dtype the op computes in and a shape consistent with the others,
// then calls the raw kernel with pointers and sizes. A mismatch is an Error naming the op, the
// argument and both shapes, never an out-of-bounds kernel.
//
// Dtypes: activations, statistics, gradients and losses are F32. The linear family computes in the
// dtype of its operands: F32 x F32, or BF16 x BF16 with fp32 accumulation and F32 outputs (inputs
// rounded by convert()); a device without bf16 products says so (supports()).
//
// Dimensions: N rows (tokens), C hidden, B batch, T tokens per row, Tq query rows, NH heads,
// M rows, K input features, Nout output features.
#pragma once

#include <memory>
#include <string>

#include "core/tensor.h"
#include "kernels/backend.h"

namespace tuneserve::ops {

// True when `backend` computes products in `dtype` here; else false and `why` says what is missing.
bool supports(const Backend& backend, DType dtype, std::string* why = nullptr);
// Error "<what>: <why>" unless supports(backend, dtype).
void require(const Backend& backend, DType dtype, const std::string& what);

// ---- memory glue
void copy(const Backend& k, const Tensor& dst, const Tensor& src);  // same dtype and numel
void zero(const Backend& k, const Tensor& dst);
void add(const Backend& k, const Tensor& a, const Tensor& b);       // a += b, F32, same numel
// dst = src rounded to dst's dtype (F32 -> BF16) or widened (BF16 -> F32); same numel.
void convert(const Backend& k, const Tensor& dst, const Tensor& src);

// ---- embeddings: out (N, C); ids, pos, types (N) I32 (types may be empty); wte (V, C), wpe (P, C),
// wtt (TV, C) or empty.
void embedding_forward(const Backend& k, const Tensor& out, const Tensor& ids, const Tensor& pos, const Tensor& types,
                       const Tensor& wte, const Tensor& wpe, const Tensor& wtt);
void embedding_backward(const Backend& k, const Tensor& dwte, const Tensor& dwpe, const Tensor& dwtt,
                        const Tensor& dout, const Tensor& ids, const Tensor& pos, const Tensor& types);

// ---- LayerNorm over rows of C: out, inp (N, C); mean, rstd (N) or empty; weight, bias (C).
void layernorm_forward(const Backend& k, const Tensor& out, const Tensor& mean, const Tensor& rstd, const Tensor& inp,
                       const Tensor& weight, const Tensor& bias, float eps);
// res = a + b, out = LN(res); out16 (N, C) BF16, when given: out rounded to bf16 (to_bf16's rounding),
// written in the same pass (a device without bf16 products says so).
void residual_layernorm_forward(const Backend& k, const Tensor& out, const Tensor& res, const Tensor& mean,
                                const Tensor& rstd, const Tensor& a, const Tensor& b, const Tensor& weight,
                                const Tensor& bias, float eps, const Tensor& out16 = {});
void layernorm_backward(const Backend& k, const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                        const Tensor& dout, const Tensor& inp, const Tensor& weight, const Tensor& mean,
                        const Tensor& rstd);

// ---- elementwise (every tensor the same numel)
void gelu_forward_cdf(const Backend& k, const Tensor& out, const Tensor& cdf, const Tensor& inp);
void gelu_from_cdf(const Backend& k, const Tensor& out, const Tensor& inp, const Tensor& cdf);
void gelu_backward_cdf(const Backend& k, const Tensor& dinp, const Tensor& inp, const Tensor& cdf, const Tensor& dout);
void tanh_forward(const Backend& k, const Tensor& out, const Tensor& inp);
void tanh_backward(const Backend& k, const Tensor& dinp, const Tensor& out, const Tensor& dout);
void relu_forward(const Backend& k, const Tensor& out, const Tensor& inp);
void relu_backward(const Backend& k, const Tensor& dinp, const Tensor& inp, const Tensor& dout);
void dropout_forward(const Backend& k, const Tensor& out, const Tensor& inp, float p, const DropoutKey& key,
                     std::uint64_t index0);
void dropout_backward(const Backend& k, const Tensor& dinp, const Tensor& dout, float p, const DropoutKey& key,
                      std::uint64_t index0);

// ---- attention: qkv (B, T, 3C); mask (B, T) I32 or empty; out (B, Tq, C); att (B, NH, Tq, T) or
// empty (forward); Tq = rows.queries or T. out may be BF16 at inference (no att, no dropout):
// attention_forward_bf16 (kernels/cpu/attention.h; a device without bf16 products says so).
void attention_forward(const Backend& k, const Tensor& out, const Tensor& att, const Tensor& qkv, const Tensor& mask,
                       int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows);
void attention_backward(const Backend& k, const Tensor& dqkv, const Tensor& dout, const Tensor& qkv, const Tensor& att,
                        int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows);

// ---- linear: out (M, Nout) F32, rows out.stride() apart = inp (M, K) @ weight (Nout, K)^T + bias
// (Nout, F32, or empty); inp and weight both F32 or both BF16.
void linear_forward(const Backend& k, const Tensor& out, const Tensor& inp, const Tensor& weight, const Tensor& bias);
// dinp (M, K) F32 or empty (=); dweight (Nout, K) F32 (+=); dbias (Nout) or empty (+=); dout (M, Nout)
// F32, rows dout.stride() apart; inp, weight as in linear_forward.
void linear_backward(const Backend& k, const Tensor& dinp, const Tensor& dweight, const Tensor& dbias,
                     const Tensor& dout, const Tensor& inp, const Tensor& weight);
// An inference layer over weight (Nout, K) F32 and bias (Nout) or empty, computing in `dtype`.
std::unique_ptr<PreparedLinear> prepare_linear(const Backend& k, const Tensor& weight, const Tensor& bias,
                                               LinearActivation activation, DType dtype);
// out (M, Nout) F32 (rows out.stride() apart) = the prepared layer applied to inp (M, K) F32, for the
// first `rows` rows (-1: all M); the layer may also compute the others (PreparedLinear::rows_to_hold).
void prepared_forward(const PreparedLinear& layer, const Tensor& out, const Tensor& inp, std::int64_t rows = -1);

// ---- losses (returned to the host): logits (B, K); targets (B) I32 for cross-entropy, else the
// logits' shape F32.
float cross_entropy_forward(const Backend& k, const Tensor& logits, const Tensor& targets);
void cross_entropy_backward(const Backend& k, const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                            float dloss);
float bce_with_logits_forward(const Backend& k, const Tensor& logits, const Tensor& targets);
void bce_with_logits_backward(const Backend& k, const Tensor& dlogits, const Tensor& logits, const Tensor& targets,
                              float dloss);
float mse_forward(const Backend& k, const Tensor& pred, const Tensor& targets);
void mse_backward(const Backend& k, const Tensor& dpred, const Tensor& pred, const Tensor& targets, float dloss);

}  // namespace tuneserve::ops

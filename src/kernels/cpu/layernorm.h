// LayerNorm over the last dimension, as torch.nn.LayerNorm (biased variance, eps inside the sqrt).
//
// Dimensions: N rows (tokens), C features.
// Outputs: forward writes (=) out, mean, rstd (mean/rstd may be null at inference).
// backward writes (=) dinp and ACCUMULATES (+=) dweight, dbias.
#pragma once

#include "core/dtype.h"

namespace tuneserve {

// out (N, C) = (inp - mean) * rstd * weight + bias; mean, rstd (N) saved for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, float eps);

// The residual sum and the LayerNorm in one pass: res (N, C) = a + b (res may alias a or b),
// then out = LayerNorm(res) as above. Post-LN encoders do this twice per layer.
void residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* a, const float* b,
                                const float* weight, const float* bias, int N, int C, float eps);

// The same, also writing out16 (N, C) = out rounded to bf16 (to nearest even: what to_bf16 makes of
// it), the operand of the bf16 product that reads the output next, in the pass that writes out.
void residual_layernorm_forward_bf16(float* out, Bf16* out16, float* res, float* mean, float* rstd, const float* a,
                                     const float* b, const float* weight, const float* bias, int N, int C, float eps);

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);

}  // namespace tuneserve

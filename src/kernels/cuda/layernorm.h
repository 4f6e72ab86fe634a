// LayerNorm on the GPU, the twin of kernels/cpu/layernorm.h (torch.nn.LayerNorm: biased variance,
// eps inside the sqrt; statistics in fp32).
//
// Dimensions: N rows (tokens), C features.
// Outputs: forward writes (=) out, mean, rstd (mean/rstd may be null at inference).
// backward writes (=) dinp and ACCUMULATES (+=) dweight, dbias.
#pragma once

namespace tuneserve::cuda {

// out (N, C) = (inp - mean) * rstd * weight + bias; mean, rstd (N) saved for backward.
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, float eps);

// res (N, C) = a + b (res may alias a or b), then out = LayerNorm(res) as above.
void residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* a, const float* b,
                                const float* weight, const float* bias, int N, int C, float eps);

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C);

}  // namespace tuneserve::cuda

// Linear layers on the GPU through cuBLASLt, the twin of kernels/cpu/matmul.h: y = x W^T + b with
// W stored as PyTorch does (N, K). fp32 (no TF32: exact parity with the CPU) and bf16 inputs with
// fp32 accumulation and fp32 outputs (torch.autocast's bf16 matrix products, fp32 master weights).
//
// Dimensions: M rows (tokens), K input features, N output features.
// Outputs: *_forward write (=) out. *_backward write (=) dinp and ACCUMULATE (+=) dweight and dbias.
#pragma once

#include "kernels/cuda/runtime.h"  // Bf16

namespace tuneserve::cuda {

// out (M, N) = inp (M, K) @ weight (N, K)^T + bias (N); bias may be null. Rows of out lie out_stride
// floats apart (0: N), so a product can fill some columns of a wider tensor (K and V of a QKV row).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N,
                    int out_stride = 0);

// dinp (M, K) = dout (M, N) @ weight (N, K)            (written; skipped when dinp is null)
// dweight (N, K) += dout^T (N, M) @ inp (M, K)         (accumulated)
// dbias (N) += sum over rows of dout                   (accumulated; skipped when null)
// Rows of dout lie dout_stride floats apart (0: N).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N, int dout_stride = 0);

// The same with bf16 operands (inp and weight rounded to bf16 by the caller, e.g. to_bf16 once per
// step for weights), fp32 accumulation and fp32 out/dinp/dweight/dbias. dout is fp32 and rounded to
// bf16 inside for the two products; dbias sums the fp32 dout. Rows contiguous (no strides yet).
void matmul_forward_bf16(float* out, const Bf16* inp, const Bf16* weight, const float* bias, int M, int K, int N);
void matmul_backward_bf16(float* dinp, float* dweight, float* dbias, const float* dout, const Bf16* inp,
                          const Bf16* weight, int M, int K, int N);

}  // namespace tuneserve::cuda

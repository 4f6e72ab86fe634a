// Bias helpers of the linear layers (internal to the CUDA backend).
//
// Dimensions: M rows, N columns.
#pragma once

namespace tuneserve::cuda {

// out (M, N) += bias (N) broadcast over rows; rows of out ld floats apart (ld >= N).
void add_bias(float* out, const float* bias, int M, int N, int ld);
// dbias (N) += column sums of dout (M, N); rows of dout ld floats apart (ld >= N).
void accumulate_bias_grad(float* dbias, const float* dout, int M, int N, int ld);

}  // namespace tuneserve::cuda

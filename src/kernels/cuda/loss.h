// Losses of the sequence-classification heads on the GPU, the twins of kernels/cpu/loss.h:
// cross-entropy (ignore_index -100), BCE-with-logits, MSE; means, accumulated in double.
// The forwards return the loss to the host and so synchronise; cross_entropy_backward synchronises
// too, to throw for a target outside [0, K) as the CPU does (it then leaves dlogits unwritten).
//
// Dimensions: B rows, K labels. Outputs: *_backward write (=) dlogits. All pointers are device memory.
#pragma once

#include <cstdint>

namespace tuneserve::cuda {

float cross_entropy_forward(const float* logits, const std::int32_t* targets, int B, int K);
void cross_entropy_backward(float* dlogits, const float* logits, const std::int32_t* targets, int B, int K,
                            float dloss);

float bce_with_logits_forward(const float* logits, const float* targets, int N);
void bce_with_logits_backward(float* dlogits, const float* logits, const float* targets, int N, float dloss);

float mse_forward(const float* pred, const float* targets, int N);
void mse_backward(float* dpred, const float* pred, const float* targets, int N, float dloss);

}  // namespace tuneserve::cuda

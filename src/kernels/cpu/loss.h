// Losses of the sequence-classification heads, as transformers computes them by problem_type:
// cross-entropy (single label, ignore_index -100), BCE-with-logits (multi label), MSE (regression).
// All are means; dloss is d(total objective)/d(loss) (e.g. 1/accumulation steps).
//
// Dimensions: B rows, K labels (num_labels). Outputs: *_backward write (=) dlogits.
#pragma once

#include <cstdint>

namespace tuneserve {

// logits (B, K), targets (B) class ids in [0, K) or -100 (ignored). Mean over non-ignored rows;
// 0 when every row is ignored. Throws Error for a target outside [0, K).
float cross_entropy_forward(const float* logits, const std::int32_t* targets, int B, int K);
void cross_entropy_backward(float* dlogits, const float* logits, const std::int32_t* targets, int B, int K,
                            float dloss);

// logits, targets (N) with N = B*K; mean over all N elements.
float bce_with_logits_forward(const float* logits, const float* targets, int N);
void bce_with_logits_backward(float* dlogits, const float* logits, const float* targets, int N, float dloss);

// pred, targets (N); mean squared error over N.
float mse_forward(const float* pred, const float* targets, int N);
void mse_backward(float* dpred, const float* pred, const float* targets, int N, float dloss);

}  // namespace tuneserve

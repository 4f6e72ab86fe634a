// Losses on the GPU. Batches are small (B rows of K logits), so each loss runs in one block of 256
// threads with double accumulation, like the CPU twin; the result travels back in a small struct.
//
// Dimensions: B rows, K labels, N = B*K elements.
#include "kernels/cuda/loss.h"

#include <climits>

#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
constexpr std::int32_t kIgnoreIndex = -100;
constexpr int kThreads = 256;

struct LossResult {
  double total;
  int count;    // rows with a target (cross-entropy)
  int bad_row;  // first row whose target is outside [0, K); INT_MAX when none
};

__device__ double log_sum_exp(const float* x, int K) {
  float m = x[0];
  for (int k = 1; k < K; ++k) m = fmaxf(m, x[k]);
  double s = 0.0;
  for (int k = 0; k < K; ++k) s += exp(static_cast<double>(x[k]) - m);
  return m + log(s);
}

// Count of rows with targets and the first bad row, shared by the whole block.
__device__ void scan_targets(const std::int32_t* targets, int B, int K, int* count, int* bad_row) {
  __shared__ int s_count, s_bad;
  if (threadIdx.x == 0) {
    s_count = 0;
    s_bad = INT_MAX;
  }
  __syncthreads();
  int n = 0;
  for (int b = threadIdx.x; b < B; b += blockDim.x) {
    const int t = targets[b];
    if (t == kIgnoreIndex) continue;
    if (t < 0 || t >= K) atomicMin(&s_bad, b);
    ++n;
  }
  atomicAdd(&s_count, n);
  __syncthreads();
  *count = s_count;
  *bad_row = s_bad;
}

__global__ void cross_entropy_forward_kernel(LossResult* result, const float* logits, const std::int32_t* targets,
                                             int B, int K) {
  int count, bad;
  scan_targets(targets, B, K, &count, &bad);
  double total = 0.0;
  if (bad == INT_MAX) {
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
      if (targets[b] == kIgnoreIndex) continue;
      const float* x = logits + static_cast<std::size_t>(b) * K;
      total += log_sum_exp(x, K) - x[targets[b]];
    }
  }
  total = block_sum(total);
  if (threadIdx.x == 0) *result = {total, count, bad};
}

__global__ void cross_entropy_backward_kernel(LossResult* result, float* dlogits, const float* logits,
                                              const std::int32_t* targets, int B, int K, float dloss) {
  int count, bad;
  scan_targets(targets, B, K, &count, &bad);
  if (threadIdx.x == 0) *result = {0.0, count, bad};
  if (bad != INT_MAX) return;
  for (int b = threadIdx.x; b < B; b += blockDim.x) {
    const float* x = logits + static_cast<std::size_t>(b) * K;
    float* g = dlogits + static_cast<std::size_t>(b) * K;
    if (targets[b] == kIgnoreIndex || count == 0) {
      for (int k = 0; k < K; ++k) g[k] = 0.0f;
      continue;
    }
    const double lse = log_sum_exp(x, K);
    for (int k = 0; k < K; ++k) {
      const double p = exp(static_cast<double>(x[k]) - lse);
      g[k] = static_cast<float>((p - (k == targets[b] ? 1.0 : 0.0)) * dloss / count);
    }
  }
}

__global__ void bce_forward_kernel(LossResult* result, const float* logits, const float* targets, int N) {
  double total = 0.0;
  for (int i = threadIdx.x; i < N; i += blockDim.x) {
    const double x = logits[i], y = targets[i];
    total += fmax(x, 0.0) - x * y + log1p(exp(-fabs(x)));
  }
  total = block_sum(total);
  if (threadIdx.x == 0) *result = {total, N, INT_MAX};
}

__global__ void mse_forward_kernel(LossResult* result, const float* pred, const float* targets, int N) {
  double total = 0.0;
  for (int i = threadIdx.x; i < N; i += blockDim.x) {
    const double d = static_cast<double>(pred[i]) - targets[i];
    total += d * d;
  }
  total = block_sum(total);
  if (threadIdx.x == 0) *result = {total, N, INT_MAX};
}

__global__ void bce_backward_kernel(float* dlogits, const float* logits, const float* targets, int N, float dloss) {
  for (std::size_t i = grid_index(); i < static_cast<std::size_t>(N); i += grid_stride()) {
    const double s = 1.0 / (1.0 + exp(-static_cast<double>(logits[i])));
    dlogits[i] = static_cast<float>((s - targets[i]) * dloss / N);
  }
}

__global__ void mse_backward_kernel(float* dpred, const float* pred, const float* targets, int N, float dloss) {
  for (std::size_t i = grid_index(); i < static_cast<std::size_t>(N); i += grid_stride())
    dpred[i] = static_cast<float>(2.0 * (static_cast<double>(pred[i]) - targets[i]) * dloss / N);
}

// Copies the result back and throws, with the CPU twin's message, for a bad target.
LossResult fetch(const Scratch& scratch, const std::int32_t* targets, int K) {
  TUNESERVE_CUDA_LAUNCHED();
  LossResult r;
  copy_to_host(&r, scratch.as<LossResult>(), sizeof r);
  if (r.bad_row != INT_MAX) {
    std::int32_t label = 0;
    copy_to_host(&label, targets + r.bad_row, sizeof label);
    fail_label_range(label, r.bad_row, K);
  }
  return r;
}
}  // namespace

float cross_entropy_forward(const float* logits, const std::int32_t* targets, int B, int K) {
  if (B <= 0) return 0.0f;
  Scratch scratch(sizeof(LossResult));
  cross_entropy_forward_kernel<<<1, kThreads, 0, stream()>>>(scratch.as<LossResult>(), logits, targets, B, K);
  const LossResult r = fetch(scratch, targets, K);
  return r.count == 0 ? 0.0f : static_cast<float>(r.total / r.count);
}

void cross_entropy_backward(float* dlogits, const float* logits, const std::int32_t* targets, int B, int K,
                            float dloss) {
  if (B <= 0) return;
  Scratch scratch(sizeof(LossResult));
  cross_entropy_backward_kernel<<<1, kThreads, 0, stream()>>>(scratch.as<LossResult>(), dlogits, logits, targets,
                                                               B, K, dloss);
  fetch(scratch, targets, K);
}

float bce_with_logits_forward(const float* logits, const float* targets, int N) {
  if (N <= 0) return 0.0f;
  Scratch scratch(sizeof(LossResult));
  bce_forward_kernel<<<1, kThreads, 0, stream()>>>(scratch.as<LossResult>(), logits, targets, N);
  return static_cast<float>(fetch(scratch, nullptr, 0).total / N);
}

void bce_with_logits_backward(float* dlogits, const float* logits, const float* targets, int N, float dloss) {
  if (N <= 0) return;
  bce_backward_kernel<<<blocks_for(N, kThreads), kThreads, 0, stream()>>>(dlogits, logits, targets, N, dloss);
  TUNESERVE_CUDA_LAUNCHED();
}

float mse_forward(const float* pred, const float* targets, int N) {
  if (N <= 0) return 0.0f;
  Scratch scratch(sizeof(LossResult));
  mse_forward_kernel<<<1, kThreads, 0, stream()>>>(scratch.as<LossResult>(), pred, targets, N);
  return static_cast<float>(fetch(scratch, nullptr, 0).total / N);
}

void mse_backward(float* dpred, const float* pred, const float* targets, int N, float dloss) {
  if (N <= 0) return;
  mse_backward_kernel<<<blocks_for(N, kThreads), kThreads, 0, stream()>>>(dpred, pred, targets, N, dloss);
  TUNESERVE_CUDA_LAUNCHED();
}

}  // namespace tuneserve::cuda

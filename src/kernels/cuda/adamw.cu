// AdamW and the global gradient norm on the GPU. The fused update walks all tensors as one index
// range: each thread finds its tensor by binary search over the tensors' start offsets.
//
// Dimensions: P tensors, N_p elements of tensor p, total = sum N_p.
#include "kernels/cuda/adamw.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
// Scalars computed on the host in double and applied in fp32, as the CPU twin does.
struct AdamWScalars {
  float decay, one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps, grad_scale;
};

AdamWScalars scalars(const AdamWHyper& h) {
  const double bias_correction1 = 1.0 - std::pow(h.beta1, static_cast<double>(h.step));
  const double bias_correction2 = 1.0 - std::pow(h.beta2, static_cast<double>(h.step));
  return {static_cast<float>(1.0 - h.lr * h.weight_decay), static_cast<float>(1.0 - h.beta1),
          static_cast<float>(h.beta2),                     static_cast<float>(1.0 - h.beta2),
          static_cast<float>(h.lr / bias_correction1),     static_cast<float>(std::sqrt(bias_correction2)),
          static_cast<float>(h.eps),                       h.grad_scale};
}

__device__ __forceinline__ void adamw_element(float* param, const float* grad, float* m, float* v, std::size_t i,
                                              const AdamWScalars& s, bool decay, float grad_scale) {
  float p = param[i];
  if (decay) p *= s.decay;
  const float g = grad[i] * grad_scale;
  const float mi = m[i] + s.one_minus_beta1 * (g - m[i]);  // torch's lerp for weight < 0.5
  const float vi = v[i] * s.beta2 + s.one_minus_beta2 * g * g;
  const float denom = sqrtf(vi) / s.bias_correction2_sqrt + s.eps;
  param[i] = p - s.step_size * (mi / denom);
  m[i] = mi;
  v[i] = vi;
}

__global__ void adamw_kernel(float* param, const float* grad, float* m, float* v, std::size_t n, AdamWScalars s,
                             bool decay) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride())
    adamw_element(param, grad, m, v, i, s, decay, s.grad_scale);
}

// starts (P + 1): prefix sums of the slices' sizes.
__global__ void adamw_all_kernel(const ParamSlice* slices, const std::size_t* starts, int P, std::size_t total,
                                 AdamWScalars s, const float* grad_scale_device) {
  const float scale = s.grad_scale * (grad_scale_device ? *grad_scale_device : 1.0f);
  for (std::size_t e = grid_index(); e < total; e += grid_stride()) {
    int lo = 0, hi = P - 1;  // last slice whose start <= e
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (starts[mid] <= e) lo = mid;
      else hi = mid - 1;
    }
    const ParamSlice& p = slices[lo];
    adamw_element(p.param, p.grad, p.m, p.v, e - starts[lo], s, p.decay, scale);
  }
}

constexpr int kNormThreads = 256;
constexpr unsigned kNormBlocks = 256;

// Per-block partial sums of squares over the concatenated gradients, then one block adds them in a
// fixed order: the same norm bit for bit on every run.
__global__ void sum_squares_kernel(double* partial, const ParamSlice* slices, const std::size_t* starts, int P,
                                   std::size_t total) {
  double sum = 0.0;
  int slice = 0;
  for (std::size_t e = grid_index(); e < total; e += grid_stride()) {
    while (starts[slice + 1] <= e) ++slice;  // e only grows: walk forward
    const double g = slices[slice].grad[e - starts[slice]];
    sum += g * g;
  }
  sum = block_sum(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = sum;
}

__global__ void finish_norm_kernel(double* norm, float* clip, const double* partial, int count, double max_norm) {
  double sum = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partial[i];
  sum = block_sum(sum);
  if (threadIdx.x != 0) return;
  const double n = sqrt(sum);
  *norm = n;
  if (clip) *clip = (max_norm <= 0.0 || !isfinite(n)) ? 1.0f : static_cast<float>(fmin(1.0, max_norm / (n + 1e-6)));
}

// The slices and their start offsets uploaded to device memory for one call.
struct SliceTable {
  explicit SliceTable(std::span<const ParamSlice> slices)
      : bytes_slices(slices.size() * sizeof(ParamSlice)),
        memory(bytes_slices + (slices.size() + 1) * sizeof(std::size_t)) {
    std::vector<std::size_t> starts(slices.size() + 1, 0);
    for (std::size_t i = 0; i < slices.size(); ++i) starts[i + 1] = starts[i] + slices[i].n;
    total = starts.back();
    std::vector<unsigned char> host(bytes_slices + starts.size() * sizeof(std::size_t));
    std::memcpy(host.data(), slices.data(), bytes_slices);
    std::memcpy(host.data() + bytes_slices, starts.data(), starts.size() * sizeof(std::size_t));
    copy_to_device(memory.as<void>(), host.data(), host.size());
  }
  const ParamSlice* slices() const { return memory.as<const ParamSlice>(); }
  const std::size_t* starts() const {
    return reinterpret_cast<const std::size_t*>(memory.as<const unsigned char>() + bytes_slices);
  }
  std::size_t bytes_slices;
  Scratch memory;
  std::size_t total = 0;
};
}  // namespace

void adamw_update(float* param, const float* grad, float* m, float* v, std::size_t n, const AdamWHyper& hyper) {
  if (n == 0) return;
  adamw_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(param, grad, m, v, n, scalars(hyper),
                                                         hyper.weight_decay != 0.0);
  TUNESERVE_CUDA_LAUNCHED();
}

void adamw_update_all(std::span<const ParamSlice> slices, const AdamWHyper& hyper, const float* grad_scale_device) {
  if (slices.empty()) return;
  const SliceTable table(slices);
  if (table.total == 0) return;
  AdamWScalars s = scalars(hyper);
  if (hyper.weight_decay == 0.0) s.decay = 1.0f;  // decay flag per slice; 1.0 keeps the value exactly
  adamw_all_kernel<<<blocks_for(table.total, 256), 256, 0, stream()>>>(
      table.slices(), table.starts(), static_cast<int>(slices.size()), table.total, s, grad_scale_device);
  TUNESERVE_CUDA_LAUNCHED();
}

void global_grad_norm(double* norm_device, float* clip_device, std::span<const ParamSlice> slices, double max_norm) {
  const SliceTable table(slices);
  Scratch partial(kNormBlocks * sizeof(double));
  if (table.total == 0) {
    zero(partial.as<void>(), kNormBlocks * sizeof(double));
  } else {
    sum_squares_kernel<<<kNormBlocks, kNormThreads, 0, stream()>>>(partial.as<double>(), table.slices(), table.starts(),
                                                                   static_cast<int>(slices.size()), table.total);
    TUNESERVE_CUDA_LAUNCHED();
  }
  finish_norm_kernel<<<1, kNormThreads, 0, stream()>>>(norm_device, clip_device, partial.as<double>(), kNormBlocks,
                                                       max_norm);
  TUNESERVE_CUDA_LAUNCHED();
}

}  // namespace tuneserve::cuda

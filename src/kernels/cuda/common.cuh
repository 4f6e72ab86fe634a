// Internal helpers of the CUDA backend: error checks, launch geometry, stream-ordered scratch memory,
// warp reductions. Included by this folder's .cu/.cpp files only.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>

#include "kernels/cuda/runtime.h"

namespace tuneserve::cuda {

// Errors raised from nvcc-compiled files, formatted in errors.cpp (fmt's compile-time format
// checks do not build under nvcc). fail_cuda names the call, its CUDA error and where.
[[noreturn]] void fail_cuda(cudaError_t err, const char* what, const char* file, int line);
[[noreturn]] void fail_message(const std::string& message);
// The CPU loss's message for a class id outside [0, K).
[[noreturn]] void fail_label_range(int label, int row, int K);

inline void check(cudaError_t err, const char* what, const char* file, int line) {
  if (err != cudaSuccess) fail_cuda(err, what, file, line);
}

inline cudaStream_t stream() { return current_stream(); }

// Blocks of `threads` covering n items, capped (kernels loop with a grid stride past the cap).
inline unsigned blocks_for(std::size_t n, unsigned threads, unsigned cap = 65535u * 8u) {
  const std::size_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b == 0 ? 1 : (b < cap ? b : cap));
}

// Device memory for the duration of one host call, freed in stream order.
class Scratch {
 public:
  explicit Scratch(std::size_t bytes) : ptr_(allocate(bytes)) {}
  ~Scratch() {  // a failure here would also be reported by the next checked call; clear it instead
    if (ptr_ && cudaFreeAsync(ptr_, stream()) != cudaSuccess) cudaGetLastError();
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }

 private:
  void* ptr_;
};

#if defined(__CUDACC__)
// Grid-stride loops: for (std::size_t i = grid_index(); i < n; i += grid_stride())
__device__ __forceinline__ std::size_t grid_index() { return blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; }
__device__ __forceinline__ std::size_t grid_stride() { return std::size_t{gridDim.x} * blockDim.x; }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over a block of blockDim.x threads (a multiple of 32, at most 1024); every thread gets it.
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_sum(v);
  __syncthreads();  // partial may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : 0.0;
  return warp_sum(v);
}
#endif

}  // namespace tuneserve::cuda

#define TUNESERVE_CUDA_CHECK(call) ::tuneserve::cuda::check((call), #call, __FILE__, __LINE__)
// After every <<<launch>>>: a bad configuration is reported at the launch, not at the next sync.
#define TUNESERVE_CUDA_LAUNCHED() ::tuneserve::cuda::check(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// CUDA runtime calls behind kernels/cuda/runtime.h: device discovery, the per-thread stream,
// stream-ordered memory and copies, each failure turned into a tuneserve::Error that names the call.
#include "kernels/cuda/runtime.h"

#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
thread_local Stream g_stream = nullptr;  // null: the legacy default stream
}  // namespace

int device_count(std::string* why_none) {
  int n = 0;  // without a driver cudaGetDeviceCount fails and leaves n untouched
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear it so a later call does not report it again
    if (why_none)
      *why_none = fmt::format("cudaGetDeviceCount: {} ({})", cudaGetErrorString(err), cudaGetErrorName(err));
    return 0;
  }
  if (n == 0 && why_none) *why_none = "cudaGetDeviceCount reports no CUDA device";
  return n;
}

void set_device(int index) {
  std::string why;
  const int n = device_count(&why);
  if (n == 0) fail("device cuda:{}: no usable GPU ({})", index, why);
  if (index < 0 || index >= n) fail("device cuda:{}: no such GPU ({} visible: cuda:0..cuda:{})", index, n, n - 1);
  TUNESERVE_CUDA_CHECK(cudaSetDevice(index));
}

void set_stream(Stream s) { g_stream = s; }
Stream current_stream() { return g_stream; }

void synchronize() {
  TUNESERVE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
  TUNESERVE_CUDA_CHECK(cudaGetLastError());
}

void* allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t err = cudaMallocAsync(&p, bytes, g_stream);
  if (err != cudaSuccess)
    fail("CUDA: cannot allocate {} bytes of device memory: {}", bytes, cudaGetErrorString(err));
  return p;
}

void deallocate(void* ptr) {
  if (ptr) TUNESERVE_CUDA_CHECK(cudaFreeAsync(ptr, g_stream));
}

void copy_to_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  TUNESERVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream));
  TUNESERVE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

void copy_to_host(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  TUNESERVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream));
  TUNESERVE_CUDA_CHECK(cudaStreamSynchronize(g_stream));
}

void copy_device(void* dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  TUNESERVE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream));
}

void zero(void* dst, std::size_t bytes) {
  if (bytes == 0) return;
  TUNESERVE_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, g_stream));
}

}  // namespace tuneserve::cuda

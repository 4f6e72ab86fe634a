// Error messages of the CUDA backend, formatted here with fmt on behalf of the nvcc-compiled files.
#include <cuda_runtime.h>

#include "core/error.h"
#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

void fail_cuda(cudaError_t err, const char* what, const char* file, int line) {
  fail("CUDA error at {}:{}: {}: {} ({})", file, line, what, cudaGetErrorString(err), cudaGetErrorName(err));
}

void fail_message(const std::string& message) { throw Error("CUDA backend: " + message); }

void fail_label_range(int label, int row, int K) {
  fail("label {} of batch row {} is outside [0, {}) (num_labels)", label, row, K);
}

}  // namespace tuneserve::cuda

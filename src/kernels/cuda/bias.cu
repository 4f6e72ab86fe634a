// Bias broadcast and bias gradient (column sums) for the linear layers.
//
// Dimensions: M rows, N columns.
#include "kernels/cuda/bias.h"

#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
__global__ void add_bias_kernel(float* out, const float* bias, std::size_t total, int N, int ld) {
  for (std::size_t e = grid_index(); e < total; e += grid_stride()) out[e / N * ld + e % N] += bias[e % N];
}

// Block (32 columns x 8 row lanes) over a chunk of rows, partial sums met in shared memory and
// added atomically (one add per column per chunk).
constexpr int kRowsPerChunk = 512;
__global__ void bias_grad_kernel(float* dbias, const float* dout, int M, int N, int ld) {
  __shared__ float partial[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int r0 = blockIdx.y * kRowsPerChunk;
  const int r1 = min(M, r0 + kRowsPerChunk);
  float s = 0.0f;
  if (c < N)
    for (int i = r0 + static_cast<int>(threadIdx.y); i < r1; i += 8) s += dout[static_cast<std::size_t>(i) * ld + c];
  partial[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < N) {
    for (int k = 1; k < 8; ++k) s += partial[k][threadIdx.x];
    atomicAdd(dbias + c, s);
  }
}
}  // namespace

void add_bias(float* out, const float* bias, int M, int N, int ld) {
  const std::size_t total = static_cast<std::size_t>(M) * N;
  if (total == 0) return;
  add_bias_kernel<<<blocks_for(total, 256), 256, 0, stream()>>>(out, bias, total, N, ld);
  TUNESERVE_CUDA_LAUNCHED();
}

void accumulate_bias_grad(float* dbias, const float* dout, int M, int N, int ld) {
  if (M <= 0 || N <= 0) return;
  const dim3 grid(static_cast<unsigned>((N + 31) / 32), static_cast<unsigned>((M + kRowsPerChunk - 1) / kRowsPerChunk));
  bias_grad_kernel<<<grid, dim3(32, 8), 0, stream()>>>(dbias, dout, M, N, ld);
  TUNESERVE_CUDA_LAUNCHED();
}

}  // namespace tuneserve::cuda

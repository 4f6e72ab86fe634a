// LayerNorm on the GPU: one warp per row (two passes over the row, as the CPU computes mean then
// variance); parameter gradients as column sums over row chunks, added atomically per chunk.
//
// Dimensions: N rows, C features.
#include "kernels/cuda/layernorm.h"

#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
constexpr int kWarpsPerBlock = 8;

// res == nullptr: plain LayerNorm of a. Otherwise res = a + b first (res may alias a or b: each
// element is read before it is written, by the same lane).
__global__ void layernorm_forward_kernel(float* out, float* res, float* mean, float* rstd, const float* a,
                                         const float* b, const float* weight, const float* bias, int N, int C,
                                         float eps) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const std::size_t base = static_cast<std::size_t>(row) * C;
  const float* x = a + base;
  if (res) {
    for (int c = lane; c < C; c += 32) res[base + c] = a[base + c] + b[base + c];
    __syncwarp();
    x = res + base;
  }
  float s = 0.0f;
  for (int c = lane; c < C; c += 32) s += x[c];
  const float m = warp_sum(s) / static_cast<float>(C);
  float v = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = x[c] - m;
    v += d * d;
  }
  const float r = 1.0f / sqrtf(warp_sum(v) / static_cast<float>(C) + eps);  // not rsqrtf: as exact as the CPU
  float* y = out + base;
  for (int c = lane; c < C; c += 32) y[c] = (x[c] - m) * r * weight[c] + bias[c];
  if (lane == 0) {
    if (mean) mean[row] = m;
    if (rstd) rstd[row] = r;
  }
}

__global__ void layernorm_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight,
                                      const float* mean, const float* rstd, int N, int C) {
  const int lane = threadIdx.x % 32;
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= N) return;
  const std::size_t base = static_cast<std::size_t>(row) * C;
  const float* x = inp + base;
  const float* dy = dout + base;
  const float m = mean[row], s = rstd[row];
  float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float dnorm = dy[c] * weight[c];
    dnorm_mean += dnorm;
    dnorm_norm_mean += dnorm * (x[c] - m) * s;
  }
  dnorm_mean = warp_sum(dnorm_mean) / static_cast<float>(C);
  dnorm_norm_mean = warp_sum(dnorm_norm_mean) / static_cast<float>(C);
  float* dx = dinp + base;  // may alias dout: each element read before written by the same lane
  for (int c = lane; c < C; c += 32) {
    const float norm = (x[c] - m) * s;
    dx[c] = (dy[c] * weight[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
  }
}

// Block (32 columns x 8 row lanes) over a chunk of rows; the 8 partial sums meet in shared memory.
constexpr int kRowsPerChunk = 256;
__global__ void layernorm_params_kernel(float* dweight, float* dbias, const float* dout, const float* inp,
                                        const float* mean, const float* rstd, int N, int C) {
  __shared__ float sw[8][33], sb[8][33];
  const int c = blockIdx.x * 32 + threadIdx.x;
  const int r0 = blockIdx.y * kRowsPerChunk;
  const int r1 = min(N, r0 + kRowsPerChunk);
  float dw = 0.0f, db = 0.0f;
  if (c < C) {
    for (int i = r0 + static_cast<int>(threadIdx.y); i < r1; i += 8) {
      const std::size_t e = static_cast<std::size_t>(i) * C + c;
      dw += dout[e] * (inp[e] - mean[i]) * rstd[i];
      db += dout[e];
    }
  }
  sw[threadIdx.y][threadIdx.x] = dw;
  sb[threadIdx.y][threadIdx.x] = db;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    for (int k = 1; k < 8; ++k) {
      dw += sw[k][threadIdx.x];
      db += sb[k][threadIdx.x];
    }
    atomicAdd(dweight + c, dw);
    atomicAdd(dbias + c, db);
  }
}

void launch_forward(float* out, float* res, float* mean, float* rstd, const float* a, const float* b,
                    const float* weight, const float* bias, int N, int C, float eps) {
  if (N <= 0 || C <= 0) return;
  const unsigned blocks = static_cast<unsigned>((N + kWarpsPerBlock - 1) / kWarpsPerBlock);
  layernorm_forward_kernel<<<blocks, 32 * kWarpsPerBlock, 0, stream()>>>(out, res, mean, rstd, a, b, weight, bias,
                                                                          N, C, eps);
  TUNESERVE_CUDA_LAUNCHED();
}
}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, int N, int C, float eps) {
  launch_forward(out, nullptr, mean, rstd, inp, nullptr, weight, bias, N, C, eps);
}

void residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* a, const float* b,
                                const float* weight, const float* bias, int N, int C, float eps) {
  launch_forward(out, res, mean, rstd, a, b, weight, bias, N, C, eps);
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int N, int C) {
  if (N <= 0 || C <= 0) return;
  // Parameter sums first: dinp may alias dout (the CPU twin reads dout for both too).
  const dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>((N + kRowsPerChunk - 1) / kRowsPerChunk));
  layernorm_params_kernel<<<grid, dim3(32, 8), 0, stream()>>>(dweight, dbias, dout, inp, mean, rstd, N, C);
  TUNESERVE_CUDA_LAUNCHED();
  const unsigned blocks = static_cast<unsigned>((N + kWarpsPerBlock - 1) / kWarpsPerBlock);
  layernorm_dinp_kernel<<<blocks, 32 * kWarpsPerBlock, 0, stream()>>>(dinp, dout, inp, weight, mean, rstd, N, C);
  TUNESERVE_CUDA_LAUNCHED();
}

}  // namespace tuneserve::cuda

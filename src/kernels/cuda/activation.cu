// Elementwise activations on the GPU: one thread per element, grid-stride.
//
// Dimensions: N elements.
#include "kernels/cuda/activation.h"

#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

struct GeluForward {
  __device__ float operator()(float x) const { return 0.5f * x * (1.0f + erff(x * kInvSqrt2)); }
};
struct TanhForward {
  __device__ float operator()(float x) const { return tanhf(x); }
};
struct ReluForward {
  // NaN stays NaN, as torch.relu and the CPU kernel keep it.
  __device__ float operator()(float x) const { return x <= 0.0f ? 0.0f : x; }
};
// Backward functors: (saved value, upstream gradient) -> input gradient.
struct GeluBackward {
  __device__ float operator()(float x, float g) const {
    const float cdf = 0.5f * (1.0f + erff(x * kInvSqrt2));
    const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
    return g * (cdf + x * pdf);
  }
};
struct TanhBackward {
  __device__ float operator()(float y, float g) const { return g * (1.0f - y * y); }
};
struct ReluBackward {
  __device__ float operator()(float x, float g) const { return x > 0.0f ? g : 0.0f; }
};
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};

template <typename F>
__global__ void unary_kernel(float* out, const float* inp, std::size_t n, F f) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride()) out[i] = f(inp[i]);
}
template <typename F>
__global__ void binary_kernel(float* out, const float* saved, const float* g, std::size_t n, F f) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride()) out[i] = f(saved[i], g[i]);
}

__global__ void gelu_forward_cdf_kernel(float* out, float* cdf, const float* inp, std::size_t n) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride()) {
    const float x = inp[i];
    const float phi = 0.5f * (1.0f + erff(x * kInvSqrt2));
    cdf[i] = phi;
    out[i] = x * phi;  // = 0.5 x (1 + erf): the factor 0.5 is exact
  }
}
__global__ void gelu_from_cdf_kernel(float* out, const float* inp, const float* cdf, std::size_t n) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride()) out[i] = inp[i] * cdf[i];
}
__global__ void gelu_backward_cdf_kernel(float* dinp, const float* inp, const float* cdf, const float* dout,
                                         std::size_t n) {
  for (std::size_t i = grid_index(); i < n; i += grid_stride()) {
    const float x = inp[i];
    dinp[i] = dout[i] * (cdf[i] + x * (kInvSqrt2Pi * expf(-0.5f * x * x)));
  }
}

template <typename F>
void unary(float* out, const float* inp, std::size_t n, F f) {
  if (n == 0) return;
  unary_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, inp, n, f);
  TUNESERVE_CUDA_LAUNCHED();
}
template <typename F>
void binary(float* out, const float* saved, const float* g, std::size_t n, F f) {
  if (n == 0) return;
  binary_kernel<<<blocks_for(n, 256), 256, 0, stream()>>>(out, saved, g, n, f);
  TUNESERVE_CUDA_LAUNCHED();
}
}  // namespace

void gelu_forward(float* out, const float* inp, std::size_t N) { unary(out, inp, N, GeluForward{}); }
void gelu_backward(float* dinp, const float* inp, const float* dout, std::size_t N) {
  binary(dinp, inp, dout, N, GeluBackward{});
}
void gelu_forward_cdf(float* out, float* cdf, const float* inp, std::size_t N) {
  if (N == 0) return;
  gelu_forward_cdf_kernel<<<blocks_for(N, 256), 256, 0, stream()>>>(out, cdf, inp, N);
  TUNESERVE_CUDA_LAUNCHED();
}
void gelu_from_cdf(float* out, const float* inp, const float* cdf, std::size_t N) {
  if (N == 0) return;
  gelu_from_cdf_kernel<<<blocks_for(N, 256), 256, 0, stream()>>>(out, inp, cdf, N);
  TUNESERVE_CUDA_LAUNCHED();
}
void gelu_backward_cdf(float* dinp, const float* inp, const float* cdf, const float* dout, std::size_t N) {
  if (N == 0) return;
  gelu_backward_cdf_kernel<<<blocks_for(N, 256), 256, 0, stream()>>>(dinp, inp, cdf, dout, N);
  TUNESERVE_CUDA_LAUNCHED();
}
void tanh_forward(float* out, const float* inp, std::size_t N) { unary(out, inp, N, TanhForward{}); }
void tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N) {
  binary(dinp, out, dout, N, TanhBackward{});
}
void relu_forward(float* out, const float* inp, std::size_t N) { unary(out, inp, N, ReluForward{}); }
void relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N) {
  binary(dinp, inp, dout, N, ReluBackward{});
}

void add(float* a, const float* b, std::size_t N) { binary(a, a, b, N, Add{}); }

}  // namespace tuneserve::cuda

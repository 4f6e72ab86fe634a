// The CUDA Backend table: runtime.h memory and copies, the kernel twins, cuBLASLt products for
// prepared inference layers, and the fused optimizer kernels (they take OptimizerSlice itself).
//
// Dimensions: M rows, K inputs, N outputs of a linear layer; P optimizer slices.
#include "kernels/cuda/backend.h"

#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/activation.h"
#include "kernels/cuda/adamw.h"
#include "kernels/cuda/attention.h"
#include "kernels/cuda/dropout.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/loss.h"
#include "kernels/cuda/matmul.h"
#include "kernels/cuda/runtime.h"

namespace tuneserve::cuda {

namespace {

// matmul_*_bf16 (matmul.h) exist, but take no row strides yet and have no prepared inference form, so
// the table does not offer bf16 products on the GPU: ops.h says so to a bf16 model instead of failing
// inside a layer.
bool bf16_available(std::string* why) {
  if (why) *why = "bf16 products on CUDA are not in the kernel table yet (no strided outputs or prepared bf16 layers); use fp32";
  return false;
}

// TODO(cuda speed): a bf16 copy of W (matmul_forward_bf16) and a fused bias+GELU epilogue plug in here.
class CudaPreparedLinear final : public PreparedLinear {
 public:
  CudaPreparedLinear(const float* weight, const float* bias, int K, int N, LinearActivation activation)
      : PreparedLinear(K, N, DType::F32), weight_(weight), bias_(bias), K_(K), N_(N), activation_(activation) {}
  void forward(void* out_, DType out_dtype, const void* inp_, DType inp_dtype, int M, int out_stride,
               int /*held*/) const override {
    if (out_dtype != DType::F32 || inp_dtype != DType::F32)
      fail("CUDA prepared linear: operands in {} and {}; only fp32 is prepared on the GPU", dtype_name(inp_dtype),
           dtype_name(out_dtype));
    float* out = static_cast<float*>(out_);
    const float* inp = static_cast<const float*>(inp_);
    if (activation_ == LinearActivation::Gelu && out_stride != 0 && out_stride != N_)
      fail("CUDA prepared linear: GELU into strided rows (stride {}, N {}) is not supported", out_stride, N_);
    matmul_forward(out, inp, weight_, bias_, M, K_, N_, out_stride);
    if (activation_ == LinearActivation::Gelu)
      gelu_forward(out, out, static_cast<std::size_t>(M) * static_cast<std::size_t>(N_));
  }

 private:
  const float* weight_;
  const float* bias_;
  int K_;
  int N_;
  LinearActivation activation_;
};

std::unique_ptr<PreparedLinear> prepare_linear(const float* weight, const float* bias, int K, int N,
                                               LinearActivation activation, DType dtype) {
  std::string why;
  if (dtype != DType::F32 && !bf16_available(&why)) fail("CUDA prepared linear: {}", why);
  return std::make_unique<CudaPreparedLinear>(weight, bias, K, N, activation);
}

double grad_norm(std::span<const OptimizerSlice> slices) {
  double* d_norm = static_cast<double*>(allocate(sizeof(double)));
  double norm = 0.0;
  try {
    global_grad_norm(d_norm, nullptr, slices, 0.0);
    copy_to_host(&norm, d_norm, sizeof(double));
  } catch (...) {
    deallocate(d_norm);
    throw;
  }
  deallocate(d_norm);
  return norm;
}

void adamw_update_all_slices(std::span<const OptimizerSlice> slices, const AdamWHyper& hyper) {
  adamw_update_all(slices, hyper, nullptr);
}

Backend make_cuda_backend() {
  Backend b{};
  b.device = Device{Device::Kind::cuda, 0};
  b.allocate = allocate;
  b.deallocate = deallocate;
  b.upload = copy_to_device;
  b.download = copy_to_host;
  b.copy = copy_device;
  b.zero = zero;
  b.synchronize = synchronize;
  b.add = add;
#define TUNESERVE_SET(name) b.name = name;
  TUNESERVE_BACKEND_KERNELS(TUNESERVE_SET)
#undef TUNESERVE_SET
  b.prepare_linear = prepare_linear;
  b.prepared_rows = [](int M) { return M; };
  b.bf16_available = bf16_available;
  b.to_bf16 = to_bf16;
  b.from_bf16 = from_bf16;
  b.grad_norm = grad_norm;
  b.adamw_update_all = adamw_update_all_slices;
  return b;
}

}  // namespace

const Backend& backend() {
  static const Backend table = make_cuda_backend();
  return table;
}

}  // namespace tuneserve::cuda

// The kernels and memory operations of one device, as a table of functions with the CPU kernels'
// signatures and semantics (kernels/cpu/*.h; the CUDA twins in kernels/cuda/ have the same ones),
// raw: pointers and sizes, no checks. The model reaches them through kernels/ops.h, which checks
// shapes, dtypes and devices first; the optimizer calls its two entries directly. So neither holds a
// device test or an #ifdef; backend_for() in kernels/dispatch.cpp is the one place that picks a table.
//
// Dtypes: every entry computes in fp32 except the bf16 ones (to_bf16 / from_bf16, matmul_*_bf16 and
// prepare_linear with DType::BF16): bf16 operands, fp32 accumulation and outputs; the inference
// kernels residual_layernorm_forward_bf16 and attention_forward_bf16 also write their output as the
// bf16 operand of the next product (kernels/cpu/layernorm.h, attention.h). They are null, or
// bf16_available() says why not, where a device has no bf16 products.
//
// Pointers given to a Backend's functions are memory of its device (allocate()), except where a
// parameter is named host_*. On a GPU, work is ordered on the device's stream and the host is
// synchronised only by download(), synchronize() and the functions that return a value to the host
// (the loss forwards, grad_norm).
//
// Dimensions: as in each kernel's CPU header; n elements, bytes in bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "kernels/device.h"
#include "kernels/cpu/activation.h"
#include "kernels/cpu/adamw.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/dropout.h"
#include "kernels/cpu/embedding.h"
#include "kernels/cpu/layernorm.h"
#include "kernels/cpu/loss.h"
#include "kernels/cpu/matmul.h"

namespace tuneserve {

enum class LinearActivation { None, Gelu };

// An inference linear layer prepared once per weight version, in fp32 or bf16: the CPU packs W into
// oneDNN's blocked layout (as bf16 for bf16 products) with GELU fused. Reads the weight and bias given
// at preparation until destroyed (the model rebuilds it after any weight change). Thread-safe.
class PreparedLinear {
 public:
  PreparedLinear(int K, int N, DType dtype) : in_features(K), out_features(N), dtype(dtype) {}
  virtual ~PreparedLinear() = default;
  // out (M, N) = act(inp (M, K) @ W^T + b); rows of out out_stride elements apart (0: N). held: the
  // rows out and inp hold (0: M); the layer may run the product on all of them (their inputs may hold
  // any values; their outputs are overwritten). inp and out are fp32, or, in a layer with bf16
  // products, either may be bf16: a bf16 inp is read as it is, a bf16 out is the fp32 result rounded
  // to nearest even (what to_bf16 would make of it), and is not strided.
  virtual void forward(void* out, DType out_dtype, const void* inp, DType inp_dtype, int M, int out_stride,
                       int held) const = 0;
  const int in_features;   // K
  const int out_features;  // N
  const DType dtype;       // of the products: F32 or BF16
};

struct Backend {
  Device device;

  // ---- memory (bytes). allocate never returns null for bytes > 0 (throws instead); 64-byte aligned.
  void* (*allocate)(std::size_t bytes);
  void (*deallocate)(void* p);                                       // null: no-op
  void (*upload)(void* dst, const void* host_src, std::size_t bytes);  // blocks until copied
  void (*download)(void* host_dst, const void* src, std::size_t bytes);  // blocks until copied
  void (*copy)(void* dst, const void* src, std::size_t bytes);         // device to device
  void (*zero)(void* dst, std::size_t bytes);
  void (*synchronize)();  // waits for queued work; throws the first asynchronous error

  // ---- glue between kernels
  void (*add)(float* a, const float* b, std::size_t n);  // a (n) += b (n)

  // ---- kernels (kernels/cpu/*.h for what each computes and which outputs are = or +=)
  decltype(&tuneserve::embedding_forward) embedding_forward;
  decltype(&tuneserve::embedding_backward) embedding_backward;
  decltype(&tuneserve::layernorm_forward) layernorm_forward;
  decltype(&tuneserve::residual_layernorm_forward) residual_layernorm_forward;
  decltype(&tuneserve::layernorm_backward) layernorm_backward;
  decltype(&tuneserve::gelu_forward_cdf) gelu_forward_cdf;
  decltype(&tuneserve::gelu_from_cdf) gelu_from_cdf;
  decltype(&tuneserve::gelu_backward_cdf) gelu_backward_cdf;
  decltype(&tuneserve::tanh_forward) tanh_forward;
  decltype(&tuneserve::tanh_backward) tanh_backward;
  decltype(&tuneserve::relu_forward) relu_forward;
  decltype(&tuneserve::relu_backward) relu_backward;
  decltype(&tuneserve::dropout_forward) dropout_forward;
  decltype(&tuneserve::dropout_backward) dropout_backward;
  decltype(&tuneserve::attention_forward) attention_forward;
  decltype(&tuneserve::attention_backward) attention_backward;
  decltype(&tuneserve::matmul_forward) matmul_forward;
  decltype(&tuneserve::matmul_backward) matmul_backward;
  // weight (N, K) and bias (N) fp32; products in `dtype` (F32, or BF16 where bf16_available()).
  std::unique_ptr<PreparedLinear> (*prepare_linear)(const float* weight, const float* bias, int K, int N,
                                                    LinearActivation activation, DType dtype);
  // The rows a prepared layer's buffers should hold for a forward of M rows (>= M): the CPU builds
  // its kernels per row count and runs a few padded counts instead of building one for each M.
  int (*prepared_rows)(int M);

  // ---- bf16 products (kernels/cpu/convert.h, kernels/cpu/matmul.h): true when this device runs
  // them now, else false with the reason in *why (the entries below may then be null).
  bool (*bf16_available)(std::string* why);
  decltype(&tuneserve::to_bf16) to_bf16;
  decltype(&tuneserve::from_bf16) from_bf16;
  decltype(&tuneserve::matmul_forward_bf16) matmul_forward_bf16;
  decltype(&tuneserve::matmul_backward_bf16) matmul_backward_bf16;
  // Inference kernels that write their output as the bf16 operand of the next product.
  decltype(&tuneserve::residual_layernorm_forward_bf16) residual_layernorm_forward_bf16;
  decltype(&tuneserve::attention_forward_bf16) attention_forward_bf16;
  // Losses: the forwards return the mean loss to the host.
  decltype(&tuneserve::cross_entropy_forward) cross_entropy_forward;
  decltype(&tuneserve::cross_entropy_backward) cross_entropy_backward;
  decltype(&tuneserve::bce_with_logits_forward) bce_with_logits_forward;
  decltype(&tuneserve::bce_with_logits_backward) bce_with_logits_backward;
  decltype(&tuneserve::mse_forward) mse_forward;
  decltype(&tuneserve::mse_backward) mse_backward;

  // ---- optimizer (train/optimizer.h)
  // sqrt(sum over slices of ||grad||^2), accumulated in double, returned to the host.
  double (*grad_norm)(std::span<const OptimizerSlice> slices);
  // torch.optim.AdamW over every slice (hyper.weight_decay only where slice.decay; gradients used
  // as grad * hyper.grad_scale).
  void (*adamw_update_all)(std::span<const OptimizerSlice> slices, const kernels::cpu::AdamWHyper& hyper);
};

// The kernel entries named as their kernels (kernels/cpu and kernels/cuda spell them alike), so a
// table fills them in one line: #define SET(name) b.name = name;  TUNESERVE_BACKEND_KERNELS(SET)
#define TUNESERVE_BACKEND_KERNELS(X)                                                                  \
  X(embedding_forward) X(embedding_backward) X(layernorm_forward) X(residual_layernorm_forward)       \
  X(layernorm_backward) X(gelu_forward_cdf) X(gelu_from_cdf) X(gelu_backward_cdf) X(tanh_forward)     \
  X(tanh_backward) X(relu_forward) X(relu_backward) X(dropout_forward) X(dropout_backward)            \
  X(attention_forward) X(attention_backward) X(matmul_forward) X(matmul_backward)                     \
  X(cross_entropy_forward) X(cross_entropy_backward) X(bce_with_logits_forward)                       \
  X(bce_with_logits_backward) X(mse_forward) X(mse_backward)
// The bf16 entries, for tables that have them.
#define TUNESERVE_BACKEND_BF16_KERNELS(X)                                                  \
  X(to_bf16) X(from_bf16) X(matmul_forward_bf16) X(matmul_backward_bf16)                    \
  X(residual_layernorm_forward_bf16) X(attention_forward_bf16)

// The table of `device`, after require_device(device) (a clear error when it is not usable; on a
// GPU it also makes that GPU current on the calling thread, so call it on each thread that runs
// work). The CPU table always exists; the CUDA one only in a -DTUNESERVE_CUDA=ON build.
const Backend& backend_for(const Device& device);

// The CPU table (kernels/cpu/backend.cpp), for code that wants it without a Device.
const Backend& cpu_backend();

// TESTS ONLY: makes backend_for() and require_device() answer every device of `kind` with `backend`
// (e.g. an emulated GPU standing in for cuda on a machine without one); null restores the real table.
// Not thread-safe against concurrent backend_for calls: install before, uninstall after the test.
void set_backend_for_tests(Device::Kind kind, const Backend* backend);

// Memory of a backend, released with it; the one device-buffer type (it replaces core/device.h's
// DeviceBuffer, whose users move here). Move-only; empty by default.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const Backend& backend, std::size_t bytes);
  DeviceBuffer(const Device& device, std::size_t bytes) : DeviceBuffer(backend_for(device), bytes) {}
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* data() const { return data_; }
  template <typename T>
  T* as() const { return static_cast<T*>(data_); }
  std::size_t bytes() const { return bytes_; }
  const Backend& backend() const { return *backend_; }

  // Copies from/to host memory (bytes must not exceed bytes()); both block until done.
  void upload(const void* host, std::size_t bytes);
  void download(void* host, std::size_t bytes) const;

 private:
  void release() noexcept;
  const Backend* backend_ = nullptr;
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

}  // namespace tuneserve

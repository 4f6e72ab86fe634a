// The emulated GPU of emulated_backend.h: a memfd mapped twice (device view PROT_NONE, host view
// read/write), a size-class allocator over it, and a Backend table whose functions check and
// translate every device pointer, then call the CPU table.
//
// Dimensions: as in each kernel's CPU header; bytes in bytes.
#include "emulated_backend.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace tuneserve::testing {

namespace {

constexpr std::size_t kRegionBytes = std::size_t{32} << 30;  // address space only; pages on touch
constexpr std::size_t kMinBlock = 256;
constexpr std::size_t kReleaseBlock = std::size_t{1} << 20;  // freed blocks this big give pages back

// Device memory: allocations at offsets of the shared file, reachable from the host only through
// `host` (kernels) and never through `device` (what callers hold).
class Region {
 public:
  Region() {
    fd_ = memfd_create("tuneserve-emulated-gpu", MFD_CLOEXEC);
    if (fd_ < 0) fail("emulated GPU: memfd_create failed: {}", std::strerror(errno));
    if (ftruncate(fd_, static_cast<off_t>(kRegionBytes)) != 0)
      fail("emulated GPU: ftruncate failed: {}", std::strerror(errno));
    void* h = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    void* d = mmap(nullptr, kRegionBytes, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
    if (h == MAP_FAILED || d == MAP_FAILED) fail("emulated GPU: mmap failed: {}", std::strerror(errno));
    host_ = static_cast<unsigned char*>(h);
    device_ = static_cast<unsigned char*>(d);
  }

  void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    const std::size_t block = std::bit_ceil(std::max(bytes, kMinBlock));
    const int cls = std::countr_zero(block);
    std::size_t offset;
    {
      const std::lock_guard lock(mutex_);
      auto& free_list = free_[cls];
      if (!free_list.empty()) {
        offset = free_list.back();
        free_list.pop_back();
      } else {
        const std::size_t align = std::min<std::size_t>(block, 4096);
        offset = (next_ + align - 1) / align * align;
        if (offset + block > kRegionBytes)
          fail("emulated GPU: out of memory allocating {} bytes ({} in use)", bytes, in_use_);
        next_ = offset + block;
      }
      live_[offset] = bytes;
      in_use_ += bytes;
    }
    // Fresh memory reads as NaN, so a kernel reading what nothing wrote shows in bitwise comparisons.
    std::memset(host_ + offset, 0xFF, bytes);
    return device_ + offset;
  }

  void deallocate(void* p) {
    if (!p) return;
    const std::lock_guard lock(mutex_);
    const std::size_t offset = offset_of(p);
    auto it = live_.find(offset);
    if (offset >= kRegionBytes || it == live_.end())
      fail("emulated GPU: deallocate of {} which is not the start of a live device allocation", p);
    const std::size_t block = std::bit_ceil(std::max(it->second, kMinBlock));
    in_use_ -= it->second;
    live_.erase(it);
    if (block >= kReleaseBlock)
      fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                static_cast<off_t>(block));
    free_[std::countr_zero(block)].push_back(offset);
  }

  // The host view of `p`, after checking that [p, p + bytes) lies inside one live allocation.
  unsigned char* host(const void* p, std::size_t bytes, const char* function, const char* argument) {
    const std::size_t offset = offset_of(p);
    if (offset >= kRegionBytes)
      fail("emulated GPU: {}: argument '{}' = {} is not device memory (a host pointer given to a device "
           "function)", function, argument, p);
    const std::lock_guard lock(mutex_);
    auto it = live_.upper_bound(offset);
    if (it == live_.begin())
      fail("emulated GPU: {}: argument '{}' = {} is not in a live device allocation", function, argument, p);
    --it;
    const std::size_t end = it->first + it->second;
    if (offset >= end && !(bytes == 0 && offset == end))
      fail("emulated GPU: {}: argument '{}' = {} is not in a live device allocation (freed or never allocated)",
           function, argument, p);
    if (bytes > end - offset)
      fail("emulated GPU: {}: argument '{}' needs {} bytes but its allocation has {} left", function, argument,
           bytes, end - offset);
    return host_ + offset;
  }

  bool contains(const void* p) const { return offset_of(p) < kRegionBytes; }
  std::size_t in_use() {
    const std::lock_guard lock(mutex_);
    return in_use_;
  }

 private:
  std::size_t offset_of(const void* p) const {
    return static_cast<std::size_t>(reinterpret_cast<std::uintptr_t>(p) - reinterpret_cast<std::uintptr_t>(device_));
  }

  int fd_ = -1;
  unsigned char* host_ = nullptr;
  unsigned char* device_ = nullptr;
  std::mutex mutex_;
  std::size_t next_ = 0;
  std::size_t in_use_ = 0;
  std::map<std::size_t, std::size_t> live_;  // offset -> bytes requested
  std::map<int, std::vector<std::size_t>> free_;  // size class (log2 block) -> free offsets
};

Region& region() {
  static Region* r = new Region();  // never destroyed: buffers may outlive static destruction order
  return *r;
}

template <typename T>
constexpr std::size_t element_size() {
  if constexpr (std::is_void_v<std::remove_cv_t<T>>) return 1;
  else return sizeof(T);
}

// Device pointer p of `count` elements (T) as the CPU kernels' host pointer. Null passes only where
// the kernel allows it (`nullable`) or when nothing is read.
template <typename T>
T* dev(T* p, const char* function, const char* argument, std::size_t count, bool nullable = false) {
  if (!p) {
    if (!nullable && count != 0) fail("emulated GPU: {}: argument '{}' is null", function, argument);
    return nullptr;
  }
  unsigned char* h = region().host(p, count * element_size<T>(), function, argument);
  return reinterpret_cast<T*>(h);
}

// Host pointer given to upload/download: must NOT be device memory.
void require_host(const void* p, const char* function, const char* argument, std::size_t bytes) {
  if (bytes && !p) fail("emulated GPU: {}: argument '{}' is null", function, argument);
  if (region().contains(p))
    fail("emulated GPU: {}: argument '{}' = {} is device memory where host memory is expected", function,
         argument, p);
}

std::size_t zu(long long v) { return v > 0 ? static_cast<std::size_t>(v) : 0; }
// Elements spanned by `rows` rows of `width` floats, `stride` apart (0: width).
std::size_t strided(int rows, int width, int stride) {
  if (rows <= 0) return 0;
  return zu(static_cast<long long>(rows - 1) * (stride ? stride : width) + width);
}

const Backend& cpu() { return cpu_backend(); }

// ---- memory
void* e_allocate(std::size_t bytes) { return region().allocate(bytes); }
void e_deallocate(void* p) { region().deallocate(p); }
void e_upload(void* dst, const void* host_src, std::size_t bytes) {
  require_host(host_src, "upload", "host_src", bytes);
  cpu().upload(dev(dst, "upload", "dst", bytes), host_src, bytes);
}
void e_download(void* host_dst, const void* src, std::size_t bytes) {
  require_host(host_dst, "download", "host_dst", bytes);
  cpu().download(host_dst, dev(src, "download", "src", bytes), bytes);
}
void e_copy(void* dst, const void* src, std::size_t bytes) {
  cpu().copy(dev(dst, "copy", "dst", bytes), dev(src, "copy", "src", bytes), bytes);
}
void e_zero(void* dst, std::size_t bytes) { cpu().zero(dev(dst, "zero", "dst", bytes), bytes); }
void e_synchronize() {}
void e_add(float* a, const float* b, std::size_t n) { cpu().add(dev(a, "add", "a", n), dev(b, "add", "b", n), n); }

// ---- kernels
void e_embedding_forward(float* out, const std::int32_t* ids, const std::int32_t* pos, const std::int32_t* types,
                         const float* wte, const float* wpe, const float* wtt, int N, int C) {
  const char* f = "embedding_forward";
  const std::size_t n = zu(N);
  cpu().embedding_forward(dev(out, f, "out", n * zu(C)), dev(ids, f, "ids", n), dev(pos, f, "pos", n),
                          dev(types, f, "types", n, true), dev(wte, f, "wte", zu(C)), dev(wpe, f, "wpe", zu(C)),
                          dev(wtt, f, "wtt", zu(C), true), N, C);
}
void e_embedding_backward(float* dwte, float* dwpe, float* dwtt, const float* dout, const std::int32_t* ids,
                          const std::int32_t* pos, const std::int32_t* types, int N, int C) {
  const char* f = "embedding_backward";
  const std::size_t n = zu(N);
  cpu().embedding_backward(dev(dwte, f, "dwte", zu(C)), dev(dwpe, f, "dwpe", zu(C)), dev(dwtt, f, "dwtt", zu(C), true),
                           dev(dout, f, "dout", n * zu(C)), dev(ids, f, "ids", n), dev(pos, f, "pos", n),
                           dev(types, f, "types", n, true), N, C);
}
void e_layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int N, int C, float eps) {
  const char* f = "layernorm_forward";
  const std::size_t nc = zu(N) * zu(C);
  cpu().layernorm_forward(dev(out, f, "out", nc), dev(mean, f, "mean", zu(N), true), dev(rstd, f, "rstd", zu(N), true),
                          dev(inp, f, "inp", nc), dev(weight, f, "weight", zu(C)), dev(bias, f, "bias", zu(C)), N, C,
                          eps);
}
void e_residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* a, const float* b,
                                  const float* weight, const float* bias, int N, int C, float eps) {
  const char* f = "residual_layernorm_forward";
  const std::size_t nc = zu(N) * zu(C);
  cpu().residual_layernorm_forward(dev(out, f, "out", nc), dev(res, f, "res", nc), dev(mean, f, "mean", zu(N), true),
                                   dev(rstd, f, "rstd", zu(N), true), dev(a, f, "a", nc), dev(b, f, "b", nc),
                                   dev(weight, f, "weight", zu(C)), dev(bias, f, "bias", zu(C)), N, C, eps);
}
void e_layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int N, int C) {
  const char* f = "layernorm_backward";
  const std::size_t nc = zu(N) * zu(C);
  cpu().layernorm_backward(dev(dinp, f, "dinp", nc), dev(dweight, f, "dweight", zu(C)), dev(dbias, f, "dbias", zu(C)),
                           dev(dout, f, "dout", nc), dev(inp, f, "inp", nc), dev(weight, f, "weight", zu(C)),
                           dev(mean, f, "mean", zu(N)), dev(rstd, f, "rstd", zu(N)), N, C);
}
void e_gelu_forward_cdf(float* out, float* cdf, const float* inp, std::size_t N) {
  const char* f = "gelu_forward_cdf";
  cpu().gelu_forward_cdf(dev(out, f, "out", N), dev(cdf, f, "cdf", N), dev(inp, f, "inp", N), N);
}
void e_gelu_from_cdf(float* out, const float* inp, const float* cdf, std::size_t N) {
  const char* f = "gelu_from_cdf";
  cpu().gelu_from_cdf(dev(out, f, "out", N), dev(inp, f, "inp", N), dev(cdf, f, "cdf", N), N);
}
void e_gelu_backward_cdf(float* dinp, const float* inp, const float* cdf, const float* dout, std::size_t N) {
  const char* f = "gelu_backward_cdf";
  cpu().gelu_backward_cdf(dev(dinp, f, "dinp", N), dev(inp, f, "inp", N), dev(cdf, f, "cdf", N),
                          dev(dout, f, "dout", N), N);
}
void e_tanh_forward(float* out, const float* inp, std::size_t N) {
  cpu().tanh_forward(dev(out, "tanh_forward", "out", N), dev(inp, "tanh_forward", "inp", N), N);
}
void e_tanh_backward(float* dinp, const float* out, const float* dout, std::size_t N) {
  const char* f = "tanh_backward";
  cpu().tanh_backward(dev(dinp, f, "dinp", N), dev(out, f, "out", N), dev(dout, f, "dout", N), N);
}
void e_relu_forward(float* out, const float* inp, std::size_t N) {
  cpu().relu_forward(dev(out, "relu_forward", "out", N), dev(inp, "relu_forward", "inp", N), N);
}
void e_relu_backward(float* dinp, const float* inp, const float* dout, std::size_t N) {
  const char* f = "relu_backward";
  cpu().relu_backward(dev(dinp, f, "dinp", N), dev(inp, f, "inp", N), dev(dout, f, "dout", N), N);
}
void e_dropout_forward(float* out, const float* inp, std::size_t N, float p, const DropoutKey& key,
                       std::uint64_t index0) {
  const char* f = "dropout_forward";
  cpu().dropout_forward(dev(out, f, "out", N), dev(inp, f, "inp", N), N, p, key, index0);
}
void e_dropout_backward(float* dinp, const float* dout, std::size_t N, float p, const DropoutKey& key,
                        std::uint64_t index0) {
  const char* f = "dropout_backward";
  cpu().dropout_backward(dev(dinp, f, "dinp", N), dev(dout, f, "dout", N), N, p, key, index0);
}
void e_attention_forward(float* out, float* att, const float* qkv, const std::int32_t* mask, int B, int T, int C,
                         int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  const char* f = "attention_forward";
  const std::size_t Tq = zu(rows.queries ? rows.queries : T), bt = zu(B) * zu(T);
  cpu().attention_forward(dev(out, f, "out", zu(B) * Tq * zu(C)), dev(att, f, "att", zu(B) * zu(NH) * Tq * zu(T), true),
                          dev(qkv, f, "qkv", bt * 3 * zu(C)), dev(mask, f, "mask", bt, true), B, T, C, NH, dropout_p,
                          key, rows);
}
void e_attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                          int NH, float dropout_p, const DropoutKey& key, const AttentionRows& rows) {
  const char* f = "attention_backward";
  const std::size_t Tq = zu(rows.queries ? rows.queries : T), bt = zu(B) * zu(T);
  cpu().attention_backward(dev(dqkv, f, "dqkv", bt * 3 * zu(C)), dev(dout, f, "dout", zu(B) * Tq * zu(C)),
                           dev(qkv, f, "qkv", bt * 3 * zu(C)), dev(att, f, "att", zu(B) * zu(NH) * Tq * zu(T)), B, T,
                           C, NH, dropout_p, key, rows);
}
void e_matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N,
                      int out_stride) {
  const char* f = "matmul_forward";
  cpu().matmul_forward(dev(out, f, "out", strided(M, N, out_stride)), dev(inp, f, "inp", zu(M) * zu(K)),
                       dev(weight, f, "weight", zu(N) * zu(K)), dev(bias, f, "bias", zu(N), true), M, K, N,
                       out_stride);
}
void e_matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int M, int K, int N, int dout_stride) {
  const char* f = "matmul_backward";
  cpu().matmul_backward(dev(dinp, f, "dinp", zu(M) * zu(K), true), dev(dweight, f, "dweight", zu(N) * zu(K)),
                        dev(dbias, f, "dbias", zu(N), true), dev(dout, f, "dout", strided(M, N, dout_stride)),
                        dev(inp, f, "inp", zu(M) * zu(K)), dev(weight, f, "weight", zu(N) * zu(K)), M, K, N,
                        dout_stride);
}

class EmulatedPreparedLinear final : public PreparedLinear {
 public:
  EmulatedPreparedLinear(const float* weight, const float* bias, int K, int N, LinearActivation activation,
                         DType dtype)
      : PreparedLinear(K, N, dtype),
        inner_(cpu().prepare_linear(dev(weight, "prepare_linear", "weight", zu(N) * zu(K)),
                                    dev(bias, "prepare_linear", "bias", zu(N), true), K, N, activation, dtype)),
        K_(K),
        N_(N) {}
  void forward(void* out, DType out_dtype, const void* inp, DType inp_dtype, int M, int out_stride,
               int held) const override {
    const char* f = "PreparedLinear::forward";
    const int rows = std::max(M, held);  // the layer may compute every row held (sizes in bytes: void*)
    inner_->forward(dev(out, f, "out", strided(rows, N_, out_stride) * dtype_size(out_dtype)), out_dtype,
                    dev(inp, f, "inp", zu(rows) * zu(K_) * dtype_size(inp_dtype)), inp_dtype, M, out_stride, held);
  }

 private:
  std::unique_ptr<PreparedLinear> inner_;
  int K_, N_;
};

std::unique_ptr<PreparedLinear> e_prepare_linear(const float* weight, const float* bias, int K, int N,
                                                 LinearActivation activation, DType dtype) {
  return std::make_unique<EmulatedPreparedLinear>(weight, bias, K, N, activation, dtype);
}

// ---- bf16: the CPU's, on device memory
bool e_bf16_available(std::string* why) { return cpu().bf16_available(why); }
void e_to_bf16(Bf16* out, const float* inp, std::size_t n) {
  cpu().to_bf16(dev(out, "to_bf16", "out", n), dev(inp, "to_bf16", "inp", n), n);
}
void e_from_bf16(float* out, const Bf16* inp, std::size_t n) {
  cpu().from_bf16(dev(out, "from_bf16", "out", n), dev(inp, "from_bf16", "inp", n), n);
}
void e_residual_layernorm_forward_bf16(float* out, Bf16* out16, float* res, float* mean, float* rstd, const float* a,
                                       const float* b, const float* weight, const float* bias, int N, int C,
                                       float eps) {
  const char* f = "residual_layernorm_forward_bf16";
  const std::size_t nc = zu(N) * zu(C);
  cpu().residual_layernorm_forward_bf16(dev(out, f, "out", nc), dev(out16, f, "out16", nc), dev(res, f, "res", nc),
                                        dev(mean, f, "mean", zu(N), true), dev(rstd, f, "rstd", zu(N), true),
                                        dev(a, f, "a", nc), dev(b, f, "b", nc), dev(weight, f, "weight", zu(C)),
                                        dev(bias, f, "bias", zu(C)), N, C, eps);
}
void e_attention_forward_bf16(Bf16* out, const float* qkv, const std::int32_t* mask, int B, int T, int C, int NH,
                              const AttentionRows& rows) {
  const char* f = "attention_forward_bf16";
  const std::size_t Tq = zu(rows.queries ? rows.queries : T), bt = zu(B) * zu(T);
  cpu().attention_forward_bf16(dev(out, f, "out", zu(B) * Tq * zu(C)), dev(qkv, f, "qkv", bt * 3 * zu(C)),
                               dev(mask, f, "mask", bt, true), B, T, C, NH, rows);
}
void e_matmul_forward_bf16(float* out, const Bf16* inp, const Bf16* weight, const float* bias, int M, int K, int N,
                           int out_stride) {
  const char* f = "matmul_forward_bf16";
  cpu().matmul_forward_bf16(dev(out, f, "out", strided(M, N, out_stride)), dev(inp, f, "inp", zu(M) * zu(K)),
                            dev(weight, f, "weight", zu(N) * zu(K)), dev(bias, f, "bias", zu(N), true), M, K, N,
                            out_stride);
}
void e_matmul_backward_bf16(float* dinp, float* dweight, float* dbias, const float* dout, const Bf16* inp,
                            const Bf16* weight, int M, int K, int N, int dout_stride) {
  const char* f = "matmul_backward_bf16";
  cpu().matmul_backward_bf16(dev(dinp, f, "dinp", zu(M) * zu(K), true), dev(dweight, f, "dweight", zu(N) * zu(K)),
                             dev(dbias, f, "dbias", zu(N), true), dev(dout, f, "dout", strided(M, N, dout_stride)),
                             dev(inp, f, "inp", zu(M) * zu(K)), dev(weight, f, "weight", zu(N) * zu(K)), M, K, N,
                             dout_stride);
}

float e_cross_entropy_forward(const float* logits, const std::int32_t* targets, int B, int K) {
  const char* f = "cross_entropy_forward";
  return cpu().cross_entropy_forward(dev(logits, f, "logits", zu(B) * zu(K)), dev(targets, f, "targets", zu(B)), B, K);
}
void e_cross_entropy_backward(float* dlogits, const float* logits, const std::int32_t* targets, int B, int K,
                              float dloss) {
  const char* f = "cross_entropy_backward";
  const std::size_t n = zu(B) * zu(K);
  cpu().cross_entropy_backward(dev(dlogits, f, "dlogits", n), dev(logits, f, "logits", n),
                               dev(targets, f, "targets", zu(B)), B, K, dloss);
}
float e_bce_with_logits_forward(const float* logits, const float* targets, int N) {
  const char* f = "bce_with_logits_forward";
  return cpu().bce_with_logits_forward(dev(logits, f, "logits", zu(N)), dev(targets, f, "targets", zu(N)), N);
}
void e_bce_with_logits_backward(float* dlogits, const float* logits, const float* targets, int N, float dloss) {
  const char* f = "bce_with_logits_backward";
  cpu().bce_with_logits_backward(dev(dlogits, f, "dlogits", zu(N)), dev(logits, f, "logits", zu(N)),
                                 dev(targets, f, "targets", zu(N)), N, dloss);
}
float e_mse_forward(const float* pred, const float* targets, int N) {
  const char* f = "mse_forward";
  return cpu().mse_forward(dev(pred, f, "pred", zu(N)), dev(targets, f, "targets", zu(N)), N);
}
void e_mse_backward(float* dpred, const float* pred, const float* targets, int N, float dloss) {
  const char* f = "mse_backward";
  cpu().mse_backward(dev(dpred, f, "dpred", zu(N)), dev(pred, f, "pred", zu(N)), dev(targets, f, "targets", zu(N)), N,
                     dloss);
}

// ---- optimizer
std::vector<OptimizerSlice> host_slices(std::span<const OptimizerSlice> slices, const char* f, bool grads_only) {
  std::vector<OptimizerSlice> out;
  for (const OptimizerSlice& s : slices) {
    OptimizerSlice h = s;
    h.grad = dev(s.grad, f, "slice.grad", s.n);
    if (!grads_only) {
      h.param = dev(s.param, f, "slice.param", s.n);
      h.m = dev(s.m, f, "slice.m", s.n);
      h.v = dev(s.v, f, "slice.v", s.n);
    }
    out.push_back(h);
  }
  return out;
}
double e_grad_norm(std::span<const OptimizerSlice> slices) {
  return cpu().grad_norm(host_slices(slices, "grad_norm", true));
}
void e_adamw_update_all(std::span<const OptimizerSlice> slices, const kernels::cpu::AdamWHyper& hyper) {
  cpu().adamw_update_all(host_slices(slices, "adamw_update_all", false), hyper);
}

Backend make_table() {
  Backend b{};
  b.device = Device{Device::Kind::cuda, 0};
  b.allocate = e_allocate;
  b.deallocate = e_deallocate;
  b.upload = e_upload;
  b.download = e_download;
  b.copy = e_copy;
  b.zero = e_zero;
  b.synchronize = e_synchronize;
  b.add = e_add;
#define TUNESERVE_SET(name) b.name = e_##name;
  TUNESERVE_BACKEND_KERNELS(TUNESERVE_SET)
  TUNESERVE_BACKEND_BF16_KERNELS(TUNESERVE_SET)
#undef TUNESERVE_SET
  b.prepare_linear = e_prepare_linear;
  b.prepared_rows = cpu().prepared_rows;  // the CPU's padded row counts, to check the buffers hold them
  b.bf16_available = e_bf16_available;
  b.grad_norm = e_grad_norm;
  b.adamw_update_all = e_adamw_update_all;
  return b;
}

}  // namespace

const Backend& emulated_gpu() {
  static const Backend table = make_table();
  return table;
}

ScopedEmulatedGpu::ScopedEmulatedGpu() { set_backend_for_tests(Device::Kind::cuda, &emulated_gpu()); }
ScopedEmulatedGpu::~ScopedEmulatedGpu() { set_backend_for_tests(Device::Kind::cuda, nullptr); }

std::size_t emulated_gpu_bytes_in_use() { return region().in_use(); }
bool is_emulated_device_address(const void* p) { return region().contains(p); }

}  // namespace tuneserve::testing

// Linear layers on CPU through oneDNN: y = x W^T + b with W stored as PyTorch does (N, K).
// Training uses W in place (it changes every step); inference packs W once into oneDNN's blocked
// layout (PackedLinear), optionally fusing GELU into the product.
//
// Dimensions: M rows (B*T tokens), K input features, N output features.
// Outputs: matmul_forward writes (=) out. matmul_backward writes (=) dinp and ACCUMULATES (+=)
// dweight and dbias (parameter gradients), so gradient accumulation needs no extra buffers.
#pragma once

#include <cstdint>
#include <memory>

namespace tuneserve {

// out (M, N) = inp (M, K) @ weight(N, K)^T + bias (N); bias may be null. Rows of out lie
// out_stride floats apart (0: N), so a product can fill some columns of a wider tensor (K and V
// of a fused QKV row).
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N,
                    int out_stride = 0);

// dinp (M, K) = dout (M, N) @ weight (N, K)            (written; skipped when dinp is null)
// dweight (N, K) += dout^T (N, M) @ inp (M, K)         (accumulated)
// dbias (N) += sum over rows of dout                   (accumulated; skipped when null)
// Rows of dout lie dout_stride floats apart (0: N).
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N, int dout_stride = 0);

// The instruction set oneDNN's kernels use ("avx512_core_bf16", "avx2", ...): the CPU's, capped by
// TUNESERVE_CPU_ISA (kernels/cpu/isa.h).
const char* onednn_isa();

// A weight matrix reordered once into oneDNN's preferred layout for fast inference.
// Thread-safe: forward may be called concurrently (primitives are cached per M under a lock).
class PackedLinear {
 public:
  enum class Activation { None, Gelu };
  PackedLinear(const float* weight, const float* bias, int K, int N, Activation activation = Activation::None);
  ~PackedLinear();
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;
  // out (M, N) = act(inp (M, K) @ W^T + b); rows of out out_stride floats apart (0: N).
  void forward(float* out, const float* inp, int M, int out_stride = 0) const;
  int K() const { return K_; }
  int N() const { return N_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int K_;
  int N_;
};

}  // namespace tuneserve

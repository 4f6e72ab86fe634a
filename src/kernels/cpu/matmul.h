// Linear layers on CPU through oneDNN: y = x W^T + b with W stored as PyTorch does (N, K), in fp32
// or with bf16 operands (fp32 accumulation, fp32 outputs: torch.autocast's bf16 products).
// Training uses W in place (it changes every step); inference packs W once into oneDNN's blocked
// layout (PackedLinear), optionally fusing GELU into the product.
//
// Dimensions: M rows (B*T tokens), K input features, N output features.
// Outputs: matmul_forward writes (=) out. matmul_backward writes (=) dinp and ACCUMULATES (+=)
// dweight and dbias (parameter gradients), so gradient accumulation needs no extra buffers.
#pragma once

#include <cstdint>
#include <memory>

#include "core/dtype.h"

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

// The same products with bf16 operands (inp and weight rounded to bf16 by the caller: to_bf16 in
// kernels/cpu/convert.h), fp32 accumulation and fp32 out / dinp / dweight / dbias: the twins of
// kernels/cuda's matmul_*_bf16. dout is fp32 and rounded to bf16 inside for the two products; dbias
// sums the fp32 dout. They need AVX512-BF16 (cpu_isa() >= avx512_bf16, kernels/cpu/isa.h); elsewhere
// they throw Error saying so.
void matmul_forward_bf16(float* out, const Bf16* inp, const Bf16* weight, const float* bias, int M, int K, int N,
                         int out_stride = 0);
void matmul_backward_bf16(float* dinp, float* dweight, float* dbias, const float* dout, const Bf16* inp,
                          const Bf16* weight, int M, int K, int N, int dout_stride = 0);

// Error unless this CPU runs bf16 products ("--dtype bf16 needs ... AVX512-BF16"); `what` names the user.
void require_cpu_bf16(const char* what);

// A weight matrix reordered once into oneDNN's preferred layout for fast inference, in fp32 or as
// bf16 (the input is then rounded to bf16 per call; accumulation and output stay fp32).
// Thread-safe: forward may be called concurrently (primitives are cached per row count under a lock).
class PackedLinear {
 public:
  enum class Activation { None, Gelu };
  PackedLinear(const float* weight, const float* bias, int K, int N, Activation activation = Activation::None,
               DType dtype = DType::F32);
  ~PackedLinear();
  PackedLinear(const PackedLinear&) = delete;
  PackedLinear& operator=(const PackedLinear&) = delete;
  // out (M, N) = act(inp (M, K) @ W^T + b); rows of out out_stride floats apart (0: N). held: the
  // rows out and inp hold (0: M). Where they hold rows_to_hold(M), the product runs on all of them:
  // primitives are built per row count (see rows_to_hold in matmul.cpp), so a few counts serve every M.
  // The extra rows' inputs may hold any values; their outputs are overwritten.
  void forward(float* out, const float* inp, int M, int out_stride = 0, int held = 0) const;
  // The same with either operand in bf16, for a layer with bf16 products (Error otherwise): a bf16
  // inp is read as it is (already rounded: no conversion), a bf16 out is the fp32 result (bias and
  // activation applied) rounded to nearest even, as to_bf16 rounds it; a strided out must be fp32.
  // Feeding one bf16 layer's output to the next skips a conversion pass and halves the traffic.
  void forward(void* out, DType out_type, const void* inp, DType inp_type, int M, int out_stride = 0,
               int held = 0) const;
  static int rows_to_hold(int M);
  int K() const { return K_; }
  int N() const { return N_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int K_;
  int N_;
};

}  // namespace tuneserve

// Linear layers through cuBLASLt. A row-major (R, C) matrix is a column-major (C, R) one, so each
// row-major product is computed as its transpose in column-major terms (see forward/backward_*).
// One cuBLASLt handle and a 32 MiB workspace per host thread; descriptors are built per call.
//
// Dimensions: M rows (tokens), K input features, N output features.
#include "kernels/cuda/matmul.h"

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>

#include "core/error.h"
#include "kernels/cuda/bias.h"
#include "kernels/cuda/common.cuh"

namespace tuneserve::cuda {

namespace {
void check_lt(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail("cuBLASLt: {}: {} ({})", what, cublasLtGetStatusString(status), cublasLtGetStatusName(status));
}

constexpr std::size_t kWorkspaceBytes = std::size_t{32} << 20;

struct LtContext {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  LtContext() {
    check_lt(cublasLtCreate(&handle), "cublasLtCreate");
    TUNESERVE_CUDA_CHECK(cudaMalloc(&workspace, kWorkspaceBytes));
  }
  ~LtContext() {  // at thread exit; errors (e.g. the runtime already unloaded) are ignored
    cudaFree(workspace);
    cublasLtDestroy(handle);
  }
};

LtContext& context() {
  thread_local LtContext ctx;
  return ctx;
}

struct DescDeleter {
  void operator()(cublasLtMatmulDescOpaque_t* d) const { cublasLtMatmulDescDestroy(d); }
  void operator()(cublasLtMatrixLayoutOpaque_t* d) const { cublasLtMatrixLayoutDestroy(d); }
  void operator()(cublasLtMatmulPreferenceOpaque_t* d) const { cublasLtMatmulPreferenceDestroy(d); }
};
using OpDesc = std::unique_ptr<cublasLtMatmulDescOpaque_t, DescDeleter>;
using Layout = std::unique_ptr<cublasLtMatrixLayoutOpaque_t, DescDeleter>;
using Preference = std::unique_ptr<cublasLtMatmulPreferenceOpaque_t, DescDeleter>;

Layout layout(cudaDataType type, int rows, int cols, int ld) {
  cublasLtMatrixLayout_t l = nullptr;
  check_lt(cublasLtMatrixLayoutCreate(&l, type, static_cast<std::uint64_t>(rows), static_cast<std::uint64_t>(cols),
                                      ld),
           "cublasLtMatrixLayoutCreate");
  return Layout(l);
}

// The largest power of two (up to 256) dividing the address: cuBLASLt otherwise assumes 256-byte
// alignment and may pick a kernel that faults on a row slice of a larger buffer.
std::uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  std::uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

// Column-major D (m, n) = op(A) (m, k) @ op(B) (k, n) + beta * D (+ bias (m) per column when given).
// A is stored (ta ? k x m : m x k) with leading dimension lda; B likewise (tb ? n x k : k x n).
void lt_matmul(cudaDataType ab_type, int m, int n, int k, const void* A, bool ta, int lda, const void* B, bool tb,
               int ldb, float* D, int ldd, float beta, const float* bias) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum
    if (beta == 0.0f) {
      TUNESERVE_CUDA_CHECK(cudaMemset2DAsync(D, static_cast<std::size_t>(ldd) * sizeof(float), 0,
                                             static_cast<std::size_t>(m) * sizeof(float), n, stream()));
      if (bias) add_bias(D, bias, n, m, ldd);
    }
    return;
  }
  LtContext& ctx = context();
  cublasLtMatmulDesc_t raw_op = nullptr;
  check_lt(cublasLtMatmulDescCreate(&raw_op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
  OpDesc op(raw_op);
  const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  check_lt(cublasLtMatmulDescSetAttribute(raw_op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa), "TRANSA");
  check_lt(cublasLtMatmulDescSetAttribute(raw_op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb), "TRANSB");
  const Layout la = layout(ab_type, ta ? k : m, ta ? m : k, lda);
  const Layout lb = layout(ab_type, tb ? n : k, tb ? k : n, ldb);
  const Layout ld = layout(CUDA_R_32F, m, n, ldd);

  cublasLtMatmulPreference_t raw_pref = nullptr;
  check_lt(cublasLtMatmulPreferenceCreate(&raw_pref), "cublasLtMatmulPreferenceCreate");
  Preference pref(raw_pref);
  const std::size_t ws = kWorkspaceBytes;
  check_lt(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws),
           "MAX_WORKSPACE_BYTES");
  const std::uint32_t al_a = alignment(A), al_b = alignment(B), al_d = alignment(D);
  check_lt(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, 4), "A");
  check_lt(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, 4), "B");
  check_lt(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, 4), "C");
  check_lt(cublasLtMatmulPreferenceSetAttribute(raw_pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, 4), "D");

  // The bias epilogue when a kernel supports it here, else a separate broadcast after the product.
  bool bias_fused = false;
  cublasLtMatmulHeuristicResult_t heuristic{};
  int found = 0;
  if (bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const cudaDataType bias_type = CUDA_R_32F;
    check_lt(cublasLtMatmulDescSetAttribute(raw_op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue),
             "EPILOGUE");
    check_lt(cublasLtMatmulDescSetAttribute(raw_op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
             "BIAS_POINTER");
    check_lt(cublasLtMatmulDescSetAttribute(raw_op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type, sizeof bias_type),
             "BIAS_DATA_TYPE");
    const cublasStatus_t s =
        cublasLtMatmulAlgoGetHeuristic(ctx.handle, raw_op, la.get(), lb.get(), ld.get(), ld.get(), raw_pref, 1,
                                       &heuristic, &found);
    bias_fused = s == CUBLAS_STATUS_SUCCESS && found > 0;
    if (!bias_fused) {
      const cublasLtEpilogue_t none = CUBLASLT_EPILOGUE_DEFAULT;
      check_lt(cublasLtMatmulDescSetAttribute(raw_op, CUBLASLT_MATMUL_DESC_EPILOGUE, &none, sizeof none), "EPILOGUE");
    }
  }
  if (!bias_fused) {
    check_lt(cublasLtMatmulAlgoGetHeuristic(ctx.handle, raw_op, la.get(), lb.get(), ld.get(), ld.get(), raw_pref, 1,
                                            &heuristic, &found),
             "cublasLtMatmulAlgoGetHeuristic");
    if (found == 0)
      fail("cuBLASLt: no algorithm for a {}x{}x{} product (type {}, transa {}, transb {})", m, n, k,
           static_cast<int>(ab_type), ta, tb);
  }
  const float alpha = 1.0f;
  check_lt(cublasLtMatmul(ctx.handle, raw_op, &alpha, A, la.get(), B, lb.get(), &beta, D, ld.get(), D, ld.get(),
                          &heuristic.algo, ctx.workspace, kWorkspaceBytes, stream()),
           "cublasLtMatmul");
  if (bias && !bias_fused) add_bias(D, bias, n, m, ldd);  // column-major (m, n) = row-major (n rows, m columns)
}

// The three products of a linear layer in column-major terms (see the file comment); ldo / ldd are
// the row strides of out / dout.
// forward: out^T (N, M) = op_T(W stored K x N) @ inp^T (K x M).
void forward(cudaDataType type, float* out, const void* inp, const void* weight, const float* bias, int M, int K,
             int N, int ldo) {
  lt_matmul(type, N, M, K, weight, true, K, inp, false, K, out, ldo, 0.0f, bias);
}
// dinp^T (K, M) = W^T stored (K x N) @ dout^T (N x M).
void backward_input(cudaDataType type, float* dinp, const void* dout, const void* weight, int M, int K, int N,
                    int ldd) {
  lt_matmul(type, K, M, N, weight, false, K, dout, false, ldd, dinp, K, 0.0f, nullptr);
}
// dweight^T (K, N) += inp^T (K x M) @ op_T(dout^T stored N x M).
void backward_weight(cudaDataType type, float* dweight, const void* dout, const void* inp, int M, int K, int N,
                     int ldd) {
  lt_matmul(type, K, N, M, inp, false, K, dout, true, ldd, dweight, K, 1.0f, nullptr);
}
}  // namespace

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N,
                    int out_stride) {
  forward(CUDA_R_32F, out, inp, weight, bias, M, K, N, out_stride > 0 ? out_stride : N);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N, int dout_stride) {
  const int ldd = dout_stride > 0 ? dout_stride : N;
  if (dinp) backward_input(CUDA_R_32F, dinp, dout, weight, M, K, N, ldd);
  backward_weight(CUDA_R_32F, dweight, dout, inp, M, K, N, ldd);
  if (dbias) accumulate_bias_grad(dbias, dout, M, N, ldd);
}

void matmul_forward_bf16(float* out, const Bf16* inp, const Bf16* weight, const float* bias, int M, int K, int N) {
  forward(CUDA_R_16BF, out, inp, weight, bias, M, K, N, N);
}

void matmul_backward_bf16(float* dinp, float* dweight, float* dbias, const float* dout, const Bf16* inp,
                          const Bf16* weight, int M, int K, int N) {
  const std::size_t count = static_cast<std::size_t>(M) * N;
  Scratch dout16(count * sizeof(Bf16));
  to_bf16(dout16.as<Bf16>(), dout, count);
  if (dinp) backward_input(CUDA_R_16BF, dinp, dout16.as<Bf16>(), weight, M, K, N, N);
  backward_weight(CUDA_R_16BF, dweight, dout16.as<Bf16>(), inp, M, K, N, N);
  if (dbias) accumulate_bias_grad(dbias, dout, M, N, N);
}

}  // namespace tuneserve::cuda

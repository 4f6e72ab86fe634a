// oneDNN-backed linear layers: a bounded cache of matmul primitives keyed by shape and operand type
// (fp32, or bf16 with fp32 accumulation and output), one stream per thread, and PackedLinear for
// inference with weights reordered once into the blocked layout.
#include "kernels/cpu/matmul.h"

#include <oneapi/dnnl/dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/convert.h"
#include "kernels/cpu/isa.h"

namespace tuneserve {
namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

// oneDNN picks its kernels by cpuid itself; a lowered level (TUNESERVE_CPU_ISA) caps it at the same
// level. The cap takes effect only before oneDNN first asks for its ISA, so it is set here, where
// the engine every primitive uses is made.
dnnl::engine make_engine() {
  if (cpu_isa() < cpu_isa_detected()) {
    constexpr dnnl::cpu_isa caps[] = {dnnl::cpu_isa::avx2, dnnl::cpu_isa::avx512_core, dnnl::cpu_isa::avx512_core_bf16};
    if (dnnl::set_max_cpu_isa(caps[static_cast<int>(cpu_isa())]) != dnnl::status::success)
      fail("cannot cap oneDNN at {} (TUNESERVE_CPU_ISA): it was used before the cap", cpu_isa_name(cpu_isa()));
  }
  return dnnl::engine(dnnl::engine::kind::cpu, 0);
}

dnnl::engine& cpu_engine() {
  static dnnl::engine engine = make_engine();
  return engine;
}

dnnl::stream& thread_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

// Every primitive is built with a user-managed scratchpad (attrs()) and run through execute() with
// scratch memory of the calling thread. oneDNN's own scratchpad (this Debian build has
// DNNL_ENABLE_CONCURRENT_EXEC off) is shared per creating thread, so a cached primitive run from two
// threads at once, as concurrent forward() calls do, could have its workspace overwritten: seen as
// logits off by ~2% in 1 of ~100 runs of four concurrent forwards.
dnnl::primitive_attr attrs() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

void execute(const dnnl::primitive& p, std::unordered_map<int, dnnl::memory> args) {
  const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(p.get_primitive_desc(), dnnl_query_scratchpad_md, 0);
  thread_local std::vector<std::byte> scratch;
  if (md) {
    const dnnl::memory::desc desc(*md);
    if (const std::size_t bytes = desc.get_size(); bytes > 0) {
      if (scratch.size() < bytes + 64) scratch.resize(bytes + 64);
      const auto at = (reinterpret_cast<std::uintptr_t>(scratch.data()) + 63) / 64 * 64;
      args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(desc, cpu_engine(), reinterpret_cast<void*>(at)));
    }
  }
  p.execute(thread_stream(), args);
}

dnnl::memory::desc strided(std::int64_t rows, std::int64_t cols, std::int64_t row_stride, std::int64_t col_stride,
                           dt type = dt::f32) {
  return dnnl::memory::desc(dims{rows, cols}, type, dims{row_stride, col_stride});
}

// The oneDNN type of a product's operands: f32, or bf16 (outputs and bias stay f32).
dt operand_type(DType dtype) { return dtype == DType::BF16 ? dt::bf16 : dt::f32; }

// Primitives by shape, least recently used dropped past `capacity`. Unpadded batches bring a new row
// count M almost every training step (inference runs a few padded counts:
// PackedLinear::rows_to_hold), and a primitive holds up to ~220 kB, JIT code included: unbounded, a
// long run would grow by megabytes a minute. A dropped primitive still executing elsewhere lives on
// through its handle. Thread-safe.
template <typename Key, typename Value>
class PrimitiveCache {
 public:
  explicit PrimitiveCache(std::size_t capacity) : capacity_(capacity) {}
  template <typename Make>
  Value get(const Key& key, Make&& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = index_.find(key); it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);  // now the most recent
      return it->second->second;
    }
    order_.emplace_front(key, make());
    index_.emplace(key, order_.begin());
    if (order_.size() > capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return order_.front().second;
  }
 private:
  std::size_t capacity_;
  std::mutex mutex_;
  std::list<std::pair<Key, Value>> order_;
  std::map<Key, typename std::list<std::pair<Key, Value>>::iterator> index_;
};

enum class Kind { Forward, ForwardNoBias, BackwardData, BackwardWeights };

// Primitives are immutable once built and may be executed from several threads. `stride`: row
// stride of dst (forward) or of dout (backward; bf16 backward products read a contiguous bf16 copy
// of dout, stride N). `op`: the operands' type.
dnnl::matmul build_primitive(Kind kind, int M, int K, int N, int stride, dt op) {
  dnnl::primitive_attr attr = attrs();
  dnnl::matmul::primitive_desc pd;
  switch (kind) {
    case Kind::Forward:
    case Kind::ForwardNoBias: {
      const auto src = strided(M, K, K, 1, op), wei = strided(K, N, 1, K, op), dst = strided(M, N, stride, 1);
      if (kind == Kind::Forward) {
        const auto bias = strided(1, N, N, 1);
        pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, bias, dst), attr, cpu_engine());
      } else {
        pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, cpu_engine());
      }
      break;
    }
    case Kind::BackwardData: {  // dinp (M,K) = dout (M,N) @ W (N,K)
      const auto src = strided(M, N, stride, 1, op), wei = strided(N, K, K, 1, op), dst = strided(M, K, K, 1);
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, cpu_engine());
      break;
    }
    case Kind::BackwardWeights: {  // dW (N,K) += dout^T (N,M) @ inp (M,K)
      dnnl::post_ops ops;
      ops.append_sum(1.0f);
      attr.set_post_ops(ops);
      const auto src = strided(N, M, 1, stride, op), wei = strided(M, K, K, 1, op), dst = strided(N, K, K, 1);
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, wei, dst), attr, cpu_engine());
      break;
    }
  }
  return dnnl::matmul(pd);
}

// dinp (M, K) = dout (M, N) @ W (N, K) with W reordered into the blocked layout oneDNN picks for
// this shape. Training weights change every step, so the reorder runs on every call; it costs
// ~0.3 ms for a 3072x768 weight and saves ~10% of the product, whose plain-layout kernel re-packs W
// for each block of rows (measured per product, one thread: 3072->768 60-71 ms plain, 49 packed).
struct PackedBackwardData {
  dnnl::matmul product;
  dnnl::reorder pack;               // plain W (N, K) -> packed
  dnnl::memory::desc packed_md;
};

PackedBackwardData build_packed_backward_data(int M, int K, int N, int stride, dt op) {
  const auto any_w = dnnl::memory::desc(dims{N, K}, op, dnnl::memory::format_tag::any);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(strided(M, N, stride, 1, op), any_w, strided(M, K, K, 1)),
                                  attrs(), cpu_engine());
  const dnnl::memory::desc packed_md = pd.weights_desc();
  dnnl::reorder::primitive_desc rd(cpu_engine(), strided(N, K, K, 1, op), cpu_engine(), packed_md, attrs());
  return {dnnl::matmul(pd), dnnl::reorder(rd), packed_md};
}

// Worth it for the large FFN weights with enough rows to amortise the reorder.
bool pack_for_backward_data(int M, int K, int N) { return M >= 256 && static_cast<std::int64_t>(K) * N >= 2'000'000; }

dnnl::matmul cached_primitive(Kind kind, int M, int K, int N, int stride, dt op) {
  static PrimitiveCache<std::tuple<int, int, int, int, int, int>, dnnl::matmul> cache(256);
  return cache.get(std::make_tuple(static_cast<int>(kind), M, K, N, stride, static_cast<int>(op)),
                   [&] { return build_primitive(kind, M, K, N, stride, op); });
}

// Inference primitives of every PackedLinear, keyed by (K, N, activation, M, operand type, output
// type): layers of the same shape share them (the packed layout is a function of K, N, the activation
// and the operand type). The flag: packed weights accepted for this M (else the plain layout).
using PackedEntry = std::pair<dnnl::matmul, bool>;
using PackedKey = std::tuple<int, int, int, int, int, int>;
PrimitiveCache<PackedKey, PackedEntry>& packed_primitives() {
  static PrimitiveCache<PackedKey, PackedEntry> cache(512);
  return cache;
}

template <typename T>
dnnl::memory mem(const dnnl::memory::desc& md, const T* p) {
  return dnnl::memory(md, cpu_engine(), const_cast<T*>(p));
}

// out (M, N) = inp (M, K) @ weight (N, K)^T + bias, operands of type `op` (T: float or Bf16).
template <typename T>
void forward_product(float* out, const T* inp, const T* weight, const float* bias, int M, int K, int N,
                     int out_stride, dt op) {
  if (M <= 0) return;
  const int ldo = out_stride > 0 ? out_stride : N;
  const auto src = strided(M, K, K, 1, op), wei = strided(K, N, 1, K, op), dst = strided(M, N, ldo, 1);
  if (bias) {
    execute(cached_primitive(Kind::Forward, M, K, N, ldo, op), {{DNNL_ARG_SRC, mem(src, inp)},
                                                                {DNNL_ARG_WEIGHTS, mem(wei, weight)},
                                                                {DNNL_ARG_BIAS, mem(strided(1, N, N, 1), bias)},
                                                                {DNNL_ARG_DST, mem(dst, out)}});
  } else {
    execute(cached_primitive(Kind::ForwardNoBias, M, K, N, ldo, op),
            {{DNNL_ARG_SRC, mem(src, inp)}, {DNNL_ARG_WEIGHTS, mem(wei, weight)}, {DNNL_ARG_DST, mem(dst, out)}});
  }
  thread_stream().wait();
}

// dinp = dout @ W and dW += dout^T @ inp with operands of type `op` (dout rows ldd apart).
template <typename T>
void backward_products(float* dinp, float* dweight, const T* dout, const T* inp, const T* weight, int M, int K,
                       int N, int ldd, dt op) {
  if (dinp && pack_for_backward_data(M, K, N)) {
    static PrimitiveCache<std::tuple<int, int, int, int, int>, PackedBackwardData> cache(128);
    const PackedBackwardData p = cache.get(std::make_tuple(M, K, N, ldd, static_cast<int>(op)), [&] {
      return build_packed_backward_data(M, K, N, ldd, op);
    });
    thread_local std::vector<char> scratch;
    scratch.resize(p.packed_md.get_size());
    dnnl::memory packed(p.packed_md, cpu_engine(), scratch.data());
    dnnl::memory plain = mem(strided(N, K, K, 1, op), weight);
    execute(p.pack, {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, packed}});
    execute(p.product, {{DNNL_ARG_SRC, mem(strided(M, N, ldd, 1, op), dout)},
                        {DNNL_ARG_WEIGHTS, packed},
                        {DNNL_ARG_DST, mem(strided(M, K, K, 1), dinp)}});
  } else if (dinp) {
    execute(cached_primitive(Kind::BackwardData, M, K, N, ldd, op),
            {{DNNL_ARG_SRC, mem(strided(M, N, ldd, 1, op), dout)},
             {DNNL_ARG_WEIGHTS, mem(strided(N, K, K, 1, op), weight)},
             {DNNL_ARG_DST, mem(strided(M, K, K, 1), dinp)}});
  }
  if (dweight) {
    execute(cached_primitive(Kind::BackwardWeights, M, K, N, ldd, op),
            {{DNNL_ARG_SRC, mem(strided(N, M, 1, ldd, op), dout)},
             {DNNL_ARG_WEIGHTS, mem(strided(M, K, K, 1, op), inp)},
             {DNNL_ARG_DST, mem(strided(N, K, K, 1), dweight)}});
  }
  thread_stream().wait();
}

// dbias (N) += column sums of dout (M rows, ldd apart).
void bias_backward(float* dbias, const float* dout, int M, int N, int ldd) {
  // Column blocks of 64, rows walked in order (contiguous, vectorised over columns); double
  // accumulators since a column sum runs over thousands of rows.
#pragma omp parallel for schedule(static) if (static_cast<std::size_t>(M) * N > 16384)
  for (int n0 = 0; n0 < N; n0 += 64) {
    const int width = std::min(64, N - n0);
    double sum[64] = {};
    for (int m = 0; m < M; ++m) {
      const float* row = dout + static_cast<std::size_t>(m) * ldd + n0;
      for (int j = 0; j < width; ++j) sum[j] += row[j];
    }
    for (int j = 0; j < width; ++j) dbias[n0 + j] += static_cast<float>(sum[j]);
  }
}

// Per-thread scratch for operands rounded to bf16 on the way into a product.
Bf16* bf16_scratch(std::size_t n, int slot) {
  thread_local std::vector<Bf16> scratch[2];
  if (scratch[slot].size() < n) scratch[slot].resize(n);
  return scratch[slot].data();
}

}  // namespace

const char* onednn_isa() {
  cpu_engine();  // the cap first: reading the ISA fixes it
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

void require_cpu_bf16(const char* what) {
  if (cpu_isa() < CpuIsa::avx512_bf16)
    fail("{} needs a CPU with AVX512-BF16 (bf16 products with fp32 accumulation); this one runs at level {}{}: "
         "use fp32",
         what, cpu_isa_name(cpu_isa()), cpu_isa() < cpu_isa_detected() ? " (lowered by TUNESERVE_CPU_ISA)" : "");
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int M, int K, int N,
                    int out_stride) {
  forward_product(out, inp, weight, bias, M, K, N, out_stride, dt::f32);
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int M, int K, int N, int dout_stride) {
  if (M <= 0) return;
  const int ldd = dout_stride > 0 ? dout_stride : N;
  backward_products(dinp, dweight, dout, inp, weight, M, K, N, ldd, dt::f32);
  if (dbias) bias_backward(dbias, dout, M, N, ldd);
}

void matmul_forward_bf16(float* out, const Bf16* inp, const Bf16* weight, const float* bias, int M, int K, int N,
                         int out_stride) {
  require_cpu_bf16("matmul_forward_bf16");
  forward_product(out, inp, weight, bias, M, K, N, out_stride, dt::bf16);
}

void matmul_backward_bf16(float* dinp, float* dweight, float* dbias, const float* dout, const Bf16* inp,
                          const Bf16* weight, int M, int K, int N, int dout_stride) {
  require_cpu_bf16("matmul_backward_bf16");
  if (M <= 0) return;
  const int ldd = dout_stride > 0 ? dout_stride : N;
  Bf16* dout16 = bf16_scratch(static_cast<std::size_t>(M) * N, 0);
  if (ldd == N) {
    to_bf16(dout16, dout, static_cast<std::size_t>(M) * N);
  } else {
    for (int m = 0; m < M; ++m)
      to_bf16(dout16 + static_cast<std::size_t>(m) * N, dout + static_cast<std::size_t>(m) * ldd, N);
  }
  backward_products(dinp, dweight, dout16, inp, weight, M, K, N, N, dt::bf16);
  if (dbias) bias_backward(dbias, dout, M, N, ldd);
}

// ---- PackedLinear ----

struct PackedLinear::Impl {
  Activation activation;
  DType dtype;
  dt op;                          // oneDNN type of the operands
  const float* plain_f32;         // (N, K) fp32, the caller's: used when a shape rejects the packed layout
  std::vector<Bf16> plain_bf16;   // (N, K) bf16 copy, likewise (and the source of the packed copy)
  dnnl::memory::desc packed_md;
  dnnl::memory packed;
  dnnl::memory bias;

  dnnl::primitive_attr attr() const {
    dnnl::primitive_attr a = attrs();
    if (activation == Activation::Gelu) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_gelu_erf, 0.0f, 0.0f);
      a.set_post_ops(ops);
    }
    return a;
  }
  dnnl::memory plain(int K, int N) const {
    const auto md = strided(K, N, 1, K, op);
    return op == dt::bf16 ? mem(md, plain_bf16.data()) : mem(md, plain_f32);
  }
};

PackedLinear::PackedLinear(const float* weight, const float* bias, int K, int N, Activation activation, DType dtype)
    : impl_(std::make_unique<Impl>()), K_(K), N_(N) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    fail("PackedLinear: products in {} are not supported (fp32 or bf16)", dtype_name(dtype));
  if (dtype == DType::BF16) require_cpu_bf16("a bf16 linear layer");
  impl_->activation = activation;
  impl_->dtype = dtype;
  impl_->op = operand_type(dtype);
  impl_->plain_f32 = weight;
  if (dtype == DType::BF16) {
    impl_->plain_bf16.resize(static_cast<std::size_t>(N) * K);
    to_bf16(impl_->plain_bf16.data(), weight, impl_->plain_bf16.size());
  }
  // The blocked layout oneDNN picks for a large batch; other M reuse it when the kernel accepts it.
  const int M0 = 1024;
  const auto any_w = dnnl::memory::desc(dims{K, N}, impl_->op, dnnl::memory::format_tag::any);
  const auto bias_md = strided(1, N, N, 1);
  dnnl::matmul::primitive_desc pd(
      dnnl::matmul::desc(strided(M0, K, K, 1, impl_->op), any_w, bias_md, strided(M0, N, N, 1)), impl_->attr(),
      cpu_engine());
  impl_->packed_md = pd.weights_desc();
  impl_->packed = dnnl::memory(impl_->packed_md, cpu_engine());
  auto plain = impl_->plain(K, N);
  const dnnl::reorder::primitive_desc rd(cpu_engine(), plain.get_desc(), cpu_engine(), impl_->packed_md, attrs());
  execute(dnnl::reorder(rd), {{DNNL_ARG_FROM, plain}, {DNNL_ARG_TO, impl_->packed}});
  thread_stream().wait();
  impl_->bias = dnnl::memory(bias_md, cpu_engine());
  float* b = static_cast<float*>(impl_->bias.get_data_handle());
  for (int n = 0; n < N; ++n) b[n] = bias ? bias[n] : 0.0f;
}

PackedLinear::~PackedLinear() = default;

// The row count an inference product of M rows runs at, when its buffers hold that many. oneDNN
// 2.6's brgemm matmul fixes M when a primitive is built (with a run-time M it falls back to its
// reference kernel, orders of magnitude slower), and building one JITs its kernels: ~1-2 ms and up
// to ~220 kB for one distilbert product here. Unpadded batches bring a new M almost every server
// pass, so from 32 rows M is rounded up to a multiple of its power of two / 32: at most 32 row counts
// per octave, so that a server's passes reuse a few dozen primitives, for under 1/32 more rows
// computed (~1.3% at the ~576 rows of a pass of 32 short requests).
int PackedLinear::rows_to_hold(int M) {
  if (M < 32) return M;
  const int step = static_cast<int>(std::bit_floor(static_cast<unsigned>(M)) / 32);
  return (M + step - 1) / step * step;
}

void PackedLinear::forward(float* out, const float* inp, int M, int out_stride, int held) const {
  forward(out, DType::F32, inp, DType::F32, M, out_stride, held);
}

void PackedLinear::forward(void* out, DType out_type, const void* inp, DType inp_type, int M, int out_stride,
                           int held) const {
  if (M <= 0) return;
  const dt op = impl_->op;
  if ((out_type != DType::F32 || inp_type != DType::F32) && op != dt::bf16)
    fail("PackedLinear: bf16 inputs or outputs need a layer with bf16 products; this one computes in fp32");
  if ((out_type != DType::F32 && out_type != DType::BF16) || (inp_type != DType::F32 && inp_type != DType::BF16))
    fail("PackedLinear: operands in {} and {} (fp32 or bf16)", dtype_name(inp_type), dtype_name(out_type));
  if (out_stride > 0 && out_stride != N_) {
    if (out_type != DType::F32) fail("PackedLinear: a strided output must be fp32");
    // oneDNN has only its reference kernel (~300x slower) for blocked weights with a strided
    // destination: run the dense product into scratch (holding what inp holds) and copy the rows.
    thread_local std::vector<float> scratch;
    scratch.resize(static_cast<std::size_t>(std::max(M, held)) * N_);
    forward(scratch.data(), DType::F32, inp, inp_type, M, 0, held);
    for (int m = 0; m < M; ++m)
      std::memcpy(static_cast<float*>(out) + static_cast<std::size_t>(m) * out_stride,
                  scratch.data() + static_cast<std::size_t>(m) * N_, sizeof(float) * N_);
    return;
  }
  if (const int padded = rows_to_hold(M); padded <= held) M = padded;  // the extra rows too
  const dt dst_t = operand_type(out_type);
  const PackedEntry entry = packed_primitives().get(
      std::make_tuple(K_, N_, static_cast<int>(impl_->activation), M, static_cast<int>(op), static_cast<int>(dst_t)),
      [&]() -> PackedEntry {
        const auto src = strided(M, K_, K_, 1, op), dst = strided(M, N_, N_, 1, dst_t), bias_md = strided(1, N_, N_, 1);
        try {
          dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, impl_->packed_md, bias_md, dst), impl_->attr(),
                                          cpu_engine());
          return {dnnl::matmul(pd), true};
        } catch (const dnnl::error&) {
          dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, strided(K_, N_, 1, K_, op), bias_md, dst),
                                          impl_->attr(), cpu_engine());
          return {dnnl::matmul(pd), false};
        }
      });
  dnnl::memory weights = entry.second ? impl_->packed : impl_->plain(K_, N_);
  dnnl::memory src;
  if (op == dt::bf16 && inp_type == DType::F32) {
    Bf16* inp16 = bf16_scratch(static_cast<std::size_t>(M) * K_, 1);
    to_bf16(inp16, static_cast<const float*>(inp), static_cast<std::size_t>(M) * K_);
    src = mem(strided(M, K_, K_, 1, op), inp16);
  } else if (op == dt::bf16) {
    src = mem(strided(M, K_, K_, 1, op), static_cast<const Bf16*>(inp));
  } else {
    src = mem(strided(M, K_, K_, 1), static_cast<const float*>(inp));
  }
  dnnl::memory dst = out_type == DType::BF16 ? mem(strided(M, N_, N_, 1, dst_t), static_cast<const Bf16*>(out))
                                             : mem(strided(M, N_, N_, 1), static_cast<const float*>(out));
  execute(entry.first,
          {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_BIAS, impl_->bias}, {DNNL_ARG_DST, dst}});
  thread_stream().wait();
}

}  // namespace tuneserve

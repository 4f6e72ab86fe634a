// The CPU Backend table (kernels/backend.h): host memory, this folder's kernels, PackedLinear for
// prepared inference layers, and the optimizer's grad norm and AdamW over all parameters at once.
//
// Dimensions: n elements, bytes in bytes; P optimizer slices, N_p elements of slice p.
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "kernels/backend.h"
#include "kernels/cpu/isa.h"

namespace tuneserve {

namespace {

constexpr std::align_val_t kAlignment{64};

// Buffers from 2 MiB (activation arenas, packed weights, gradients) are their own mappings, asked for
// in 2 MiB pages (MADV_HUGEPAGE). Measured on the 2-core VM (/tmp driver, 25 MB memset after each
// allocation): 4 KiB pages took 69-96 ms to fault in, ~11 us each, and 2 MiB pages 3-12 ms. A
// server's activation arena grows when a pass brings more tokens than any before, so that fault-in
// was a whole pass's time again (a batch of 32 short requests: ~75 ms on a ~75 ms pass).
constexpr std::size_t kHugePage = std::size_t{2} << 20;

std::mutex huge_mutex;
std::unordered_map<void*, std::size_t>& huge_mappings() {  // address -> mapped length
  static std::unordered_map<void*, std::size_t> mappings;
  return mappings;
}

void* allocate_huge(std::size_t bytes) {
  // A size near SIZE_MAX would wrap in the rounding below and map too little.
  if (bytes > std::numeric_limits<std::size_t>::max() / 2) fail("cannot allocate {} bytes of host memory", bytes);
  const std::size_t length = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  // Mapped one huge page longer, then trimmed to a 2 MiB-aligned start: only aligned 2 MiB ranges
  // can be huge pages.
  void* raw = mmap(nullptr, length + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) fail("cannot map {} bytes of host memory: {}", bytes, std::strerror(errno));
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = (start + kHugePage - 1) / kHugePage * kHugePage;
  if (aligned > start) munmap(raw, aligned - start);
  munmap(reinterpret_cast<void*>(aligned + length), start + kHugePage - aligned);  // never empty
  void* p = reinterpret_cast<void*>(aligned);
  madvise(p, length, MADV_HUGEPAGE);  // advice only: without transparent huge pages, 4 KiB pages
  try {
    std::lock_guard lock(huge_mutex);
    huge_mappings().emplace(p, length);
  } catch (...) {
    munmap(p, length);
    throw;
  }
  return p;
}

void* allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes >= kHugePage) return allocate_huge(bytes);
  try {
    return ::operator new(bytes, kAlignment);
  } catch (const std::bad_alloc&) {
    fail("cannot allocate {} bytes of host memory", bytes);
  }
}

void deallocate(void* p) {
  if (!p) return;
  std::size_t length = 0;
  {
    std::lock_guard lock(huge_mutex);
    auto it = huge_mappings().find(p);
    if (it != huge_mappings().end()) {
      length = it->second;
      huge_mappings().erase(it);
    }
  }
  if (length) {
    munmap(p, length);
  } else {
    ::operator delete(p, kAlignment);
  }
}

void copy_bytes(void* dst, const void* src, std::size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

// Split over the threads from 1 MiB: a training step zeroes every gradient (172 MB for
// distilbert-base), and one core's memset left the other idle for ~16 ms of a ~700 ms step.
void zero(void* dst, std::size_t bytes) {
  constexpr std::size_t kPart = std::size_t{1} << 20;
  const auto parts = static_cast<std::ptrdiff_t>((bytes + kPart - 1) / kPart);
  auto* d = static_cast<unsigned char*>(dst);
#pragma omp parallel for schedule(static) if (parts > 1)
  for (std::ptrdiff_t i = 0; i < parts; i++) {
    const std::size_t begin = static_cast<std::size_t>(i) * kPart;
    std::memset(d + begin, 0, std::min(kPart, bytes - begin));
  }
}

void synchronize() {}

void add(float* a, const float* b, std::size_t n) {
  const std::ptrdiff_t count = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for simd schedule(static) if (count > 65536)
  for (std::ptrdiff_t i = 0; i < count; i++) a[i] += b[i];
}

class CpuPreparedLinear final : public PreparedLinear {
 public:
  CpuPreparedLinear(const float* weight, const float* bias, int K, int N, LinearActivation activation, DType dtype)
      : PreparedLinear(K, N, dtype),
        packed_(weight, bias, K, N,
                activation == LinearActivation::Gelu ? PackedLinear::Activation::Gelu : PackedLinear::Activation::None,
                dtype) {}
  void forward(void* out, DType out_dtype, const void* inp, DType inp_dtype, int M, int out_stride,
               int held) const override {
    packed_.forward(out, out_dtype, inp, inp_dtype, M, out_stride, held);
  }

 private:
  PackedLinear packed_;
};

std::unique_ptr<PreparedLinear> prepare_linear(const float* weight, const float* bias, int K, int N,
                                               LinearActivation activation, DType dtype) {
  return std::make_unique<CpuPreparedLinear>(weight, bias, K, N, activation, dtype);
}

// Chosen at run time by the CPU's level (kernels/cpu/isa.h): oneDNN's bf16 kernels and the
// conversions need AVX512-BF16.
bool bf16_available(std::string* why) {
  if (cpu_isa() >= CpuIsa::avx512_bf16) return true;
  if (why)
    *why = fmt::format("bf16 products need a CPU with AVX512-BF16; this one runs at level {}{} (use fp32)",
                       cpu_isa_name(cpu_isa()), cpu_isa() < cpu_isa_detected() ? ", lowered by TUNESERVE_CPU_ISA" : "");
  return false;
}

// The optimizer's passes over all parameters in pieces of at most kPiece elements, in one parallel
// region: per tensor, ~100 regions of which most (biases, LayerNorms) ran on one thread.
constexpr std::size_t kPiece = kernels::cpu::kAdamWChunk;  // adamw_update runs a piece on the calling thread

struct Piece {
  std::size_t slice, begin, n;
};

std::vector<Piece> pieces_of(std::span<const OptimizerSlice> slices) {
  std::vector<Piece> pieces;
  for (std::size_t s = 0; s < slices.size(); s++)
    for (std::size_t b = 0; b < slices[s].n; b += kPiece) pieces.push_back({s, b, std::min(kPiece, slices[s].n - b)});
  return pieces;
}

// A double sum per piece, pieces added in order: the same value for any thread count.
double grad_norm(std::span<const OptimizerSlice> slices) {
  const std::vector<Piece> pieces = pieces_of(slices);
  std::vector<double> sums(pieces.size());
  const auto count = static_cast<std::ptrdiff_t>(pieces.size());
#pragma omp parallel for schedule(static) if (count > 1)
  for (std::ptrdiff_t i = 0; i < count; i++) {
    const Piece& p = pieces[i];
    sums[i] = kernels::cpu::sum_squares(slices[p.slice].grad + p.begin, p.n);
  }
  double total = 0.0;
  for (double s : sums) total += s;
  return std::sqrt(total);
}

void adamw_update_all(std::span<const OptimizerSlice> slices, const kernels::cpu::AdamWHyper& hyper) {
  const std::vector<Piece> pieces = pieces_of(slices);
  const auto count = static_cast<std::ptrdiff_t>(pieces.size());
#pragma omp parallel for schedule(static) if (count > 1)
  for (std::ptrdiff_t i = 0; i < count; i++) {
    const Piece& p = pieces[i];
    const OptimizerSlice& s = slices[p.slice];
    kernels::cpu::AdamWHyper h = hyper;
    h.weight_decay = s.decay ? hyper.weight_decay : 0.0;
    kernels::cpu::adamw_update(s.param + p.begin, s.grad + p.begin, s.m + p.begin, s.v + p.begin, p.n, h);
  }
}

Backend make_cpu_backend() {
  Backend b{};
  b.device = Device{};
  b.allocate = allocate;
  b.deallocate = deallocate;
  b.upload = copy_bytes;
  b.download = copy_bytes;
  b.copy = copy_bytes;
  b.zero = zero;
  b.synchronize = synchronize;
  b.add = add;
#define TUNESERVE_SET(name) b.name = name;
  TUNESERVE_BACKEND_KERNELS(TUNESERVE_SET)
  TUNESERVE_BACKEND_BF16_KERNELS(TUNESERVE_SET)
#undef TUNESERVE_SET
  b.prepare_linear = prepare_linear;
  b.prepared_rows = PackedLinear::rows_to_hold;
  b.bf16_available = bf16_available;
  b.grad_norm = grad_norm;
  b.adamw_update_all = adamw_update_all;
  return b;
}

}  // namespace

const Backend& cpu_backend() {
  static const Backend table = make_cpu_backend();
  return table;
}

}  // namespace tuneserve

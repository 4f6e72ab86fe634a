// The CPU's measured arithmetic peak, the yardstick for the GFLOP/s that bench/inference.sh and
// bench/train_throughput.sh print (issue 12: "GFLOP/s against the CPU's measured bf16 peak").
// Each thread runs a loop of independent multiply-adds that never touch memory: fp32 FMA (AVX-512
// where the CPU has it, else AVX2) and bf16 dot products (VDPBF16PS, where the CPU has AVX512_BF16).
// Written by hand because no library reports this: it is the instruction's throughput on this CPU.
//
//   bench_cpu_peak [--threads N] [--millis M]      (prints one JSON line)
// {"threads": N, "fp32_gflops": ..., "bf16_gflops": ... or null, "fp32_isa": "avx512"|"avx2"}
#include <immintrin.h>
#include <omp.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>

#include "bench_util.h"
#include "kernels/cpu/isa.h"

namespace {

using namespace tuneserve;
using Clock = std::chrono::steady_clock;

// 12 independent accumulators cover the latency (4-6 cycles) x issue width (2 per cycle) of the
// multiply-add units, so a block runs at the instruction's throughput. A block is kInner x kChains
// instructions between the accumulators' load and store; each returns the FLOPs it did.
constexpr int kChains = 12;
constexpr long kInner = 1000;
using Block = long (*)(float* acc);  // acc: kChains x 16 floats

__attribute__((target("avx512f,avx512bf16"))) long bf16_block(float* acc) {
  __m512 a[kChains];
  for (int c = 0; c < kChains; c++) a[c] = _mm512_loadu_ps(acc + 16 * c);
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3a83);  // 1.0, ~0.001
  for (long i = 0; i < kInner; i++)
#pragma GCC unroll 12  // unrolled, the accumulators live in registers, not a stack array
    for (int c = 0; c < kChains; c++) a[c] = _mm512_dpbf16_ps(a[c], x, y);
  for (int c = 0; c < kChains; c++) _mm512_storeu_ps(acc + 16 * c, a[c]);
  return kInner * kChains * 64;  // 16 lanes x 2 bf16 pairs x (multiply + add)
}

__attribute__((target("avx512f"))) long fp32_avx512_block(float* acc) {
  __m512 a[kChains];
  for (int c = 0; c < kChains; c++) a[c] = _mm512_loadu_ps(acc + 16 * c);
  const __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-3f);
  for (long i = 0; i < kInner; i++)
#pragma GCC unroll 12
    for (int c = 0; c < kChains; c++) a[c] = _mm512_fmadd_ps(x, y, a[c]);
  for (int c = 0; c < kChains; c++) _mm512_storeu_ps(acc + 16 * c, a[c]);
  return kInner * kChains * 32;  // 16 lanes x (multiply + add)
}

__attribute__((target("avx2,fma"))) long fp32_avx2_block(float* acc) {
  __m256 a[kChains];
  for (int c = 0; c < kChains; c++) a[c] = _mm256_loadu_ps(acc + 16 * c);
  const __m256 x = _mm256_set1_ps(1.0f), y = _mm256_set1_ps(1e-3f);
  for (long i = 0; i < kInner; i++)
#pragma GCC unroll 12
    for (int c = 0; c < kChains; c++) a[c] = _mm256_fmadd_ps(x, y, a[c]);
  for (int c = 0; c < kChains; c++) _mm256_storeu_ps(acc + 16 * c, a[c]);
  return kInner * kChains * 16;  // 8 lanes x (multiply + add)
}

// One thread's FLOPs: blocks until `seconds` have passed.
long run_blocks(Block block, double seconds, float* sink) {
  float acc[kChains * 16] = {};
  long flops = 0;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  do flops += block(acc);
  while (Clock::now() < end);
  *sink = acc[0];
  return flops;
}

// GFLOP/s of `block` run by `threads` threads at once for `seconds` (the slowest thread's clock).
double measure(Block block, int threads, double seconds) {
  long flops = 0;
  float sink = 0;
  const auto start = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops, sink)
  flops += run_blocks(block, seconds, &sink);
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (sink == 12345.0f) std::printf(" ");  // keeps the blocks' results alive
  return flops / s / 1e9;
}

}  // namespace

int main(int argc, char** argv) try {
  int threads = 2, millis = 500;
  bench::parse_flags(argc, argv, 1, {{"--threads", {&threads}}, {"--millis", {&millis, 10}}});
  const double seconds = millis / 1000.0;
  const CpuIsa isa = cpu_isa();
  const bool avx512 = isa >= CpuIsa::avx512;
  nlohmann::json out = {{"threads", threads}, {"fp32_isa", avx512 ? "avx512" : "avx2"}};
  // Best of three: a peak is what the CPU can do, so the fastest run is the measurement.
  double fp32 = 0, bf16 = 0;
  for (int rep = 0; rep < 3; rep++) {
    fp32 = std::max(fp32, measure(avx512 ? fp32_avx512_block : fp32_avx2_block, threads, seconds));
    if (isa >= CpuIsa::avx512_bf16) bf16 = std::max(bf16, measure(bf16_block, threads, seconds));
  }
  out["fp32_gflops"] = fp32;
  out["bf16_gflops"] = isa >= CpuIsa::avx512_bf16 ? nlohmann::json(bf16) : nlohmann::json(nullptr);
  std::printf("%s\n", out.dump().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_cpu_peak: %s\n", e.what());
  return 1;
}

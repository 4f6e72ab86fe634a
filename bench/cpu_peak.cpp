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
// multiply-add units, so the loop runs at the instruction's throughput.
constexpr int kChains = 12;
constexpr long kInner = 1000;  // iterations between clock reads

__attribute__((target("avx512f,avx512bf16"))) long bf16_loop(double seconds, float* sink) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80);  // bf16 1.0
  const __m512bh y = (__m512bh)_mm512_set1_epi16(0x3a83);  // bf16 ~0.001
  long ops = 0;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    for (long i = 0; i < kInner; i++)
#pragma GCC unroll 12  // unrolled, the accumulators live in registers, not a stack array
      for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
    ops += kInner * kChains;
  } while (Clock::now() < end);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; c++) s = _mm512_add_ps(s, acc[c]);
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  *sink = lanes[0];
  return ops * 64;  // 16 lanes x 2 bf16 pairs x (multiply + add)
}

__attribute__((target("avx512f"))) long fp32_avx512_loop(double seconds, float* sink) {
  __m512 acc[kChains];
  for (auto& a : acc) a = _mm512_setzero_ps();
  const __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-3f);
  long ops = 0;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    for (long i = 0; i < kInner; i++)
#pragma GCC unroll 12  // unrolled, the accumulators live in registers, not a stack array
      for (auto& a : acc) a = _mm512_fmadd_ps(x, y, a);
    ops += kInner * kChains;
  } while (Clock::now() < end);
  __m512 s = acc[0];
  for (int c = 1; c < kChains; c++) s = _mm512_add_ps(s, acc[c]);
  float lanes[16];
  _mm512_storeu_ps(lanes, s);
  *sink = lanes[0];
  return ops * 32;  // 16 lanes x (multiply + add)
}

__attribute__((target("avx2,fma"))) long fp32_avx2_loop(double seconds, float* sink) {
  __m256 acc[kChains];
  for (auto& a : acc) a = _mm256_setzero_ps();
  const __m256 x = _mm256_set1_ps(1.0f), y = _mm256_set1_ps(1e-3f);
  long ops = 0;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  do {
    for (long i = 0; i < kInner; i++)
#pragma GCC unroll 12  // unrolled, the accumulators live in registers, not a stack array
      for (auto& a : acc) a = _mm256_fmadd_ps(x, y, a);
    ops += kInner * kChains;
  } while (Clock::now() < end);
  __m256 s = acc[0];
  for (int c = 1; c < kChains; c++) s = _mm256_add_ps(s, acc[c]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  *sink = lanes[0];
  return ops * 16;  // 8 lanes x (multiply + add)
}

// GFLOP/s of `loop` run by `threads` threads at once for `seconds` (the slowest thread's clock).
double measure(long (*loop)(double, float*), int threads, double seconds) {
  long flops = 0;
  float sink = 0;
  const auto start = Clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flops, sink)
  flops += loop(seconds, &sink);
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  if (sink == 12345.0f) std::printf(" ");  // keeps the loops' results alive
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
    fp32 = std::max(fp32, measure(avx512 ? fp32_avx512_loop : fp32_avx2_loop, threads, seconds));
    if (isa >= CpuIsa::avx512_bf16) bf16 = std::max(bf16, measure(bf16_loop, threads, seconds));
  }
  out["fp32_gflops"] = fp32;
  out["bf16_gflops"] = isa >= CpuIsa::avx512_bf16 ? nlohmann::json(bf16) : nlohmann::json(nullptr);
  std::printf("%s\n", out.dump().c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_cpu_peak: %s\n", e.what());
  return 1;
}

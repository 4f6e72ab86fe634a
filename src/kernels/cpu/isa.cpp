// CPU level detection and the start-up check (see isa.h). CMake compiles this file for plain
// x86-64 (no AVX), whatever the rest of the build targets: the check runs in a constructor of
// priority 101, before every other constructor of the executable or shared library it is linked
// into, so on a CPU without the baseline it is the only code of ours that has run when it stops.
// It uses C stdio only: nothing here may pull in C++ library code compiled for a higher level.
#include "kernels/cpu/isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tuneserve {

namespace {

struct Feature {
  const char* name;  // __builtin_cpu_supports spelling, also what the error prints
  CpuIsa level;      // the lowest level that needs it
};

// x86-64-v3 and -v4 as the x86-64 psABI defines them, plus AVX512_BF16.
constexpr Feature kFeatures[] = {
    {"avx", CpuIsa::avx2},           {"avx2", CpuIsa::avx2},          {"fma", CpuIsa::avx2},
    {"bmi", CpuIsa::avx2},           {"bmi2", CpuIsa::avx2},          {"f16c", CpuIsa::avx2},
    {"lzcnt", CpuIsa::avx2},         {"movbe", CpuIsa::avx2},         {"avx512f", CpuIsa::avx512},
    {"avx512bw", CpuIsa::avx512},    {"avx512cd", CpuIsa::avx512},    {"avx512dq", CpuIsa::avx512},
    {"avx512vl", CpuIsa::avx512},    {"avx512bf16", CpuIsa::avx512_bf16},
};

constexpr const char* kNames[] = {"avx2", "avx512", "avx512_bf16"};
constexpr int kLevels = 3;

// The highest level compiled into the kernels (isa_passes.h).
constexpr CpuIsa kHighestKernelLevel = CpuIsa::avx512;

bool supports(const char* feature) {
  // __builtin_cpu_supports takes string literals only.
#define TUNESERVE_FEATURE(literal) \
  if (std::strcmp(feature, literal) == 0) return __builtin_cpu_supports(literal);
  TUNESERVE_FEATURE("avx") TUNESERVE_FEATURE("avx2") TUNESERVE_FEATURE("fma") TUNESERVE_FEATURE("bmi")
  TUNESERVE_FEATURE("bmi2") TUNESERVE_FEATURE("f16c") TUNESERVE_FEATURE("lzcnt") TUNESERVE_FEATURE("movbe")
  TUNESERVE_FEATURE("avx512f") TUNESERVE_FEATURE("avx512bw") TUNESERVE_FEATURE("avx512cd")
  TUNESERVE_FEATURE("avx512dq") TUNESERVE_FEATURE("avx512vl") TUNESERVE_FEATURE("avx512bf16")
#undef TUNESERVE_FEATURE
  return false;
}

// Space-separated features of `level` (and below) that this CPU lacks; empty when it has them all.
void missing_features(CpuIsa level, char* out, std::size_t size) {
  out[0] = '\0';
  for (const Feature& f : kFeatures) {
    if (f.level > level || supports(f.name)) continue;
    if (out[0]) std::strncat(out, " ", size - std::strlen(out) - 1);
    std::strncat(out, f.name, size - std::strlen(out) - 1);
  }
}

struct State {
  CpuIsa detected = CpuIsa::avx2;
  CpuIsa selected = CpuIsa::avx2;
  CpuIsa kernels = CpuIsa::avx2;
  char description[160] = "";
};
State state;

// Plain stderr, not spdlog: this runs in a constructor before main (and before logging is set up).
[[noreturn]] void stop(const char* line) {
  std::fprintf(stderr, "tuneserve: %s\n", line);
  std::fflush(stderr);
  std::_Exit(1);
}

__attribute__((constructor(101))) void decide_cpu_isa() {
  __builtin_cpu_init();  // constructors may run before libgcc's own initialisation of the data
  char missing[160];
  char line[400];
#if !defined(TUNESERVE_NATIVE_BUILD)
  missing_features(CpuIsa::avx2, missing, sizeof missing);
  if (missing[0]) {
    std::snprintf(line, sizeof line,
                  "this CPU lacks %s, which this build needs (x86-64-v3: AVX2 and FMA, BMI2, F16C, LZCNT, MOVBE)",
                  missing);
    stop(line);
  }
#endif
  for (int level = kLevels - 1; level >= 0; --level) {
    missing_features(static_cast<CpuIsa>(level), missing, sizeof missing);
    if (!missing[0]) {
      state.detected = static_cast<CpuIsa>(level);
      break;
    }
  }
  state.selected = state.detected;
  const char* forced = std::getenv("TUNESERVE_CPU_ISA");
  if (forced && forced[0]) {
    int level = 0;
    while (level < kLevels && std::strcmp(forced, kNames[level]) != 0) ++level;
    if (level == kLevels) {
      std::snprintf(line, sizeof line, "TUNESERVE_CPU_ISA=%.64s is not a level (avx2, avx512, avx512_bf16)", forced);
      stop(line);
    }
#if defined(TUNESERVE_NATIVE_BUILD)
    stop("TUNESERVE_CPU_ISA needs a portable build; this one is -march=native (TUNESERVE_NATIVE=ON)");
#endif
    const CpuIsa wanted = static_cast<CpuIsa>(level);
    if (wanted > state.detected) {
      missing_features(wanted, missing, sizeof missing);
      std::snprintf(line, sizeof line, "TUNESERVE_CPU_ISA=%s: this CPU lacks %s (its level is %s)", forced, missing,
                    kNames[static_cast<int>(state.detected)]);
      stop(line);
    }
    state.selected = wanted;
  }
#if defined(TUNESERVE_NATIVE_BUILD)
  state.kernels = state.selected;
  std::snprintf(state.description, sizeof state.description, "native (-march=native build; CPU: %s)",
                kNames[static_cast<int>(state.detected)]);
#else
  state.kernels = state.selected < kHighestKernelLevel ? state.selected : kHighestKernelLevel;
  std::snprintf(state.description, sizeof state.description, "%s (%sCPU: %s)", kNames[static_cast<int>(state.kernels)],
                forced && forced[0] ? "TUNESERVE_CPU_ISA; " : "", kNames[static_cast<int>(state.detected)]);
#endif
}

}  // namespace

CpuIsa cpu_isa() { return state.selected; }
CpuIsa cpu_isa_detected() { return state.detected; }
const char* cpu_isa_name(CpuIsa isa) { return kNames[static_cast<int>(isa)]; }
CpuIsa kernel_isa() { return state.kernels; }
const char* kernel_isa_description() { return state.description; }

}  // namespace tuneserve

// The CPU's instruction-set level: the one place that asks the CPU (cpuid) what it runs, reads the
// TUNESERVE_CPU_ISA override, and names the levels. Decided once, before any other code of this
// library runs (isa.cpp), so a CPU without the build's baseline gets a one-line error, not SIGILL.
//
// Levels, each including the one before:
//   avx2         x86-64-v3: AVX, AVX2, FMA, BMI1, BMI2, F16C, LZCNT, MOVBE (the portable build's baseline)
//   avx512       x86-64-v4: + AVX-512 F, BW, CD, DQ, VL
//   avx512_bf16  + AVX512_BF16 (bf16 dot products)
//
// TUNESERVE_CPU_ISA=<level> lowers the level in force (to run a lower kernel path on a newer CPU);
// it also caps oneDNN (kernels/cpu/matmul.cpp). A value that is not a level, or a level this CPU
// lacks, stops the program with one line naming the problem.
//
// Kernels with a faster variant per level are compiled once per level (kernels/cpu/isa_passes.h)
// and pick theirs with kernel_isa(); other code asks cpu_isa(), e.g. `cpu_isa() >= CpuIsa::avx512_bf16`.
#pragma once

namespace tuneserve {

enum class CpuIsa { avx2, avx512, avx512_bf16 };

// The level in force: the highest this CPU and OS support, lowered by TUNESERVE_CPU_ISA.
CpuIsa cpu_isa();
// The highest level this CPU and OS support (ignores TUNESERVE_CPU_ISA).
CpuIsa cpu_isa_detected();
// "avx2", "avx512", "avx512_bf16": the spelling TUNESERVE_CPU_ISA takes.
const char* cpu_isa_name(CpuIsa isa);

// The level whose variant the CPU kernels run: cpu_isa() capped at the highest level they are
// compiled for (avx512). In a -march=native build (TUNESERVE_NATIVE) there is one variant, the
// compiler's, and this returns cpu_isa().
CpuIsa kernel_isa();
// How kernel_isa() was chosen, for `tuneserve --version`: "avx512 (CPU: avx512_bf16)",
// "avx2 (TUNESERVE_CPU_ISA; CPU: avx512_bf16)", "native (-march=native build; CPU: ...)".
const char* kernel_isa_description();

}  // namespace tuneserve

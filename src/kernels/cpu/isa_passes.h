// Compiles a kernel file once per ISA level in one translation unit, so each hot loop gets the
// vector width of the CPU it runs on while the binary stays runnable on any x86-64-v3 CPU.
//
// A kernel file `kernels/cpu/foo.cpp` does, after its #includes:
//
//   #define TUNESERVE_ISA_FILE "kernels/cpu/foo.cpp"
//   #include "kernels/cpu/isa_passes.h"
//   namespace tuneserve {
//   TUNESERVE_ISA_BEGIN
//   void foo_forward(float* out, const float* inp, std::size_t N) {
//     TUNESERVE_ISA_DISPATCH(foo_forward, out, inp, N);
//     ... the loop, written once ...
//   }
//   TUNESERVE_ISA_END
//   }  // namespace tuneserve
//
// This header first includes the file again with TUNESERVE_ISA_PASS_AVX512 defined: everything
// between TUNESERVE_ISA_BEGIN and TUNESERVE_ISA_END lands in namespace tuneserve::isa_avx512 and is
// compiled for x86-64-v4 (#pragma GCC target). Then the file continues as the baseline pass: the
// public functions themselves, compiled for the build's baseline (x86-64-v3), whose first statement
// hands the call to the avx512 variant when kernel_isa() (kernels/cpu/isa.h) allows it.
//
// Why a pragma and not a second object file built with -march=x86-64-v4: an object built that way
// also holds AVX-512 copies of the inline library functions it uses (std::vector, std::min...), and
// the linker may keep those copies for the whole program, which then faults on an AVX2 CPU. The
// pragma applies to the functions defined after it only; library code keeps the baseline.
//
// Inside the passes: write `#if TUNESERVE_ISA_AVX512` for code that differs per level (intrinsics,
// libmvec variants); functions in anonymous namespaces are per pass; a call to a kernel of another
// file goes through that kernel's public (dispatching) name. In a -march=native build
// (TUNESERVE_NATIVE_BUILD) there is a single pass for the compiler's target and no dispatch.
// A later level (e.g. avx512_bf16 for bf16 kernels) is one more pass here and one more enum value.

#if !defined(TUNESERVE_ISA_FILE)
#error "define TUNESERVE_ISA_FILE (this file's include path) before including kernels/cpu/isa_passes.h"
#endif

#if !defined(TUNESERVE_ISA_PASS_AVX512)

#include "kernels/cpu/isa.h"

#if !defined(TUNESERVE_NATIVE_BUILD)
#define TUNESERVE_ISA_PASS_AVX512 1
#define TUNESERVE_ISA_AVX512 1
#define TUNESERVE_ISA_BEGIN \
  namespace isa_avx512 {    \
  _Pragma("GCC push_options") _Pragma("GCC target(\"arch=x86-64-v4\")")
#define TUNESERVE_ISA_END _Pragma("GCC pop_options") }
#define TUNESERVE_ISA_DISPATCH(name, ...)
#include TUNESERVE_ISA_FILE
#undef TUNESERVE_ISA_PASS_AVX512
#undef TUNESERVE_ISA_AVX512
#undef TUNESERVE_ISA_BEGIN
#undef TUNESERVE_ISA_END
#undef TUNESERVE_ISA_DISPATCH
#define TUNESERVE_ISA_DISPATCH(name, ...)                        \
  if (::tuneserve::kernel_isa() >= ::tuneserve::CpuIsa::avx512) \
  return isa_avx512::name(__VA_ARGS__)
#else
#define TUNESERVE_ISA_DISPATCH(name, ...)
#endif

// The baseline pass (or the only one, in a native build).
#if defined(TUNESERVE_NATIVE_BUILD) && defined(__AVX512F__)
#define TUNESERVE_ISA_AVX512 1
#else
#define TUNESERVE_ISA_AVX512 0
#endif
#define TUNESERVE_ISA_BEGIN
#define TUNESERVE_ISA_END

#endif  // !TUNESERVE_ISA_PASS_AVX512
